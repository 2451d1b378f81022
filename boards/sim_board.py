"""The simulated board: the board's system (engine, UART host link, LEDs) under cocotb, and a
:class:`~spikeforge.boards.runtime.Transport` that moves the host runtime's bytes through the
simulated UART pins, bit by bit.

- :func:`write_sim_board` writes the Verilog of :class:`~spikeforge.boards.top.AcceleratorSystem`
  (toplevel ``sim_board``: ``clk``, ``rst``, ``rx``, ``tx``, ``leds``) with a fast UART divisor.
- :class:`UARTPinTransport` (inside a cocotb test only): ``write`` drives ``rx`` with 8N1
  frames of ``divisor`` clock periods per bit; a monitor task decodes ``tx`` into a receive
  buffer; ``read`` waits in simulated time. Its ``clock`` is the simulation time in seconds, so
  :class:`~spikeforge.boards.runtime.HostLink` timeouts and latencies are simulated seconds.
  The unchanged host runtime runs in a cocotb ``bridge`` thread; each transport call
  ``resume``\\ s into the simulator.
- Fault injection: :meth:`UARTPinTransport.corrupt_write` flips a bit of a byte of a given
  write (a corrupted IMAGE frame: the board must answer BAD_CRC and the host retry);
  :meth:`UARTPinTransport.corrupt_read` flips a bit of a received byte (a corrupted RESULT).
  The fault-injecting :class:`~spikeforge.boards.faults.FaultyTransport` wraps it as any
  transport: its babble and stalls spend simulated time (:meth:`UARTPinTransport.wait`) and
  its board resets pulse the design's reset (:meth:`UARTPinTransport.reset_board`).

The only difference to a real board is the missing PLL and pin buffers (:class:`BoardTop`'s
platform part) and the divisor.
"""

import time
from pathlib import Path

from ..modelfile import atomic_write
from .runtime import Transport
from .top import AcceleratorSystem

__all__ = ["SIM_TOP", "write_sim_board", "UARTPinTransport"]

SIM_TOP = "sim_board"


def write_sim_board(program, path, *, divisor=4, leds=4, clock_hz=None):
    """Write the Verilog of the board system for ``program`` to ``path``; returns the path.
    ``clock_hz``: the clock INFO reports (default: the 1 kHz the LED logic is built for, so
    that its counters stay short in simulation)."""
    from amaranth.back import verilog

    system = AcceleratorSystem(program, divisor=divisor, clk_hz=1e3, leds=leds, info_clock_hz=clock_hz)
    text = verilog.convert(system, name=SIM_TOP, emit_src=False)
    atomic_write(path, text.encode())
    return Path(path)


class UARTPinTransport(Transport):
    """Host <-> simulated board bytes over the ``rx``/``tx`` pins (use inside a cocotb test).

    Parameters
    ----------
    dut : the cocotb toplevel handle (``rx`` driven here, ``tx`` monitored)
    divisor : int
        Clock cycles per bit, the same as the gateware's.
    period_ns : float
        Clock period of the simulation.
    """

    def __init__(self, dut, *, divisor, period_ns=10):
        import cocotb
        from cocotb.triggers import Event
        from cocotb.utils import get_sim_time

        self._cocotb = cocotb
        self.dut = dut
        # Bit times in whole picoseconds (the simulation's precision), so that a clock period
        # such as 41.667 ns (24 MHz) gives timers the simulator can represent exactly.
        self.bit_ps = round(float(divisor) * period_ns * 1000)
        self.bit_ns = self.bit_ps / 1000
        self._get_time = get_sim_time
        self._rx = bytearray()
        self._got = Event()
        self._now = get_sim_time("ns") * 1e-9
        self.writes = 0
        self.received = 0
        self._corrupt_w = {}
        self._corrupt_r = {}
        #: where the time went: phase -> [calls, simulated s, wall s, CPU s of the process]; phases
        #: ``send`` (driving a write's bits), ``reply`` (a read that got bytes: the board's
        #: compute and reply), ``timeout`` (a read that got none), ``wait`` (babble, stalls),
        #: ``reset``
        self.phases = {}
        self._send_timers = {}
        dut.rx.value = 1
        self._monitor = cocotb.start_soon(self._watch_tx())

    def clock(self):  # noqa: D102 (Transport.clock): simulated seconds, exact between calls
        return self._now

    def _stamp(self):
        self._now = self._get_time("ns") * 1e-9

    def _account(self, phase, sim0, wall0):
        entry = self.phases.setdefault(phase, [0, 0.0, 0.0, 0.0])
        entry[0] += 1
        entry[1] += self._get_time("ns") * 1e-9 - sim0
        entry[2] += time.perf_counter() - wall0[0]
        entry[3] += time.process_time() - wall0[1]

    # --- fault injection ---
    def corrupt_write(self, write_index, offset, mask=0x10):
        """XOR ``mask`` into byte ``offset`` of write number ``write_index`` (0-based)."""
        self._corrupt_w[write_index] = (offset, mask)

    def corrupt_read(self, byte_index, mask=0x04):
        """XOR ``mask`` into received byte number ``byte_index`` (0-based, counted over the run)."""
        self._corrupt_r[byte_index] = mask

    # --- simulator side ---
    async def _watch_tx(self):
        from cocotb.triggers import FallingEdge, Timer

        dut, bit = self.dut, self.bit_ps
        fall, half, full = FallingEdge(dut.tx), Timer(bit // 2, "ps"), Timer(bit, "ps")   # reused
        while True:
            await fall
            await half
            if int(dut.tx.value) != 0:
                continue  # a glitch, not a start bit
            value = 0
            for i in range(8):
                await full
                value |= int(dut.tx.value) << i
            await full
            if int(dut.tx.value) != 1:
                continue  # framing error: drop the byte, like the gateware does
            value ^= self._corrupt_r.pop(self.received, 0)
            self.received += 1
            self._rx.append(value)
            self._got.set()

    async def _send(self, data):
        from cocotb.triggers import Timer

        dut, bit = self.dut, self.bit_ps
        sim0, wall0 = self._get_time("ns") * 1e-9, (time.perf_counter(), time.process_time())
        levels = []
        for byte in data:
            levels += [0] + [(byte >> i) & 1 for i in range(8)] + [1]
        # One write and one wait per run of equal bits (the pin's level is all the board sees):
        # half the simulator round trips of a write and a wait per bit. The waits are reused
        # Timer objects, one per run length (this coroutine is their only user).
        timers = self._send_timers
        i, n = 0, len(levels)
        while i < n:
            j = i + 1
            while j < n and levels[j] == levels[i]:
                j += 1
            dut.rx.value = levels[i]
            run = j - i
            timer = timers.get(run)
            if timer is None:
                timer = timers[run] = Timer(run * bit, "ps")
            await timer
            i = j
        self._stamp()
        self._account("send", sim0, wall0)

    async def _read(self, size, timeout):
        from cocotb.triggers import First, Timer

        if not self._rx:
            sim0, wall0 = self._get_time("ns") * 1e-9, (time.perf_counter(), time.process_time())
            self._got.clear()
            wait_ns = max(1.0, round(timeout * 1e9))
            await First(self._got.wait(), Timer(wait_ns, "ns", round_mode="round"))
            self._account("reply" if self._rx else "timeout", sim0, wall0)
        out = bytes(self._rx[:size])
        del self._rx[:size]
        self._stamp()
        return out

    # --- Transport (called from the bridge thread) ---
    def write(self, data):
        from cocotb.task import resume

        data = bytearray(data)
        offset, mask = self._corrupt_w.pop(self.writes, (None, 0))
        if offset is not None and offset < len(data):
            data[offset] ^= mask
        self.writes += 1
        resume(self._send)(bytes(data))

    def read(self, size, timeout):
        from cocotb.task import resume

        if timeout <= 0:
            # What has arrived, at once (as a serial port's non-blocking read): no simulated time
            # passes, so the simulator (paused while the host's thread runs) need not be resumed.
            out = bytes(self._rx[:size])
            del self._rx[:size]
            return out
        return resume(self._read)(size, timeout)

    def wait(self, seconds):
        """Let ``seconds`` of simulated time pass (babble and stalls of a FaultyTransport)."""
        from cocotb.task import resume

        async def sleep():
            from cocotb.triggers import Timer

            sim0, wall0 = self._get_time("ns") * 1e-9, (time.perf_counter(), time.process_time())
            await Timer(max(1, round(seconds * 1e9)), "ns", round_mode="round")
            self._stamp()
            self._account("wait", sim0, wall0)

        resume(sleep)()

    def reset_board(self):
        """Reset the board (as a reconfiguration does, the weight memory keeps its words): the
        design's reset high for two clock cycles."""
        from cocotb.task import resume

        async def pulse():
            from cocotb.triggers import RisingEdge

            sim0, wall0 = self._get_time("ns") * 1e-9, (time.perf_counter(), time.process_time())
            self.dut.rst.value = 1
            for _ in range(2):
                await RisingEdge(self.dut.clk)
            self.dut.rst.value = 0
            await RisingEdge(self.dut.clk)
            self._stamp()
            self._account("reset", sim0, wall0)

        resume(pulse)()

    def reset_input(self):
        self._rx.clear()

    def close(self):
        if self._monitor is not None:
            self._monitor.cancel()
            self._monitor = None
