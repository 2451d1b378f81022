"""A mutation fuzzer for the model loader, with an independent big-integer oracle (issue 22).

:func:`seed_files` makes small valid model files; :func:`mutate` damages one (byte flips,
truncation, zip directory and header edits, member names, compression methods, flags and
sizes, JSON edits of every field's type and value, npy headers and values, widths);
:func:`classify` loads the result with :func:`spikeforge.modelfile.load_model` and sorts it
into one of :data:`OUTCOMES`:

- ``model-error``: refused with :class:`~spikeforge.graph.ModelError` and a one-line message;
- ``valid-exact``: accepted, satisfies the independent reading of spec §3-§9
  (:func:`spec_violations`), and the golden model's logits equal the big-integer ones
  (:func:`exact_logits`, Python integers in object arrays, bit planes and ``(Q K^T) V``:
  another route than the golden model's) on random and extreme images;
- ``other-exception``: anything else raised, or a multi-line ModelError;
- ``accepted-invalid``: accepted although it breaks the spec, or values exceed a declared
  width while the oracle computes it;
- ``accepted-wrong``: accepted and the golden logits differ from the big-integer ones.

Used by ``tests/test_modelfile_fuzz.py`` (a short seeded run and a hypothesis property) and by
``benchmarks/fuzz_modelfile.py`` (long runs with counts and peak memory).
"""

import functools
import hashlib
import io
import json
import struct
import warnings
import zipfile

import numpy as np

from .builder import ModelBuilder, random_model
from .graph import ModelError, infer
from .modelfile import load_model, save_model
from .sim.model import run_model

__all__ = ["OUTCOMES", "seed_files", "mutate", "classify", "exact_logits", "spec_violations",
           "MUTATIONS"]

OUTCOMES = ("model-error", "valid-exact", "other-exception", "accepted-invalid", "accepted-wrong",
            "valid-not-evaluated")
EXACT = 62  # the loader's promise: every value fits signed 62 bits


# --- seeds -------------------------------------------------------------------------------------

def _minimal_model(seed):
    rng = np.random.default_rng(seed)
    b = ModelBuilder(2, metadata={"generator": "minimal", "seed": seed})
    x = b.input("image", 4, 4, 1, 16)
    x = b.conv("conv", x, rng.integers(-8, 8, (3, 3, 1, 4)), rng.integers(60, 127, 4),
               rng.integers(-64, 64, 4), 6, 10, 4, padding=1)
    x = b.lif("lif", x, rng.integers(1, 40, 4), leak=int(rng.integers(0, 2)),
              reset=("hard", "soft")[int(rng.integers(0, 2))])
    x = b.pool("pool", x, rng.integers(60, 127, 4), rng.integers(-8, 8, 4), 4, 10)
    x = b.multispike("ms", x, 3, 2)
    b.head("head", x, rng.integers(-8, 8, (4, 3)), rng.integers(-8, 9, 3), 4)
    return b.build()


def seed_models():
    """Small valid models covering every operator."""
    return [
        _minimal_model(1),
        random_model(1, image=(4, 4, 1), channels=4, heads=2, attention="linear", mlp_ratio=1, classes=3),
        random_model(2, image=(4, 4, 1), channels=4, heads=1, attention="mask", mlp_ratio=1, classes=3,
                     leak=0, reset="soft"),
        random_model(3, image=(4, 4, 1), channels=4, heads=2, attention="qsd", levels=3, mlp_ratio=1,
                     classes=3, time_steps=3),
    ]


def seed_files():
    """The seed models as model file bytes."""
    out = []
    for model in seed_models():
        buf = io.BytesIO()
        _save_to(model, buf)
        out.append(buf.getvalue())
    return out


def _save_to(model, buf):
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.sfm")
        save_model(model, path)
        with open(path, "rb") as f:
            buf.write(f.read())


# --- archive helpers -----------------------------------------------------------------------------

def _members(data):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i)) for i in zf.infolist()]


def _pack(members, method=zipfile.ZIP_DEFLATED, methods=None):
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method, compresslevel=1) as zf:
        warnings.simplefilter("ignore", UserWarning)  # duplicate names are one of the mutations
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=(methods or {}).get(name, method))
    return buf.getvalue()


def _headers(data):
    """Offsets of (local header, central directory entry) per member, in directory order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        locals_ = [i.header_offset for i in zf.infolist()]
    out, pos = [], 0
    cd = []
    while True:
        pos = data.find(b"PK\x01\x02", pos)
        if pos < 0:
            break
        cd.append(pos)
        pos += 4
    for lo, c in zip(locals_, cd):
        out.append((lo, c))
    return out


def _patch(data, offset, fmt, value):
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _retable(members):
    """Recompute the tensor table of model.json from the npy members (only the intended
    defect remains); members that do not parse keep their entries."""
    members = dict(members)
    try:
        doc = json.loads(members["model.json"])
        table = doc["tensors"]
        for name, entry in table.items():
            if name in members and isinstance(entry, dict):
                arr = np.load(io.BytesIO(members[name]), allow_pickle=False)
                entry.update(dtype=str(arr.dtype), shape=list(arr.shape),
                             sha256=hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest())
        members["model.json"] = json.dumps(doc, indent=1, sort_keys=True).encode()
    except Exception:  # noqa: BLE001 - a damaged member stays damaged; that is the point
        pass
    return list(members.items())


_INTERESTING = [0, 1, -1, 2, 7, -8, 8, 127, -128, 255, 1 << 15, -(1 << 15), (1 << 31) - 1, -(1 << 31),
                1 << 40, 1 << 47, -(1 << 47), 1 << 53, (1 << 61) - 1, -(1 << 61), 1 << 62, (1 << 63) - 1,
                -(1 << 63), 1 << 64, 10 ** 30, 4096, 4097, 1024, 65535, 65536]


def _odd_value(rng):
    kind = rng.integers(0, 12)
    if kind < 5:
        return int(rng.choice(_INTERESTING)) if rng.integers(0, 2) else int(rng.integers(-70, 70))
    return [None, True, False, "x", "", [], {}, 2.0, 1.5, [1, 2], {"a": 1}, "a" * 300][int(rng.integers(0, 12))]


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _get(doc, path):
    for p in path:
        doc = doc[p]
    return doc


# --- mutations ---------------------------------------------------------------------------------

def m_flip(data, rng):
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 5))):
        b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
    return bytes(b)


def m_truncate(data, rng):
    return data[:int(rng.integers(0, len(data)))]


def m_splice(data, rng):
    a, n = int(rng.integers(0, len(data))), int(rng.integers(0, 64))
    junk = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return data[:a] + junk + data[a + int(rng.integers(0, 64)):] if rng.integers(0, 2) else data + junk


def m_method(data, rng):
    members = _members(data)
    name = members[int(rng.integers(0, len(members)))][0]
    if rng.integers(0, 2):
        method = [zipfile.ZIP_STORED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA][int(rng.integers(0, 3))]
        return _pack(members, methods={name: method})
    lo, cd = _headers(data)[int(rng.integers(0, len(members)))]
    value = int(rng.choice([1, 6, 9, 12, 14, 93, 95, 98, 99, 0xFFFF]))
    data = _patch(data, cd + 10, "<H", value)
    return _patch(data, lo + 8, "<H", value) if rng.integers(0, 2) else data


def m_flags(data, rng):
    hdrs = _headers(data)
    lo, cd = hdrs[int(rng.integers(0, len(hdrs)))]
    value = int(rng.choice([0x1, 0x41, 0x20, 0x8, 0x800, 0x2000, 0xFFFF, int(rng.integers(0, 1 << 16))]))
    data = _patch(data, cd + 8, "<H", value)
    return _patch(data, lo + 6, "<H", value) if rng.integers(0, 2) else data


def m_names(data, rng):
    members = _members(data)
    i = int(rng.integers(0, len(members)))
    kind = int(rng.integers(0, 6))
    if kind == 0:
        members.append(members[i])
    elif kind == 1:
        odd = ["../evil.npy", "/abs.npy", "tensors/../model.json", "tensors/sub/x.npy", "tensors/",
               "model.json/", "tensors\\x.npy", "x.npy", "tensors/a..b.npy", "tensors/x.npy\n", "MODEL.JSON"]
        members.append((odd[int(rng.integers(0, len(odd)))], members[i][1]))
    elif kind == 2:
        del members[i]
    elif kind == 3:
        name, blob = members[i]
        members[i] = (name.replace("tensors/", "tensors/../") if rng.integers(0, 2) else name + "x", blob)
    elif kind == 4:
        rng.shuffle(members)
    else:
        members += [(f"tensors/pad{j}.npy", b"") for j in range(int(rng.integers(1, 4000)))]
    return _pack(members)


def m_sizes(data, rng):
    hdrs = _headers(data)
    lo, cd = hdrs[int(rng.integers(0, len(hdrs)))]
    field = int(rng.choice([20, 24]))  # compressed / uncompressed size in the directory entry
    value = int(rng.choice([0, 1, 100, 1 << 20, 17 << 20, 0xFFFFFFFF, int(rng.integers(0, 1 << 32))]))
    data = _patch(data, cd + field, "<L", value)
    return _patch(data, lo + field - 2, "<L", value) if rng.integers(0, 2) else data


def m_bomb(data, rng):
    """A member that decompresses far beyond what its directory entry declares."""
    members = _members(data)
    name = members[int(rng.integers(0, len(members)))][0]
    blob = bytes(int(rng.choice([1 << 20, 20 << 20])))
    out = _pack([(n, blob if n == name else d) for n, d in members])
    if rng.integers(0, 2):
        for (lo, cd), (n, _) in zip(_headers(out), [(n, d) for n, d in members]):
            if n == name:
                out = _patch(out, cd + 24, "<L", 1000)
                out = _patch(out, lo + 22, "<L", 1000)
    return out


def m_json(data, rng):
    members = dict(_members(data))
    if "model.json" not in members:
        return data
    doc = json.loads(members["model.json"])
    paths = list(_paths(doc))
    path = paths[int(rng.integers(1, len(paths)))]
    parent, key = _get(doc, path[:-1]), path[-1]
    kind = int(rng.integers(0, 6))
    if kind == 0 and isinstance(parent, dict):
        del parent[key]
    elif kind == 1 and isinstance(parent, dict):
        parent[["extra", "name", "op", "tensors", "attrs", "leak", "dtype"][int(rng.integers(0, 7))]] = _odd_value(rng)
    elif kind == 2 and isinstance(_get(doc, path), int) and not isinstance(_get(doc, path), bool):
        v = _get(doc, path)
        parent[key] = int(rng.choice([v + 1, v - 1, 2 * v, -v, v + int(rng.integers(-5, 6))]))
    elif kind == 3 and isinstance(parent, list):
        if rng.integers(0, 2):
            parent.append(parent[key])
        else:
            del parent[key]
    else:
        parent[key] = _odd_value(rng)
    text = json.dumps(doc, indent=1, sort_keys=True)
    r = int(rng.integers(0, 10))
    if r == 0:
        text = text.replace('"format"', '"format": "x", "format"', 1)  # duplicate key
    elif r == 1:
        odd = ["NaN", "Infinity", "1e999", "2.0", "1" * 40][int(rng.integers(0, 5))]
        text = text.replace('"time_steps": ', '"time_steps": ' + odd + ', "_": ', 1)
    elif r == 2:
        depth = int(rng.integers(5, 5000))
        text = text.replace('"metadata": {', '"metadata": {"deep": ' + "[" * depth + "]" * depth + ",", 1)
    members["model.json"] = text.encode("utf-8") if rng.integers(0, 20) else text.encode("utf-16")
    return _pack(list(members.items()))


def m_json_text(data, rng):
    members = dict(_members(data))
    raw = bytearray(members.get("model.json", b""))
    if not raw:
        return data
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(0, len(raw)))
        raw[i] = int(rng.choice(list(b'{}[],:"0123456789-.eE \\tnul')))
    members["model.json"] = bytes(raw)
    return _pack(list(members.items()))


def _tensor_member(members, rng):
    names = [n for n in members if n.startswith("tensors/")]
    return names[int(rng.integers(0, len(names)))] if names else None


def m_npy_values(data, rng):
    members = dict(_members(data))
    name = _tensor_member(members, rng)
    if name is None:
        return data
    arr = np.load(io.BytesIO(members[name]), allow_pickle=False).astype(object)
    for _ in range(int(rng.integers(1, 4))):
        idx = tuple(int(rng.integers(0, s)) for s in arr.shape)
        arr[idx] = int(rng.choice(_INTERESTING)) * int(rng.choice([1, 1, -1]))
    if rng.integers(0, 3) == 0:
        arr[...] = int(rng.choice(_INTERESTING))
    lo, hi = min(arr.flat), max(arr.flat)
    dtype = next((d for d in ("int8", "int16", "int32", "int64")
                  if np.iinfo(d).min <= lo and hi <= np.iinfo(d).max), None)
    if dtype is None:
        return data
    members[name] = _npy(arr.astype(dtype))
    out = list(members.items())
    return _pack(_retable(out) if rng.integers(0, 5) else out)


def m_npy_header(data, rng):
    members = dict(_members(data))
    name = _tensor_member(members, rng)
    if name is None:
        return data
    blob = members[name]
    arr = np.load(io.BytesIO(blob), allow_pickle=False)
    kind = int(rng.integers(0, 9))
    if kind == 0:
        blob = b""
    elif kind == 1:
        blob = blob[:int(rng.integers(0, len(blob)))]
    elif kind == 2:
        blob = _npy(arr.astype([np.float64, ">i2", np.uint64, np.bool_, np.complex64][int(rng.integers(0, 5))]))
    elif kind == 3:
        blob = _npy(np.asfortranarray(arr.reshape(arr.shape + (1,)) if arr.ndim == 1 else arr))
    elif kind == 4:
        shape = [str(1 << 40), "-1", "1, 2, 3, 4, 5", "()", "'x'", "(1,)*99", "((1,),)", "9e9"][int(rng.integers(0, 8))]
        header = f"{{'descr': '<i1', 'fortran_order': False, 'shape': ({shape},), }}".encode()
        header += b" " * (63 - len(header) % 64) + b"\n"
        blob = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + blob[-int(arr.nbytes):]
    elif kind == 5:
        b = bytearray(blob)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, min(len(b), 80)))] = int(rng.integers(0, 256))
        blob = bytes(b)
    elif kind == 6:
        blob = blob + bytes(int(rng.integers(1, 9)))
    elif kind == 7:
        blob = blob[:6] + bytes([int(rng.choice([2, 3, 9]))]) + blob[7:]
    else:
        blob = _npy(np.resize(arr, tuple(max(1, s + int(rng.integers(-1, 2))) for s in arr.shape)).astype(arr.dtype))
    members[name] = blob
    out = list(members.items())
    return _pack(_retable(out) if rng.integers(0, 3) else out)


_WIDTHS = {"acc_bits": (2, 48), "mult_bits": (2, 24), "out_bits": (2, 32), "shift": (0, 47),
           "weight_bits": (2, 16), "leak": (0, 16), "levels": (1, 255), "max_value": (1, 65535),
           "heads": (1, 4), "kernel": (1, 4), "stride": (1, 3), "padding": (0, 2),
           "height": (1, 12), "width": (1, 12), "channels": (1, 3), "in_channels": (1, 8),
           "out_channels": (1, 8), "classes": (1, 5)}


def m_width(data, rng):
    """A declared width or attribute changed to another value the schema allows."""
    members = dict(_members(data))
    doc = json.loads(members["model.json"])
    for _ in range(int(rng.integers(1, 3))):
        nd = doc["nodes"][int(rng.integers(0, len(doc["nodes"])))]
        keys = [k for k in nd["attrs"] if k in _WIDTHS]
        if not keys:
            continue
        key = keys[int(rng.integers(0, len(keys)))]
        lo, hi = _WIDTHS[key]
        nd["attrs"][key] = int(rng.choice([lo, hi, int(rng.integers(lo, hi + 1)),
                                           min(hi, max(lo, nd["attrs"][key] + int(rng.integers(-3, 4))))]))
    if rng.integers(0, 3) == 0:
        doc["time_steps"] = int(rng.choice([1, 2, 5, 64] if rng.integers(0, 4) == 0 else [1, 2, 3]))
    members["model.json"] = json.dumps(doc, indent=1, sort_keys=True).encode()
    return _pack(list(members.items()))


def m_extreme(data, rng):
    """Widths at their maxima and constants at the edge of what they allow (exactness)."""
    members = dict(_members(data))
    doc = json.loads(members["model.json"])
    nodes = [nd for nd in doc["nodes"] if "bias" in nd["tensors"]]
    nd = nodes[int(rng.integers(0, len(nodes)))]
    a = nd["attrs"]
    a["acc_bits"] = int(rng.choice([a["acc_bits"], 30, 40, 48, int(rng.integers(2, 49))]))
    if "mult_bits" in a:
        a["mult_bits"] = int(rng.choice([a["mult_bits"], 14, 22, 24, int(rng.integers(2, 25))]))
    width = a["acc_bits"] + a.get("mult_bits", 0) - 1
    member = nd["tensors"][["bias", "mult", "weight"][int(rng.integers(0, 3 if "mult" in nd["tensors"] else 2))]]
    arr = np.load(io.BytesIO(members[member])).astype(object)
    edge = (1 << int(rng.integers(max(1, width - 3), width + 2))) - int(rng.integers(0, 3))
    arr.flat[int(rng.integers(0, arr.size))] = edge * int(rng.choice([1, -1]))
    if abs(edge) < (1 << 63):
        members[member] = _npy(arr.astype(np.int64))
    if rng.integers(0, 3) == 0 and doc["nodes"][0]["op"] == "input":
        doc["nodes"][0]["attrs"]["max_value"] = int(rng.choice([255, 4095, 65535]))
    members["model.json"] = json.dumps(doc, indent=1, sort_keys=True).encode()
    return _pack(_retable(list(members.items())))


MUTATIONS = {"flip": (m_flip, 3), "truncate": (m_truncate, 1), "splice": (m_splice, 1),
             "method": (m_method, 1), "flags": (m_flags, 1), "names": (m_names, 2),
             "sizes": (m_sizes, 1), "bomb": (m_bomb, 0.05), "json": (m_json, 6),
             "json_text": (m_json_text, 2), "npy_values": (m_npy_values, 5),
             "npy_header": (m_npy_header, 3), "width": (m_width, 5), "extreme": (m_extreme, 4)}


def mutate(data, rng):
    """One to three random mutations of model file ``data``; returns ``(bytes, [names])``."""
    names = list(MUTATIONS)
    weights = np.array([MUTATIONS[n][1] for n in names], float)
    applied = []
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        try:
            data = MUTATIONS[name][0](data, rng)
        except Exception:  # noqa: BLE001 - an earlier mutation broke the archive for this one
            continue
        applied.append(name)
    return data, applied


# --- the oracle --------------------------------------------------------------------------------

def _obj(a):
    return np.asarray(a).astype(object)


def _rsr(a, s):
    return a if s == 0 else (a + (1 << (s - 1))) >> s


def _sat(a, n):
    lo, hi = -(1 << (n - 1)), (1 << (n - 1)) - 1
    return np.where(a < lo, lo, np.where(a > hi, hi, a))


def _fits(a, bits):
    return bool(((a >= -(1 << (bits - 1))) & (a <= (1 << (bits - 1)) - 1)).all()) if a.size else True


def _planes_dot(x, w, levels):
    """``x @ w`` over bit planes of the unsigned ``x`` (spec §5), Python integers."""
    acc = np.zeros(x.shape[:-1] + (w.shape[-1],), dtype=object)
    for b in range(int(levels).bit_length()):
        plane = (x >> b) & 1
        acc = acc + np.dot(plane, w) * (1 << b)
    return acc


def _lif(x, theta, leak, reset):
    v = np.zeros(x.shape[1:], dtype=object)
    spikes, us = [], []
    for t in range(x.shape[0]):
        u = (v >> leak) + x[t]
        s = u >= theta
        v = np.where(s, 0 if reset == "hard" else u - theta, u)
        spikes.append(s.astype(int).astype(object))
        us.append(u)
    return np.stack(spikes), np.stack(us)


def exact_logits(model, images):
    """Logits of ``model`` for ``images [B, H, W, C]`` in Python integers, written from the
    spec without the golden model; returns ``(logits [B, K] object, [width violations])``."""
    T = model.time_steps
    problems = []
    out = []
    for img in np.asarray(images):
        vals, levels = {}, {}
        logits = None
        for nd in model.nodes:
            a, t = nd.attrs, {k: _obj(v) for k, v in nd.tensors.items()}
            xs = [vals[n] for n in nd.inputs]
            if nd.op == "input":
                y = np.broadcast_to(_obj(img), (T,) + img.shape).copy()
                levels[nd.name] = a["max_value"]
            elif nd.op == "conv":
                x, k, s, p = xs[0], a["kernel"], a["stride"], a["padding"]
                _, H, W, _ = x.shape
                Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
                xp = np.zeros((T, H + 2 * p, W + 2 * p, x.shape[3]), dtype=object)
                xp[:, p:p + H, p:p + W] = x
                acc = np.zeros((T, Ho, Wo, a["out_channels"]), dtype=object)
                for ky in range(k):
                    for kx in range(k):
                        win = xp[:, ky:ky + s * (Ho - 1) + 1:s, kx:kx + s * (Wo - 1) + 1:s]
                        acc = acc + _planes_dot(win, t["weight"][ky, kx], levels[nd.inputs[0]])
                y = _requant(nd, acc, t, problems)
            elif nd.op in ("lif", "sdsa_mask"):
                if nd.op == "lif":
                    x = xs[0]
                else:
                    x = (xs[1] & xs[2]).sum(axis=(1, 2))
                y, u = _lif(x, t["theta"], a["leak"], a["reset"])
                if not _fits(u, EXACT):
                    problems.append(f"{nd.name}: membrane beyond {EXACT} bits")
                if nd.op == "sdsa_mask":
                    y = xs[0] & y[:, None, None, :]
                levels[nd.name] = 1
            elif nd.op == "multispike":
                y = np.clip(_rsr(xs[0], a["shift"]), 0, a["levels"])
                levels[nd.name] = a["levels"]
            elif nd.op == "add":
                y = _sat(xs[0] + xs[1], a["out_bits"])
            elif nd.op == "sdsa_linear":
                q, k, v = xs
                T_, H, W, C = q.shape
                d = C // a["heads"]
                y = np.zeros_like(q)
                for ti in range(T_):
                    for h in range(a["heads"]):
                        J = slice(h * d, h * d + d)
                        qh, kh, vh = (z[ti].reshape(H * W, C)[:, J] for z in (q, k, v))
                        y[ti].reshape(H * W, C)[:, J] = np.dot(np.dot(qh, kh.T), vh)  # (Q K^T) V
            elif nd.op == "pool":
                acc = xs[0].sum(axis=(1, 2), keepdims=True)
                y = _requant(nd, acc, t, problems)
            elif nd.op == "head":
                s = xs[0].reshape(T, -1)
                logits = t["bias"] + sum(_planes_dot(s[ti], t["weight"], levels[nd.inputs[0]]) for ti in range(T))
                if not _fits(logits, a["acc_bits"]):
                    problems.append(f"{nd.name}: logits exceed acc_bits={a['acc_bits']}")
                y = logits
            else:
                raise AssertionError(nd.op)
            if not _fits(np.asarray(y), EXACT):
                problems.append(f"{nd.name}: values beyond {EXACT} bits")
            vals[nd.name] = y
        out.append(logits)
    return np.stack(out), problems


def _requant(nd, acc, t, problems):
    a = nd.attrs
    if not _fits(acc, a["acc_bits"]):
        problems.append(f"{nd.name}: accumulator exceeds acc_bits={a['acc_bits']}")
    p = acc * t["mult"] + t["bias"] + ((1 << (a["shift"] - 1)) if a["shift"] else 0)
    if not _fits(p, a["acc_bits"] + a["mult_bits"]):
        problems.append(f"{nd.name}: requantization exceeds acc_bits+mult_bits")
    return _sat(p >> a["shift"], a["out_bits"])


def _within(problems, name, vals, bits, what):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if any(v < lo or v > hi for v in vals):
        problems.append(f"{name}: {what} outside {bits} bits")


def _requant_range(problems, name, a, w, acc_lo, acc_hi):
    A, M, S = a["acc_bits"], a["mult_bits"], a["shift"]
    if A + M > EXACT:
        problems.append(f"{name}: acc_bits+mult_bits > {EXACT}")
    _within(problems, name, acc_lo + acc_hi, A, "accumulator")
    _within(problems, name, w["mult"], M, "mult")
    if 0 in w["mult"]:
        problems.append(f"{name}: zero mult")
    if any(abs(b) >= 1 << (A + M - 1) for b in w["bias"]):
        problems.append(f"{name}: |bias| >= 2^(acc_bits+mult_bits-1)")
    rnd = (1 << (S - 1)) if S else 0
    ps = [c * m + b + rnd for lo, hi, m, b in zip(acc_lo, acc_hi, w["mult"], w["bias"]) for c in (lo, hi)]
    _within(problems, name, ps, A + M, "requantization product")
    o = a["out_bits"]
    return (max(-(1 << (o - 1)), min(ps) >> S), min((1 << (o - 1)) - 1, max(ps) >> S), None)


def spec_violations(model):
    """Static checks of spec §3-§9 in Python integers (an independent reading): a list of
    problems, empty for a model that satisfies the spec and the exactness limit."""
    problems = []
    rng_of, shape_of = {}, {}
    T = model.time_steps
    names = set()
    if not model.nodes or model.nodes[0].op != "input" or model.nodes[-1].op != "head":
        problems.append("input first and head last")
    for nd in model.nodes:
        a = nd.attrs
        if nd.name in names or any(i not in names for i in nd.inputs):
            problems.append(f"{nd.name}: names")
            return problems
        names.add(nd.name)
        ins = [rng_of[i] for i in nd.inputs]
        shp = [shape_of[i] for i in nd.inputs]
        w = {k: [int(v) for v in np.asarray(x).reshape(-1)] for k, x in nd.tensors.items()}

        within = functools.partial(_within, problems, nd.name)
        requant = functools.partial(_requant_range, problems, nd.name, a, w)
        if nd.op == "input":
            r, s = (0, a["max_value"], a["max_value"]), (a["height"], a["width"], a["channels"])
        elif nd.op == "conv":
            D = ins[0][2]
            if D is None:
                problems.append(f"{nd.name}: conv on integers")
                return problems
            k, co = a["kernel"], a["out_channels"]
            within(w["weight"], a["weight_bits"], "weight")
            W_ = np.asarray(nd.tensors["weight"]).reshape(-1, co)
            lo = [D * sum(min(int(v), 0) for v in W_[:, o]) for o in range(co)]
            hi = [D * sum(max(int(v), 0) for v in W_[:, o]) for o in range(co)]
            r = requant(lo, hi)
            H, Wd, _ = shp[0]
            s = ((H + 2 * a["padding"] - k) // a["stride"] + 1, (Wd + 2 * a["padding"] - k) // a["stride"] + 1, co)
        elif nd.op in ("lif", "sdsa_mask"):
            if any(v < 1 for v in w["theta"]):
                problems.append(f"{nd.name}: theta < 1")
            if nd.op == "lif":
                m = max(abs(ins[0][0]), abs(ins[0][1]))
                if (2 * m + 1 if a["leak"] else T * m) >= 1 << (EXACT - 1):
                    problems.append(f"{nd.name}: membrane beyond {EXACT} bits")
            elif any(i[2] != 1 for i in ins):
                problems.append(f"{nd.name}: mask needs binary spikes")
            r, s = (0, 1, 1), shp[0]
        elif nd.op == "multispike":
            r, s = (0, a["levels"], a["levels"]), shp[0]
        elif nd.op == "add":
            o = a["out_bits"]
            r = (max(-(1 << (o - 1)), ins[0][0] + ins[1][0]), min((1 << (o - 1)) - 1, ins[0][1] + ins[1][1]), None)
            s = shp[0]
        elif nd.op == "sdsa_linear":
            if any(i[2] is None for i in ins):
                problems.append(f"{nd.name}: attention on integers")
                return problems
            H, Wd, C = shp[0]
            r, s = (0, C // a["heads"] * H * Wd * ins[0][2] * ins[1][2] * ins[2][2], None), shp[0]
        elif nd.op == "pool":
            N = shp[0][0] * shp[0][1]
            C = shp[0][2]
            r, s = requant([N * ins[0][0]] * C, [N * ins[0][1]] * C), (1, 1, C)
        elif nd.op == "head":
            D = ins[0][2]
            if D is None or shp[0][:2] != (1, 1):
                problems.append(f"{nd.name}: head input")
                return problems
            K = a["classes"]
            within(w["weight"], a["weight_bits"], "weight")
            W_ = np.asarray(nd.tensors["weight"]).reshape(-1, K)
            lo = [b + T * D * sum(min(int(v), 0) for v in W_[:, j]) for j, b in enumerate(w["bias"])]
            hi = [b + T * D * sum(max(int(v), 0) for v in W_[:, j]) for j, b in enumerate(w["bias"])]
            within(lo + hi, a["acc_bits"], "logits")
            r, s = (min(lo), max(hi), None), (1, 1, K)
        else:
            problems.append(f"{nd.name}: operator {nd.op}")
            return problems
        if r[0] < -(1 << (EXACT - 1)) or r[1] >= 1 << (EXACT - 1):
            problems.append(f"{nd.name}: values beyond {EXACT} bits")
        rng_of[nd.name], shape_of[nd.name] = r, tuple(int(v) for v in s)
    return problems


def _images(model, rng):
    a = model.nodes[0].attrs
    shape = (a["height"], a["width"], a["channels"])
    top = a["max_value"]
    return np.stack([rng.integers(0, top + 1, shape), np.full(shape, top),
                     rng.integers(0, 2, shape) * top]).astype(np.int64)


def classify(data, rng):
    """Load ``data`` and return ``(outcome, detail)``, outcome one of :data:`OUTCOMES`."""
    try:
        model = load_model(io.BytesIO(data))
    except ModelError as e:
        msg = str(e)
        if "\n" in msg or not msg:
            return "other-exception", f"ModelError message of {msg.count(chr(10)) + 1} lines"
        return "model-error", msg
    except Exception as e:  # noqa: BLE001 - counting these is what the fuzzer is for
        return "other-exception", f"{type(e).__name__}: {e}"[:300]
    try:
        problems = spec_violations(model)
    except Exception as e:  # noqa: BLE001
        return "accepted-invalid", f"the independent check failed: {type(e).__name__}: {e}"[:300]
    if problems:
        return "accepted-invalid", "; ".join(problems)[:300]
    largest = max(int(np.prod(info.shape)) for info in infer(model).values()) * model.time_steps
    if largest > 1 << 18:
        return "valid-not-evaluated", f"a tensor of {largest} values is too large to evaluate"
    images = _images(model, rng)
    try:
        golden = run_model(model, images).logits
        exact, problems = exact_logits(model, images)
    except Exception as e:  # noqa: BLE001
        return "accepted-invalid", f"evaluation failed: {type(e).__name__}: {e}"[:300]
    if problems:
        return "accepted-invalid", "; ".join(problems)[:300]
    if golden.tolist() != exact.tolist():
        return "accepted-wrong", f"golden {golden.tolist()} != exact {exact.tolist()}"[:300]
    return "valid-exact", ""
