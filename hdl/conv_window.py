"""Convolution window addressing (spec §5): output positions in row-major order, and for each
the in-grid input positions of its k x k window (zero padding skips the others).

Golden function: :func:`spikeforge.sim.golden.conv_window_scan`.
"""

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_int, field_bits
from .window_walk import WindowWalk

__all__ = ["ConvWindowScan"]


class ConvWindowScan(wiring.Component):
    """Stream of ``(token, tap, end, last)`` reads for one k x k convolution pass.

    One beat per in-grid tap; the walk is the engine's SYN generator loop nest
    (:class:`.window_walk.WindowWalk`, levels ``kx, ky, ox, oy``), so a tap outside the grid
    (zero padding) costs a cycle without a beat, as in the engine: a pass takes ``Ho * Wo * k
    * k`` cycles. ``token = y * W + x`` addresses the input activation memory,
    ``tap = ky * k + kx`` goes into :class:`SparseAdd`'s event tag with ``end`` (last tap of an
    output position); ``last`` marks the last beat of the pass. A linear layer is ``k = 1``.

    Parameters
    ----------
    height, width : int
        Input grid H x W.
    kernel, stride, padding : int
        k >= 1, s >= 1, 0 <= p < k; the output grid must be at least 1 x 1.

    Members
    -------
    i : ``In(stream.Signature(0))``
        Start: each transfer starts one pass; ready while idle.
    o : ``Out(stream.Signature(layout))``
        Reads, valid from the cycle after the start, one per cycle while ``o.ready``.
    """

    def __init__(self, *, height, width, kernel=1, stride=1, padding=0):
        name = type(self).__name__
        self.height = check_int(name, "height", height, 1, 4096)
        self.width = check_int(name, "width", width, 1, 4096)
        self.kernel = check_int(name, "kernel", kernel, 1, 15)
        self.stride = check_int(name, "stride", stride, 1, 15)
        self.padding = check_int(name, "padding", padding, 0, self.kernel - 1)
        k, s, p = self.kernel, self.stride, self.padding
        self.out_height = (self.height + 2 * p - k) // s + 1
        self.out_width = (self.width + 2 * p - k) // s + 1
        if self.out_height < 1 or self.out_width < 1:
            raise ValueError(f"{name}: kernel={k}, stride={s}, padding={p} leave no output on a "
                             f"{self.height}x{self.width} grid; allowed: an output of at least 1x1")
        self.layout = data.StructLayout({
            "token": unsigned(field_bits(self.height * self.width)),
            "tap": unsigned(field_bits(k * k)),
            "end": 1,
            "last": 1,
        })
        super().__init__({"i": In(stream.Signature(0)), "o": Out(stream.Signature(self.layout))})

    # cost model ---------------------------------------------------------------------------
    def cycles(self):
        """Cycles of one pass without stalls, start transfer to the walk's end: ``1 + Ho * Wo *
        k * k`` (a tap outside the grid costs its cycle, as in the engine)."""
        return 1 + self.out_height * self.out_width * self.kernel * self.kernel

    def memory_bits(self):
        return 0

    def logic_estimate(self):
        n = 4 * field_bits(max(self.out_height, self.out_width, self.kernel))
        return {"lut": 6 * n + 2 * len(self.layout.members) * 8, "ff": n + 1}

    # hardware ---------------------------------------------------------------------------
    def walk_levels(self):
        """The :class:`.window_walk.WindowWalk` levels, innermost first: ``kx, ky, ox, oy``."""
        k = self.kernel
        return [("kx", field_bits(k)), ("ky", field_bits(k)),
                ("ox", field_bits(self.out_width)), ("oy", field_bits(self.out_height))]

    def elaborate(self, platform):
        m = Module()
        k, s, p = self.kernel, self.stride, self.padding
        H, W = self.height, self.width
        m.submodules.walk = walk = WindowWalk(self.walk_levels())
        for name, n in zip(("kx", "ky", "ox", "oy"), (k, k, self.out_width, self.out_height)):
            m.d.comb += [walk.bounds[name].n1.eq(n - 1), walk.bounds[name].one.eq(n == 1),
                         walk.bounds[name].two.eq(n == 2)]
        c = walk.count
        running = Signal()
        y = Signal(signed(field_bits(H + k + 1) + 2))
        x = Signal(signed(field_bits(W + k + 1) + 2))
        m.d.comb += [y.eq(c.oy * s + c.ky - p), x.eq(c.ox * s + c.kx - p)]
        inb = (y >= 0) & (y < H) & (x >= 0) & (x < W)
        last_kx, last_ky, last_ox, last_oy = (walk.last[j] for j in range(4))
        # the position's last in-grid tap (read for in-grid taps only), as the engine's row_last
        end = (last_ky | (y == H - 1)) & (last_kx | (x == W - 1))
        start = self.i.valid & self.i.ready
        m.d.comb += [
            walk.run.eq(running & ~start),  # a start (taken only while idle) begins the walk afresh
            walk.step.eq(running & (~inb | self.o.ready)),
            self.i.ready.eq(~running),
            self.o.valid.eq(running & inb),
            self.o.payload.token.eq(y * W + x),
            self.o.payload.tap.eq(c.ky * k + c.kx),
            self.o.payload.end.eq(end),
            self.o.payload.last.eq(end & last_ox & last_oy),
        ]
        with m.If(start):
            m.d.sync += running.eq(1)
        with m.If(walk.wrap):
            m.d.sync += running.eq(0)
        return m
