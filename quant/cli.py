"""Command-line pieces for ``spikeforge train`` (wired into :mod:`spikeforge.cli` by the lead).

Defaults reproduce the shipped ``spikeforge/models/default.sfm``: the default
:class:`~spikeforge.quant.config.ModelConfig`, ``--seed 2``, ``--epochs 60``.
"""

import sys

from .config import ATTENTIONS, WEIGHT_BITS, ModelConfig

__all__ = ["add_train_arguments", "run_train", "config_from_args"]


def add_train_arguments(parser):
    """Add the ``train`` options to an :class:`argparse.ArgumentParser`."""
    from .train import DEFAULT_EPOCHS, DEFAULT_SEED

    parser.add_argument("--config", metavar="FILE", help="model configuration (JSON); options "
                        "below override its keys")
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS,
                        help=f"training epochs (default {DEFAULT_EPOCHS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"seed (default {DEFAULT_SEED})")
    parser.add_argument("--bits", type=int, choices=WEIGHT_BITS, help="weight bits")
    parser.add_argument("--time-steps", type=int, help="time steps T")
    parser.add_argument("--levels", type=int, help="spike levels D (1: binary LIF)")
    parser.add_argument("--attention", choices=ATTENTIONS, help="attention variant")
    parser.add_argument("--channels", type=int, help="embedding width")
    parser.add_argument("--blocks", type=int, help="transformer blocks")
    parser.add_argument("--heads", type=int, help="attention heads")
    parser.add_argument("-o", "--output", metavar="MODEL", required=True,
                        help="model file to write (.sfm)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def config_from_args(args):
    """The :class:`ModelConfig` of parsed ``train`` arguments (raises ValueError)."""
    base = ModelConfig.from_json(args.config) if args.config else ModelConfig()
    changes = {key: value for key, value in (
        ("weight_bits", args.bits), ("time_steps", args.time_steps), ("levels", args.levels),
        ("attention", args.attention), ("channels", args.channels), ("blocks", args.blocks),
        ("heads", args.heads)) if value is not None}
    return base.replace(**changes)


def run_train(args):
    """Train, export, write ``args.output`` atomically and print the accuracies. Returns 0."""
    from ..modelfile import save_model
    from .train import train

    try:
        cfg = config_from_args(args)
    except (OSError, ValueError) as e:
        print(f"spikeforge train: error: {e}", file=sys.stderr)
        return 2
    result = train(cfg, epochs=args.epochs, seed=args.seed, progress=not args.quiet)
    save_model(result.model, args.output)
    print(f"float fake-quant accuracy (test split): {result.float_accuracy:.2f}%")
    print(f"golden integer accuracy (test split):   {result.golden_accuracy:.2f}%")
    print(f"wrote {args.output}")
    return 0
