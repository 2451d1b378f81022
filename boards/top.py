"""Board top: clock (PLL when it helps), reset, the accelerator engine, the UART host link, LEDs.

- :class:`EngineLinkAdapter`: between :class:`~spikeforge.boards.link_gateware.UARTHostLink`
  (pixel stream with ``last``/``seq``; one result struct of K logits and the class) and
  :class:`~spikeforge.hdl.accel.engine.Engine` (bare pixel stream; K logit beats then the
  class beat with ``last``).
- :class:`AcceleratorSystem`: everything that is not board-specific (UART pins ``rx``/``tx``,
  ``leds``). The simulated board (:mod:`spikeforge.boards.sim_board`) runs exactly this.
- :class:`BoardTop`: the system on an amaranth-boards platform: PLL (``SB_PLL40_PAD`` on
  iCE40, ``EHXPLLL`` on ECP5) unless the board oscillator already is the requested clock,
  reset held until the PLL locks, pins from the :class:`~spikeforge.devices.Target`.
- :func:`ice40_pll`, :func:`ecp5_pll`: divider search for a requested output frequency.

LEDs, in the target's order: 0 activity (an image is being received or computed, stretched
to about 50 ms so it is visible), 1 heartbeat (about 1 Hz: the clock runs and the design is
out of reset), 2.. the last class in binary (least significant bit first).
"""

import math

from amaranth.hdl import (ClockDomain, ClockSignal, DomainRenamer, Elaboratable, Instance, Module, ResetSignal,
                          Signal, unsigned)
from amaranth.lib import io, stream, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from ..hdl.accel.engine import Engine
from ..hdl.accel.engine import result_layout as engine_result_layout
from ..hdl.sdram import pins_signature
from ..hdl.sdram_timing import ULX3S_SDRAM
from ..hdl.params import field_bits
from .hostlink import (BAUD_RATES, MAX_IMAGE, VERSION, Info, image_payload_length, info_payload, model_hash, pixel_bits,
                       weight_set_crc)
from .link_gateware import UARTHostLink, image_layout, result_layout
from .sdram_pins import SdramPins
from .sdram_system import SdramWeightPath, check_sdram_clock
from .uart import RATE_TOLERANCE, baud_divisor, check_receiver

__all__ = ["EngineLinkAdapter", "AcceleratorSystem", "BoardTop", "ClockPlan", "plan_clock", "ice40_pll",
           "ecp5_pll", "BRIDGES", "bridge_rate", "default_baud", "check_link_settings"]


class EngineLinkAdapter(wiring.Component):
    """Pixels from the link to the engine; the engine's K logit beats and class beat gathered
    into the link's result struct (held until the link takes it).

    Members
    -------
    image : ``In(stream.Signature(image_layout(max_value)))``
    pixels : ``Out(stream.Signature(unsigned(pixel_bits)))``
    beats : ``In(stream.Signature(engine result_layout(logit_bits)))``
    result : ``Out(stream.Signature(link result_layout(classes, logit_bits, with_meta=False)))``
    busy : ``Out(1)``
        High from the image's first pixel until its result has been taken.
    last_class : ``Out(field_bits(classes))``
        Class of the last result taken.
    """

    def __init__(self, *, max_value, pixel_bits, classes, logit_bits):
        if max_value.bit_length() != pixel_bits:
            raise ValueError(f"EngineLinkAdapter: pixels of max_value {max_value} are {max_value.bit_length()} "
                             f"bits on the link but the engine takes {pixel_bits}; they must be equal")
        self.classes = classes
        super().__init__({
            "image": In(stream.Signature(image_layout(max_value))),
            "pixels": Out(stream.Signature(unsigned(pixel_bits))),
            "beats": In(stream.Signature(engine_result_layout(logit_bits))),
            "result": Out(stream.Signature(result_layout(classes, logit_bits, with_meta=False))),
            "busy": Out(1),
            "last_class": Out(field_bits(classes)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.pixels.valid.eq(self.image.valid),
            self.pixels.payload.eq(self.image.payload.pixel),
            self.image.ready.eq(self.pixels.ready),
        ]
        full = Signal()
        idx = Signal(range(self.classes + 1))
        m.d.comb += [self.beats.ready.eq(~full), self.result.valid.eq(full)]
        with m.If(self.beats.valid & self.beats.ready):
            with m.If(self.beats.payload.last):
                m.d.sync += [self.result.payload.cls.eq(self.beats.payload.value), full.eq(1), idx.eq(0)]
            with m.Else():
                with m.Switch(idx):
                    for k in range(self.classes):
                        with m.Case(k):
                            m.d.sync += self.result.payload.logits[k].eq(self.beats.payload.value)
                m.d.sync += idx.eq(idx + 1)
        with m.If(self.image.valid & self.image.ready):
            m.d.sync += self.busy.eq(1)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += [full.eq(0), self.busy.eq(0), self.last_class.eq(self.result.payload.cls)]
        return m


class AcceleratorSystem(wiring.Component):
    """Engine + UART host link + LED logic, without any board specifics.

    Parameters
    ----------
    program : compiled program (:func:`spikeforge.hdl.accel.program.compile_model`)
    divisor : int
        Clock cycles per UART bit.
    clk_hz : float
        Clock frequency (for the LED heartbeat and activity stretch only).
    leds : int
        Number of LED outputs (0..16).
    spram_primitive : bool
        With the SPRAM mapping (``program.memory.kind == "spram"``): instantiate
        ``SB_SPRAM256KA`` (synthesis) rather than the behavioural model (simulation). The host
        link then accepts WEIGHTS frames (``docs/hostlink.md``) and refuses images until the
        weights are loaded.
    mult_primitive : bool
        The fast build's requantization multipliers as ECP5 ``MULT18X18D`` blocks with their
        own registers (synthesis for the ECP5; see :class:`~spikeforge.hdl.accel.product.RegisteredProduct`).
    info_clock_hz : float or None
        The clock the link's INFO reports (default ``clk_hz``; the simulated board runs its LED
        logic at 1 kHz but reports the board's clock).
    window : int or None
        Requests in flight the link takes (:class:`~spikeforge.boards.link_gateware.UARTHostLink`):
        default 2 for the fast build with its weights in the bitstream (the next image is
        received while one is computed), 1 for the compact build (the iCEBreaker, which has no
        room for the 64 flip-flops of a second image's check and seq) and with loadable weights.
    """

    def __init__(self, program, *, divisor, clk_hz=12e6, leds=2, spram_primitive=False, mult_primitive=False,
                 info_clock_hz=None, window=None, sdram_part=ULX3S_SDRAM):
        if isinstance(leds, bool) or not isinstance(leds, int) or not 0 <= leds <= 16:
            raise ValueError(f"AcceleratorSystem: leds is {leds!r}; allowed: an integer 0..16")
        self.program = program
        self.clk_hz = float(clk_hz)
        kind = program.memory.kind
        if kind == "sdram":
            # the controller's timing rules are in cycles of the board's real clock
            sdram_hz = check_sdram_clock(self.clk_hz if info_clock_hz is None else float(info_clock_hz),
                                         "AcceleratorSystem")
        self.engine = Engine(program, spram_primitive=spram_primitive, mult_primitive=mult_primitive)
        # the words the host loads with WEIGHTS frames (INFO's weight_words): the SPRAM's weight
        # words, or the SDRAM's 16-bit words (program.sdram_image()); 0 for weights in the bitstream
        self.weight_words = {"spram": getattr(program.memory, "weight_words", 0),
                             "sdram": getattr(program.memory, "sdram_words", 0)}.get(kind, 0)
        self.readback = kind == "sdram"
        self.sdram_path = None
        if kind == "sdram":
            self.sdram_path = SdramWeightPath(program, clk_hz=sdram_hz, max_count=self.engine.sdram_max_count,
                                              part=sdram_part)
        img = program.image
        self.max_value = int(img.levels)
        self.pixels = img.values  # a frames model's IMAGE payload: its T frames, T*H*W*C pixels
        if not 1 <= image_payload_length(self.pixels, self.max_value) <= MAX_IMAGE:
            raise ValueError(f"AcceleratorSystem: the image has {self.pixels} pixels of "
                             f"{pixel_bits(self.max_value)} bits; the host link carries 1..{MAX_IMAGE} bytes")
        if window is None:
            window = 1 if program.compact or self.weight_words else 2
        self.window = window
        self.classes = program.classes
        self.logit_bits = self.engine.logit_bits
        self.divisor = divisor
        self.n_leds = leds
        # What HELLO answers, and the weight CRC of weights built into the bitstream: computed
        # here, by the generator, baked in as constants.
        self.info = Info(VERSION, model_hash(program.model), img.stacked_shape, self.max_value, self.classes,
                         program.lanes, round(self.clk_hz if info_clock_hz is None else info_clock_hz),
                         self.weight_words, pixel_bits(self.max_value), self.logit_bits, window,
                         int(self.readback))
        self.link = UARTHostLink(divisor=divisor, pixels=self.pixels, max_value=self.max_value,
                                 classes=self.classes, logit_bits=self.logit_bits,
                                 copy_result=not program.compact,   # the fast build: a large device
                                 info=info_payload(self.info), window=window, readback=self.readback,
                                 **({"weight_words": self.weight_words} if self.weight_words else
                                    {"weight_crc": weight_set_crc(program)}))
        self.adapter = EngineLinkAdapter(max_value=self.max_value, pixel_bits=self.engine.pixel_bits,
                                         classes=self.classes, logit_bits=self.logit_bits)
        members = {"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(max(leds, 1))}
        if self.sdram_path is not None:
            members["sdram"] = Out(pins_signature(sdram_part))   # bound by SdramPins on the board
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        # The link sits by the UART pins, which can be a die's width from the reset
        # synchronizer: its domain is ``sync``'s clock with the reset passed through two
        # registers (placed on the way), deasserted two cycles later. Same clock, so the
        # streams between the link and the adapter need no synchronization.
        m.domains.link = cd_link = ClockDomain("link", local=True)
        rst_hops = [Signal(init=1, reset_less=True, name=f"link_rst{i}") for i in range(2)]
        m.d.sync += [rst_hops[0].eq(ResetSignal("sync", allow_reset_less=True)), rst_hops[1].eq(rst_hops[0])]
        m.d.comb += [cd_link.clk.eq(ClockSignal("sync")), cd_link.rst.eq(rst_hops[1])]
        m.submodules.link = DomainRenamer("link")(self.link)
        link = self.link
        m.submodules.adapter = ad = self.adapter
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx)]
        wiring.connect(m, link.image, ad.image)
        wiring.connect(m, ad.pixels, eng.pixels)
        wiring.connect(m, eng.result, ad.beats)
        wiring.connect(m, ad.result, link.result)
        if self.sdram_path is not None:
            m.submodules.sdram = sd = self.sdram_path
            wiring.connect(m, eng.sdram_req, sd.engine_req)
            wiring.connect(m, sd.engine_r, eng.sdram_r)
            wiring.connect(m, link.weights, sd.weights)
            wiring.connect(m, link.verify, sd.verify)
            wiring.connect(m, sd.verified, link.verified)
            wiring.connect(m, sd.sdram, wiring.flipped(self.sdram))
        elif self.weight_words:
            m.d.comb += [eng.weights.valid.eq(link.weights.valid),
                         eng.weights.payload.addr.eq(link.weights.payload.addr),
                         eng.weights.payload.data.eq(link.weights.payload.data),
                         link.weights.ready.eq(eng.weights.ready)]

        if self.n_leds:
            stretch = max(2, int(self.clk_hz / 20))      # about 50 ms
            active = Signal(range(stretch + 1))
            with m.If(ad.busy | ~self.rx):
                m.d.sync += active.eq(stretch)
            with m.Elif(active != 0):
                m.d.sync += active.eq(active - 1)
            beat_bit = max(1, int(self.clk_hz).bit_length() - 1)   # toggles about every 0.5-1 s
            beat = Signal(beat_bit + 1)
            m.d.sync += beat.eq(beat + 1)
            leds = [active != 0, beat[-1]]
            leds += [ad.last_class[i] for i in range(len(ad.last_class))]
            for i in range(self.n_leds):
                m.d.comb += self.leds[i].eq(leds[i] if i < len(leds) else 0)
        return m


# --- clocks ----------------------------------------------------------------------------------

def ice40_pll(fin_mhz, fout_mhz):
    """SB_PLL40 (SIMPLE feedback) dividers closest to ``fout_mhz`` from ``fin_mhz``:
    ``{"DIVR", "DIVF", "DIVQ", "FILTER_RANGE", "fout"}`` (the rules of icepll)."""
    best = None
    for divr in range(16):
        fpfd = fin_mhz / (divr + 1)
        if not 10 <= fpfd <= 133:
            continue
        for divf in range(128):
            fvco = fpfd * (divf + 1)
            if not 533 <= fvco <= 1066:
                continue
            for divq in range(1, 7):
                fout = fvco / (1 << divq)
                err = abs(fout - fout_mhz)
                if best is None or err < best[0] - 1e-9:
                    filt = 1 if fpfd < 17 else 2 if fpfd < 26 else 3 if fpfd < 44 else \
                        4 if fpfd < 66 else 5 if fpfd < 101 else 6
                    best = (err, dict(DIVR=divr, DIVF=divf, DIVQ=divq, FILTER_RANGE=filt, fout=fout))
    if best is None:
        raise ValueError(f"no iCE40 PLL setting from {fin_mhz} MHz")
    return best[1]


def ecp5_pll(fin_mhz, fout_mhz):
    """EHXPLLL dividers (feedback from CLKOP) closest to ``fout_mhz`` from ``fin_mhz``:
    ``{"CLKI_DIV", "CLKFB_DIV", "CLKOP_DIV", "fout", "fvco"}`` (the rules of ecppll)."""
    best = None
    for clki in range(1, 129):
        fpfd = fin_mhz / clki
        if not 3.125 <= fpfd <= 400:
            continue
        for clkfb in range(1, 81):
            fout = fpfd * clkfb
            if not 10 <= fout <= 400:
                continue
            for clkop in range(1, 129):
                fvco = fout * clkop
                if 400 <= fvco <= 800:
                    err = abs(fout - fout_mhz)
                    if best is None or err < best[0] - 1e-9:
                        best = (err, dict(CLKI_DIV=clki, CLKFB_DIV=clkfb, CLKOP_DIV=clkop, fout=fout, fvco=fvco))
                    break
    if best is None:
        raise ValueError(f"no ECP5 PLL setting from {fin_mhz} MHz")
    return best[1]


class ClockPlan:
    """The clock a build runs at: the oscillator (``pll`` is None) or a PLL's output."""

    def __init__(self, target, requested, mhz, pll):
        self.target, self.requested, self.mhz, self.pll = target, float(requested), mhz, pll

    def as_dict(self):
        return {"requested_mhz": self.requested, "mhz": self.mhz, "source": "pll" if self.pll else "oscillator",
                "oscillator_mhz": self.target.osc_mhz, "pll": self.pll}


def plan_clock(target, clock_mhz=None, *, tolerance=0.01):
    """How ``target`` reaches ``clock_mhz`` (default: the target's default clock).

    The oscillator when it is within ``tolerance`` (relative) of the request, else the PLL; a
    request the PLL cannot meet within ``tolerance`` is a ``ValueError`` naming the nearest
    clock it can give and the allowed range."""
    req = target.default_clock_mhz if clock_mhz is None else clock_mhz
    if isinstance(req, bool) or not isinstance(req, (int, float)) or not math.isfinite(req) or not req > 0:
        raise ValueError(f"clock is {clock_mhz!r} MHz; allowed: a positive number of MHz")
    lo, hi = target.clock_range_mhz
    if abs(req - target.osc_mhz) <= tolerance * req:
        plan = ClockPlan(target, req, target.osc_mhz, None)
    else:
        if not lo <= req <= hi:
            raise ValueError(f"clock {req:g} MHz is out of range for {target.name}; allowed: "
                             f"{target.osc_mhz:g} MHz (oscillator) or {lo:g}..{hi:g} MHz (PLL)")
        pll = (ice40_pll if target.family == "ice40" else ecp5_pll)(target.osc_mhz, req)
        if abs(pll["fout"] - req) > tolerance * req:
            raise ValueError(f"clock {req:g} MHz: the nearest PLL output on {target.name} is "
                             f"{pll['fout']:.4g} MHz, more than {100 * tolerance:g}% off; ask for that")
        plan = ClockPlan(target, req, pll["fout"], pll)
    return plan


# --- the UART's bit rate ------------------------------------------------------------------------

#: Each board's USB-UART bridge: (chip, base clock of its baud generator in Hz, fastest rate
#: known to work). The FT231X (ULX3S) divides 3 MHz by 1, 1.5 or 2 and up in steps of 1/8 (its
#: datasheet's maximum is 3 Mbaud); the FT2232H (iCEBreaker) divides 12 MHz the same way (up to
#: 12 Mbaud in its datasheet; 3 Mbaud is the rate routinely used on the board, and the fastest
#: that ``termios`` names below 4 Mbaud).
BRIDGES = {
    "icebreaker": ("FT2232H", 12_000_000, 3_000_000),
    "ulx3s-85f": ("FT231X", 3_000_000, 3_000_000),
}


def bridge_rate(board, baud):
    """The rate the board's FTDI bridge really makes when asked for ``baud``: its base clock over
    the nearest divisor it has (1, 1.5, or 2 and up in steps of 1/8)."""
    _, base, _ = BRIDGES[board]
    want = base / baud
    if want < 1.25:
        div = 1.0
    elif want < 1.75:
        div = 1.5
    else:
        div = max(2.0, round(want * 8) / 8)
    return base / div


def default_baud(target, clock_mhz=None):
    """The default bit rate of ``target`` at ``clock_mhz`` (default: its default clock): the
    fastest standard rate (:data:`BAUD_RATES`) up to the bridge's fastest known-good rate that the
    bridge makes within 1 %, that the board's clock divides within 1 % (an integer or a
    fractional divisor, :func:`~spikeforge.boards.uart.baud_divisor`) and whose divisor the
    receiver can take (:func:`~spikeforge.boards.uart.check_receiver`). ULX3S at 25 MHz: 3 Mbaud
    (divisor 25/3); iCEBreaker at 24 MHz: 3 Mbaud (divisor 8)."""
    clock = plan_clock(target, clock_mhz)
    _, _, fastest = BRIDGES[target.name]
    for baud in sorted(BAUD_RATES, reverse=True):
        if baud > fastest or abs(bridge_rate(target.name, baud) - baud) > RATE_TOLERANCE * baud:
            continue
        try:
            check_receiver(baud_divisor(clock.mhz * 1e6, baud))
        except ValueError:
            continue
        return baud
    raise ValueError(f"no standard bit rate fits {target.name} at {clock.mhz:g} MHz")


def check_link_settings(target, clock_mhz=None, baud=None):
    """The clock plan of ``target`` for ``clock_mhz``; ``ValueError`` naming ``--clock`` or
    ``--baud`` when the clock cannot be made or ``baud`` is not a rate the host link opens
    (the rule of ``spikeforge run``), cannot be divided from the clock within 1 %, or needs a
    divisor the receiver cannot take. ``baud`` None: :func:`default_baud`. Runs before compiling."""
    try:
        clock = plan_clock(target, clock_mhz)
    except ValueError as e:
        raise ValueError(f"--clock: {e}") from None
    if baud is None:
        baud = default_baud(target, clock_mhz)
    if isinstance(baud, bool) or not isinstance(baud, int) or baud not in BAUD_RATES:
        raise ValueError(f"--baud: {baud!r} is not supported; allowed: one of {', '.join(map(str, BAUD_RATES))} "
                         "(the rates `spikeforge run` opens)")
    made = bridge_rate(target.name, baud)
    if abs(made - baud) > RATE_TOLERANCE * baud:
        raise ValueError(f"--baud: {target.name}'s {BRIDGES[target.name][0]} bridge makes {made:.0f} baud when asked "
                         f"for {baud}, {100 * abs(made - baud) / baud:.2f}% off; allowed: a rate it makes within "
                         f"{100 * RATE_TOLERANCE:g}% (default {default_baud(target, clock_mhz)})")
    try:
        check_receiver(baud_divisor(clock.mhz * 1e6, baud))
    except ValueError as e:
        raise ValueError(f"--baud: {e}") from None
    return clock


class BoardTop(Elaboratable):
    """The accelerator system on a board (an amaranth-boards platform of ``target``)."""

    def __init__(self, target, program, *, clock_mhz=None, baud=None):
        self.target = target
        self.clock = plan_clock(target, clock_mhz)
        if program.memory.kind == "sdram":
            if target.name != "ulx3s-85f":
                raise ValueError(f"the model's weights are in SDRAM; target {target.name!r} has none; "
                                 "allowed: ulx3s-85f")
            check_sdram_clock(self.clock.mhz * 1e6, f"--clock on {target.name}")
        self.baud = baud = default_baud(target, clock_mhz) if baud is None else baud
        self.divisor = baud_divisor(self.clock.mhz * 1e6, baud)
        self.system = AcceleratorSystem(program, divisor=self.divisor, clk_hz=self.clock.mhz * 1e6,
                                        leds=len(target.leds), spram_primitive=True,
                                        mult_primitive=target.family == "ecp5")

    def _pll_domain(self, m, platform):
        t, pll = self.target, self.clock.pll
        m.domains.sync = cd = ClockDomain("sync")
        clk_io = platform.request(t.clock_resource, 0, dir="-")
        lock = Signal()
        if t.family == "ice40":
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_DIVR=pll["DIVR"], p_DIVF=pll["DIVF"], p_DIVQ=pll["DIVQ"],
                p_FILTER_RANGE=pll["FILTER_RANGE"],
                i_PACKAGEPIN=clk_io.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=cd.clk, o_LOCK=lock)
        else:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_io)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=str(t.osc_mhz), a_FREQUENCY_PIN_CLKOP=f"{self.clock.mhz:.4f}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=pll["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=pll["CLKOP_DIV"],
                p_CLKOP_CPHASE=pll["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0,
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=pll["CLKFB_DIV"],
                i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, o_CLKOP=cd.clk, i_CLKFB=cd.clk,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=lock)
        m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")
        platform.add_clock_constraint(cd.clk, self.clock.mhz * 1e6)

    def elaborate(self, platform):
        m = Module()
        if self.clock.pll is not None:
            self._pll_domain(m, platform)
        # else: the platform's default "sync" domain (oscillator, power-on reset) is used.
        m.submodules.system = sys_ = self.system
        uart = platform.request(self.target.uart, 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [sys_.rx.eq(rx.i), tx.o.eq(sys_.tx)]
        for i, (name, number) in enumerate(self.target.leds):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request(name, number, dir="-"))
            m.d.comb += led.o.eq(sys_.leds[i])
        if sys_.sdram_path is not None:
            # the controller's pins on the board's sdram resource (I/O-cell registers, DDR clock)
            m.submodules.sdram_pins = pins = SdramPins()
            wiring.connect(m, sys_.sdram, pins.sdram)
        return m

