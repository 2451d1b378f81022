"""Fuzzing the model loader (issue 22): a short seeded run and a hypothesis property.

Every damaged file must end in a one-line ModelError or in a valid model whose golden logits
equal the independent big-integer computation (``spikeforge.modelfuzz``). The long run is
``benchmarks/fuzz_modelfile.py --inputs 100000``.
"""

import collections

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikeforge.builder import random_model
from spikeforge.modelfuzz import MUTATIONS, OUTCOMES, classify, exact_logits, mutate, seed_files
from spikeforge.modelfile import save_model
from spikeforge.sim.model import run_model

GOOD = ("model-error", "valid-exact")


@pytest.fixture(scope="module")
def seeds():
    return seed_files()


def test_seeds_are_valid_and_exact(seeds):
    for data in seeds:
        assert classify(data, np.random.default_rng(0)) == ("valid-exact", "")


def test_seeded_fuzz_run(seeds):
    """600 mutated files, every mutation kind: only the two good outcomes."""
    rng = np.random.default_rng(20261207)
    counts, seen, bad = collections.Counter(), collections.Counter(), []
    for i in range(600):
        data, applied = mutate(seeds[i % len(seeds)], rng)
        outcome, detail = classify(data, rng)
        counts[outcome] += 1
        seen.update(applied)
        if outcome not in GOOD:
            bad.append((i, applied, outcome, detail))
    assert not bad, bad[:5]
    assert counts["model-error"] > 300 and counts["valid-exact"] > 30, counts
    assert set(seen) >= set(MUTATIONS) - {"bomb"}, seen


@st.composite
def models(draw):
    attention = draw(st.sampled_from(["linear", "mask", "qsd"]))
    heads = 1 if attention == "mask" else draw(st.sampled_from([1, 2]))
    return random_model(
        draw(st.integers(0, 2 ** 16)), image=(4, 4, 1), channels=4, heads=heads, attention=attention,
        levels=draw(st.sampled_from([1, 3])) if attention != "mask" else 1,
        time_steps=draw(st.integers(1, 3)), leak=draw(st.integers(0, 2)),
        reset=draw(st.sampled_from(["hard", "soft"])), weight_bits=draw(st.integers(2, 6)),
        out_bits=draw(st.integers(8, 16)), mlp_ratio=1, classes=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=models(), seed=st.integers(0, 2 ** 32 - 1), rounds=st.integers(1, 4))
def test_mutated_random_models_fail_cleanly_or_compute_exactly(tmp_path_factory, model, seed, rounds):
    """Random valid model, saved, then mutated ``rounds`` times: either a one-line ModelError
    or a model whose golden logits equal the big-integer ones (and the unmutated model is
    exact too)."""
    path = tmp_path_factory.mktemp("m") / "m.sfm"
    save_model(model, path)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 17, (2, 4, 4, 1))
    exact, problems = exact_logits(model, images)
    assert problems == [] and run_model(model, images).logits.tolist() == exact.tolist()
    data = path.read_bytes()
    for _ in range(rounds):
        data, applied = mutate(data, rng)
        outcome, detail = classify(data, rng)
        assert outcome in GOOD, (applied, outcome, detail)
        if outcome == "model-error":
            assert "\n" not in detail and detail
            break


def test_the_oracle_sees_a_wrong_model(seeds, monkeypatch):
    """The oracle is not a rubber stamp: a model whose golden run is tampered with after
    loading is classified accepted-wrong."""
    import spikeforge.modelfuzz as modelfuzz

    original = modelfuzz.run_model

    def off_by_one(model, images, **kw):
        res = original(model, images, **kw)
        res.logits = res.logits + 1
        return res

    monkeypatch.setattr(modelfuzz, "run_model", off_by_one)
    outcome, detail = classify(seeds[0], np.random.default_rng(0))
    assert outcome == "accepted-wrong", detail
    assert set(OUTCOMES) >= {"model-error", "valid-exact", "other-exception", "accepted-invalid",
                             "accepted-wrong"}
