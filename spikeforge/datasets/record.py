"""The dataset a model file records, and the check that a dataset fits a model's input.

A model trained, imported or exported by spikeforge records in its metadata, under
:data:`RECORD_KEY` (``"input"``), the dataset and the input quantization it was made for::

    "input": {"dataset": "mnist-5k", "shape": [28, 28, 1], "max_value": 15, "split": "test",
              "quantization": "...", "source": "...", "licence": "...",
              "time_steps": 10, "downsample": 1, "binning": "..."}     # the last three: event data only

``shape`` (H, W, C) and ``max_value`` must equal the model's input node; ``split`` is the split its
accuracy is reported on (the default split of ``eval``). Models made before the record existed
(the shipped ``default.sfm``) carry none: a model whose input node is the digits' (8x8x1, 0..16)
is then taken as a digits model (:func:`model_dataset`).

Metadata is the user's file, so the record is checked when it is read: a malformed one is a
one-line :class:`DatasetError` naming the field, not a crash.
"""

from . import DATASETS, MAX_VALUE_LIMIT, dataset_spec
from ._files import DatasetError

__all__ = ["RECORD_KEY", "input_record", "model_input", "model_frames", "model_dataset", "check_dataset",
           "shape_text", "EVENT_DATASETS"]

RECORD_KEY = "input"
#: the digits' input (height, width, channels) and max_value: a model without a record and with
#: this input is a digits model (the shipped default model predates the record)
DIGITS_INPUT = ((8, 8, 1), 16)


def shape_text(shape):
    """``(28, 28, 1)`` as ``28x28x1`` (H x W x C)."""
    return "x".join(str(int(n)) for n in shape)


def input_record(ds, split="test"):
    """The record of :class:`~spikeforge.datasets.Dataset` ``ds`` for a model's metadata;
    ``split``: the split the model's accuracy is reported on."""
    rec = {"dataset": ds.name, "shape": [int(n) for n in ds.shape], "max_value": int(ds.max_value),
           "split": split, "quantization": ds.quantization, "source": ds.source, "licence": ds.licence}
    if ds.time_steps is not None:
        rec.update(time_steps=int(ds.time_steps), downsample=int(ds.params["downsample"]),
                   binning=ds.quantization)
    return rec


def model_input(model):
    """``((H, W, C), max_value)`` of ``model``'s input node."""
    a = model.nodes[0].attrs
    return (int(a["height"]), int(a["width"]), int(a["channels"])), int(a["max_value"])


def model_frames(model):
    """Whether ``model``'s input takes frames (spec §4 ``encoding: "frames"``), not one image."""
    return model.nodes[0].attrs.get("encoding", "direct") == "frames"


#: the registered event datasets (frames inputs), in registry order
EVENT_DATASETS = tuple(n for n, s in DATASETS.items() if s.kind == "events")


def _int(field, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DatasetError(f"the model's metadata {RECORD_KEY}.{field} is {value!r}; allowed: an integer {lo}..{hi}")
    return value


def model_dataset(model):
    """The dataset record of ``model`` (a dict as :func:`input_record` writes it), checked
    against its input node; for a model without a record, the digits' when its input is the
    digits' (``"recorded": False`` then), else None. :class:`DatasetError` for a malformed one."""

    shape, max_value = model_input(model)
    rec = model.metadata.get(RECORD_KEY) if isinstance(model.metadata, dict) else None
    if rec is None:
        if (shape, max_value) == DIGITS_INPUT:
            return {"dataset": "digits", "shape": list(shape), "max_value": max_value, "split": "test",
                    "recorded": False}
        return None
    if not isinstance(rec, dict):
        raise DatasetError(f"the model's metadata {RECORD_KEY} is a {type(rec).__name__}; expected an object "
                           "naming its dataset (dataset, shape, max_value, split)")
    name = rec.get("dataset")
    if not isinstance(name, str) or name not in DATASETS:
        raise DatasetError(f"the model's metadata {RECORD_KEY}.dataset is {name!r}; allowed: {', '.join(DATASETS)}")
    got = rec.get("shape")
    if not isinstance(got, list) or len(got) != 3:
        raise DatasetError(f"the model's metadata {RECORD_KEY}.shape is {got!r}; expected [height, width, channels]")
    got = tuple(_int("shape", v, 1, 4096) for v in got)
    mv = _int("max_value", rec.get("max_value"), 1, 65535)
    if (got, mv) != (shape, max_value):
        raise DatasetError(f"the model's metadata records {name} input {shape_text(got)} in 0..{mv}, but its input "
                           f"node takes {shape_text(shape)} in 0..{max_value}; the file is inconsistent")
    split = rec.get("split", "test")
    if split not in ("train", "test"):
        raise DatasetError(f"the model's metadata {RECORD_KEY}.split is {split!r}; allowed: train, test")
    out = {"dataset": name, "shape": list(got), "max_value": mv, "split": split, "recorded": True}
    if dataset_spec(name).kind == "events":
        out["time_steps"] = _int("time_steps", rec.get("time_steps"), 1, 1024)
        out["downsample"] = _int("downsample", rec.get("downsample"), 1, 1024)
    return out


def check_dataset(model, name, downsample=None):
    """``name`` (a registered dataset) can feed ``model``: its images have the model's input
    shape, its stored values have at least the model's ``max_value + 1`` levels (they are
    requantized to ``0..max_value``, docs/datasets.md) and it holds still images for a model of
    direct encoding, event frames for a model of frames encoding (spec §4). One-line
    :class:`DatasetError` naming both otherwise."""

    spec = dataset_spec(name)
    shape, max_value = model_input(model)
    got = spec.shape(downsample)
    if got != shape:
        what = "event frames of" if spec.kind == "events" else "images of"
        values = "" if spec.stored_max is None else f" in 0..{spec.stored_max}"
        raise DatasetError(f"dataset {name} has {what} {shape_text(got)}{values} (H x W x C), but the model's input is "
                           f"{shape_text(shape)} in 0..{max_value}; choose a dataset of the model's shape "
                           "(--dataset)")
    stored = MAX_VALUE_LIMIT if spec.stored_max is None else spec.stored_max
    if max_value > stored:
        raise DatasetError(f"dataset {name} has {shape_text(got)} images in 0..{stored}, but the model's input is "
                           f"{shape_text(shape)} in 0..{max_value}: its values would be scaled up, with "
                           f"{max_value - stored} of the model's levels never used; choose a dataset of at least "
                           f"{max_value + 1} levels")
    frames = model_frames(model)
    if spec.kind == "events" and not frames:
        raise DatasetError(f"dataset {name} gives event frames (T x {shape_text(got)}), but the model's input "
                           f"{shape_text(shape)} is one still image presented at every time step (direct encoding, "
                           "spec §4); event data needs a model with frames input encoding")
    if spec.kind != "events" and frames:
        raise DatasetError(f"dataset {name} gives still images ({shape_text(got)}), but the model's input is "
                           f"{model.time_steps} frames of {shape_text(shape)} (frames encoding, spec §4); choose an "
                           f"event dataset ({', '.join(EVENT_DATASETS)})")
    return spec
