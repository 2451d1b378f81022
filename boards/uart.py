"""UART transmitter and receiver, 8N1, LSB first, with a fixed baud divisor.

``divisor`` is the number of clock cycles per bit (``clk_freq / baud``, see
:func:`baud_divisor`): an integer, or a fraction ``q + r/s`` (a :class:`fractions.Fraction`
with a denominator up to :data:`MAX_DENOMINATOR`) when no integer divisor is within 1 % of the
rate (the ULX3S's 25 MHz and 3 Mbaud: 25/3). A fractional divisor makes each bit ``q`` or
``q + 1`` cycles long, chosen by an accumulator, so that the bit edges are never more than one
cycle off the ideal ones and the mean rate is exact; an integer divisor needs no accumulator.
The line idles high; a byte is a start bit (0), eight data bits LSB first and one stop bit (1).

No board code here: the components expose the line as plain ``tx`` / ``rx`` signals and the
bytes as :mod:`amaranth.lib.stream` interfaces.
"""

from fractions import Fraction

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..hdl.params import check_int

__all__ = ["UARTTx", "UARTRx", "baud_divisor", "rx_tolerance", "rx_limits", "check_receiver", "divisor_text",
           "divisor_json", "parse_divisor", "MIN_DIVISOR", "MAX_DIVISOR", "MAX_DENOMINATOR", "RATE_TOLERANCE",
           "LINK_TOLERANCE"]

MIN_DIVISOR = 4
MAX_DIVISOR = 1 << 24
#: largest denominator of a fractional divisor (its accumulator counts modulo it)
MAX_DENOMINATOR = 16
#: how far the board's bit rate may be off the nominal one (the divisor's rounding)
RATE_TOLERANCE = 0.01
#: the rate error the receiver must take for a build (:func:`check_receiver`): the board's own
#: (:data:`RATE_TOLERANCE`) plus as much again for the host's bridge
LINK_TOLERANCE = 0.02


def baud_divisor(clk_freq, baud, *, tolerance=RATE_TOLERANCE):
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz: the nearest integer when it gives a
    rate within ``tolerance`` (relative), else the nearest fraction with a denominator up to
    :data:`MAX_DENOMINATOR` (a :class:`~fractions.Fraction`); raises ``ValueError`` when that
    misses the rate by more than ``tolerance`` too, or the divisor is outside
    ``MIN_DIVISOR..MAX_DIVISOR``."""
    if not clk_freq > 0 or not baud > 0:
        raise ValueError(f"clk_freq and baud must be positive, not {clk_freq!r} and {baud!r}")
    exact = Fraction(clk_freq) / Fraction(baud)
    if not MIN_DIVISOR <= round(exact) <= MAX_DIVISOR:
        raise ValueError(f"baud {baud} at {clk_freq:g} Hz needs divisor {float(exact):.2f}; "
                         f"allowed: {MIN_DIVISOR}..{MAX_DIVISOR} clock cycles per bit")
    for divisor in (round(exact), exact.limit_denominator(MAX_DENOMINATOR)):
        error = abs(float(clk_freq / divisor) - baud) / baud
        if error <= tolerance and divisor >= MIN_DIVISOR:
            return int(divisor) if Fraction(divisor).denominator == 1 else Fraction(divisor)
    raise ValueError(f"baud {baud} at {clk_freq:g} Hz: divisor {divisor_text(divisor)} gives "
                     f"{float(clk_freq / divisor):.0f} baud, {100 * error:.2f}% off; "
                     f"allowed: {100 * tolerance:.2f}%")


def divisor_text(divisor):
    """``"8"`` or ``"25/3"``."""
    return str(Fraction(divisor))


def divisor_json(divisor):
    """A divisor for a JSON report: the integer, or ``"25/3"`` for a fractional one."""
    d = Fraction(divisor)
    return int(d) if d.denominator == 1 else str(d)


def parse_divisor(value):
    """The inverse of :func:`divisor_json` (an int, or a ``"p/q"`` string)."""
    d = Fraction(value)
    return int(d) if d.denominator == 1 else d


def rx_tolerance(divisor):
    """The relative bit-rate error (either sign) :class:`UARTRx` takes at ``divisor``, worst case.

    The receiver sees the start edge up to one cycle late (the line is looked at once a cycle;
    the synchronizer delays the edge and every sample alike) and samples bit ``k`` (0: start,
    9: stop) ``floor(d / 2) + k * d`` cycles after it (a fractional divisor: within half a
    cycle, ``j``). The sample must fall inside the sender's bit ``k``, ``[k, k + 1) * D`` with
    ``D = d * (1 + e)``. A slower sender (``e > 0``) needs ``floor(d/2) - j >= 9 e d``, a faster
    one ``floor(d/2) + 1 + j + 9 d < 10 D``; the stop bit (``k = 9``) is the tightest. Returns the
    smaller of the two limits (:func:`rx_limits`: both; ``tests/boards/test_uart.py`` drives the
    receiver at each)."""
    return min(rx_limits(divisor))


def rx_limits(divisor):
    """``(slow, fast)``: the rate errors of a slower and of a faster sender the receiver takes
    (:func:`rx_tolerance`)."""
    d = Fraction(divisor)
    half = Fraction(int(d / 2))
    j = Fraction(1, 2) if d.denominator > 1 else Fraction(0)
    return float((half - j) / (9 * d)), float((d - half - 1 - j) / (10 * d))


def check_receiver(divisor, *, tolerance=LINK_TOLERANCE):
    """``ValueError`` (one line) when the receiver at ``divisor`` takes less than ``tolerance``
    of rate error (:func:`rx_tolerance`); returns the divisor."""
    tol = rx_tolerance(divisor)
    if tol < tolerance:
        raise ValueError(f"UART divisor {divisor_text(divisor)} cannot work: its receiver takes only "
                         f"{100 * tol:.2f}% of rate error; allowed: a divisor whose receiver takes at least "
                         f"{100 * tolerance:.2f}% (the board's and the host bridge's)")
    return divisor


def _check_divisor(unit, divisor):
    if isinstance(divisor, Fraction) and divisor.denominator != 1:
        if divisor.denominator > MAX_DENOMINATOR or not MIN_DIVISOR <= divisor <= MAX_DIVISOR:
            raise ValueError(f"{unit}: divisor is {divisor}; allowed: a fraction {MIN_DIVISOR}..{MAX_DIVISOR} "
                             f"with a denominator up to {MAX_DENOMINATOR}")
        return divisor
    if isinstance(divisor, Fraction):
        divisor = int(divisor)
    return check_int(unit, "divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)


def _timer_range(divisor):
    """Values of a bit timer: ``0 .. q - 1`` (an integer divisor ``q``), ``0 .. q`` (``q + r/s``)."""
    d = Fraction(divisor)
    return int(d) + (1 if d.denominator > 1 else 0)


class _BitTimer:
    """Bit timing of a divisor ``q + r/s``: ``reload`` is the value to load a down-counter
    with for the next bit (``q - 1``, plus 1 when the accumulator carries); ``advance`` (to
    be added to ``m.d.sync`` when a bit starts) steps the accumulator."""

    def __init__(self, m, divisor, timer, *, start=0):
        d = Fraction(divisor)
        self.q, self.r = divmod(d.numerator, d.denominator)
        self.s = d.denominator
        if self.r:
            self.acc = Signal(range(self.s), init=start % self.s)
            carry = Signal()
            m.d.comb += carry.eq(self.acc + self.r >= self.s)
            self.reload = Mux(carry, self.q, self.q - 1)
            self.advance = [self.acc.eq(Mux(carry, self.acc + self.r - self.s, self.acc + self.r))]
        else:
            self.acc = None
            self.reload = self.q - 1
            self.advance = []

    def restart(self, start):
        """Statements that set the accumulator to ``start`` (the receiver at a start edge)."""
        return [] if self.acc is None else [self.acc.eq(start % self.s)]


class UARTTx(wiring.Component):
    """UART transmitter.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes to send. ``ready`` is high while idle and in the last cycle of a stop bit, so
        back-to-back bytes leave no gap: a byte takes exactly ``10 * divisor`` cycles (a
        fractional divisor: 10 bits of ``q`` or ``q + 1`` cycles, ``10 * divisor`` on the mean).
    tx : ``Out(1)``
        The serial line (a register output, idles high).
    busy : ``Out(1)``
        A byte is being sent.
    """

    def __init__(self, *, divisor):
        self.divisor = _check_divisor(type(self).__name__, divisor)
        super().__init__({
            "i": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        shreg = Signal(10, init=0x3FF)   # stop, data[7:0], start; bit 0 is on the line
        timer = Signal(range(_timer_range(self.divisor)))
        bt = _BitTimer(m, self.divisor, timer)
        left = Signal(range(11))         # bits left to send, the current one included
        bit_done = timer == 0
        m.d.comb += [
            self.tx.eq(shreg[0]),
            self.busy.eq(left != 0),
            self.i.ready.eq((left == 0) | ((left == 1) & bit_done)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [
                shreg.eq(Cat(Const(0, 1), self.i.payload, Const(1, 1))),
                timer.eq(bt.reload),
                left.eq(10),
                *bt.advance,
            ]
        with m.Elif(left != 0):
            with m.If(bit_done):
                m.d.sync += [
                    shreg.eq(Cat(shreg[1:], Const(1, 1))),
                    timer.eq(bt.reload),
                    left.eq(left - 1),
                ]
                with m.If(left != 1):
                    m.d.sync += bt.advance
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m


class UARTRx(wiring.Component):
    """UART receiver.

    The line goes through a ``sync_stages`` flip-flop synchronizer, the start bit is checked
    again at its middle (a shorter low pulse is ignored), data and stop bits are sampled at
    their middles.

    Members
    -------
    rx : ``In(1)``
        The serial line (idle high).
    o : ``Out(stream.Signature(8))``
        Received bytes. One byte is held; a byte completed while the previous one is still
        not taken is dropped and ``overrun`` pulses.
    framing_error : ``Out(1)``
        One-cycle pulse: the stop bit was 0. The byte is dropped and the receiver waits for
        the line to go high again.
    overrun : ``Out(1)``
        One-cycle pulse: a received byte was dropped because ``o`` was still full.
    """

    def __init__(self, *, divisor, sync_stages=2):
        name = type(self).__name__
        self.divisor = _check_divisor(name, divisor)
        self.sync_stages = check_int(name, "sync_stages", sync_stages, 2, 8)
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(stream.Signature(8)),
            "framing_error": Out(1),
            "overrun": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1, stages=self.sync_stages)

        timer = Signal(range(_timer_range(self.divisor)))
        bt = _BitTimer(m, self.divisor, timer)
        half = int(Fraction(self.divisor) / 2)
        bits = Signal(range(8))
        shreg = Signal(8)
        data = Signal(8)
        valid = Signal()
        m.d.comb += [self.o.valid.eq(valid), self.o.payload.eq(data)]
        with m.If(self.o.ready):
            m.d.sync += valid.eq(0)
        m.d.sync += [self.framing_error.eq(0), self.overrun.eq(0)]
        tick = timer == 0
        with m.If(~tick):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    # the accumulator starts half way: the sample times are rounded, not floored
                    m.d.sync += [timer.eq(half - 1), *bt.restart(bt.s // 2)]
                    m.next = "START"
            with m.State("START"):
                with m.If(tick):
                    with m.If(rx):
                        m.next = "IDLE"  # glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(bt.reload), bits.eq(0), *bt.advance]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(bt.reload), *bt.advance]
                    with m.If(bits == 7):
                        m.next = "STOP"
                    with m.Else():
                        m.d.sync += bits.eq(bits + 1)
            with m.State("STOP"):
                with m.If(tick):
                    with m.If(rx):
                        with m.If(valid & ~self.o.ready):
                            m.d.sync += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [data.eq(shreg), valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m
