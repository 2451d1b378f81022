"""The spikeforge model file (§11 of the spec): a zip of ``model.json`` and ``.npy`` tensors.

Loading never executes code: JSON is parsed with :mod:`json`, tensors with
``numpy.load(allow_pickle=False)``, each checked against its recorded SHA-256, and the whole
model is validated (:func:`spikeforge.graph.infer`) before it is returned.
"""

import hashlib
import io
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from .graph import SPEC_VERSION, Model, ModelError, Node, infer

__all__ = ["save_model", "load_model", "atomic_write", "FORMAT"]

FORMAT = "spikeforge-model"
_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")


def atomic_write(path, data):
    """Write ``data`` (bytes) to ``path`` via a temporary file and rename: never half-written."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _smallest_dtype(a):
    for dt in ("int8", "int16", "int32", "int64"):
        info = np.iinfo(dt)
        if a.size == 0 or (a.min() >= info.min and a.max() <= info.max):
            return dt
    raise ModelError(f"tensor values {a.min()}..{a.max()} exceed 64 bits")


def _to_jsonable(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def save_model(model, path):
    """Validate ``model`` and write it to ``path`` atomically."""
    infer(model)
    nodes, buf = [], io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        tensor_table = {}
        for node in model.nodes:
            members = {}
            for tname, arr in node.tensors.items():
                arr = np.ascontiguousarray(np.asarray(arr).astype(_smallest_dtype(np.asarray(arr))))
                member = f"tensors/{node.name}.{tname}.npy"
                npy = io.BytesIO()
                np.save(npy, arr, allow_pickle=False)
                zf.writestr(member, npy.getvalue())
                tensor_table[member] = {"dtype": str(arr.dtype), "shape": list(arr.shape),
                                        "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
                members[tname] = member
            nodes.append({"name": node.name, "op": node.op, "inputs": list(node.inputs),
                          "attrs": _to_jsonable(node.attrs), "tensors": members})
        doc = {"format": FORMAT, "version": SPEC_VERSION, "time_steps": int(model.time_steps),
               "nodes": nodes, "tensors": tensor_table,
               "metadata": _to_jsonable(model.metadata)}
        zf.writestr("model.json", json.dumps(doc, indent=1, sort_keys=True))
    atomic_write(path, buf.getvalue())


def _bad(path, message):
    raise ModelError(f"{path}: {message}")


def load_model(path):
    """Read, check and validate a model file. Raises :class:`ModelError` with one line."""
    path = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        _bad(path, "no such file")
    except IsADirectoryError:
        _bad(path, "is a directory, not a model file")
    except (zipfile.BadZipFile, OSError) as e:
        _bad(path, f"not a spikeforge model file (truncated or not a zip archive: {e})")
    with zf:
        try:
            raw = zf.read("model.json")
        except KeyError:
            _bad(path, "archive has no model.json; not a spikeforge model file")
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
            _bad(path, f"model.json is corrupted ({e})")
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            _bad(path, f"model.json is not valid JSON ({e})")
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            _bad(path, f"format is {doc.get('format') if isinstance(doc, dict) else None!r}; "
                       f"expected {FORMAT!r}")
        if doc.get("version") != SPEC_VERSION:
            _bad(path, f"unknown model file version {doc.get('version')!r}; this spikeforge "
                       f"reads version {SPEC_VERSION}")
        for key in ("time_steps", "nodes", "tensors"):
            if key not in doc:
                _bad(path, f"model.json lacks the key {key!r}")
        table = doc["tensors"]
        nodes = []
        for i, nd in enumerate(doc["nodes"]):
            if not isinstance(nd, dict) or not {"name", "op", "inputs", "attrs"} <= set(nd):
                _bad(path, f"node #{i} lacks one of name, op, inputs, attrs")
            tensors = {}
            for tname, member in nd.get("tensors", {}).items():
                tensors[tname] = _read_tensor(path, zf, table, nd["name"], tname, member)
            nodes.append(Node(nd["name"], nd["op"], list(nd["inputs"]), dict(nd["attrs"]), tensors))
    model = Model(doc["time_steps"], nodes, doc.get("metadata", {}))
    try:
        infer(model)
    except ModelError as e:
        _bad(path, str(e))
    return model


def _read_tensor(path, zf, table, node, tname, member):
    where = f"tensor {tname!r} of node {node!r}"
    if member not in table:
        _bad(path, f"{where}: {member!r} is not listed in the tensor table")
    try:
        data = zf.read(member)
    except KeyError:
        _bad(path, f"{where}: archive member {member!r} is missing")
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as e:
        _bad(path, f"{where}: archive member {member!r} is corrupted ({e})")
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        _bad(path, f"{where}: not a plain integer array ({e})")
    entry = table[member]
    if str(arr.dtype) not in _DTYPES or str(arr.dtype) != entry.get("dtype"):
        _bad(path, f"{where}: dtype {arr.dtype} (table says {entry.get('dtype')!r}); "
                   f"allowed: {', '.join(_DTYPES)}")
    if list(arr.shape) != entry.get("shape"):
        _bad(path, f"{where}: shape {list(arr.shape)} differs from the table's {entry.get('shape')}")
    if hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() != entry.get("sha256"):
        _bad(path, f"{where}: SHA-256 mismatch, the tensor data is corrupted")
    return arr
