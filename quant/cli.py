"""Command-line pieces for ``spikeforge train`` (wired into :mod:`spikeforge.cli`).

One set of names: every key ``KEY`` of the training configuration (``configs/train.schema.json``,
docs/training.md) is the option ``--KEY`` with ``-`` for ``_`` (``weight_bits`` is
``--weight-bits``; ``--bits`` is kept as its alias), with the schema's range; options override
the keys of ``--config FILE``; ``--print-config`` writes the effective configuration as JSON
(a file ``--config`` reads back) and trains nothing.

This module imports no torch: ``spikeforge --help`` and ``train --print-config`` work without
it; training itself says in one line how to install the torch extra.

Defaults reproduce the shipped ``spikeforge/models/default.sfm``: the default
:class:`~spikeforge.quant.config.ModelConfig`, ``seed 2``, ``epochs 60``.
"""

import argparse
import json
import sys

from ..options import Number
from .config import ALIASES as CONFIG_ALIASES
from .config import TRAINING_DEFAULTS, TRAINING_KEYS, ModelConfig, allowed_text, config_schema, \
    dataset_keys, effective_config, read_config_file

__all__ = ["add_train_arguments", "run_train", "config_from_args", "training_from_args", "option_name"]

#: older spellings kept as aliases of a key's option
ALIASES = {key: ["--" + n.replace("_", "-") for n in names] for key, names in CONFIG_ALIASES.items()}


def option_name(key):
    """The ``train`` option of configuration key ``key``: ``weight_bits`` -> ``--weight-bits``."""
    return "--" + key.replace("_", "-")


def _option_type(prop):
    types = prop["type"] if isinstance(prop["type"], list) else [prop["type"]]
    if "enum" in prop and "string" in types:
        return dict(choices=prop["enum"])
    if "boolean" in types:
        return dict(action=argparse.BooleanOptionalAction)
    if "integer" in types:
        number = Number(int, choices=tuple(prop["enum"])) if "enum" in prop else \
            Number(int, low=prop["minimum"], high=prop["maximum"])
    else:
        number = Number(float, positive=True, high=prop["maximum"])
    if "null" in types:
        def nullable(text):
            return None if text in ("auto", "null") else number(text)
        nullable.__name__ = number.kind.__name__
        return dict(type=nullable)
    return dict(type=number)


def add_train_arguments(parser):
    """Add the ``train`` options to an :class:`argparse.ArgumentParser` (one per key of the
    training configuration, plus ``--config``, ``--print-config``, ``-o``, ``--quiet``)."""
    parser.add_argument("--config", metavar="FILE", help="training configuration (JSON, docs/training.md); "
                        "the options below override its keys")
    parser.add_argument("--print-config", action="store_true",
                        help="write the effective configuration as JSON to stdout and train nothing")
    parser.add_argument("-o", "--output", metavar="MODEL", help="model file to write (.sfm); required to train")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--data-root", metavar="DIR",
                        help="folder holding the dataset files (default $SPIKEFORGE_DATA_ROOT, else "
                             "~/.cache/spikeforge/datasets; digits and mnist-5k need none; docs/datasets.md)")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing dataset files from their official URLs (MD5-checked)")
    parser.add_argument("--threads", type=Number(int, low=1, high=2), default=2, metavar="N",
                        help="torch CPU threads, 1 or 2 (default 2); the result may depend on it: "
                             "the shipped mnist model was trained with 1")
    parser.add_argument("--limit", type=Number(int, low=1), metavar="N",
                        help="train on the first N images of the training split only (quick trials; "
                             "recorded in the model's metadata)")
    props = config_schema()["properties"]
    model_group = parser.add_argument_group("model (configuration keys)")
    train_group = parser.add_argument_group("training (configuration keys)")
    for key, prop in props.items():
        if key in ("image", "classes", "encoding"):
            continue  # the dataset's: a configuration may state them (equal to it), no option changes them
        default = prop["default"]
        shown = "auto" if default is None else json.dumps(default)
        group = train_group if key in TRAINING_KEYS else model_group
        kind = _option_type(prop)
        if "type" in kind:
            kind["metavar"] = key.upper()
        group.add_argument(option_name(key), *ALIASES.get(key, []), dest=key, default=None,
                           help=f"{prop['description']} (default {shown}; {allowed_text(key)})", **kind)
    return parser


def _file_keys(args):
    return read_config_file(args.config) if getattr(args, "config", None) else {}


def config_from_args(args):
    """The :class:`ModelConfig` of parsed ``train`` arguments (raises ValueError): image, input
    range and classes are those of the dataset (``--dataset``), unless the configuration states
    them (equal to the dataset's; ``max_value`` up to its stored range)."""
    d = _file_keys(args)
    base = {k: v for k, v in d.items() if k not in TRAINING_KEYS}
    fields = set(ModelConfig.__dataclass_fields__)
    changes = {k: getattr(args, k) for k in fields if getattr(args, k, None) is not None}
    merged = {**base, **changes}
    where = f"--config {args.config}" if getattr(args, "config", None) else "configuration"
    if getattr(args, "max_value", None) is not None:
        where = "--max-value" if "max_value" not in base else where
    dataset_where = "--dataset" if getattr(args, "dataset", None) is not None else None
    data = dataset_keys(merged, training_from_args(args)["dataset"], where, dataset_where)
    merged.update(data)
    return ModelConfig.from_dict({k: v for k, v in merged.items() if k in fields})


def training_from_args(args):
    """``{epochs, seed, batch_size, lr}``: defaults, then ``--config``, then the options."""
    d = _file_keys(args)
    out = dict(TRAINING_DEFAULTS)
    out.update({k: d[k] for k in TRAINING_KEYS if k in d})
    out.update({k: getattr(args, k) for k in TRAINING_KEYS if getattr(args, k, None) is not None})
    return out


def run_train(args):
    """Train, export, write ``args.output`` atomically and print the accuracies (or, with
    ``--print-config``, print the configuration). Returns the exit status."""
    from ..options import USER_ERROR, CLIError, check_output_file, error_line, require_torch

    try:
        cfg = config_from_args(args)
        training = training_from_args(args)
        if args.print_config:
            print(json.dumps(effective_config(cfg, training), indent=2))
            return 0
        if not args.output:
            raise CLIError("-o MODEL is required to train (the model file to write); "
                           "or --print-config to see the configuration")
        check_output_file(args.output, "-o")  # before minutes of training
        require_torch("spikeforge train")
    except (CLIError, ValueError) as e:
        print(error_line(e), file=sys.stderr)
        return USER_ERROR
    from ..modelfile import save_model
    from .train import train

    try:
        result = train(cfg, epochs=training["epochs"], seed=training["seed"], batch_size=training["batch_size"],
                       lr=training["lr"], progress=not args.quiet, threads=args.threads, dataset=training["dataset"],
                       data_root=args.data_root, download=args.download, limit=args.limit)
    except ValueError as e:  # the dataset's files missing or malformed (one line, naming the path)
        print(error_line(e), file=sys.stderr)
        return USER_ERROR
    save_model(result.model, args.output)
    name = training["dataset"]
    print(f"float fake-quant accuracy ({name} test split): {result.float_accuracy:.2f}%")
    print(f"golden integer accuracy ({name} test split):   {result.golden_accuracy:.2f}%")
    print(f"wrote {args.output}")
    return 0
