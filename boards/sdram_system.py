"""The ULX3S SDRAM's side of the accelerator system (issue 21, docs/sdram.md "The board top").

:class:`SdramWeightPath` owns the one :class:`~spikeforge.hdl.sdram.SdramController` of a
board whose program keeps its weights in SDRAM (``program.memory.kind == "sdram"``) and shares
it, through an :class:`~spikeforge.boards.sdram_load.SdramArbiter`, between

- port 0: the engine's weight prefetcher (``engine_req`` / ``engine_r``: the engine's
  ``sdram_req`` / ``sdram_r``), reads while an image computes;
- port 1: the host's one-time weight load (:class:`~spikeforge.boards.sdram_load.SdramWeightLoader`,
  fed by the host link's ``weights``; its words go to the controller's ``w`` directly);
- port 2: the CRC read-back of VERIFY (:class:`~spikeforge.boards.sdram_load.SdramReadbackCrc`,
  ``verify`` / ``verified`` of the host link).

The host link keeps them apart in time: it refuses an IMAGE until all weights are loaded
(``NOT_LOADED``) and while a read-back runs (``BUSY``), and WEIGHTS or VERIFY while an image is
in flight (``BUSY``); the arbiter would serve them interleaved anyway (a read holds the grant
until its last word). The controller's pins (``sdram``) are the system's: a board top binds
them with :class:`~spikeforge.boards.sdram_pins.SdramPins` (hence ``io_delay=IO_DELAY``).
"""

from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..hdl.accel.program import MappingError
from ..hdl.sdram import SdramController, pins_signature, request_layout, word_layout
from ..hdl.sdram_timing import ULX3S_SDRAM
from .link_gateware import readback_layout, weight_layout
from .sdram_load import SdramArbiter, SdramReadbackCrc, SdramWeightLoader
from .sdram_pins import IO_DELAY

__all__ = ["SDRAM_CLOCK_MHZ", "SdramWeightPath", "check_sdram_clock", "refuse_sdram_board_flow"]

#: The only clock of an SDRAM build: the pin adapter's margins (docs/sdram.md, "The board's
#: pins") are computed for 50 MHz at CAS latency 2; at 100 MHz its read path does not close.
SDRAM_CLOCK_MHZ = 50.0


def refuse_sdram_board_flow(program, command):
    """Refuse ``command`` (``build``, ``run``) for a program with the sdram mapping, in one line.

    The board system joins the SDRAM pieces and is checked in amaranth.sim (tests/boards/
    test_sdram_top.py), but the board flow around it is not done: the host runtime loads SPRAM
    weights only (a board would answer NOT_LOADED forever), and the YoWASP ``yosys-abc`` exits
    with status 1 during the LUT mapping of the ULX3S top (docs/sdram.md, "What remains")."""
    if program.memory.kind == "sdram":
        raise MappingError(
            f"spikeforge {command}: the model's weights ({program.memory.sdram_words} SDRAM words) take the sdram "
            "mapping, which the board flow does not support yet (the host does not load SDRAM weights; synthesis "
            "of the SDRAM top is not working: issue 21); allowed on a board: models whose weights fit block RAM "
            "or SPRAM (`spikeforge info MODEL --target ecp5-85f`); `spikeforge generate --weights sdram` writes "
            "the engine's Verilog")


def check_sdram_clock(clock_hz, where="the system"):
    """``ValueError`` unless ``clock_hz`` is :data:`SDRAM_CLOCK_MHZ` (within 0.1 %)."""
    if abs(clock_hz - SDRAM_CLOCK_MHZ * 1e6) > 1e-3 * SDRAM_CLOCK_MHZ * 1e6:
        raise ValueError(f"{where}: clock {clock_hz / 1e6:g} MHz for a model whose weights are in SDRAM; "
                         f"allowed: {SDRAM_CLOCK_MHZ:g} MHz (the ULX3S SDRAM pins' timing is closed for "
                         f"{SDRAM_CLOCK_MHZ:g} MHz / CL2 only)")
    return clock_hz


class SdramWeightPath(wiring.Component):
    """Controller, arbiter, loader and read-back (module docstring).

    Parameters
    ----------
    program : compiled program with the sdram mapping
    clk_hz : float
        The clock the controller runs at (its timing rules in cycles).
    part : SdramPart
        The part (a simulation may shorten its power-up wait).

    Members
    -------
    engine_req : ``In(stream.Signature(request_layout(ULX3S_SDRAM, max_count)))``
    engine_r : ``Out(stream.Signature(word_layout(ULX3S_SDRAM)))``
    weights : ``In(stream.Signature(weight_layout(sdram_words)))``
    verify : ``In(stream.Signature(unsigned(32)))``
    verified : ``Out(stream.Signature(readback_layout()))``
    sdram : ``Out(pins_signature(part))``
    init_done : ``Out(1)``
    """

    def __init__(self, program, *, clk_hz, max_count, part=ULX3S_SDRAM):
        mm = program.memory
        if mm.kind != "sdram":
            raise ValueError(f"SdramWeightPath: the program keeps its weights in {mm.kind!r}; allowed: 'sdram'")
        self.words = mm.sdram_words
        self.controller = SdramController(clk_hz=int(round(clk_hz)), cas_latency=mm.cas_latency,
                                          max_count=max_count, part=part, io_delay=IO_DELAY)
        self.arbiter = SdramArbiter(3, max_count=max_count, part=part)
        self.loader = SdramWeightLoader(weight_words=self.words, max_count=max_count, part=part)
        self.readback = SdramReadbackCrc(max_count=max_count, part=part)
        super().__init__({
            "engine_req": In(stream.Signature(request_layout(ULX3S_SDRAM, max_count))),
            "engine_r": Out(stream.Signature(word_layout(ULX3S_SDRAM))),
            "weights": In(stream.Signature(weight_layout(self.words))),
            "verify": In(stream.Signature(32)),
            "verified": Out(stream.Signature(readback_layout())),
            "sdram": Out(pins_signature(part)),
            "init_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.controller = ctrl = self.controller
        m.submodules.arbiter = arb = self.arbiter
        m.submodules.loader = ld = self.loader
        m.submodules.readback = rb = self.readback
        wiring.connect(m, arb.req, ctrl.req)
        wiring.connect(m, ctrl.r, arb.r)
        wiring.connect(m, wiring.flipped(self.sdram), ctrl.sdram)
        m.d.comb += self.init_done.eq(ctrl.init_done)
        # port 0: the engine's prefetcher
        wiring.connect(m, wiring.flipped(self.engine_req), arb.ports[0].req)
        wiring.connect(m, arb.ports[0].r, wiring.flipped(self.engine_r))
        # port 1: the weight load (writes; its words on the controller's w)
        wiring.connect(m, wiring.flipped(self.weights), ld.weights)
        wiring.connect(m, ld.req, arb.ports[1].req)
        wiring.connect(m, ld.w, ctrl.w)
        m.d.comb += arb.ports[1].r.ready.eq(1)           # never granted a read
        # port 2: the read-back of VERIFY
        wiring.connect(m, wiring.flipped(self.verify), rb.start)
        wiring.connect(m, rb.result, wiring.flipped(self.verified))
        wiring.connect(m, rb.req, arb.ports[2].req)
        wiring.connect(m, arb.ports[2].r, rb.r)
        return m
