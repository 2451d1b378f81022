"""The spikeforge model file (§11 of the spec): a zip of ``model.json`` and ``.npy`` tensors.

Loading never executes code and trusts nothing: the archive is checked from its directory
(caps on members and sizes, names, methods, flags) and read within those caps, ``model.json``
is parsed strictly and validated against the shipped JSON Schema
(:mod:`spikeforge.modelschema`), the graph's structure gives each tensor's shape before its
npy header is parsed (``allow_pickle`` never arises: headers are literals, data are read with
``numpy.frombuffer``), each tensor's bytes and SHA-256 are checked, and the whole model is
validated (:func:`spikeforge.graph.infer`) before it is returned.
"""

import contextlib
import hashlib
import io
import json
import math
import os
import stat
import struct
import tempfile
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npformat

from .graph import MAX_NODES, SPEC_VERSION, Model, ModelError, Node, infer, tensor_shapes
from .modelschema import DTYPES, MEMBER_RE, check_schema, floats_outside_metadata, parse_json

__all__ = ["save_model", "load_model", "atomic_write", "atomic_output", "FORMAT"]

FORMAT = "spikeforge-model"


@contextlib.contextmanager
def atomic_output(path):
    """A temporary path beside ``path`` to write to; renamed to ``path`` when the block ends
    without an exception, removed otherwise: ``path`` is never half-written."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write(path, data):
    """Write ``data`` (bytes) to ``path`` via a temporary file and rename: never half-written."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


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
                if npy.tell() > MAX_TENSOR_BYTES:
                    raise ModelError(f"node {node.name!r}: tensor {tname!r} takes {npy.tell()} bytes; "
                                     f"allowed: at most {MAX_TENSOR_BYTES}")
                zf.writestr(member, npy.getvalue())
                tensor_table[member] = {"dtype": str(arr.dtype), "shape": list(arr.shape),
                                        "sha256": hashlib.sha256(arr.tobytes()).hexdigest()}
                members[tname] = member
            nodes.append({"name": node.name, "op": node.op, "inputs": list(node.inputs),
                          "attrs": _to_jsonable(node.attrs), "tensors": members})
        doc = {"format": FORMAT, "version": SPEC_VERSION, "time_steps": int(model.time_steps),
               "nodes": nodes, "tensors": tensor_table,
               "metadata": _to_jsonable(model.metadata)}
        check_schema(doc)
        try:
            text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False)
        except ValueError as e:
            raise ModelError(f"metadata cannot be written: {e}") from None
        if len(text.encode()) > MAX_JSON_BYTES:
            raise ModelError(f"model.json would be {len(text.encode())} bytes; allowed: at most {MAX_JSON_BYTES}")
        zf.writestr("model.json", text)
    total = sum(info.file_size for info in zf.infolist())
    if total > MAX_TOTAL_BYTES:
        raise ModelError(f"the model's members total {total} bytes; allowed: at most {MAX_TOTAL_BYTES}")
    atomic_write(path, buf.getvalue())


def _bad(path, message):
    raise ModelError(f"{path}: {' '.join(str(message).split())}")


# --- archive limits (spec §11) -------------------------------------------------------------

#: Most members an archive may hold: model.json and 3 tensors for each of MAX_NODES nodes.
MAX_MEMBERS = 1 + 3 * MAX_NODES
#: Largest ``model.json``, uncompressed.
MAX_JSON_BYTES = 2 << 20
#: Largest tensor member (``.npy``), uncompressed.
MAX_TENSOR_BYTES = 16 << 20
#: Largest sum of all members, uncompressed.
MAX_TOTAL_BYTES = 64 << 20
#: Largest model file on disk.
MAX_FILE_BYTES = MAX_TOTAL_BYTES + (4 << 20)
#: Largest ``.npy`` header.
MAX_NPY_HEADER = 4096
_ALLOWED_FLAGS = 0x0002 | 0x0004 | 0x0008 | 0x0800  # deflate options, data descriptor, UTF-8 names
_EOCD = struct.Struct("<4s4H2LH")
_MAX_CD_ENTRY = 1024  # a directory entry: 46 bytes, a name of at most 205, extra fields and comment
_SCHEMA_VALID = set()  # SHA-256 of model.json texts that passed the schema in this process


def _central_directory(path, f, size):
    """Entry count and size of the central directory, read from the end record before
    :mod:`zipfile` parses anything (so a directory of a million entries is never loaded)."""
    tail_len = min(size, _EOCD.size + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    pos = len(tail) - _EOCD.size if tail[-_EOCD.size:][:4] == b"PK\x05\x06" else tail.rfind(b"PK\x05\x06")
    if pos < 0 or pos + _EOCD.size > len(tail):
        _bad(path, "not a spikeforge model file (truncated or not a zip archive: no end of "
                   "central directory)")
    _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, pos)
    if pos >= 20 and tail[pos - 20:pos - 16] == b"PK\x06\x07" or 0xFFFF in (n_disk, n_total) \
            or 0xFFFFFFFF in (cd_size, cd_offset):
        _bad(path, "is a ZIP64 archive; model files are plain zip archives (at most "
                   f"{MAX_MEMBERS} members, {MAX_TOTAL_BYTES >> 20} MiB)")
    if disk or cd_disk or n_disk != n_total:
        _bad(path, "is a multi-disk zip archive; model files are single plain zip archives")
    if n_total > MAX_MEMBERS:
        _bad(path, f"archive has {n_total} members; allowed: at most {MAX_MEMBERS}")
    if cd_size > max(n_total, 1) * _MAX_CD_ENTRY:  # zipfile parses every entry in this range
        _bad(path, f"archive directory of {cd_size} bytes is too large for {n_total} members "
                   f"(at most {_MAX_CD_ENTRY} bytes each)")
    return n_total


def _check_members(path, infos, n_total):
    """Names, methods, flags and sizes of every member, from the central directory."""
    if len(infos) != n_total:
        _bad(path, f"the archive directory holds {len(infos)} entries but its end record says {n_total}")
    seen, total = set(), 0
    for info in infos:
        name = info.filename
        if name in seen:
            _bad(path, f"archive member {name[:80]!r} appears twice")
        seen.add(name)
        if name != "model.json" and not (MEMBER_RE.fullmatch(name) and ".." not in name):
            _bad(path, f"unexpected archive member {name[:80]!r}; allowed: model.json and "
                       "tensors/NAME.npy (no other directories, no '..')")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            _bad(path, f"archive member {name!r} uses compression method {info.compress_type}; "
                       "allowed: 0 (stored) and 8 (deflated)")
        if info.flag_bits & 0x1 or info.flag_bits & 0x40:
            _bad(path, f"archive member {name!r} is encrypted; model files are never encrypted")
        if info.flag_bits & ~_ALLOWED_FLAGS:
            _bad(path, f"archive member {name!r} has the zip flags {info.flag_bits:#06x}; allowed: "
                       f"{_ALLOWED_FLAGS:#06x} (deflate options, data descriptor, UTF-8 name)")
        cap = MAX_JSON_BYTES if name == "model.json" else MAX_TENSOR_BYTES
        if info.file_size > cap:
            _bad(path, f"archive member {name!r} is {info.file_size} bytes uncompressed; "
                       f"allowed: at most {cap}")
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        _bad(path, f"archive members total {total} bytes uncompressed; allowed: at most {MAX_TOTAL_BYTES}")
    if "model.json" not in seen:
        _bad(path, "archive has no model.json; not a spikeforge model file")


def _read_member(path, zf, info, where):
    """The member's bytes, read in chunks and never more than its declared size (a member
    that decompresses to more stops there); zipfile checks the CRC-32 at the end."""
    buf = bytearray(info.file_size)
    view, got = memoryview(buf), 0
    try:
        with zf.open(info) as f:
            while got < info.file_size:
                n = f.readinto(view[got:got + (1 << 20)])
                if not n:
                    break
                got += n
            extra = f.read(1)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error, RuntimeError,
            NotImplementedError, struct.error) as e:
        _bad(path, f"{where} is corrupted ({type(e).__name__}: {e})")
    if got != info.file_size or extra:
        _bad(path, f"{where} decompresses to {'fewer' if got < info.file_size else 'more'} bytes "
                   f"than the {info.file_size} its directory entry declares")
    return buf


def load_model(path):
    """Read, check and validate a model file (a path, or a binary file object). Raises
    :class:`ModelError` with one line.

    In order, before any field or tensor is used: the archive (size, member count, names,
    compression, flags, sizes: spec §11), ``model.json`` (strict JSON, then the JSON Schema
    ``model.schema.json``), the graph without tensors (:func:`spikeforge.graph.tensor_shapes`),
    each tensor's ``.npy`` header against the shape the graph requires, its bytes and
    SHA-256, and last every value bound and width (:func:`spikeforge.graph.infer`).
    """
    if hasattr(path, "read") and hasattr(path, "seek"):
        return _load_file(getattr(path, "name", "<model file>"), path)
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode  # before open(): opening a FIFO would wait for a writer
        if stat.S_ISDIR(mode):
            _bad(path, "is a directory, not a model file")
        if not stat.S_ISREG(mode):
            _bad(path, "is not a regular file")
        f = open(path, "rb")
    except FileNotFoundError:
        _bad(path, "no such file")
    except OSError as e:
        _bad(path, f"cannot be read ({e.strerror or e})")
    with f:
        return _load_file(path, f)


def _load_file(path, f):
    try:
        size = f.seek(0, os.SEEK_END)
        if size > MAX_FILE_BYTES:
            _bad(path, f"is {size} bytes; model files are at most {MAX_FILE_BYTES}")
        n_total = _central_directory(path, f, size)
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error,
                NotImplementedError, UnicodeDecodeError) as e:
            _bad(path, f"not a spikeforge model file (truncated or not a zip archive: {e})")
        with zf:
            return _load(path, zf, n_total)
    except OSError as e:
        _bad(path, f"cannot be read ({e.strerror or e})")


def _load(path, zf, n_total):
    infos = zf.infolist()
    _check_members(path, infos, n_total)
    by_name = {info.filename: info for info in infos}
    raw = bytes(_read_member(path, zf, by_name["model.json"], "model.json"))
    try:
        doc = parse_json(raw)
    except ModelError as e:
        _bad(path, str(e))
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        _bad(path, f"format is {_short(doc.get('format')) if isinstance(doc, dict) else None}; "
                   f"expected {FORMAT!r}")
    if doc.get("version") != SPEC_VERSION or isinstance(doc.get("version"), (bool, float)):
        _bad(path, f"unknown model file version {_short(doc.get('version'))}; this spikeforge "
                   f"reads version {SPEC_VERSION}")
    digest = hashlib.sha256(raw).digest()
    if digest not in _SCHEMA_VALID:  # schema validation is the slowest step; once per text
        try:
            check_schema(doc)
        except ModelError as e:
            _bad(path, str(e))
        if len(_SCHEMA_VALID) >= 256:
            _SCHEMA_VALID.clear()
        _SCHEMA_VALID.add(digest)
    found = floats_outside_metadata(doc)
    if found:
        _bad(path, f"model.json at {found[0]} is {_short(found[1])}; allowed: an integer "
                   "(written without fraction or exponent)")
    # The graph without tensors gives the shape of every tensor before any is read.
    nodes = [Node(nd["name"], nd["op"], list(nd["inputs"]), dict(nd["attrs"]), {}) for nd in doc["nodes"]]
    shell = Model(doc["time_steps"], nodes, doc.get("metadata", {}))
    try:
        expected = tensor_shapes(shell)
    except ModelError as e:
        _bad(path, str(e))
    # Cross-references: every tensor a node names is listed in the table, every table entry
    # is used by exactly one tensor, and the archive holds exactly model.json and those.
    table, used = doc["tensors"], {}
    for nd in doc["nodes"]:
        for tname, member in nd["tensors"].items():
            who = f"tensor {tname!r} of node {nd['name']!r}"
            if member not in table:
                _bad(path, f"{who}: {member!r} is not listed in the tensor table")
            if member in used:
                _bad(path, f"{who}: {member!r} is already the {used[member]}; each tensor has its own member")
            used[member] = who
            if member not in by_name:
                _bad(path, f"{who}: archive member {member!r} is missing")
    for member in table:
        if member not in used:
            _bad(path, f"the tensor table lists {member!r}, which no node uses")
    for name in by_name:
        if name != "model.json" and name not in used:
            _bad(path, f"unexpected archive member {name!r}: no node uses it")
    for nd, node in zip(doc["nodes"], nodes):
        for tname, member in nd["tensors"].items():
            entry, shape = table[member], expected[nd["name"]][tname]
            where = f"tensor {tname!r} of node {nd['name']!r}"
            if tuple(entry["shape"]) != tuple(shape):
                _bad(path, f"{where}: the tensor table gives the shape {entry['shape']}; the graph "
                           f"needs {list(shape)}")
            node.tensors[tname] = _read_tensor(path, zf, by_name[member], entry, where)
    try:
        infer(shell)
    except ModelError as e:
        _bad(path, str(e))
    return shell


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _read_tensor(path, zf, info, entry, where):
    """One ``.npy`` member: header checked against the table before any array exists."""
    dtype = np.dtype(entry["dtype"])
    count = math.prod(entry["shape"])
    nbytes = count * dtype.itemsize
    member = info.filename
    if not nbytes < info.file_size <= nbytes + MAX_NPY_HEADER:
        _bad(path, f"{where}: archive member {member!r} is {info.file_size} bytes; {entry['shape']} "
                   f"{entry['dtype']} needs {nbytes} bytes of data and a header")
    buf = _read_member(path, zf, info, f"{where}: archive member {member!r}")
    fp = io.BytesIO(buf)
    try:
        version = npformat.read_magic(fp)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"npy format version {version}; allowed: 1.0, 2.0")
        read_header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
        shape, fortran, header_dtype = read_header(fp, max_header_size=MAX_NPY_HEADER)
    except Exception as e:  # noqa: BLE001 - numpy's header parser raises many kinds on bad input
        _bad(path, f"{where}: not a plain integer .npy array (bad header: {type(e).__name__}: {e})")
    if header_dtype.hasobject or str(header_dtype) not in DTYPES:
        _bad(path, f"{where}: not a plain integer array (dtype {_short(str(header_dtype))}); "
                   f"allowed: {', '.join(DTYPES)}")
    if str(header_dtype) != entry["dtype"]:
        _bad(path, f"{where}: dtype {header_dtype} but the tensor table says {entry['dtype']!r}")
    if fortran:
        _bad(path, f"{where}: the array is stored in Fortran order; model files store C order")
    if list(shape) != list(entry["shape"]):
        _bad(path, f"{where}: shape {list(shape)} differs from the table's {entry['shape']}")
    offset = fp.tell()
    if len(buf) - offset != nbytes:
        _bad(path, f"{where}: {len(buf) - offset} bytes of data; shape {list(shape)} of "
                   f"{header_dtype} needs {nbytes}")
    data = memoryview(buf)[offset:]
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        _bad(path, f"{where}: SHA-256 mismatch, the tensor data is corrupted")
    return np.frombuffer(buf, dtype=header_dtype, count=count, offset=offset).reshape(shape)
