# amaranth: UnusedElaboratable=no
"""The fast engine's requantization multiplier (hdl/accel/product.py) against its golden
function: in amaranth.sim (fabric registers), and under Verilator as the ECP5 MULT18X18D with
its own registers (a behavioural model of the block, mult18x18d_model.v) and as fabric."""

from pathlib import Path

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from spikeforge.builder import random_model
from spikeforge.hdl.accel.engine import Engine
from spikeforge.hdl.accel.product import LATENCY, RegisteredProduct
from spikeforge.hdl.accel.program import compile_model
from spikeforge.sim import golden
from spikeforge.sim.runners import run_cocotb, simulator_missing_reason

HERE = Path(__file__).parent


def test_fabric_product_matches_golden_after_latency():
    dut = RegisteredProduct(16, 16)
    rng = np.random.default_rng(0)
    a = np.concatenate([[-(1 << 15), -(1 << 15), 32767], rng.integers(-(1 << 15), 1 << 15, 60)])
    b = np.concatenate([[-(1 << 15), 32767, -1], rng.integers(-(1 << 15), 1 << 15, 60)])
    got = []

    async def bench(ctx):
        for i in range(len(a) + LATENCY):
            if i < len(a):
                ctx.set(dut.a, int(a[i]))
                ctx.set(dut.b, int(b[i]))
            await ctx.tick()
            if i >= LATENCY - 1:
                got.append(ctx.get(dut.p))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got[:len(a)] == golden.registered_product(a, b).tolist()
    assert dut.cost() == {"cycles": LATENCY, "dsp": None, "ff": 64}


def test_primitive_needs_operands_that_fit_the_dsp():
    with pytest.raises(ValueError, match="a_bits=19 does not fit the ECP5 multiplier.*at most 18"):
        RegisteredProduct(19, 16, primitive=True)
    with pytest.raises(ValueError, match="b_bits must be a positive integer, not 0"):
        RegisteredProduct(8, 0)
    assert RegisteredProduct(18, 18, primitive=True).cost() == {"cycles": LATENCY, "dsp": 1, "ff": 0}


def test_engine_uses_one_dsp_block_per_lane_in_the_fast_build_only():
    model = random_model(3, channels=8, blocks=1)
    fast = verilog.convert(Engine(compile_model(model, 4), mult_primitive=True), name="engine")
    assert fast.count("MULT18X18D ") == 4
    assert "REG_OUTPUT_CLK" in fast and "MULT18X18D" not in verilog.convert(
        Engine(compile_model(model, 4)), name="engine")
    compact = Engine(compile_model(model, 2, compact=True), mult_primitive=True)
    assert "MULT18X18D" not in verilog.convert(compact, name="engine")


@pytest.mark.parametrize("primitive", [True, False])
def test_product_under_verilator_matches_golden(primitive, tmp_path):
    reason = simulator_missing_reason("verilator")
    if reason is not None:
        pytest.skip(reason)
    src = tmp_path / "product.v"
    src.write_text(verilog.convert(RegisteredProduct(16, 14, primitive=primitive), name="product"))
    sources = [src, HERE / "mult18x18d_model.v"] if primitive else [src]
    result = run_cocotb(sources, "product", HERE / "tb_registered_product.py", build_dir=tmp_path,
                        parameters={"a_bits": 16, "b_bits": 14, "count": 200, "seed": 1}, timeout=600)
    assert result.passed == ["matches_golden"]
