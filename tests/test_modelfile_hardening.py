"""The model loader against hostile files (issue 22): the archive, model.json and its
schema, npy headers, exactness. Each case asserts a one-line ModelError naming the defect;
each would crash, allocate without bound or be accepted by the loader before the fix."""

import hashlib
import io
import json
import os
import struct
import subprocess
import sys
import tracemalloc
import zipfile

import numpy as np
import pytest

from spikeforge import ModelError, load_model, save_model
from spikeforge import modelfile
from spikeforge.builder import random_model
from spikeforge.cli import main
from spikeforge.modelfuzz import exact_logits, spec_violations
from spikeforge.modelschema import build_schema, load_schema
from spikeforge.sim.model import run_model

REPRO = os.path.join(os.path.dirname(__file__), "data", "modelfile_repro")


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    model = random_model(5, image=(4, 4, 1), channels=4, heads=2, attention="linear", mlp_ratio=1,
                         classes=3)
    path = tmp_path_factory.mktemp("base") / "base.sfm"
    save_model(model, path)
    return path.read_bytes()


def members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def pack(items, methods=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, blob in items:
            zf.writestr(zipfile.ZipInfo(name), blob,
                        compress_type=(methods or {}).get(name, zipfile.ZIP_DEFLATED))
    return buf.getvalue()


def npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def edit_doc(data, fn, retable=False, text=None):
    """Archive with model.json edited by ``fn(doc)`` (or replaced by ``text``)."""
    items = dict(members(data))
    doc = json.loads(items["model.json"])
    if fn:
        fn(doc, items)
    if retable:
        for name, entry in doc["tensors"].items():
            arr = np.load(io.BytesIO(items[name]))
            entry.update(dtype=str(arr.dtype), shape=list(arr.shape),
                         sha256=hashlib.sha256(arr.tobytes()).hexdigest())
    items["model.json"] = text(json.dumps(doc)) if text else json.dumps(doc).encode()
    return pack(list(items.items()))


def node(doc, op, i=0):
    return [n for n in doc["nodes"] if n["op"] == op][i]


def cd_offset(data, name):
    """Offsets of the local header and the central directory entry of member ``name``."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local = zf.getinfo(name).header_offset
    pos = 0
    while True:
        pos = data.find(b"PK\x01\x02", pos)
        n = struct.unpack_from("<H", data, pos + 28)[0]
        if data[pos + 46:pos + 46 + n].decode() == name:
            return local, pos
        pos += 4


def patch(data, offset, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def refused(data, pattern):
    with pytest.raises(ModelError) as info:
        load_model(io.BytesIO(data))
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 400, msg
    assert pattern in msg, msg
    return msg


# --- the reproducers ----------------------------------------------------------------------------

REPRO_MESSAGES = {
    "attrs_is_int.sfm": "model.json at /nodes/1/attrs is 5; expected object",
    "input_is_list.sfm": "model.json at /nodes/3/inputs/0 is []; expected string",
    "int64_wrap_72bit_widths.sfm": "acc_bits+mult_bits=72 exceeds 62",
    "json_deep_nesting.sfm": "nests arrays/objects 100000 deep; allowed: at most 10",
    "npy_empty.sfm": "'tensors/embed.weight.npy' is 0 bytes",
    "npy_huge_shape.sfm": "'tensors/embed.weight.npy' is 136 bytes; [3, 3, 1, 32] int8 needs 288 bytes",
    "table_entry_is_str.sfm": "model.json at /tensors/tensors/embed.mult.npy is 'x'; expected object",
    "zip_encrypted_flag.sfm": "archive member 'model.json' is encrypted",
}


def test_every_reproducer_has_a_test():
    assert sorted(os.listdir(REPRO)) == sorted(REPRO_MESSAGES)


@pytest.mark.parametrize("name", sorted(REPRO_MESSAGES))
def test_reproducer_gives_one_line_and_status_2(name, capsys):
    path = os.path.join(REPRO, name)
    assert main(["info", path]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("spikeforge: error: ") and "Traceback" not in err, err
    assert REPRO_MESSAGES[name] in err
    assert captured.out == ""


def test_reproducer_through_the_installed_command():
    """The console script itself: exit status 2, one line on stderr (was a RecursionError)."""
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "spikeforge"), "info",
                           os.path.join(REPRO, "json_deep_nesting.sfm")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nests arrays/objects" in proc.stderr, proc.stderr


def test_the_int64_reproducer_was_computed_wrong():
    """Run past the validator, the 72-bit reproducer's golden logits wrap in int64 and differ
    from the big-integer ones: the class the width limit removes, and the oracle sees it."""
    import warnings

    from spikeforge.graph import Model, Node, _walk
    from spikeforge.sim.model import execute

    with zipfile.ZipFile(os.path.join(REPRO, "int64_wrap_72bit_widths.sfm")) as zf:
        doc = json.loads(zf.read("model.json"))
        nodes = [Node(n["name"], n["op"], n["inputs"], n["attrs"],
                      {t: np.load(io.BytesIO(zf.read(m))) for t, m in n["tensors"].items()})
                 for n in doc["nodes"]]
    model = Model(doc["time_steps"], nodes, {})
    images = np.random.default_rng(0).integers(0, 17, (4, 8, 8, 1))
    structure = _walk(model, False, values=False)[0]  # structurally fine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        golden = execute(model, images, infos=structure).logits
    exact, problems = exact_logits(model, images)
    assert golden.tolist() != exact.tolist()
    assert any("acc_bits+mult_bits > 62" in p for p in spec_violations(model))
    with pytest.raises(ModelError, match="exceeds 62"):
        execute(model, images)


# --- archive ----------------------------------------------------------------------------------

def test_encrypted_flag_on_a_tensor(base):
    local, cd = cd_offset(base, "tensors/embed.weight.npy")
    refused(patch(base, cd + 8, "<H", 0x1), "'tensors/embed.weight.npy' is encrypted")


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_other_compression_methods(base, method):
    refused(pack(members(base), {"model.json": method}), f"compression method {method}; allowed: 0")


def test_unknown_compression_method(base):
    local, cd = cd_offset(base, "tensors/embed.mult.npy")
    refused(patch(patch(base, cd + 10, "<H", 99), local + 8, "<H", 99), "compression method 99")


def test_odd_flags(base):
    local, cd = cd_offset(base, "model.json")
    refused(patch(base, cd + 8, "<H", 0x20), "has the zip flags 0x0020")


def test_duplicate_member(base):
    items = members(base)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        data = pack(items + [items[0]])
    refused(data, "appears twice")


@pytest.mark.parametrize("name", ["../evil.npy", "/abs.npy", "tensors/../model.json", "tensors/sub/x.npy",
                                  "tensors/", "tensors\\x.npy", "tensors/a..b.npy", "x.npy",
                                  "tensors/x.npy\n", "MODEL.JSON"])
def test_unexpected_member_names(base, name):
    refused(pack(members(base) + [(name, b"")]), "unexpected archive member")


def test_member_no_node_uses(base):
    refused(pack(members(base) + [("tensors/extra.npy", npy(np.zeros(3, np.int8)))]), "no node uses it")


def test_table_entry_no_node_uses(base):
    def fn(doc, items):
        doc["tensors"]["tensors/spare.npy"] = dict(doc["tensors"]["tensors/embed.mult.npy"])
    refused(edit_doc(base, fn), "lists 'tensors/spare.npy', which no node uses")


def test_member_count_cap_from_the_end_record(base):
    refused(pack(members(base) + [(f"tensors/p{i}.npy", b"") for i in range(3100)]),
            "members; allowed: at most 3073")


def test_declared_sizes_beyond_the_caps(base, monkeypatch):
    local, cd = cd_offset(base, "tensors/embed.weight.npy")
    refused(patch(base, cd + 24, "<L", 17 << 20), "is 17825792 bytes uncompressed; allowed: at most 16777216")
    monkeypatch.setattr(modelfile, "MAX_TOTAL_BYTES", 2000)
    refused(base, "bytes uncompressed; allowed: at most 2000")


def test_zip_bomb_stops_at_the_declared_size(base):
    """64 MiB of zeros deflated into a member whose directory says 416 bytes: the loader reads
    416 bytes, the CRC fails, and it never holds more than a few MiB."""
    items = dict(members(base))
    name = "tensors/embed.weight.npy"
    size = len(items[name])
    items[name] = bytes(64 << 20)
    data = pack(list(items.items()))
    local, cd = cd_offset(data, name)
    data = patch(patch(data, cd + 24, "<L", size), local + 22, "<L", size)
    tracemalloc.start()
    try:
        refused(data, "corrupted (BadZipFile: Bad CRC-32")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def test_crc_is_checked(base):
    items = members(base)
    data = pack(items, {n: zipfile.ZIP_STORED for n, _ in items})
    local, _ = cd_offset(data, "tensors/embed.weight.npy")
    n, m = struct.unpack_from("<HH", data, local + 26)
    b = bytearray(data)
    b[local + 30 + n + m + 200] ^= 1
    refused(bytes(b), "Bad CRC-32")


def test_end_record_claims_many_members(base):
    pos = base.rfind(b"PK\x05\x06")
    refused(patch(patch(base, pos + 8, "<H", 60000), pos + 10, "<H", 60000), "60000 members")


@pytest.mark.parametrize("data", [b"", b"PK\x05\x06", b"not a zip at all" * 10])
def test_not_a_zip(data):
    refused(data, "not a spikeforge model file")


def test_file_size_cap(base, monkeypatch):
    monkeypatch.setattr(modelfile, "MAX_FILE_BYTES", 1000)
    refused(base, "model files are at most 1000")


# --- model.json -----------------------------------------------------------------------------

def _text(old, new):
    return lambda text: text.replace(old, new, 1).encode()


JSON_CASES = [
    ("deep", None, _text('"metadata": {', '"metadata": {"x": ' + "[" * 50000 + "]" * 50000 + ","),
     "nests arrays/objects 50002 deep"),
    ("duplicate-key", None, _text('"time_steps": ', '"time_steps": 2, "time_steps": '), "duplicate key 'time_steps'"),
    ("nan", None, _text('"time_steps": ', '"x": NaN, "time_steps": '), "NaN is not JSON"),
    ("infinity", None, _text('"time_steps": ', '"x": -Infinity, "time_steps": '), "-Infinity is not JSON"),
    ("1e999", None, _text('"time_steps": ', '"x": 1e999, "time_steps": '), "beyond the double-precision range"),
    ("huge-int", None, _text('"time_steps": ', '"x": 1000000000000000000000000000000, "time_steps": '),
     "beyond the signed 64-bit range"),
    ("not-utf8", None, lambda text: text.encode("utf-16"), "not UTF-8"),
    ("float-attr", lambda d, i: node(d, "conv")["attrs"].update(stride=1.0), None,
     "model.json at /nodes/1/attrs/stride is 1.0; allowed: an integer"),
    ("attrs-list", lambda d, i: node(d, "lif").update(attrs=[1]), None, "expected object"),
    ("attrs-null", lambda d, i: node(d, "lif").update(attrs=None), None, "expected object"),
    ("node-int", lambda d, i: d["nodes"].__setitem__(2, 7), None, "model.json at /nodes/2 is 7; expected object"),
    ("nodes-dict", lambda d, i: d.update(nodes={}), None, "model.json at /nodes is {}; expected array"),
    ("inputs-int", lambda d, i: node(d, "conv").update(inputs=3), None, "expected array"),
    ("input-name-int", lambda d, i: node(d, "conv").update(inputs=[3]), None, "expected string"),
    ("name-slash", lambda d, i: node(d, "lif").update(name="a/b"), None, "is 'a/b'; allowed: strings matching"),
    ("name-dots", lambda d, i: node(d, "lif").update(name="a..b"), None, "is 'a..b'; allowed: strings matching"),
    ("tensors-int", lambda d, i: node(d, "conv").update(tensors=5), None, "expected object"),
    ("tensor-member-int", lambda d, i: node(d, "conv")["tensors"].update(weight=5), None, "expected string"),
    ("op-int", lambda d, i: node(d, "conv").update(op=3), None, "unknown operator 3"),
    ("time-steps-str", lambda d, i: d.update(time_steps="2"), None, "model.json at /time_steps is '2'"),
    ("time-steps-bool", lambda d, i: d.update(time_steps=True), None, "is True; expected integer"),
    ("time-steps-65", lambda d, i: d.update(time_steps=65), None, "is 65; allowed 1..64"),
    ("attr-2^63", lambda d, i: node(d, "conv")["attrs"].update(shift=2 ** 62), None,
     "attribute 'shift' is 4611686018427387904; allowed 0..47"),
    ("attr-missing", lambda d, i: node(d, "conv")["attrs"].pop("shift"), None, "missing attribute 'shift'"),
    ("attr-unknown", lambda d, i: node(d, "conv")["attrs"].update(dilation=2), None,
     "unknown attribute(s) ['dilation']"),
    ("attr-enum", lambda d, i: node(d, "lif")["attrs"].update(reset="medium"), None,
     "attribute 'reset' is 'medium'; allowed: hard, soft"),
    ("entry-str", lambda d, i: d["tensors"].update({"tensors/embed.bias.npy": "x"}), None, "expected object"),
    ("shape-str", lambda d, i: d["tensors"]["tensors/embed.bias.npy"].update(shape="4"), None, "expected array"),
    ("shape-0", lambda d, i: d["tensors"]["tensors/embed.bias.npy"].update(shape=[0]), None, "is 0; allowed 1..4096"),
    ("shape-5d", lambda d, i: d["tensors"]["tensors/embed.bias.npy"].update(shape=[1] * 5), None,
     "a list of 5 items; allowed 1..4"),
    ("dtype", lambda d, i: d["tensors"]["tensors/embed.bias.npy"].update(dtype="float32"), None,
     "is 'float32'; allowed: 'int8'"),
    ("sha-short", lambda d, i: d["tensors"]["tensors/embed.bias.npy"].update(sha256="ab"), None,
     "allowed: strings matching ^[0-9a-f]{64}$"),
    ("entry-extra", lambda d, i: d["tensors"]["tensors/embed.bias.npy"].update(order="C"), None,
     "unexpected key(s) ['order']"),
    ("top-extra", lambda d, i: d.update(extra=1), None, "model.json at / has unexpected key(s) ['extra']"),
    ("top-missing", lambda d, i: d.pop("tensors"), None, "model.json at / lacks the key(s) ['tensors']"),
    ("meta-long", lambda d, i: d["metadata"].update(note="a" * 5000), None,
     "model.json at /metadata/note is a string of 5000 characters; allowed 0..4096"),
    ("meta-deep", lambda d, i: d["metadata"].update(x=[[[[[[1]]]]]]), None, "metadata nests at most 6 levels"),
    ("meta-list", lambda d, i: d["metadata"].update(x=list(range(1025))), None, "a list of 1025 items"),
]


@pytest.mark.parametrize("case", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_model_json_defects(base, case):
    _, fn, text, message = case
    refused(edit_doc(base, fn, text=text), message)


def test_schema_ships_and_matches_the_operator_table():
    """The shipped schema is what build_schema() makes from graph.OPS, and is itself a valid
    draft 2020-12 schema."""
    from jschon import JSON, create_catalog

    assert load_schema() == build_schema()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        catalog = create_catalog("2020-12")
        from jschon import URI

        meta = catalog.get_metaschema(URI("https://json-schema.org/draft/2020-12/schema"))
        assert meta.evaluate(JSON(load_schema())).valid


def test_save_refuses_what_load_would_refuse(tmp_path):
    model = random_model(6, image=(4, 4, 1), channels=4, heads=2, mlp_ratio=1, classes=3)
    model.metadata["x"] = float("nan")
    with pytest.raises(ModelError, match="metadata cannot be written"):
        save_model(model, tmp_path / "m.sfm")
    model.metadata["x"] = "a" * 5000
    with pytest.raises(ModelError, match="a string of 5000 characters"):
        save_model(model, tmp_path / "m.sfm")
    model.metadata.pop("x")
    model.nodes[2].name = "bad/name"
    with pytest.raises(ModelError, match="has the name 'bad/name'"):
        save_model(model, tmp_path / "m.sfm")
    assert not list(tmp_path.iterdir())


# --- tensors --------------------------------------------------------------------------------

def _set_member(name, blob, retable):
    def fn(doc, items):
        items[name] = blob
    return fn, retable


W = "tensors/embed.weight.npy"


def _weight(base):
    return np.load(io.BytesIO(dict(members(base))[W]))


def _raw_npy(header, data):
    header = header.encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


NPY_CASES = [
    ("truncated-data", lambda w: npy(w)[:-5], False, "needs"),
    ("trailing-bytes", lambda w: npy(w) + b"\0" * 7, False, "bytes of data; shape"),
    ("big-endian", lambda w: npy(w.astype(">i2")), False, "dtype '>i2'"),
    ("float", lambda w: npy(w.astype(np.float16)), False, "dtype 'float16'"),
    ("uint64", lambda w: npy(w.astype(np.uint64)), False, "dtype 'uint64'"),
    ("fortran", lambda w: _raw_npy(f"{{'descr': '|i1', 'fortran_order': True, 'shape': {w.shape}, }}",
                                   np.asfortranarray(w).tobytes(order="F")), False, "Fortran order"),
    ("version-3", lambda w: npy(w)[:6] + b"\x03" + npy(w)[7:], False, "bad header"),
    ("bad-magic", lambda w: b"\x93NUMPX" + npy(w)[6:], False, "bad header"),
    ("code-in-header", lambda w: _raw_npy("{'descr': __import__('os').getcwd(), 'fortran_order': False, "
                                          f"'shape': {w.shape}, }}", w.tobytes()), False, "bad header"),
    ("shape-2^40", lambda w: _raw_npy("{'descr': '|i1', 'fortran_order': False, 'shape': (1099511627776,), }",
                                      w.tobytes()), False, "shape [1099511627776] differs"),
    ("header-vs-table", lambda w: npy(w.reshape(2, 2, 4, 1)), False, "shape [2, 2, 4, 1] differs"),
    ("table-vs-graph", lambda w: npy(w[:, :, :, :1]), True, "the graph needs [2, 2, 1, 4]"),
    ("pickled", None, False, "not a plain integer"),
]


@pytest.mark.parametrize("case", NPY_CASES, ids=[c[0] for c in NPY_CASES])
def test_npy_defects(base, case):
    _, make, retable, message = case
    if make is None:
        buf = io.BytesIO()
        np.save(buf, np.array([{"a": 1}] * 16, dtype=object).reshape(2, 2, 1, 4), allow_pickle=True)
        blob = buf.getvalue()
    else:
        blob = make(_weight(base))

    def fn(doc, items):
        items[W] = blob
        if retable:
            arr = np.load(io.BytesIO(blob))
            doc["tensors"][W].update(shape=list(arr.shape), sha256=hashlib.sha256(arr.tobytes()).hexdigest())
    refused(edit_doc(base, fn), message)


def test_tensor_is_never_allocated_beyond_its_member(base):
    """The repro's 2^40-element header costs no allocation: it is refused from the sizes."""
    tracemalloc.start()
    try:
        with open(os.path.join(REPRO, "npy_huge_shape.sfm"), "rb") as f:
            refused(f.read(), "needs 288 bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


# --- exactness --------------------------------------------------------------------------------

def craft(nodes, time_steps=2):
    """A model file from node dicts with arrays in place of members, no validation."""
    items, table, doc_nodes = [], {}, []
    for nd in nodes:
        refs = {}
        for tname, arr in nd.get("tensors", {}).items():
            arr = np.asarray(arr)
            member = f"tensors/{nd['name']}.{tname}.npy"
            items.append((member, npy(arr)))
            table[member] = {"dtype": str(arr.dtype), "shape": list(arr.shape),
                             "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
            refs[tname] = member
        doc_nodes.append(dict(nd, tensors=refs))
    doc = {"format": "spikeforge-model", "version": 1, "time_steps": time_steps, "nodes": doc_nodes,
           "tensors": table, "metadata": {}}
    return pack(items + [("model.json", json.dumps(doc).encode())])


def _tail(src, C, levels_bits=12):
    """lif -> pool -> lif -> head after ``src`` (C channels of integers in 0..2^11)."""
    return [
        dict(name="s1", op="lif", inputs=[src], attrs=dict(leak=1, reset="hard"),
             tensors=dict(theta=np.full(C, 8, np.int64))),
        dict(name="pool", op="pool", inputs=["s1"], attrs=dict(acc_bits=20, mult_bits=8, shift=4, out_bits=12),
             tensors=dict(mult=np.full(C, 3, np.int64), bias=np.zeros(C, np.int64))),
        dict(name="s2", op="lif", inputs=["pool"], attrs=dict(leak=1, reset="hard"),
             tensors=dict(theta=np.full(C, 2, np.int64))),
        dict(name="head", op="head", inputs=["s2"], attrs=dict(in_channels=C, classes=2, weight_bits=4,
                                                               acc_bits=10),
             tensors=dict(weight=np.ones((C, 2), np.int8), bias=np.zeros(2, np.int8))),
    ]


def test_attention_bound_beyond_int64_is_refused():
    """Image spikes of 0..65535 straight into linear attention: d N D^3 = 2^66."""
    nodes = [dict(name="image", op="input", inputs=[], attrs=dict(height=64, width=64, channels=64,
                                                                 max_value=65535)),
             dict(name="attn", op="sdsa_linear", inputs=["image"] * 3, attrs=dict(heads=1))] + _tail("attn", 64)
    refused(craft(nodes), "node 'attn' (sdsa_linear): values reach 0..")


def test_membrane_beyond_int64_is_refused():
    """An integrate-and-fire neuron (leak 0) over 64 steps of inputs up to 2^60."""
    nodes = [dict(name="image", op="input", inputs=[], attrs=dict(height=16, width=16, channels=16,
                                                                 max_value=65535)),
             dict(name="attn", op="sdsa_linear", inputs=["image"] * 3, attrs=dict(heads=1))] + _tail("attn", 16)
    nodes[2]["attrs"]["leak"] = 0
    refused(craft(nodes, time_steps=64), "node 's1' (lif): the membrane reaches")


def _conv_model(bias, weight_sign=1, shift=3, head_bias=None):
    C = 2
    nodes = [dict(name="image", op="input", inputs=[], attrs=dict(height=2, width=2, channels=1, max_value=1)),
             dict(name="conv", op="conv", inputs=["image"],
                  attrs=dict(kernel=1, stride=1, padding=0, in_channels=1, out_channels=C, weight_bits=4,
                             acc_bits=4, mult_bits=4, shift=shift, out_bits=12),
                  tensors=dict(weight=np.full((1, 1, 1, C), 3 * weight_sign, np.int8),
                               mult=np.full(C, 5, np.int8), bias=np.asarray(bias, np.int64)))] + _tail("conv", C)
    if head_bias is not None:
        nodes[-1]["tensors"]["bias"] = np.asarray(head_bias, np.int64)
    return craft(nodes)


def test_bias_at_the_spec_limit():
    """|bias| < 2^(acc_bits+mult_bits-1) (spec §5): -2^7 passes the product range with a
    positive accumulator and rounding, but not the bias rule."""
    assert load_model(io.BytesIO(_conv_model([-127, 0])))
    refused(_conv_model([-128, 0]), "tensor 'bias'[0] = -128 is outside |bias| < 2^7")


def test_head_bias_near_int64_is_refused():
    """bias + T D sum(w) wrapped in int64 in the old validator and the file was accepted."""
    refused(_conv_model([0, 0], head_bias=[(1 << 63) - 1, 0]), "node 'head' (head): tensor 'bias'[0]")


def test_round_trip_of_every_variant_is_exact(tmp_path):
    """Accepted models: golden logits equal the big-integer ones, and the independent reading
    of the spec finds nothing."""
    for i, (attention, levels) in enumerate([("linear", 1), ("mask", 1), ("qsd", 3)]):
        model = random_model(i, image=(4, 4, 1), channels=4, heads=2 if attention != "mask" else 1,
                             attention=attention, levels=levels, mlp_ratio=1, classes=3)
        save_model(model, tmp_path / "m.sfm")
        loaded = load_model(tmp_path / "m.sfm")
        assert spec_violations(loaded) == []
        images = np.random.default_rng(i).integers(0, 17, (3, 4, 4, 1))
        exact, problems = exact_logits(loaded, images)
        assert problems == []
        assert run_model(loaded, images).logits.tolist() == exact.tolist()


def test_shipped_models_still_load():
    import glob

    import spikeforge

    paths = glob.glob(os.path.join(os.path.dirname(spikeforge.__file__), "models", "*.sfm"))
    assert paths
    for path in paths:
        model = load_model(path)
        assert spec_violations(model) == []



def test_end_record_and_directory_disagree(base):
    """The end record says 2 members: zipfile would parse every entry of the directory
    anyway, so the counts must agree (and the directory's size is bounded by the count)."""
    pos = base.rfind(b"PK\x05\x06")
    refused(patch(patch(base, pos + 8, "<H", 2), pos + 10, "<H", 2), "archive directory of")
    n = struct.unpack_from("<H", base, pos + 10)[0]
    refused(patch(patch(base, pos + 8, "<H", n - 1), pos + 10, "<H", n - 1),
            f"holds {n} entries but its end record says {n - 1}")


def test_not_a_regular_file(tmp_path):
    """A FIFO is refused before open(), which would wait for a writer."""
    fifo = tmp_path / "pipe.sfm"
    os.mkfifo(fifo)
    with pytest.raises(ModelError, match="is not a regular file"):
        load_model(fifo)
