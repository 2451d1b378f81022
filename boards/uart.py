"""UART transmitter and receiver, 8N1, LSB first, with a fixed baud divisor.

``divisor`` is the number of clock cycles per bit (``clk_freq / baud``, see
:func:`baud_divisor`). The line idles high; a byte is a start bit (0), eight data bits LSB
first and one stop bit (1).

No board code here: the components expose the line as plain ``tx`` / ``rx`` signals and the
bytes as :mod:`amaranth.lib.stream` interfaces.
"""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

from ..hdl.params import check_int

__all__ = ["UARTTx", "UARTRx", "baud_divisor", "MIN_DIVISOR", "MAX_DIVISOR"]

MIN_DIVISOR = 4
MAX_DIVISOR = 1 << 24


def baud_divisor(clk_freq, baud, *, tolerance=0.02):
    """Clock cycles per bit for ``baud`` at ``clk_freq`` Hz; raises ``ValueError`` when the
    rounded divisor misses the baud rate by more than ``tolerance`` (relative) or leaves the
    range ``MIN_DIVISOR..MAX_DIVISOR``."""
    if not clk_freq > 0 or not baud > 0:
        raise ValueError(f"clk_freq and baud must be positive, not {clk_freq!r} and {baud!r}")
    divisor = round(clk_freq / baud)
    if not MIN_DIVISOR <= divisor <= MAX_DIVISOR:
        raise ValueError(f"baud {baud} at {clk_freq} Hz needs divisor {clk_freq / baud:.2f}; "
                         f"allowed: {MIN_DIVISOR}..{MAX_DIVISOR}")
    error = abs(clk_freq / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(f"baud {baud} at {clk_freq} Hz: divisor {divisor} gives "
                         f"{clk_freq / divisor:.0f} baud, {100 * error:.2f}% off; "
                         f"allowed: {100 * tolerance:.2f}%")
    return divisor


def _check_divisor(unit, divisor):
    return check_int(unit, "divisor", divisor, MIN_DIVISOR, MAX_DIVISOR)


class UARTTx(wiring.Component):
    """UART transmitter.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes to send. ``ready`` is high while idle and in the last cycle of a stop bit, so
        back-to-back bytes leave no gap: a byte takes exactly ``10 * divisor`` cycles.
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
        timer = Signal(range(self.divisor))
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
                timer.eq(self.divisor - 1),
                left.eq(10),
            ]
        with m.Elif(left != 0):
            with m.If(bit_done):
                m.d.sync += [
                    shreg.eq(Cat(shreg[1:], Const(1, 1))),
                    timer.eq(self.divisor - 1),
                    left.eq(left - 1),
                ]
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

        timer = Signal(range(self.divisor))
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
                    m.d.sync += timer.eq(self.divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(tick):
                    with m.If(rx):
                        m.next = "IDLE"  # glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(self.divisor - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(tick):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(self.divisor - 1)]
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
