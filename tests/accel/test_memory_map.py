"""Memory mappings of the engine: block RAM, the iCE40UP5K's SPRAM, narrow descriptor words.

Every simulation compares with the golden model (logits) and the program executor (cycles).
"""

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikeforge.builder import random_model
from spikeforge.cli import default_model_path
from spikeforge.hdl.accel.engine import EnginePlan
from spikeforge.hdl.accel.execute import execute_program
from spikeforge.hdl.accel.memories import SinglePortRAM
from spikeforge.hdl.accel.program import SPRAM_WORDS, MappingError, compile_model
from spikeforge.hdl.accel import report
from spikeforge.hdl.accel.report import DeviceTooSmall, compile_for_target, memory_fit
from spikeforge.hdl.accel.simulate import simulate_engine
from spikeforge.modelfile import load_model
from spikeforge.sim.model import run_model


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 17, (n, 8, 8, 1))


def _int_tensors_of(prog, p):
    names = (p.src, p.src2, p.a, p.b, p.dst)
    return [n for n in names if n in prog.tensors and prog.tensors[n].space == "int"]


def test_default_model_maps_to_spram_on_up5k_and_fits():
    prog = compile_for_target(load_model(default_model_path()), 1, "ice40-up5k")
    mm = prog.memory
    assert mm.kind == "spram" and mm.int_banks == 3 and mm.weight_pack == 4
    usage, problems = memory_fit(prog, "ice40-up5k")
    assert problems == [] and usage["spram"] == 4 and usage["bram"] <= 30
    # Block RAM alone does not fit (that is why SPRAM is used).
    assert memory_fit(compile_model(prog.model, 1, desc_word_bits=16), "ice40-up5k")[1]
    # Every integer tensor lies in one bank; the tensors of one pass in different banks.
    bank = {}
    for name, t in prog.tensors.items():
        if t.space == "int":
            size = t.T * t.N * -(-t.C // prog.lanes)
            assert t.base // SPRAM_WORDS == (t.base + size - 1) // SPRAM_WORDS, name
            bank[name] = t.base // SPRAM_WORDS
    assert set(bank.values()) == {0, 1, 2}
    for p in prog.passes:
        used = [bank[n] for n in _int_tensors_of(prog, p)]
        assert len(used) == len(set(used)), (p.node, used)


def test_weight_image_unpacks_to_the_weights():
    prog = compile_model(random_model(3, channels=8, weight_bits=2), 1, memory="spram")
    assert prog.memory.weight_pack == 8
    wb = EnginePlan(prog).wb
    pack, P = prog.memory.weight_pack, prog.lanes
    image = prog.weight_image()
    assert image.dtype == np.uint16 and len(image) == -(-len(prog.weights) // pack)
    for i, row in enumerate(prog.weights):
        word = (int(image[i // pack]) >> ((i % pack) * P * wb)) & ((1 << (P * wb)) - 1)
        lanes = [(word >> (ln * wb)) & ((1 << wb) - 1) for ln in range(P)]
        assert [v - (1 << wb) if v >> (wb - 1) else v for v in lanes] == list(row), i
    with pytest.raises(ValueError, match="keeps its weights in block RAM"):
        compile_model(prog.model, 1).weight_image()


@pytest.mark.parametrize("attention,lanes,T", [("linear", 1, 2), ("mask", 1, 3), ("qsd", 1, 1)])
def test_spram_engine_matches_golden_and_cycle_model(attention, lanes, T):
    model = random_model(5, attention=attention, time_steps=T, channels=8, heads=2, blocks=1,
                         patch=2, embed_kernel=3, weight_bits=4 if lanes == 1 else 2)
    prog = compile_model(model, lanes, memory="spram")
    assert prog.memory.kind == "spram"
    images = _images(2, seed=T)
    want = run_model(model, images)
    logits, classes, cycles, _ = simulate_engine(prog, images)
    assert np.array_equal(logits, want.logits) and np.array_equal(classes, want.classes)
    predicted = [execute_program(prog, im).total_cycles for im in images]
    # the pass setup grows by one cycle per further descriptor piece, in both; the model is
    # exact (the padded embedding convolution too)
    assert [int(c) for c in cycles] == predicted
    bram = compile_model(model, lanes)
    extra = (EnginePlan(prog).desc_words - 1) * len(prog.passes)
    assert [execute_program(bram, im).total_cycles + extra for im in images] == predicted


def test_narrow_descriptors_in_block_ram_match():
    model = random_model(8, channels=8, blocks=1)
    prog = compile_model(model, 4, desc_word_bits=16)
    assert EnginePlan(prog).desc_words > 1 and prog.memory.kind == "bram"
    images = _images(2, seed=4)
    logits, _, cycles, _ = simulate_engine(prog, images)
    assert np.array_equal(logits, run_model(model, images).logits)
    assert [int(c) for c in cycles] == [execute_program(prog, im).total_cycles for im in images]


def test_spram_refusals_say_what_and_why():
    model = load_model(default_model_path())
    with pytest.raises(MappingError, match="no integer memory bank left .* use fewer lanes"):
        compile_model(model, 2, memory="spram")
    with pytest.raises(MappingError, match="weight word of 8 lanes x 4 bits is 32 bits, wider than the "
                                           "SPRAM's 16; use at most 4 lanes"):
        compile_model(model, 8, memory="spram")
    with pytest.raises(DeviceTooSmall, match=r"block RAM: needs \d+ blocks, ice40-up5k has 30; the SPRAM "
                                             "mapping does not fit either"):
        compile_for_target(model, 8, "ice40-up5k")
    with pytest.raises(MappingError, match="memory mapping 'flash'; allowed: 'bram', 'spram'"):
        compile_model(model, 1, memory="flash")


def test_single_port_ram_model_cycle_behaviour():
    """The behavioural SPRAM: write, read next cycle, output holds while idle or writing."""
    dut = SinglePortRAM()
    seen = []

    async def bench(ctx):
        for addr, value in ((5, 0x1234), (SPRAM_WORDS - 1, 0xBEEF)):
            ctx.set(dut.addr, addr)
            ctx.set(dut.wdata, value)
            ctx.set(dut.we, 1)
            await ctx.tick()
        ctx.set(dut.we, 0)
        ctx.set(dut.addr, 5)
        ctx.set(dut.re, 1)
        await ctx.tick()
        seen.append(ctx.get(dut.rdata))                 # read of 5
        ctx.set(dut.re, 0)
        ctx.set(dut.addr, SPRAM_WORDS - 1)
        await ctx.tick()
        seen.append(ctx.get(dut.rdata))                 # idle: holds
        ctx.set(dut.we, 1)
        ctx.set(dut.wdata, 0x0F0F)
        await ctx.tick()
        seen.append(ctx.get(dut.rdata))                 # write: holds
        ctx.set(dut.we, 0)
        ctx.set(dut.re, 1)
        await ctx.tick()
        seen.append(ctx.get(dut.rdata))                 # the new value

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [0x1234, 0x1234, 0x1234, 0x0F0F]


def test_spram_verilog_instantiates_the_primitive():
    """For synthesis the SPRAM mapping becomes SB_SPRAM256KA instances: three integer banks and
    the weights (the behavioural model, simulated above, has the same ports and timing)."""
    from spikeforge.hdl.accel.engine import Engine
    from spikeforge.hdl.accel.generate import verilog_text

    prog = compile_model(random_model(4, channels=8), 1, memory="spram")
    text = verilog_text(Engine(prog, spram_primitive=True))
    assert text.count("SB_SPRAM256KA ") == 4
    assert "POWEROFF" in text and "MASKWREN" in text
    assert "SB_SPRAM256KA" not in verilog_text(Engine(prog))


def test_precheck_counts_block_rams_per_lane_group_part():
    """The fast 32-lane build splits its lane-wide memories per group of LANES_PER_COPY lanes,
    so block RAMs are counted per part (a part rounds up to whole blocks), and its shallow
    constants memory is logic; the compact build keeps whole words."""
    from spikeforge.hdl.accel.engine import CONST_LOGIC_DEPTH, LANES_PER_COPY
    from spikeforge.hdl.accel.report import _blocks
    model = load_model(default_model_path())
    fast = compile_model(model, 32)
    usage, _ = memory_fit(fast, "ecp5-85f")
    mems = {m["name"]: m for m in usage["memories"]}
    groups = 32 // LANES_PER_COPY
    for name in ("ints", "weights", "accumulators"):
        m = mems[name]
        assert m["parts"] == [m["width"] // groups] * groups
        assert m["bram_blocks"] == m["copies"] * groups * _blocks(m["depth"], m["width"] // groups, "ecp5")
    assert len(fast.consts) <= CONST_LOGIC_DEPTH
    assert mems["constants"]["kind"] == "logic" and mems["constants"]["bram_blocks"] == 0
    compact = {m["name"]: m for m in memory_fit(compile_model(model, 32, compact=True), "ecp5-85f")[0]["memories"]}
    assert compact["ints"]["parts"] == [compact["ints"]["width"]]
    assert compact["constants"]["kind"] == "bram" and compact["constants"]["bram_blocks"] > 0


def test_block_rams_of_memories_written_in_parts():
    """A memory written per part (the spike memories: a write enable per slot) maps like Yosys
    maps it: no block RAM has a write enable per bit except the iCE40's 256 x 16 mode (a mask)
    and the ECP5's 9-bit byte enables, so each part takes blocks of its own otherwise. The
    figures are Yosys's for the mnist model's spike memories (1,862 x 8, per bit: 8 DP16KD)."""
    assert report._blocks(1862, 8, "ecp5") == 1
    assert report._blocks(1862, 8, "ecp5", 1) == 8
    assert report._blocks(1862, 8, "ecp5", 8) == 1            # one enable for the word
    assert report._blocks(1000, 36, "ecp5", 9) == 2            # byte enables: 1024 x 18 mode
    assert report._blocks(1000, 36, "ecp5", 4) == 9 * report._blocks(1000, 4, "ecp5")
    assert report._blocks(200, 16, "ice40", 1) == 1            # the 256 x 16 mode's bit mask
    assert report._blocks(600, 4, "ice40", 1) == min(4 * report._blocks(600, 1, "ice40"), 3)


@pytest.mark.parametrize("compact,lanes", [(False, 2), (False, 16), (True, 2)])
def test_spike_memories_are_built_as_the_report_counts_them(compact, lanes):
    """The fast build writes a spike memory whose word holds more than one slot a whole word at
    a time, through a third read port (plan.spike_word_writes): an ECP5 block RAM has no write
    enable per bit, so a word written per slot would take a block per bit. A word of one slot
    (16 channels on 16 lanes) and the compact build (the iCE40's 256 x 16 mode has a bit mask)
    keep two read ports and a write enable per slot. The engine's memories are what
    ``report.memories`` counts."""
    from amaranth.hdl import Fragment

    from spikeforge.hdl.accel.engine import Engine
    model = random_model(11, attention="mask", levels=1, time_steps=2, channels=8, heads=2, blocks=1,
                         patch=2, embed_kernel=3)
    prog = compile_model(model, lanes, compact=compact)
    plan = EnginePlan(prog)
    word_writes = not compact and prog.spike_slots > 1
    assert plan.spike_word_writes is word_writes and (lanes < 16) == (prog.spike_slots > 1)
    engine = Engine(prog)
    Fragment.get(engine, None)
    spikes = {m["name"]: m for m in report.memories(prog)}["spikes"]
    assert len(engine.debug_smem) == lanes
    for mem in engine.debug_smem:
        (wp,) = mem.write_ports
        assert (mem.depth, mem.shape.width) == (spikes["depth"], spikes["width"])
        assert len(mem.read_ports) * lanes == spikes["copies"] == (3 if word_writes else 2) * lanes
        granularity = wp.signature.granularity
        assert spikes["granularity"] == granularity == (None if word_writes else plan.slot_bits)
