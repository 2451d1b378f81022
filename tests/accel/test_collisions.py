"""Memory reads that collide with a write of their address: the engine never uses their data.

The image, spike and integer memories are marked ``no_rw_check`` (memories.NO_RW_CHECK): their
block RAMs may return anything for such a read, and synthesis builds no logic to return the
old word. Simulation checks the claim by inverting the data of every collided read
(``poison_collisions``): the logits must still equal the golden model's.
"""

import re
import subprocess

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spikeforge.boards.synth import NO_RW_CHECK_COMMANDS
from spikeforge.toolchain import ToolNotFound, find_tool
from spikeforge.builder import random_model
from spikeforge.hdl.accel.engine import Engine
from spikeforge.hdl.accel.memories import NO_RW_CHECK, collision_read
from spikeforge.hdl.accel.program import compile_model
from spikeforge.hdl.accel.simulate import simulate_engine
from spikeforge.sim.model import run_model


def _poisoned_memory(poison):
    m = Module()
    m.submodules.mem = mem = Memory(shape=8, depth=4, init=[0x11, 0x22, 0x33, 0x44])
    wp, rp = mem.write_port(), mem.read_port()
    flags = []
    data = collision_read(m, "r", mem, wp, rp, poison, flags)
    out = Signal(8)
    m.d.comb += out.eq(data)
    return m, mem, wp, rp, out, flags


@pytest.mark.parametrize("poison", [False, True])
def test_collision_read_inverts_only_a_collided_read(poison):
    m, mem, wp, rp, out, flags = _poisoned_memory(poison)
    assert mem.attrs[NO_RW_CHECK] == 1
    seen = []

    async def bench(ctx):
        # write 1 while reading 1 (a collision), then read 2 while writing 1 (none), then
        # read 1 with no write.
        for w_en, w_addr, r_addr in ((1, 1, 1), (1, 1, 2), (0, 0, 1)):
            ctx.set(wp.en, w_en)
            ctx.set(wp.addr, w_addr)
            ctx.set(wp.data, 0xA5)
            ctx.set(rp.addr, r_addr)
            await ctx.tick()
            seen.append(ctx.get(out))

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [(0x22 ^ 0xFF) if poison else 0x22, 0x33, 0xA5]
    assert len(flags) == (1 if poison else 0)


@pytest.mark.parametrize("compact,lanes", [(False, 8), (False, 4), (True, 2), (True, 1)])
def test_engine_results_do_not_depend_on_collided_reads(compact, lanes):
    """Collisions do happen (reads whose address is being written), and inverting their data
    changes no logit."""
    model = random_model(5, image=(6, 6, 2), channels=8, heads=2, blocks=1, time_steps=2, levels=2)
    images = np.random.default_rng(lanes).integers(0, 17, (1, 6, 6, 2))
    prog = compile_model(model, lanes, compact=compact)
    stats = {}
    logits, classes, _, _ = simulate_engine(prog, images, stats=stats)
    want = run_model(model, images)
    assert stats["collided_reads"] > 0
    np.testing.assert_array_equal(logits, want.logits)
    np.testing.assert_array_equal(classes, want.classes)


def test_marked_memories_are_those_without_transparent_reads():
    prog = compile_model(random_model(3, channels=8, blocks=1), 8)
    text = rtlil.convert(Engine(prog), name="engine")
    marked = set(re.findall(rf"attribute \\{NO_RW_CHECK} 1\n\s+memory width \d+ size \d+ \\(\S+)", text))
    assert marked == {"img_mem", *(f"smem{ln}" for ln in range(8)), "imem_g0", "imem_g1"}


def _yosys_cells(tmp_path, marked, commands):
    try:
        yosys = find_tool("yosys")
    except ToolNotFound as e:
        pytest.skip(str(e))
    m = Module()
    m.submodules.mem = mem = Memory(shape=18, depth=1024, init=[],
                                    attrs={NO_RW_CHECK: 1} if marked else {})
    wp, rp = mem.write_port(), mem.read_port()
    ports = [Signal(10, name="wa"), Signal(10, name="ra"), Signal(18, name="wd"), Signal(name="we"),
             Signal(18, name="q")]
    m.d.comb += [wp.addr.eq(ports[0]), rp.addr.eq(ports[1]), wp.data.eq(ports[2]), wp.en.eq(ports[3]),
                 ports[4].eq(rp.data)]
    (tmp_path / "m.il").write_text(rtlil.convert(m, ports=ports, name="top"))
    script = "; ".join(["read_rtlil m.il", *commands, "synth_ecp5 -top top", "tee -q -o stat.txt stat"])
    subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True, check=True)
    stat = (tmp_path / "stat.txt").read_text()
    return {name: int(n) for n, name in re.findall(r"^\s+(\d+)\s+(DP16KD|LUT4|TRELLIS_FF)\s*$", stat, re.M)}


def test_synthesis_builds_no_collision_logic_for_marked_memories(tmp_path):
    assert _yosys_cells(tmp_path, True, NO_RW_CHECK_COMMANDS) == {"DP16KD": 1}
    # An unmarked memory keeps Yosys's emulation of the old word (delayed write, bypass).
    plain = _yosys_cells(tmp_path, False, NO_RW_CHECK_COMMANDS)
    assert plain["DP16KD"] == 1 and plain["LUT4"] > 18 and plain["TRELLIS_FF"] > 18
