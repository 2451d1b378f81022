"""Tier 2: ConvWindowScan's Verilog against ``golden.conv_window_scan``, several passes."""

import cocotb
from tb_common import exchange, first_mismatch, setup

from spikeforge.sim.golden import conv_window_scan


@cocotb.test()
async def matches_golden(dut):
    unit, p = setup()
    scan = conv_window_scan(unit.height, unit.width, unit.kernel, unit.stride, unit.padding)
    one = [(tok, tap, end, int(n == len(scan) - 1)) for n, (tok, tap, end) in enumerate(scan)]
    passes = p.get("passes", 3)
    got = await exchange(dut, unit, {"i": [0] * passes}, passes * len(one), p)
    got = [(g["token"], g["tap"], g["end"], g["last"]) for g in got]
    assert got == one * passes, first_mismatch(got, one * passes)
