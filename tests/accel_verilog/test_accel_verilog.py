"""Tier 3: the accelerator's generated Verilog (``spikeforge sim``) against the golden model.

Every simulation test compares, per image, the logits and the class with
:func:`spikeforge.sim.model.run_model`, the spikes of the inner layers still in the spike
memory with :func:`~spikeforge.hdl.accel.execute.execute_program`, and the measured cycles
with the analytic cycle model. Builds are cached (content-addressed) under
``$SPIKEFORGE_CACHE`` or ``~/.cache/spikeforge/accel_sim``: a cold Verilator build takes
one and a half to three minutes on this machine's two shared cores (even for the small random
models), so every test that needs one is marked ``slow``; with a warm cache each runs in
seconds (the default model simulates at about 0.45 s per image at 8 lanes).
"""

import argparse
import json

import numpy as np
import pytest

from spikeforge.builder import random_model
from spikeforge.cli import default_model_path
from spikeforge.data import load_digits_split
from spikeforge.hdl.accel.execute import execute_program
from spikeforge.hdl.accel.program import MappingError, compile_model
from spikeforge.modelfile import load_model
from spikeforge.sim.accel_cli import add_sim_arguments, run_sim
from spikeforge.sim.accel_runner import decode_spike_rows, simulate_verilog, surviving_spikes
from spikeforge.sim.runners import simulator_missing_reason

slow = pytest.mark.slow


def need(simulator):
    reason = simulator_missing_reason(simulator)
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def default_model():
    return load_model(default_model_path())


@pytest.fixture(scope="module")
def digits():
    return load_digits_split("test")


def check_exact(r):
    """Everything the simulation must satisfy, with readable failures. The cycle model is
    exact (0 cycles)."""
    assert r["mismatches"] == [], r["mismatches"][:5]
    np.testing.assert_array_equal(r["logits"], r["golden_logits"])
    np.testing.assert_array_equal(r["classes"], r["golden_classes"])
    assert r["inner_layers_compared"], "no inner spike tensor survives to be compared"
    assert not r["spike_mismatches"].any()
    np.testing.assert_array_equal(r["events"], r["predicted_events"])
    np.testing.assert_array_equal(r["cycles"], r["predicted_cycles"])


# --- without a simulator ---------------------------------------------------------------


def _encode_banks(program, spikes, rows):
    """Bank words from spike tensors (the inverse of decode_spike_rows, written independently:
    lane by lane, slot by slot)."""
    P, sb = program.lanes, program.spike_planes
    banks = [[0] * len(rows) for _ in range(P)]
    pos = {r: i for i, r in enumerate(rows)}
    for name, x in spikes.items():
        t = program.tensors[name]
        flat = x.reshape(-1, t.C)
        for lane in range(P):
            for slot in range(program.spike_slots):
                c = slot * P + lane
                if c >= t.C:
                    continue
                for r in range(flat.shape[0]):
                    banks[lane][pos[t.base + r]] |= int(flat[r, c]) << (slot * sb)
    return banks


@pytest.mark.parametrize("lanes", [1, 8, 16])
def test_spike_bank_decoding_round_trip(default_model, digits, lanes):
    program = compile_model(default_model, lanes)
    ex = execute_program(program, digits[0][3])
    alive = surviving_spikes(program)
    name = "block0.q_spk"  # 32 channels: more than one slot per bank below 32 lanes
    t = program.tensors[name]
    rows = list(range(t.base, t.base + t.T * t.H * t.W))
    banks = _encode_banks(program, {name: ex.spikes[name]}, rows)
    np.testing.assert_array_equal(decode_spike_rows(program, banks, rows, name), ex.spikes[name])
    assert alive[name].all()
    # A single flipped bit (bank 5 % P, row 3, slot 1) is found.
    banks[5 % lanes][3] ^= 1 << program.spike_planes
    bad = decode_spike_rows(program, banks, rows, name) != ex.spikes[name]
    assert bad.sum() == 1


def test_surviving_spikes_follow_the_memory_map(default_model):
    program = compile_model(default_model, 8)
    alive = surviving_spikes(program)
    spike_dsts = [p.dst for p in program.passes if program.tensors.get(p.dst) is not None
                  and program.tensors[p.dst].space == "spike"]
    # The last spike tensor written always survives; each compared tensor is a real one.
    assert spike_dsts[-1] in alive and alive[spike_dsts[-1]].all()
    assert set(alive) <= set(spike_dsts)
    # Brute force over rows and channels: an element survives iff no later spike writer
    # covers its row with at least c + 1 channels.
    for i, name in enumerate(spike_dsts):
        t = program.tensors[name]
        n = t.T * t.H * t.W
        expect = np.ones((n, t.C), bool)
        for later in spike_dsts[i + 1:]:
            u = program.tensors[later]
            for r in range(n):
                if u.base <= t.base + r < u.base + u.T * u.H * u.W:
                    expect[r, :u.C] = False
        if expect.any():
            np.testing.assert_array_equal(alive[name].reshape(n, t.C), expect)
        else:
            assert name not in alive


def test_unmappable_model_is_refused_before_any_verilog(default_model, digits, tmp_path, capsys):
    with pytest.raises(MappingError, match="lanes is 3"):
        simulate_verilog(default_model, digits[0][:1], lanes=3, build_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    from spikeforge.cli import main

    assert main(["sim", "--lanes", "3", "--images", "1", "--build-dir", str(tmp_path)]) == 2
    assert "--lanes: 3 is not a power of two; allowed: a power of two" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments_are_named(default_model, digits, tmp_path, capsys):
    with pytest.raises(ValueError, match="simulator is 'modelsim'; allowed: verilator, icarus"):
        simulate_verilog(default_model, digits[0][:1], simulator="modelsim", build_dir=tmp_path)
    with pytest.raises(ValueError, match=r"expected \[B >= 1, 8, 8, 1\]"):
        simulate_verilog(default_model, digits[0][0], build_dir=tmp_path)
    with pytest.raises(ValueError, match="allowed 0..16"):
        simulate_verilog(default_model, digits[0][:1] + 100, build_dir=tmp_path)
    from spikeforge.cli import main

    assert main(["sim", "--images", "0", "--build-dir", str(tmp_path)]) == 2
    assert "--images/-n: 0 is out of range" in capsys.readouterr().err
    assert main(["sim", "--images", "361", "--build-dir", str(tmp_path)]) == 2
    assert "--images" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


# --- Verilator -----------------------------------------------------------------------------


@slow
def test_default_model_100_images(default_model, digits):
    need("verilator")
    r = simulate_verilog(default_model, digits[0][:100], lanes=8, progress=False)
    check_exact(r)
    assert {"block0.q_spk", "block0.k_spk", "block0.mlp_hidden_spk"} <= set(r["inner_layers_compared"])
    assert r["cycles"].mean() <= 1.5 * r["lower_bound_cycles"].mean()


# Every Verilator build of the accelerator takes minutes, so the suite checks the extreme and a
# middle lane count at the Verilog level; all of 1..32 are checked in amaranth.sim
# (tests/accel/test_engine.py) and by benchmarks/accel_lanes.py, which reports mismatches.
@pytest.mark.full
@pytest.mark.parametrize("lanes", [1, 16])
def test_lane_counts_give_identical_results(default_model, digits, lanes):
    """Two more Verilator builds (minutes each). Full tier: in the CI tier the generated
    Verilog is checked at 8 lanes (test_default_model_100_images, the Icarus test), at 1 and 2
    lanes on the simulated boards, and every lane count in amaranth.sim (tests/accel)."""
    need("verilator")
    images = digits[0][[0, 1, 2, 17]]
    r = simulate_verilog(default_model, images, lanes=lanes, progress=False)
    check_exact(r)
    assert r["cycles"].mean() <= 1.5 * r["lower_bound_cycles"].mean()


# One random model at the Verilog level (the 200-model differential test runs in amaranth.sim).
RANDOM = [
    pytest.param(dict(attention="qsd", levels=3, time_steps=2), id="qsd-T2-L3", marks=slow),
]


@pytest.mark.parametrize("kw", RANDOM)
def test_random_models(kw):
    need("verilator")
    model = random_model(7, channels=8, heads=2, blocks=1, patch=2, **kw)
    images = np.random.default_rng(3).integers(0, 17, size=(3, 8, 8, 1))
    r = simulate_verilog(model, images, lanes=4, progress=False)
    check_exact(r)


STALLS = {"pixel_idle": 0.3, "result_backpressure": 0.5, "seed": 11}


def check_stall_invariant(held, stalled):
    """Random bubbles on ``pixels`` and backpressure on ``result`` change no result and no
    counter: ``cycles`` is the compute time (docs/accelerator.md), the same with and without
    stalls, and the testbench's own count from the last pixel to the first offered beat
    moves with it."""
    check_exact(stalled)
    for key in ("logits", "classes", "cycles", "events", "wait_cycles"):
        np.testing.assert_array_equal(stalled[key], held[key], err_msg=key)
    np.testing.assert_array_equal(stalled["wait_cycles"] - stalled["cycles"],
                                  np.full(stalled["images"], stalled["wait_cycles"][0] - stalled["cycles"][0]))
    # The stalls happened: the pixels took longer to send, result beats were refused.
    assert (held["refused_beats"] == 0).all() and (held["feed_cycles"] == held["feed_cycles"][0]).all()
    assert (stalled["feed_cycles"] > held["feed_cycles"]).all() and (stalled["refused_beats"] > 0).all()


@slow
def test_random_model_under_bubbles_and_backpressure():
    """The build of test_random_models (cached), its images again with random stalls."""
    need("verilator")
    model = random_model(7, channels=8, heads=2, blocks=1, patch=2, **RANDOM[0].values[0])
    images = np.random.default_rng(3).integers(0, 17, size=(3, 8, 8, 1))
    held = simulate_verilog(model, images, lanes=4, progress=False)
    stalled = simulate_verilog(model, images, lanes=4, progress=False, stalls=STALLS)
    check_stall_invariant(held, stalled)


@slow
def test_default_model_under_bubbles_and_backpressure(default_model, digits):
    """The build of test_default_model_100_images (cached), ten images with random stalls."""
    need("verilator")
    images = digits[0][:10]
    held = simulate_verilog(default_model, images, lanes=8, progress=False)
    stalled = simulate_verilog(default_model, images, lanes=8, progress=False,
                               stalls=dict(STALLS, result_backpressure=0.8))
    check_stall_invariant(held, stalled)


def test_stall_options_are_checked(default_model, digits, tmp_path):
    with pytest.raises(ValueError, match=r"stalls\['pixel_idle'\] is 1.5; allowed: a probability in \[0, 1\)"):
        simulate_verilog(default_model, digits[0][:1], stalls={"pixel_idle": 1.5}, build_dir=tmp_path)
    with pytest.raises(ValueError, match="stalls has key 'idle'; allowed: pixel_idle, result_backpressure, seed"):
        simulate_verilog(default_model, digits[0][:1], stalls={"idle": 0.5}, build_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


@slow
def test_cli_json_report(capsys):
    need("verilator")
    parser = add_sim_arguments(argparse.ArgumentParser())
    status = run_sim(parser.parse_args(["--images", "3", "--seed", "5", "--json", "--quiet"]))
    report = json.loads(capsys.readouterr().out)
    assert status == 0
    assert report["images"] == 3 and report["mismatches"] == 0
    assert report["accuracy"] == report["golden_accuracy"]
    for key in ("accuracy", "cycles_per_image", "predicted_cycles_per_image", "lower_bound_cycles",
                "ratio_to_bound", "inner_layers_compared"):
        assert key in report
    assert set(report["cycles_per_image"]) == {"mean", "min", "max"}
    assert 0 < report["ratio_to_bound"] <= 1.5


# --- Icarus --------------------------------------------------------------------------------


@slow
def test_icarus_equals_verilator_on_20_images(default_model, digits):
    """What ``spikeforge sim --images 20 --simulator icarus|verilator`` runs: both simulators
    agree with the golden model on every image and count the same cycles, image by image.

    (Cut to one image for a while: the accumulate core's payload, driven field by field, made
    Icarus about 6 times slower; tests/accel/test_icarus_nets.py now lints for that.)"""
    need("icarus")
    need("verilator")
    images = digits[0][:20]
    icarus = simulate_verilog(default_model, images, lanes=8, simulator="icarus", progress=False)
    verilator = simulate_verilog(default_model, images, lanes=8, simulator="verilator", progress=False)
    check_exact(icarus)
    check_exact(verilator)
    np.testing.assert_array_equal(icarus["cycles"], verilator["cycles"])
    np.testing.assert_array_equal(icarus["events"], verilator["events"])
