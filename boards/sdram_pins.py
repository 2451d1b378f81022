"""The SDRAM controller's pins on the ULX3S's ``sdram`` resource (amaranth-boards).

:class:`SdramPins` takes :class:`~spikeforge.hdl.sdram.SdramController`'s ``sdram`` pins (at
datasheet levels, registered in the controller) and drives the board's pins through Amaranth
0.5 I/O buffers:

- every output (``clk_en``, ``cs``, ``we``, ``ras``, ``cas``, ``ba``, ``a``, ``dqm``) through an
  ``io.FFBuffer``: on the ECP5 an output flip-flop in the I/O cell (``OFS1P3DX``), so the
  clock-to-pad time is the cell's and the same for every pin. amaranth-boards declares
  ``cs``/``we``/``ras``/``cas`` as ``PinsN`` (active high in the design, inverted at the pin):
  the adapter drives them with the controller's ``*_n`` inverted, and the buffer inverts them
  again, so the pin carries the datasheet's active-low level;
- ``dq`` through a bidirectional ``io.FFBuffer``: output, output enable (the tristate, one
  ``OFS1P3DX`` per pin for the data and one for the enable) and input (``IFS1P3DX``) registered
  in the I/O cell;
- the SDRAM clock ``clk`` from an ``io.DDRBuffer`` (``ODDRX1F``) sending 0 in the first half of
  each cycle and 1 in the second: the part's clock is the controller's clock inverted, its
  rising edge half a cycle after the edge that launches a command.

Timing at 50 MHz (20 ns cycle), -7 part (tIS 1.5 ns, tIH 0.8 ns, tAC 6 ns at CL2, tOH 2.7 ns):
a command leaves the output flip-flops at the controller's edge 0 and the part samples it at
10 ns: 10 ns minus the pad-to-pad skew between the DDR clock pin and the command pins (every
pin leaves an I/O cell flip-flop, so the skew is the board's traces, well under 1 ns) is the
setup margin (needs 1.5 ns), and the hold margin is again about 10 ns (needs 0.8 ns). Read
data of a READ sampled at 10 ns comes ``CL - 1`` part cycles later plus tAC: valid from
``10 + 20 * (CL - 1) + 6 = 36`` ns (CL2) to ``10 + 20 * CL + 2.7 = 52.7`` ns; the input
flip-flops take it at the controller's edge at 40 ns: about 4 ns of setup for the input
buffer and the board (the ECP5 input register needs about 0 ns with its input delay) and
12.7 ns of hold. At 100 MHz the same scheme leaves too little (5 ns half cycle minus tAC 5.4 ns
at CL3): a PLL phase output for the clock pin would be needed there; the board build closes at
50 MHz with this one.

The round trip seen by the controller is one cycle longer than with its pins on the part
directly (one cycle of output flip-flops, one of input flip-flops, less the half cycle twice
from the inverted clock): :data:`IO_DELAY` is the controller's ``io_delay``.

In simulation (no platform, :func:`simulation_ports`) the clock pin is driven by the inverted
``sync`` clock through a plain buffer (Amaranth has no DDR buffer in simulation) and
:func:`sdram_pin_bench` plays the part on the pins.
"""

import random
from types import SimpleNamespace

from amaranth.hdl import ClockSignal, Module, Shape
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In

from ..hdl.sdram import pins_signature
from ..hdl.sdram_timing import ULX3S_SDRAM, SdramPart

__all__ = ["IO_DELAY", "SdramPins", "simulation_ports", "sdram_pin_bench"]

#: Read round-trip cycles the adapter adds: ``SdramController(io_delay=IO_DELAY)``.
IO_DELAY = 1

# resource subsignal -> (controller pin, inverted in the resource)
_OUTPUTS = {"clk_en": ("clk_en", False), "cs": ("cs_n", True), "we": ("we_n", True),
            "ras": ("ras_n", True), "cas": ("cas_n", True), "ba": ("ba", False),
            "a": ("a", False), "dqm": ("dqm", False)}


def simulation_ports(part=ULX3S_SDRAM):
    """``io.SimulationPort`` objects named and inverted like amaranth-boards' ``sdram``
    resource (``cs``/``we``/``ras``/``cas`` inverted), for :class:`SdramPins` in simulation.
    Their ``o``/``oe``/``i`` are the levels at the pins."""
    sig = pins_signature(part).members
    ports = {name: io.SimulationPort("o", Shape.cast(sig[pin].shape).width, invert=inv,
                                     name=f"sdram_{name}")
             for name, (pin, inv) in _OUTPUTS.items()}
    ports["dq"] = io.SimulationPort("io", part.data_bits, name="sdram_dq")
    ports["clk"] = io.SimulationPort("o", 1, name="sdram_clk")
    return SimpleNamespace(**ports)


class SdramPins(wiring.Component):
    """The controller's ``sdram`` pins on the board's ``sdram`` resource (module docstring).

    Parameters
    ----------
    part : SdramPart
    ports : object or None
        The resource's ports (attributes ``clk``, ``clk_en``, ``cs``, ``we``, ``ras``, ``cas``,
        ``ba``, ``a``, ``dqm``, ``dq``); ``None``: ``platform.request("sdram", index,
        dir="-")`` at elaboration.
    index : int
        The resource's number (the ULX3S has one, 0).

    Members
    -------
    sdram : ``In(pins_signature(part))``
        Connect to the controller's ``sdram`` (built with ``io_delay=IO_DELAY``).
    """

    def __init__(self, part=ULX3S_SDRAM, *, ports=None, index=0):
        if not isinstance(part, SdramPart):
            raise TypeError(f"SdramPins: part must be an SdramPart, not {part!r}")
        self.part = part
        self._ports = ports
        self.index = index
        super().__init__({"sdram": In(pins_signature(part))})

    def elaborate(self, platform):
        m = Module()
        ports = self._ports
        if ports is None:
            ports = platform.request("sdram", self.index, dir="-")
        pins = self.sdram
        for name, (pin, inverted) in _OUTPUTS.items():
            m.submodules[name] = buf = io.FFBuffer("o", getattr(ports, name))
            value = getattr(pins, pin)
            m.d.comb += buf.o.eq(~value if inverted else value)
        m.submodules.dq = dq = io.FFBuffer("io", ports.dq)
        m.d.comb += [dq.o.eq(pins.dq_o), dq.oe.eq(pins.dq_oe), pins.dq_i.eq(dq.i)]
        if platform is not None and hasattr(platform, "get_io_buffer"):
            m.submodules.clk = clk = io.DDRBuffer("o", ports.clk)
            m.d.comb += [clk.o[0].eq(0), clk.o[1].eq(1)]
        else:
            m.submodules.clk = clk = io.Buffer("o", ports.clk)
            m.d.comb += clk.o.eq(~ClockSignal("sync"))
        return m


def sdram_pin_bench(model, ports, *, rng=None, log=None):
    """A background testbench: the SDRAM ``model`` on the board pins ``ports``
    (:func:`simulation_ports`, levels as at the part). Each cycle it takes the command the
    pins hold in this cycle (the part samples it at its clock's rising edge, half a cycle
    later), steps the model, and puts on ``dq`` the word the part drives around the
    controller's next edge: the one the model gives at its next step (valid from tAC after the
    part's edge before to tOH after the part's edge after: docs/sdram.md), or a random word
    when it drives none. The part's cycle 0 is the one after the first edge. ``log`` (a list)
    gets ``(cycle, pin levels)`` of every non-NOP command."""
    rng = rng if rng is not None else random.Random(1)

    async def bench(ctx):
        # before the first edge the pins show the I/O flip-flops' initial value (CKE low, which
        # the part takes as power-down): the part's cycles start with the clock's first edge
        await ctx.tick()
        cycle = 0
        while True:
            v = {n: ctx.get(getattr(ports, n).o) for n in ("cs", "ras", "cas", "we", "ba", "a",
                                                            "dqm", "clk_en")}
            dq_o, dq_oe = ctx.get(ports.dq.o), ctx.get(ports.dq.oe)
            drive = bool(dq_oe & 1)
            if dq_oe not in (0, (1 << len(ports.dq)) - 1):
                raise AssertionError(f"cycle {cycle}: DQ output enable {dq_oe:#x} is not all or none")
            model.step(cs_n=v["cs"], ras_n=v["ras"], cas_n=v["cas"], we_n=v["we"], ba=v["ba"],
                       a=v["a"], dq=dq_o, dq_oe=drive, dqm=v["dqm"], cke=v["clk_en"])
            if log is not None and (v["cs"], v["ras"], v["cas"], v["we"]) != (0, 1, 1, 1) and not v["cs"]:
                log.append((cycle, dict(v, dq=dq_o, dq_oe=drive)))
            nxt = model.read_out.get(model.cycle)
            ctx.set(ports.dq.i, rng.getrandbits(len(ports.dq)) if nxt is None else nxt[1])
            cycle += 1
            await ctx.tick()
    return bench
