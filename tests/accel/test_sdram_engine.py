"""The engine with its weights in SDRAM (issue 21), in amaranth.sim: the SdramController at the
engine's boundary drives the cycle-accurate SDRAM model (which raises on any broken command
rule), the prefetcher fills the weight window, and the result is the golden model's bit for bit;
every pass's tensor equals the executor's, every unweighted pass takes exactly the executor's
cycles, and the image's cycles lie within the executor's load-time bounds."""

import sys
from pathlib import Path

import numpy as np
import pytest

from spikeforge import builder
from spikeforge.hdl.accel.execute import execute_program
from spikeforge.hdl.accel.program import compile_model
from spikeforge.hdl.accel.simulate import simulate_engine
from spikeforge.sim.model import run_model

sys.path.insert(0, str(Path(__file__).parent))
from test_engine import _decode_tensor, pass_cycles_simulated  # noqa: E402


def _load_bound_model():
    """Few tokens and wide passes: the weight loads, not the compute, set most passes' time."""
    return builder.random_model(4, image=(2, 2, 1), patch=1, channels=32, heads=2, blocks=1, mlp_ratio=2,
                                time_steps=1, weight_bits=4, attention="mask")


def _check(prog, images):
    """Golden == accelerator on ``images``; with one image, every pass's tensor and cycles too
    (the dump's snapshots and trace are of the last image and of all images)."""
    stats = {}
    dump = {"snapshots": []} if len(images) == 1 else None
    logits, classes, cycles, events = simulate_engine(prog, images, dump=dump, stats=stats)
    golden = run_model(prog.model, images)
    assert np.array_equal(logits, golden.logits) and np.array_equal(classes, golden.classes)
    for k, im in enumerate(images):
        r = execute_program(prog, im)
        assert r.cycle_bounds[0] <= int(cycles[k]) <= r.cycle_bounds[1], (k, int(cycles[k]), r.cycle_bounds)
    assert len(stats["sdram_model"].refreshes) >= 2       # the controller refreshed meanwhile
    ref = execute_program(prog, images[0])
    if dump is None:
        return None, ref, cycles
    assert int(events[0]) == ref.events
    snaps = dict(dump["snapshots"])
    for i, p in enumerate(prog.passes):           # every tensor, pass by pass
        t = prog.tensors.get(p.dst)
        if t is not None and t.space in ("int", "spike"):
            want = (ref.ints if t.space == "int" else ref.spikes)[p.dst]
            assert np.array_equal(_decode_tensor(prog, snaps[i], p.dst),
                                  np.asarray(want).reshape(t.T, t.N, -1)[..., :t.C]), p.node
    sim = pass_cycles_simulated(prog, dump["trace"], int(cycles[0]))
    waited = 0
    for p, got in zip(prog.passes, sim, strict=True):
        compute = ref.cycles[p.node] - ref.weight_waits.get(p.node, 0)
        if p.node in ref.weight_waits:
            assert got >= compute, p.node
            waited += got > compute
        else:
            assert got == compute, (p.node, got, compute)
    return waited, ref, cycles


def test_load_bound_model_is_exact_and_within_the_load_rules():
    """8 lanes of 4-bit weights: 32-bit weight words, two SDRAM words each (the prefetcher's
    assembly); most passes wait for their segment (the hold)."""
    prog = compile_model(_load_bound_model(), 8, memory="sdram")
    waited, ref, cycles = _check(prog, builder.random_images(1, shape=(2, 2, 1), seed=2))
    assert waited >= 4
    print(f"cycles: simulated {int(cycles[0])}, executor nominal {ref.total_cycles}, bounds {ref.cycle_bounds}")


@pytest.mark.slow
def test_load_bound_model_two_images():
    """The loads restart with segment 0 for the second image."""
    prog = compile_model(_load_bound_model(), 8, memory="sdram")
    _check(prog, builder.random_images(2, shape=(2, 2, 1), seed=7))


@pytest.mark.slow
def test_transformer_with_kv_and_padding_at_two_lanes():
    """A padded 3x3 embedding, linear attention (KV passes read no weights), 8-bit weights at
    2 lanes (one SDRAM word per weight word), the window at its minimum of 512 words."""
    model = builder.random_model(11, channels=8, heads=2, blocks=1, patch=2, embed_kernel=3, weight_bits=8)
    prog = compile_model(model, 2, memory="sdram")
    _check(prog, builder.random_images(1, seed=3))
