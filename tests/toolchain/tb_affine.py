"""cocotb testbench for demo_units.AffineStage with random idle cycles and backpressure."""

import random

import cocotb

from spikeforge.sim.cocotb_util import TB, StreamSink, StreamSource, test_parameters


@cocotb.test()
async def stream_with_backpressure(dut):
    params = test_parameters()
    n = params.get("count", 200)
    width = len(dut.i__payload)
    rng = random.Random(params.get("seed", 0))
    data = [rng.randrange(1 << width) for _ in range(n)]
    tb = TB(dut)
    src = StreamSource(dut, "i", tb.clk, idle=params.get("idle", 0.3), seed=2)
    sink = StreamSink(dut, "o", tb.clk, backpressure=params.get("backpressure", 0.5), seed=3)
    await tb.start()
    sink.start()
    src.start(data)
    got = await sink.recv(n, timeout_cycles=20 * n + 100)
    want = [(3 * x + 1) % (1 << width) for x in data]
    assert not sink.violations, sink.violations[:5]
    assert got == want, f"first mismatch at {next(i for i, (a, b) in enumerate(zip(got, want)) if a != b)}"
