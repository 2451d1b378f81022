"""cocotb-side helpers for Amaranth designs: clock/reset and ``lib.stream`` ports.

Amaranth names the signals of a stream port ``X`` as ``X__payload``, ``X__valid`` and
``X__ready`` in the emitted Verilog, and the clock domain ``sync`` as ``clk``/``rst``.

Timing convention: drivers write right after a rising edge; handshakes are sampled in the
``ReadOnly`` phase of the cycle, i.e. with settled combinational values just before the next
rising edge, where the transfer takes place.  This works the same on Verilator and Icarus.

Import this module only inside cocotb testbenches (it imports :mod:`cocotb`).
"""

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from .runners import PARAMS_ENV

__all__ = ["TB", "StreamSource", "StreamSink", "test_parameters", "PARAMS_ENV"]


def test_parameters():
    """The ``parameters`` dict given to :func:`spikeforge.sim.runners.run_cocotb`."""
    return json.loads(os.environ.get(PARAMS_ENV) or "{}")


test_parameters.__test__ = False  # not a pytest test despite the name


def _port(dut, name):
    try:
        return getattr(dut, name)
    except AttributeError:
        raise AttributeError(
            f"toplevel {dut._name!r} has no signal {name!r}; Amaranth stream ports appear as "
            f"'<port>__payload', '<port>__valid', '<port>__ready'"
        ) from None


def _check_prob(name, value):
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
    return value


class TB:
    """Clock and reset for an Amaranth toplevel (``clk`` and ``rst`` by default)."""

    def __init__(self, dut, *, clk="clk", rst="rst", period_ns=10):
        self.dut = dut
        self.clk = _port(dut, clk)
        self.rst = _port(dut, rst) if rst is not None else None
        self.period_ns = period_ns

    async def start(self, reset_cycles=2):
        """Start the clock and hold reset high for ``reset_cycles`` rising edges."""
        cocotb.start_soon(Clock(self.clk, self.period_ns, unit="ns").start())
        if self.rst is not None:
            self.rst.value = 1
            for _ in range(reset_cycles):
                await RisingEdge(self.clk)
            self.rst.value = 0

    async def cycles(self, n):
        for _ in range(n):
            await RisingEdge(self.clk)


class StreamSource:
    """Drives the Amaranth stream input port ``prefix`` of ``dut``.

    Before each item the source stays idle (valid low) for a random number of cycles: each
    cycle it idles with probability ``idle``.  Once valid is high it stays high, with a stable
    payload, until the DUT takes the item (the stream rules).  Integers are masked to the
    payload width, so negative numbers are sent in two's complement.
    """

    def __init__(self, dut, prefix, clk, *, idle=0.0, seed=0):
        self.payload = _port(dut, f"{prefix}__payload")
        self.valid = _port(dut, f"{prefix}__valid")
        self.ready = _port(dut, f"{prefix}__ready")
        self.clk = clk
        self.idle = _check_prob("idle", idle)
        self.rng = random.Random(seed)
        self.width = len(self.payload)
        self.sent = 0
        self.valid.value = 0
        self.payload.value = 0

    async def send(self, items):
        mask = (1 << self.width) - 1
        for item in items:
            while self.idle and self.rng.random() < self.idle:
                self.valid.value = 0
                await RisingEdge(self.clk)
            self.payload.value = int(item) & mask
            self.valid.value = 1
            while True:
                await ReadOnly()
                taken = bool(self.ready.value)
                await RisingEdge(self.clk)
                if taken:
                    break
            self.sent += 1
        self.valid.value = 0

    def start(self, items):
        """Send ``items`` in the background; returns the task (await it to wait for the end)."""
        return cocotb.start_soon(self.send(list(items)))


class StreamSink:
    """Consumes the Amaranth stream output port ``prefix`` of ``dut``.

    Each cycle ``ready`` is low with probability ``backpressure``.  Received payloads are
    collected in ``self.items`` (unsigned, or two's-complement decoded with ``signed=True``).
    ``check_rules=True`` also checks the stream rules on the DUT side: once valid is high it
    must stay high with a stable payload until it is taken; violations are collected in
    ``self.violations``.
    """

    def __init__(self, dut, prefix, clk, *, backpressure=0.0, seed=1, signed=False, check_rules=True):
        self.payload = _port(dut, f"{prefix}__payload")
        self.valid = _port(dut, f"{prefix}__valid")
        self.ready = _port(dut, f"{prefix}__ready")
        self.clk = clk
        self.backpressure = _check_prob("backpressure", backpressure)
        self.rng = random.Random(seed)
        self.signed = signed
        self.check_rules = check_rules
        self.width = len(self.payload)
        self.items = []
        self.violations = []
        self.cycle = 0
        self.ready.value = 0
        self._task = None

    def _decode(self, value):
        value = int(value)
        if self.signed and value >> (self.width - 1):
            value -= 1 << self.width
        return value

    async def _run(self):
        pending = None  # payload offered but not taken in the previous cycle
        while True:
            ready = not (self.backpressure and self.rng.random() < self.backpressure)
            self.ready.value = int(ready)
            await ReadOnly()
            valid = bool(self.valid.value)
            payload = self.payload.value if valid else None
            if self.check_rules and pending is not None:
                if not valid:
                    self.violations.append(f"cycle {self.cycle}: valid dropped before the item was taken")
                elif int(payload) != pending:
                    self.violations.append(
                        f"cycle {self.cycle}: payload changed from {pending} to {int(payload)} while not taken"
                    )
            if valid and ready:
                self.items.append(self._decode(payload))
                pending = None
            elif valid:
                pending = int(payload)
            else:
                pending = None
            await RisingEdge(self.clk)
            self.cycle += 1

    def start(self):
        if self._task is None:
            self._task = cocotb.start_soon(self._run())
        return self

    async def recv(self, count, *, timeout_cycles=10_000):
        """Wait until ``count`` items in total were received; return them."""
        self.start()
        waited = 0
        while len(self.items) < count:
            if waited >= timeout_cycles:
                raise TimeoutError(
                    f"stream sink got {len(self.items)} of {count} items in {timeout_cycles} cycles"
                )
            await RisingEdge(self.clk)
            waited += 1
        return self.items[:count]
