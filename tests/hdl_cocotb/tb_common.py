# amaranth: UnusedElaboratable=no
"""Shared side of the tier-2 cocotb testbenches (imported inside the cocotb process).

The pytest side (``test_cocotb_units.py``) converts ``make_unit(unit, params)`` to Verilog and
passes ``{"unit", "params", "seed", "idle", "backpressure"}`` through ``run_cocotb(parameters=)``.
Here the same unit object is rebuilt from those parameters (never elaborated): it gives the
payload layouts for packing/unpacking the flat ``<port>__payload`` vectors and the unit's
constants (weights, thresholds) for the golden functions of ``spikeforge.sim.golden``.
"""

from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.triggers import RisingEdge

from spikeforge.hdl.generate import make_unit
from spikeforge.hdl.testing import to_python
from spikeforge.sim.cocotb_util import TB, StreamSink, StreamSource, test_parameters

__all__ = ["setup", "pack", "unpack", "payload_shape", "exchange", "first_mismatch"]


def setup():
    """``(unit, parameters)``: the unit rebuilt from the parameters given by the test."""
    p = test_parameters()
    return make_unit(p["unit"], p["params"]), p


def payload_shape(unit, port):
    return unit.signature.members[port].signature.members["payload"].shape


def pack(shape, value):
    """Payload value (int, list or dict as for ``Layout.const``) -> the flat port integer."""
    if isinstance(shape, data.Layout):
        return shape.const(value).as_bits()
    return int(value) & ((1 << Shape.cast(shape).width) - 1)


def unpack(shape, bits):
    """Flat port integer -> ints / lists / dicts (two's complement decoded per field)."""
    if isinstance(shape, data.Layout):
        return to_python(shape.from_bits(int(bits)))
    return int(bits)


def first_mismatch(got, want):
    for n, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"beat {n}: got {a}, expected {b}"
    return f"lengths {len(got)} vs {len(want)}"


async def exchange(dut, unit, feeds, count, p, *, out="o", quiet_cycles=30):
    """Start one :class:`StreamSource` per input port in ``feeds`` (port -> payload values,
    all started together with random idle cycles) and a :class:`StreamSink` with random
    backpressure on ``out``; wait for ``count`` outputs, then ``quiet_cycles`` more in which no
    further output may appear. Returns the unpacked outputs; fails on a stream-rule violation."""
    tb = TB(dut)
    await tb.start()
    seed = p.get("seed", 0)
    sink = StreamSink(dut, out, tb.clk, backpressure=p.get("backpressure", 0.4), seed=seed + 100)
    sink.start()
    for n, (port, items) in enumerate(feeds.items()):
        shape = payload_shape(unit, port)
        src = StreamSource(dut, port, tb.clk, idle=p.get("idle", 0.3), seed=seed + n)
        src.start([pack(shape, x) for x in items])
    total = sum(len(v) for v in feeds.values())
    raw = await sink.recv(count, timeout_cycles=40 * (total + count) + 200)
    for _ in range(quiet_cycles):
        await RisingEdge(tb.clk)
    assert not sink.violations, sink.violations[:5]
    assert len(sink.items) == count, f"{len(sink.items) - count} outputs more than expected"
    shape = payload_shape(unit, out)
    return [unpack(shape, r) for r in raw]
