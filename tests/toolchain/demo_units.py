"""Small Amaranth components used only by the toolchain tests."""

from amaranth import Cat, Elaboratable, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out


class Counter(wiring.Component):
    """Counts up by one on every cycle where ``en`` is high; wraps at 2**width."""

    def __init__(self, width=8):
        self.width = width
        super().__init__({"en": In(1), "count": Out(width)})

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


class AffineStage(wiring.Component):
    """Stream stage: ``o.payload = 3 * i.payload + 1`` (mod 2**width), one register deep.

    ``broken=True`` makes the input always ready, so a new item overwrites the held output
    while the consumer stalls: this breaks the stream rules and loses data (the formal and
    simulation tests use it to show that they can fail).
    """

    def __init__(self, width=8, *, broken=False):
        self.width = width
        self.broken = broken
        super().__init__({
            "i": In(stream.Signature(unsigned(width))),
            "o": Out(stream.Signature(unsigned(width))),
        })

    def elaborate(self, platform):
        m = Module()
        if self.broken:
            m.d.comb += self.i.ready.eq(1)
        else:
            m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                self.o.valid.eq(1),
                self.o.payload.eq(self.i.payload * 3 + 1),
            ]
        return m


class WideXor(wiring.Component):
    """Wide ports (more bits than a small FPGA has pins), for the synthesis wrapper test."""

    def __init__(self, width=256):
        self.width = width
        super().__init__({"a": In(width), "b": In(width), "y": Out(width), "s": Out(16)})

    def elaborate(self, platform):
        m = Module()
        acc = Signal(16)
        m.d.sync += self.y.eq(self.a ^ (self.b + self.a))
        m.d.sync += acc.eq(acc + self.a[:16] * self.b[:16])
        m.d.comb += self.s.eq(Cat(acc))
        return m


class AffineProof(Elaboratable):
    """Proof harness: free inputs, stream rules assumed on ``i`` and asserted on ``o``."""

    def __init__(self, *, broken=False):
        self.broken = broken

    def elaborate(self, platform):
        from spikeforge.sim.formal import free_inputs, stream_rules

        m = Module()
        m.submodules.dut = dut = AffineStage(width=8, broken=self.broken)
        free_inputs(m, dut)
        stream_rules(m, dut.i, assume=True, name="i")
        stream_rules(m, dut.o, name="o")
        return m
