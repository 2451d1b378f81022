"""The engine's widths come from the program, not from typed constants (issue 19 item 4).

The ports and datapath widths (pixels, weights, logits) are derived by ``EnginePlan``; a model
whose values need more than the usual 8-bit pixels, 4-bit weights or 16/24-bit logits must
build and compute exactly. The counters that keep a typed width (``Signal(16)`` accumulator
word and clear counters, ``Signal(24)`` destination pointers, 8-bit plane indices in
engine.py) are covered by the compiler's limits instead (``placement.MAX_COUNT``,
``MAX_WORDS``; planes are fewer than 17 since pixels are at most 16 bits): a model beyond them
is refused with the reason, never built with a counter that wraps.
"""

import numpy as np
import pytest

from spikeforge.builder import random_model
from spikeforge.graph import bits_for_range, infer, validate
from spikeforge.hdl.accel.engine import Engine, EnginePlan
from spikeforge.hdl.accel.execute import execute_program
from spikeforge.hdl.accel.placement import MAX_COUNT, MAX_WORDS
from spikeforge.hdl.accel.program import MappingError, compile_model
from spikeforge.hdl.accel.simulate import simulate_engine
from spikeforge.sim.model import run_model


def wide_model(seed=5, *, max_value=65535, weight_bits=16, bias_bits=37):
    """A small model with 16-bit pixels and a head of 16-bit weights and biases of
    ``bias_bits`` bits: logits of about 37 bits."""
    model = random_model(seed, max_value=max_value, time_steps=1, channels=4, heads=1, blocks=1,
                         classes=3, image=(4, 4, 1), patch=2)
    head = next(n for n in model.nodes if n.op == "head")
    rng = np.random.default_rng(seed)
    w = rng.integers(-(1 << (weight_bits - 1)), 1 << (weight_bits - 1), size=head.tensors["weight"].shape)
    bias = rng.integers(-(1 << (bias_bits - 1)), 1 << (bias_bits - 1), size=w.shape[1])
    T = model.time_steps  # the head's input is binary spikes (one level)
    lo, hi = bias + T * np.minimum(w, 0).sum(0), bias + T * np.maximum(w, 0).sum(0)
    head.tensors.update(weight=w, bias=bias)
    head.attrs.update(weight_bits=weight_bits, acc_bits=bits_for_range(int(lo.min()), int(hi.max())))
    infer(model)
    validate(model)
    return model


def test_wide_pixels_weights_and_logits_compute_exactly():
    model = wide_model()
    prog = compile_model(model, 4)
    plan = EnginePlan(prog)
    # Wider than any typed width: 16-bit pixels, 16-bit weights, logits beyond 24 bits.
    assert plan.pixel_bits == 16 and plan.wb == 16 and plan.logit_bits > 32
    engine = Engine(prog)
    assert len(engine.pixels.payload) == 16
    assert len(engine.result.payload.value) == plan.logit_bits
    images = np.random.default_rng(1).integers(0, 65536, (2, 4, 4, 1))
    images[0, 0, 0, 0] = 65535  # every bit plane of a pixel set
    want = run_model(model, images)
    assert np.abs(want.logits).max() >= 1 << 31  # the logits do need the width
    logits, classes, cycles, events = simulate_engine(prog, images, engine=engine)
    np.testing.assert_array_equal(logits, want.logits)
    np.testing.assert_array_equal(classes, want.classes)
    refs = [execute_program(prog, im) for im in images]
    assert cycles.tolist() == [r.total_cycles for r in refs]  # no padded convolution: exact
    assert events.tolist() == [r.events for r in refs]


def test_typed_counter_widths_are_the_compilers_limits():
    # engine.py's Signal(16) word counters and Signal(24) pointers hold what these bound.
    assert MAX_COUNT < 1 << 16 and MAX_WORDS < 1 << 24
    # K^T V at one lane and 256 channels: 256 x 256 accumulator words, one more than the
    # 16-bit counters hold.
    model = random_model(1, channels=256, heads=1, attention="linear", image=(2, 2, 1), patch=1,
                         time_steps=1, mlp_ratio=1, classes=2)
    with pytest.raises(MappingError, match="acc_words = 65536 exceeds the engine's 16-bit loop "
                                           r"counters \(at most 65535\)"):
        compile_model(model, 1)
    assert max(p.acc_words for p in compile_model(model, 2).passes) == 32768


def test_class_index_fits_the_result_value():
    """Logits of a narrow range (a head of zero weights, biases 0 or 1: 0..1, 2 bits) and a
    class index beyond it (3): the result's value is wide enough for both."""
    model = random_model(1, attention="linear", time_steps=1, channels=8, heads=1, classes=5, image=(4, 4, 1),
                         patch=2)
    head = model.nodes[-1]
    head.tensors["weight"] = np.zeros_like(head.tensors["weight"])
    head.tensors["bias"] = np.array([0, 0, 0, 1, 1], dtype=head.tensors["bias"].dtype)
    prog = compile_model(model, 1, compact=True)
    assert (prog.logits.lo, prog.logits.hi) == (0, 1)
    assert EnginePlan(prog).logit_bits == bits_for_range(0, 4)
    images = np.random.default_rng(0).integers(0, 17, (1, 4, 4, 1))
    want = run_model(model, images)
    assert want.classes.tolist() == [3]    # the first of the two largest
    logits, classes, _, _ = simulate_engine(prog, images)
    np.testing.assert_array_equal(logits, want.logits)
    np.testing.assert_array_equal(classes, want.classes)
