"""Model file round trip and the validator's rejections, each asserting its message."""

import io
import json
import zipfile

import numpy as np
import pytest

from spikeforge import ModelError, load_model, save_model
from spikeforge.builder import random_model
from spikeforge.cli import main
from spikeforge.sim.model import run_model


@pytest.fixture(scope="module")
def model():
    return random_model(3, attention="linear", time_steps=2, channels=8, heads=2)


@pytest.fixture()
def good(tmp_path, model):
    path = tmp_path / "good.sfm"
    save_model(model, path)
    return path


def rewrite(path, out, edit_json=None, edit_members=None):
    """Copy the archive at ``path`` to ``out``, editing model.json and/or members."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    doc = json.loads(members["model.json"])
    if edit_json:
        edit_json(doc)
    members["model.json"] = json.dumps(doc).encode()
    if edit_members:
        edit_members(members)
    with zipfile.ZipFile(out, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    return out


def npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def node(doc, op):
    return next(n for n in doc["nodes"] if n["op"] == op)


def test_round_trip_is_exact(good, model):
    loaded = load_model(good)
    x = np.random.default_rng(0).integers(0, 17, (8, 8, 8, 1))
    assert np.array_equal(run_model(loaded, x).logits, run_model(model, x).logits)
    for a, b in zip(model.nodes, loaded.nodes):
        assert a.name == b.name and a.attrs == b.attrs
        for t in a.tensors:
            assert np.array_equal(a.tensors[t], b.tensors[t])


def _set_weight(members, doc_node, fn):
    member = doc_node["tensors"]["weight"]
    arr = np.load(io.BytesIO(members[member]))
    members[member] = npy(fn(arr))


def _retable(doc, members):
    """Recompute the tensor table so only the intended defect remains."""
    import hashlib

    for member, entry in doc["tensors"].items():
        if member in members:
            arr = np.load(io.BytesIO(members[member]))
            entry.update(dtype=str(arr.dtype), shape=list(arr.shape),
                         sha256=hashlib.sha256(arr.tobytes()).hexdigest())
    members["model.json"] = json.dumps(doc).encode()


def malformed_cases():
    def version(doc):
        doc["version"] = 99

    def unknown_op(doc):
        doc["nodes"][2]["op"] = "softmax"

    def bad_input_ref(doc):
        doc["nodes"][3]["inputs"] = ["nowhere"]

    def head_not_last(doc):
        doc["nodes"].append(dict(doc["nodes"][-2], name="late"))

    def acc_overflow(doc):
        node(doc, "conv")["attrs"]["acc_bits"] = 3

    def heads(doc):
        node(doc, "sdsa_linear")["attrs"]["heads"] = 3

    def negative_attr(doc):
        node(doc, "conv")["attrs"]["stride"] = 0

    def wrong_format(doc):
        doc["format"] = "onnx"

    return [
        ("version", dict(edit_json=version), "unknown model file version 99"),
        ("unknown-op", dict(edit_json=unknown_op), "unknown operator 'softmax'"),
        ("input-ref", dict(edit_json=bad_input_ref), "input 'nowhere' is not the name of an earlier node"),
        ("head-last", dict(edit_json=head_not_last), "must be the last node"),
        ("acc-overflow", dict(edit_json=acc_overflow), "overflows the declared acc_bits=3"),
        ("heads", dict(edit_json=heads), "heads=3 does not divide the 8 channels"),
        ("attr-range", dict(edit_json=negative_attr), "attribute 'stride' is 0; allowed 1..15"),
        ("format", dict(edit_json=wrong_format), "format is 'onnx'"),
    ]


@pytest.mark.parametrize("case", malformed_cases(), ids=lambda c: c[0])
def test_json_defects_are_rejected(case, good, tmp_path, capsys):
    _, edits, message = case
    bad = rewrite(good, tmp_path / "bad.sfm", **edits)
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model(bad)
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("spikeforge: error:") and message in err


def test_weight_outside_bit_range(good, tmp_path):
    def edit(members):
        doc = json.loads(members["model.json"])
        _set_weight(members, node(doc, "conv"), lambda w: np.where(w == w.max(), 9, w).astype(np.int8))
        _retable(doc, members)

    bad = rewrite(good, tmp_path / "bad.sfm", edit_members=edit)
    with pytest.raises(ModelError, match=r"tensor 'weight'\[.*\] = 9 is outside the signed 4-bit range -8..7"):
        load_model(bad)


def test_shape_mismatch_between_layers(good, tmp_path):
    def edit(members):
        doc = json.loads(members["model.json"])
        q = next(n for n in doc["nodes"] if n["name"] == "block0.q")
        q["attrs"]["in_channels"] = 5
        _set_weight(members, q, lambda w: w[:, :, :5, :])
        _retable(doc, members)

    bad = rewrite(good, tmp_path / "bad.sfm", edit_members=edit)
    with pytest.raises(ModelError, match="in_channels=5 but input 'block0.attn_in' has 8 channels"):
        load_model(bad)


def test_missing_tensor(good, tmp_path):
    def edit(members):
        doc = json.loads(members["model.json"])
        del members[node(doc, "conv")["tensors"]["mult"]]

    bad = rewrite(good, tmp_path / "bad.sfm", edit_members=edit)
    with pytest.raises(ModelError, match="archive member 'tensors/embed.mult.npy' is missing"):
        load_model(bad)


def test_corrupted_tensor_data(good, tmp_path):
    def edit(members):
        doc = json.loads(members["model.json"])
        _set_weight(members, node(doc, "conv"), lambda w: np.roll(w, 1))

    bad = rewrite(good, tmp_path / "bad.sfm", edit_members=edit)
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        load_model(bad)


def test_truncated_file(good, tmp_path, capsys):
    data = good.read_bytes()
    bad = tmp_path / "trunc.sfm"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or not a zip archive"):
        load_model(bad)
    assert main(["eval", str(bad)]) == 2
    assert "truncated" in capsys.readouterr().err


def test_flipped_byte_is_detected(good, tmp_path):
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as zf:
        info = zf.getinfo("model.json")
    data[info.header_offset + 30 + len(info.filename) + 10] ^= 0xFF
    bad = tmp_path / "flip.sfm"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupted|not valid JSON"):
        load_model(bad)


def test_pickled_object_array_is_refused(good, tmp_path):
    def edit(members):
        doc = json.loads(members["model.json"])
        buf = io.BytesIO()
        np.save(buf, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
        members[node(doc, "conv")["tensors"]["bias"]] = buf.getvalue()

    bad = rewrite(good, tmp_path / "bad.sfm", edit_members=edit)
    with pytest.raises(ModelError, match="not a plain integer array"):
        load_model(bad)


def test_not_json(good, tmp_path):
    def edit(members):
        members["model.json"] = b"{not json"

    bad = rewrite(good, tmp_path / "bad.sfm", edit_members=edit)
    with pytest.raises(ModelError, match="model.json is not valid JSON"):
        load_model(bad)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        load_model(tmp_path / "absent.sfm")
    with pytest.raises(ModelError, match="is a directory"):
        load_model(tmp_path)


def test_zero_multiplier_and_theta(model):
    import copy

    m = copy.deepcopy(model)
    conv = next(n for n in m.nodes if n.op == "conv")
    conv.tensors["mult"] = conv.tensors["mult"].copy()
    conv.tensors["mult"][1] = 0
    with pytest.raises(ModelError, match=r"tensor 'mult'\[1\] is 0"):
        save_model(m, "never-written.sfm")
    m = copy.deepcopy(model)
    lif = next(n for n in m.nodes if n.op == "lif")
    lif.tensors["theta"] = np.zeros_like(lif.tensors["theta"])
    with pytest.raises(ModelError, match=r"tensor 'theta'\[0\] = 0 is outside the allowed thresholds"):
        save_model(m, "never-written.sfm")


def test_save_is_atomic(tmp_path, model):
    import copy

    path = tmp_path / "m.sfm"
    save_model(model, path)
    before = path.read_bytes()
    broken = copy.deepcopy(model)
    broken.nodes[1].attrs["acc_bits"] = 2
    with pytest.raises(ModelError):
        save_model(broken, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.sfm"]
