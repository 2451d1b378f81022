"""The torch int64 evaluation and the exporter against the NumPy golden model."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from spikeforge.builder import random_model  # noqa: E402
from spikeforge.data import load_digits_split  # noqa: E402
from spikeforge.modelfile import load_model, save_model  # noqa: E402
from spikeforge.quant.config import ModelConfig  # noqa: E402
from spikeforge.quant.export import export_model, fold_requant  # noqa: E402
from spikeforge.quant.integer import evaluate  # noqa: E402
from spikeforge.quant.network import SpikeTransformer  # noqa: E402
from spikeforge.sim.model import run_model  # noqa: E402

VARIANTS = [("mask", 1, 2, "hard"), ("mask", 2, 3, "soft"), ("linear", 1, 2, "hard"),
            ("linear", 3, 2, "soft"), ("qsd", 1, 3, "hard"), ("qsd", 2, 2, "hard")]


def _images(n=24, seed=0):
    x, _ = load_digits_split("test")
    return x[np.random.default_rng(seed).choice(len(x), n, replace=False)]


def _agree(model, images):
    g = run_model(model, images, record=True)
    r = evaluate(model, images, record=True)
    np.testing.assert_array_equal(r.logits, g.logits)
    np.testing.assert_array_equal(r.classes, g.classes)
    assert set(r.tensors) == set(g.tensors)
    for name in g.tensors:
        np.testing.assert_array_equal(r.tensors[name], g.tensors[name], err_msg=name)
    assert set(r.firing) == set(g.firing)
    for name in g.firing:
        np.testing.assert_allclose(r.firing[name], g.firing[name], err_msg=name)
    return g


@pytest.mark.parametrize("attention, levels, T, reset", VARIANTS)
def test_integer_eval_equals_golden_on_random_models(attention, levels, T, reset):
    model = random_model(seed=hash((attention, levels, T)) % 1000, attention=attention,
                         levels=levels, time_steps=T, reset=reset, blocks=2, channels=8,
                         embed_kernel=3)
    g = _agree(model, _images())
    assert len(set(g.classes.tolist())) >= 1 and g.logits.shape == (24, 10)


def test_integer_eval_without_record_has_no_tensors():
    r = evaluate(random_model(seed=3), _images(4))
    assert r.tensors == {} and r.logits.dtype == np.int64 and r.classes.shape == (4,)


def test_integer_eval_rejects_bad_images():
    model = random_model(seed=3)
    with pytest.raises(ValueError, match="image values span"):
        evaluate(model, np.full((1, 8, 8, 1), 17))
    with pytest.raises(ValueError, match="images have shape"):
        evaluate(model, np.zeros((1, 8, 8)))


@pytest.mark.parametrize("attention, levels, T, reset", VARIANTS)
@pytest.mark.parametrize("bits", [2, 8])
def test_exported_untrained_net_matches(tmp_path, attention, levels, T, reset, bits):
    torch.manual_seed(levels * 10 + T)
    cfg = ModelConfig(channels=8, heads=2, blocks=1, attention=attention, levels=levels,
                      time_steps=T, reset=reset, weight_bits=bits, stem=4 if T == 3 else 0)
    net = SpikeTransformer(cfg)
    images = _images(32, seed=1)
    net.train()
    net(images)              # BatchNorm statistics that are not the identity
    net.eval()
    model = export_model(net, dict(note="test"))
    save_model(model, tmp_path / "m.sfm")
    model = load_model(tmp_path / "m.sfm")
    g = _agree(model, images)
    with torch.no_grad():
        f = net(images).numpy()
    # The float fake-quant model differs only by the rounding of folded multipliers.
    assert (f.argmax(1) == g.classes).mean() >= 0.9


def test_fold_requant_fits_and_is_accurate():
    scale = np.array([0.013, -2.5, 1e-7, 300.0])
    mult, bias, shift = fold_requant(scale, np.array([0.5, -1.25, 0.0, 3.0]), 16)
    assert np.abs(mult).max() <= (1 << 15) - 1 and (mult != 0).all()
    assert np.abs(mult[[0, 1, 3]] - scale[[0, 1, 3]] * 2.0 ** shift).max() <= 0.5
    assert abs(mult[3]) > (1 << 14)                   # the largest scale uses the full width
    assert mult[2] == 1                               # a vanishing scale is never 0
    np.testing.assert_allclose(bias / 2.0 ** shift, [0.5, -1.25, 0.0, 3.0], atol=2.0 ** -shift)
    with pytest.raises(ValueError, match="does not fit mult_bits"):
        fold_requant(np.array([1e6]), np.array([0.0]), 8)
