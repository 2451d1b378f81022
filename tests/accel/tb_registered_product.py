"""cocotb testbench for hdl/accel/product.py's RegisteredProduct (fabric or MULT18X18D model)."""

import cocotb
import numpy as np
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from spikeforge.hdl.accel.product import LATENCY
from spikeforge.sim import golden
from spikeforge.sim.cocotb_util import TB, test_parameters


def _signed(v, bits):
    v = int(v)
    return v - (1 << bits) if v >> (bits - 1) else v


@cocotb.test()
async def matches_golden(dut):
    params = test_parameters()
    a_bits, b_bits, count = params["a_bits"], params["b_bits"], params["count"]
    rng = np.random.default_rng(params["seed"])
    # extremes first (the most negative operands), then random operands
    a = np.concatenate([[-(1 << (a_bits - 1)), (1 << (a_bits - 1)) - 1, -1, 0],
                        rng.integers(-(1 << (a_bits - 1)), 1 << (a_bits - 1), count)])
    b = np.concatenate([[-(1 << (b_bits - 1)), -(1 << (b_bits - 1)), -1, 5],
                        rng.integers(-(1 << (b_bits - 1)), 1 << (b_bits - 1), count)])
    want = golden.registered_product(a, b)
    tb = TB(dut)
    await tb.start()
    got = []
    for i in range(len(a) + LATENCY):
        if i < len(a):
            dut.a.value = int(a[i]) & ((1 << a_bits) - 1)
            dut.b.value = int(b[i]) & ((1 << b_bits) - 1)
        await RisingEdge(tb.clk)
        await ReadOnly()
        # the operands set before edge i: registered at edge i, their product at edge
        # i + LATENCY - 1
        if i >= LATENCY - 1:
            got.append(_signed(dut.p.value, a_bits + b_bits))
        await FallingEdge(tb.clk)
    assert got[:len(a)] == [int(x) for x in want], (got[:8], list(want[:8]))
