"""The training configuration (issue 18 defect 10, issue 22 item 6): one set of names for config
keys and ``train`` options, training keys (``epochs``, ``seed``) in a config, the file checked
against its JSON Schema with one-line errors, ``--print-config``, and docs/training.md. None of
this needs torch."""

import json
import pathlib

import pytest

from spikeforge.cli import build_parser, main
from spikeforge.quant.config import DATASET_KEYS, TRAINING_DEFAULTS, ModelConfig, config_schema

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "training.md"
CONFIGS = ROOT / "quant" / "configs"


def _print_config(capsys, *argv):
    code = main(["train", *map(str, argv), "--print-config"])
    out, err = capsys.readouterr()
    return code, out, err


def _train_parser():
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    return sub["train"]


def test_every_key_is_an_option_of_the_same_name():
    options = {s: a for a in _train_parser()._actions for s in a.option_strings}
    for key, prop in config_schema()["properties"].items():
        if key in ("image", "classes", "encoding"):
            continue  # the dataset's: a configuration may state them, no option changes them
        flag = "--" + key.replace("_", "-")
        assert flag in options and options[flag].dest == key, flag
    assert options["--bits"] is options["--weight-bits"]  # the old spelling stays an alias


def test_schema_defaults_are_the_code_defaults():
    props = config_schema()["properties"]
    model = ModelConfig().to_dict()
    for key, prop in props.items():
        want = None if key in DATASET_KEYS else model[key] if key in model else TRAINING_DEFAULTS[key]
        assert prop["default"] == want, key
    assert set(props) == set(model) | {"encoding"} | set(TRAINING_DEFAULTS)   # to_dict leaves direct out


def test_epochs_and_seed_in_a_config_and_options_override(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 3, "seed": 7, "weight_bits": 8, "channels": 16, "heads": 4}))
    code, out, err = _print_config(capsys, "--config", path, "--heads", "2", "--bits", "2")
    assert code == 0, err
    cfg = json.loads(out)
    assert (cfg["epochs"], cfg["seed"], cfg["channels"], cfg["heads"], cfg["weight_bits"]) == (3, 7, 16, 2, 2)


def test_print_config_round_trips(tmp_path, capsys):
    code, out, _ = _print_config(capsys, "--attention", "qsd", "--levels", "2", "--epochs", "5",
                                 "--no-learn-threshold", "--attn-shift", "3")
    assert code == 0
    first = json.loads(out)
    assert list(first) == list(config_schema()["properties"])  # every key, schema order
    path = tmp_path / "effective.json"
    path.write_text(out)
    code, again, _ = _print_config(capsys, "--config", path)
    assert code == 0 and json.loads(again) == first
    assert ModelConfig.from_json(path) == ModelConfig(attention="qsd", levels=2, learn_threshold=False, attn_shift=3)


@pytest.mark.parametrize("text, wanted", [
    ('{"channels": "32"}', 'channels is "32"; allowed: an integer 1..4096'),
    ('{"channels": 0}', "channels is 0; allowed: an integer 1..4096"),
    ('{"weight_bits": 3}', "weight_bits is 3; allowed: one of 2, 4, 8"),
    ('{"attention": "softmax"}', 'attention is "softmax"; allowed: one of "mask", "linear", "qsd"'),
    ('{"theta": -1}', "theta is -1; allowed: a number > 0 and <= 1000"),
    ('{"epochs": 1e9}', "epochs is 1000000000.0; allowed: an integer 1..10000"),
    ('{"image": [16, 16, 1]}', "image is [16, 16, 1]; dataset digits has [8, 8, 1] (allowed: [8, 8, 1] or null)"),
    ('{"dataset": "mnist-5k", "image": [8, 8, 1]}', "image is [8, 8, 1]; dataset mnist-5k has [28, 28, 1]"),
    ('{"max_value": 17}', "max_value is 17; dataset digits stores values 0..16: allowed 1..16 or null"),
    ('{"dataset": "nmnist", "encoding": "direct"}',
     'encoding is "direct"; dataset nmnist has "frames" (allowed: "frames" or null)'),
    ('{"encoding": "frames"}', 'encoding is "frames"; dataset digits has "direct" (allowed: "direct" or null)'),
    ('{"encoding": "events"}', 'encoding is "events"; allowed: one of "direct", "frames", null'),
    ('{"bits": 4}', "unknown configuration key 'bits' (did you mean 'weight_bits'?)"),
    ('{"time-steps": 4}', "unknown configuration key 'time-steps' (did you mean 'time_steps'?)"),
    ('{"seed": 1, "seed": 2}', "key 'seed' appears twice"),
    ('{"theta": NaN}', "NaN is not a number JSON allows"),
    ('{"lr": Infinity}', "Infinity is not a number JSON allows"),
    ('{"channels": 1e400}', "channels is Infinity; allowed: an integer 1..4096"),   # overflows to inf
    ('{"image": [8, 1e400, 1]}', "image is [8, Infinity, 1]; allowed: a list of 3 integers 1..4096 or null"),
    ('[1, 2]', "expected a JSON object of keys and values, got list"),
    ('{"channels": 16,}', "not valid JSON"),
    ('[' * 100000, "nested too deeply"),
])
def test_config_errors_are_one_line_naming_file_and_key(tmp_path, capsys, text, wanted):
    path = tmp_path / "bad.json"
    path.write_text(text)
    code, out, err = _print_config(capsys, "--config", path)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith(f"spikeforge: error: --config {path}: ") and wanted in lines[0], lines[0]


def test_config_cross_key_rule_and_missing_file(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text('{"channels": 30, "heads": 4}')
    code, _, err = _print_config(capsys, "--config", path)
    assert code == 2 and "heads=4 does not divide channels=30" in err
    code, _, err = _print_config(capsys, "--config", tmp_path / "none.json")
    assert code == 2 and f"--config {tmp_path / 'none.json'}: cannot read it: no such file or directory" in err


def test_training_docs_describe_every_key():
    text = DOCS.read_text()
    assert "--print-config" in text and "train.schema.json" in text
    for key, prop in config_schema()["properties"].items():
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| `{key}` ")), None)
        assert row is not None, key
        assert json.dumps(prop["default"]) in row, (key, row)
        if key not in ("image", "classes", "encoding"):
            assert f"`--{key.replace('_', '-')}`" in row, row


def test_no_configuration_crashes_the_checks():
    """Random JSON values under known and unknown keys: a checked configuration or one ValueError
    line, never another exception (the discipline of issue 22 for the model file)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from spikeforge.quant.config import TRAINING_KEYS, check_config

    keys = st.sampled_from(list(config_schema()["properties"]) + ["bits", "depth", ""])
    scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=5)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=3), inner, max_size=2), max_leaves=6)

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.dictionaries(keys, values, max_size=4))
    def check(d):
        try:
            checked = check_config(d, "c.json")
            ModelConfig.from_dict({k: v for k, v in checked.items() if k not in TRAINING_KEYS})
        except ValueError as e:
            assert "\n" not in str(e) and str(e)

    check()


def test_threads_option_reaches_training(tmp_path, capsys, monkeypatch):
    """``--threads`` is passed to training (results may depend on the torch thread count: the
    shipped mnist model was trained with 1); outside 1..2 it is refused in one line."""
    import sys
    import types

    seen = {}
    fake = types.ModuleType("spikeforge.quant.train")

    def record(cfg, **kw):
        seen.update(kw, cfg=cfg)
        raise ValueError("stop here")

    fake.train = record
    monkeypatch.setitem(sys.modules, "spikeforge.quant.train", fake)
    monkeypatch.setattr("spikeforge.options.require_torch", lambda what: None)
    code = main(["train", "--config", str(CONFIGS / "mnist.json"), "--threads", "1", "-o", str(tmp_path / "m.sfm")])
    assert code == 2 and seen["threads"] == 1 and seen["dataset"] == "mnist-5k"
    assert (seen["epochs"], seen["seed"], seen["cfg"].channels, seen["cfg"].image) == (36, 2, 64, (28, 28, 1))
    capsys.readouterr()
    assert main(["train", "--threads", "3", "-o", str(tmp_path / "m.sfm")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--threads" in err[0] and "3" in err[0], err
