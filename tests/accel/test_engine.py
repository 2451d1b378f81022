"""Tier 1 (amaranth.sim) tests of the accelerator engine against the golden model.

Every test compares with :func:`spikeforge.sim.model.run_model` (logits, classes) and with the
program executor (every stored tensor, cycles); a wrong spike anywhere fails, not only a wrong
logit.
"""

import collections

import numpy as np
import pytest

from spikeforge.builder import random_config, random_model
from spikeforge.graph import input_shape
from spikeforge.hdl.accel.engine import EnginePlan
from spikeforge.hdl.accel.execute import execute_program
from spikeforge.hdl.accel.program import MappingError, compile_model
from spikeforge.hdl.accel.simulate import simulate_engine
from spikeforge.sim.model import run_model


def _images(n, shape=(8, 8, 1), seed=0):
    return np.random.default_rng(seed).integers(0, 17, (n, *shape))


def _decode_tensor(prog, mem, name):
    """A tensor as stored in a memory snapshot, decoded from the engine's layouts."""
    eng = EnginePlan(prog)
    t = prog.tensors[name]
    P = prog.lanes
    if t.space == "int":
        tiles = -(-t.C // P)
        out = np.zeros((t.T, t.N, tiles * P), np.int64)
        for tt in range(t.T):
            for n in range(t.N):
                for tile in range(tiles):
                    word = mem["imem"][t.base + (tt * t.N + n) * tiles + tile]
                    for ln in range(P):
                        v = (word >> (ln * eng.ib)) & ((1 << eng.ib) - 1)
                        out[tt, n, tile * P + ln] = v - (1 << eng.ib) if v >> (eng.ib - 1) else v
        return out[..., :t.C]
    out = np.zeros((t.T, t.N, t.C), np.int64)
    for tt in range(t.T):
        for n in range(t.N):
            for c in range(t.C):
                word = mem["smem"][c % P][t.base + tt * t.N + n]
                out[tt, n, c] = (word >> ((c // P) * eng.slot_bits)) & ((1 << eng.slot_bits) - 1)
    return out


CASES = [
    ("linear", 1, 2, 4, False), ("linear", 3, 1, 1, False), ("mask", 1, 2, 8, False),
    ("mask", 1, 3, 2, False), ("qsd", 3, 2, 32, False), ("qsd", 1, 1, 16, False),
    # the compact build (small devices): its own pipeline and timing rules
    ("linear", 1, 2, 1, True), ("mask", 1, 2, 2, True), ("qsd", 3, 2, 1, True),
]


@pytest.mark.parametrize("attention,levels,T,lanes,compact", CASES)
def test_every_tensor_logit_and_cycle_matches(attention, levels, T, lanes, compact):
    model = random_model(11, attention=attention, levels=levels, time_steps=T, channels=8,
                         heads=2, blocks=1, patch=2, embed_kernel=3)
    prog = compile_model(model, lanes, compact=compact)
    image = _images(1, seed=T)
    dump = {"snapshots": []}
    logits, classes, cycles, events = simulate_engine(prog, image, dump=dump)
    golden = run_model(model, image)
    assert np.array_equal(logits, golden.logits) and np.array_equal(classes, golden.classes)
    ref = execute_program(prog, image[0])
    snaps = dict(dump["snapshots"])
    checked = 0
    for i, p in enumerate(prog.passes):
        t = prog.tensors.get(p.dst)
        if t is None or t.space not in ("int", "spike"):
            continue
        stored = _decode_tensor(prog, snaps[i], p.dst)
        want = (ref.ints if t.space == "int" else ref.spikes)[p.dst]
        assert np.array_equal(stored, np.asarray(want).reshape(t.T, t.N, -1)[..., :t.C]), p.node
        checked += 1
    assert checked >= 10
    check_pass_cycles(prog, dump["trace"], int(cycles[0]), ref)
    assert int(events[0]) == ref.events


def pass_cycles_simulated(prog, trace, total):
    """Cycles of every pass in a simulation: the cycles the pass counter showed each pass
    (``trace``: ``(pc, events)`` per cycle from the last pixel on), the last pass's from the
    engine's ``cycles`` output (the counter stays on it while the result goes out)."""
    seen = collections.Counter(pc for pc, _ in trace)
    out = [seen[i] for i in range(len(prog.passes) - 1)]
    return out + [total - sum(out)]


def check_pass_cycles(prog, trace, total, ref):
    """The cycle model pass by pass: exact (0 cycles) on every pass, padded SYN passes too
    (docs/accelerator.md, "Timing rules")."""
    sim = pass_cycles_simulated(prog, trace, total)
    for p, got in zip(prog.passes, sim, strict=True):
        assert got == ref.cycles[p.node], (p.node, p.kind, got, ref.cycles[p.node])
    assert total == ref.total_cycles


def test_images_in_sequence_do_not_interact():
    model = random_model(4, attention="linear", time_steps=2, channels=8, heads=2)
    prog = compile_model(model, 4)
    images = _images(3, seed=5)
    logits, classes, _, _ = simulate_engine(prog, images)
    for i in range(3):
        alone, _, _, _ = simulate_engine(prog, images[i:i + 1])
        assert np.array_equal(alone[0], logits[i])
    assert np.array_equal(logits, run_model(model, images).logits)


@pytest.mark.parametrize("compact", [True, False])
def test_one_class_on_one_lane(compact):
    """A head of one class on one lane: a result stage of a single logit register (its
    argmax once compared with a second register, which does not exist then)."""
    model = random_model(1, attention="linear", time_steps=1, channels=8, heads=1, classes=1, image=(4, 4, 1),
                         patch=2)
    images = _images(2, (4, 4, 1), seed=1)
    prog = compile_model(model, 1, compact=compact)
    logits, classes, cycles, _ = simulate_engine(prog, images)
    want = run_model(model, images)
    assert np.array_equal(logits, want.logits) and classes.tolist() == [0, 0]
    assert cycles.tolist() == [execute_program(prog, im).total_cycles for im in images]


@pytest.mark.parametrize("lanes", [pytest.param(1, marks=pytest.mark.full), pytest.param(2, marks=pytest.mark.full),
                                   4, 8, pytest.param(16, marks=pytest.mark.full), 32])
def test_lanes_give_identical_results(lanes):
    """One model at every lane count. The CI tier runs 4, 8 and 32 (the ULX3S default and the
    widest); 1, 2 and 16 are in the full tier (1 lane alone takes about 150 s in amaranth.sim).
    In the CI tier one lane is checked by the iCEBreaker's simulated board (test_sim_board.py)
    and the random models (test_differential_random_model) draw their lane counts from all of
    1..32."""
    model = random_model(8, attention="qsd", levels=2, time_steps=2, channels=12, heads=3)
    images = _images(2, seed=8)
    logits, _, _, _ = simulate_engine(compile_model(model, lanes), images)
    assert np.array_equal(logits, run_model(model, images).logits)


def test_mapping_refusals_name_the_problem():
    model = random_model(0, channels=8)
    with pytest.raises(MappingError, match="lanes is 3; allowed: a power of two 1..64"):
        compile_model(model, 3)
    wide = random_model(0, channels=4, image=(4, 4, 1), patch=2)
    from spikeforge.hdl.accel import placement as prog_mod  # the engine's limits

    limit = prog_mod.MAX_ROW_BITS
    try:
        prog_mod.MAX_ROW_BITS = 2
        with pytest.raises(MappingError, match="event encoder reads rows of at most 2 bits"):
            compile_model(wide, 4)
    finally:
        prog_mod.MAX_ROW_BITS = limit


def _mapping(seed, model, lanes):
    compact = seed % 4 == 3
    if seed % 3 == 1:
        try:
            return compile_model(model, lanes, memory="spram", compact=compact)
        except MappingError:
            pass
    return compile_model(model, lanes, desc_word_bits=16 if seed % 2 == 0 else None, compact=compact)


RANDOM_MODELS = 200


@pytest.mark.slow
@pytest.mark.random_sample(24)
@pytest.mark.parametrize("seed", range(RANDOM_MODELS))
def test_differential_random_model(seed):
    """One of 200 random small models (shapes, bit widths, variants, T, D, lanes, memory
    mappings) against the golden model, two images; cycles and events against the executor.

    Every third seed uses the SPRAM mapping where it exists for the lane count (else block
    RAM), every other seed reads descriptors in 16-bit pieces, every fourth seed is the
    compact build. The CI tier runs a seeded sample of 24 (conftest.py), the full tier all 200.
    """
    config, lanes = random_config(seed)
    model = random_model(seed, **config)
    images = _images(2, input_shape(model), seed=seed)   # frames models (seed % 5 == 4): [2, T, H, W, C]
    want = run_model(model, images)
    prog = _mapping(seed, model, lanes)
    logits, classes, cycles, events = simulate_engine(prog, images)
    assert np.array_equal(logits, want.logits) and np.array_equal(classes, want.classes), (
        f"accelerator differs from the golden model: seed {seed} lanes {lanes} memory {prog.memory} "
        f"config {config}; reproduce with: python -m pytest "
        f"'tests/accel/test_engine.py::test_differential_random_model[{seed}]'")
    # The cycle model: exact (0 cycles), padded convolutions too.
    refs = [execute_program(prog, im) for im in images]
    assert [int(c) for c in cycles] == [r.total_cycles for r in refs]
    assert events.tolist() == [r.events for r in refs]


@pytest.mark.parametrize("compact,lanes", [(False, 16), (True, 1)])
def test_elaborating_twice_gives_the_same_design(compact, lanes):
    """An engine converted twice gives the same Verilog, and one elaborated before its
    simulation still computes every image (elaboration keeps nothing for the next one)."""
    from amaranth.back import rtlil

    from spikeforge.hdl.accel.engine import Engine

    model = random_model(3, attention="linear", time_steps=2, channels=8, heads=2)
    prog = compile_model(model, lanes, compact=compact)
    engine = Engine(prog)
    first = rtlil.convert(engine, name="engine")
    second = rtlil.convert(engine, name="engine")
    assert first == second
    assert first == rtlil.convert(Engine(prog), name="engine")

    images = _images(1, seed=2)
    logits, classes, _, _ = simulate_engine(prog, images, engine=engine)
    want = run_model(model, images)
    assert np.array_equal(logits, want.logits) and np.array_equal(classes, want.classes)
