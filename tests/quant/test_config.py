import json

import pytest

pytest.importorskip("torch")

from spikeforge.quant.config import ModelConfig  # noqa: E402
from spikeforge.quant.network import SpikeTransformer  # noqa: E402


@pytest.mark.parametrize("changes, message", [
    (dict(channels=30, heads=4), "heads=4 does not divide channels=30"),
    (dict(patch=3), "patch=3 does not divide the 8x8 image"),
    (dict(weight_bits=3), "weight_bits=3 is not supported"),
    (dict(attention="softmax"), "attention is 'softmax'"),
    (dict(time_steps=0), "time_steps is 0"),
    (dict(levels=0), "levels is 0"),
    (dict(reset="zero"), "reset is 'zero'"),
    (dict(pos_kernel=2), "pos_kernel=2 must be odd"),
    (dict(embed_kernel=1, patch=2), "embed_kernel=1 is smaller than patch=2"),
    (dict(frac_bits=11, act_bits=12), "frac_bits=11 leaves no integer bits"),
    (dict(channels=2.5), "channels must be an integer"),
])
def test_invalid_configurations_raise(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        ModelConfig(**changes)


def test_json_round_trip_and_unknown_key(tmp_path):
    cfg = ModelConfig(channels=16, blocks=2, attention="qsd", levels=2)
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    assert ModelConfig.from_json(path) == cfg
    path.write_text(json.dumps({"channels": 16, "depth": 3}))
    with pytest.raises(ValueError, match="unknown configuration key"):
        ModelConfig.from_json(path)


def test_shipped_config_file_is_the_default():
    import pathlib

    import spikeforge.quant as q
    path = pathlib.Path(q.__file__).parent / "configs" / "default.json"
    assert ModelConfig.from_json(path) == ModelConfig()


def test_network_rejects_wrong_image_shape():
    net = SpikeTransformer(ModelConfig(channels=8, heads=2))
    import numpy as np
    with pytest.raises(ValueError, match="images have shape"):
        net(np.zeros((2, 7, 8, 1)))
