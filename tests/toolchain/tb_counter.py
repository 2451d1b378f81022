"""cocotb testbench for demo_units.Counter (run through spikeforge.sim.runners.run_cocotb)."""

import cocotb
from cocotb.triggers import ReadOnly, RisingEdge

from spikeforge.sim.cocotb_util import TB, test_parameters


@cocotb.test()
async def counts_when_enabled(dut):
    params = test_parameters()
    width = params.get("width", 8)
    cycles = params.get("cycles", 20)
    tb = TB(dut)
    dut.en.value = 0
    await tb.start()
    await RisingEdge(tb.clk)
    assert int(dut.count.value) == 0
    dut.en.value = 1
    await tb.cycles(cycles)
    await ReadOnly()
    assert int(dut.count.value) == cycles % (1 << width), int(dut.count.value)


@cocotb.test()
async def expect_wrong_count(dut):
    """Always fails: run it alone (testcase=...) to see that failures are reported by name."""
    tb = TB(dut)
    await tb.start()
    await ReadOnly()
    assert int(dut.count.value) == 12345, "injected failure"
