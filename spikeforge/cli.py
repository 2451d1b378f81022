"""The ``spikeforge`` command line: one entry point for every stage.

Every user error (bad model file, bad option value, missing tool) ends in one line on
stderr, ``spikeforge: error: ...``, and exit status 2; never a bare traceback.
"""

import argparse
import importlib.resources
import json
import os
import sys

import numpy as np

from .graph import ModelError
from .modelfile import atomic_write, load_model

__all__ = ["main", "default_model_path", "CLIError"]


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def default_model_path():
    """Path of the model shipped inside the package (``spikeforge/models/default.sfm``)."""
    return os.fspath(importlib.resources.files("spikeforge") / "models" / "default.sfm")


def _load(path):
    if path is None:
        path = default_model_path()
        if not os.path.exists(path):
            raise CLIError(f"no MODEL given and the shipped default model is missing ({path}); "
                           "pass a model file, or train one with `spikeforge train -o MODEL`")
    return path, load_model(path)


def _print_json(obj):
    print(json.dumps(obj, indent=2, sort_keys=False))


# --- info ----------------------------------------------------------------------------------

def _accel_analysis(model, lanes, target):
    from .hdl.accel.report import analyze, compile_for_target

    return analyze(compile_for_target(model, lanes, target), target=target)


def cmd_info(args):
    from .summary import summarize

    path, model = _load(args.model)
    summary = {"model": path, **summarize(model)}
    if args.lanes is not None or args.target is not None:
        summary["accelerator"] = _accel_analysis(model, args.lanes or 8, args.target)
    if args.json:
        _print_json(summary)
        return 0
    print(f"model       {path}")
    print(f"time steps  {summary['time_steps']}    input {summary['input_shape']}    "
          f"classes {summary['classes']}")
    print(f"weights     {summary['weights']}    memory {summary['memory_bits']} bits "
          f"({summary['memory_bits'] / 8192:.1f} KiB)")
    print()
    print(f"{'node':24} {'op':12} {'output shape':14} {'output':22} {'memory bits':>11}")
    for layer in summary["layers"]:
        bits = sum(t["memory_bits"] for t in layer["tensors"].values())
        widths = " ".join(f"{n}:{t['bits']}b" for n, t in layer["tensors"].items())
        print(f"{layer['name']:24} {layer['op']:12} {str(tuple(layer['output_shape'])):14} "
              f"{layer['output']:22} {bits:>11}  {widths}")
    acc = summary.get("accelerator")
    if acc:
        cyc = acc["cycles_per_image"]
        print()
        print(f"accelerator, {acc['lanes']} lanes (analytic model, {acc['images']} test images):")
        print(f"  cycles/image {cyc['mean']:.0f} (min {cyc['min']}, max {cyc['max']}), lower bound "
              f"{acc['lower_bound_cycles']:.0f}, ratio {acc['ratio_to_bound']:.3f}")
        for mem in acc["memories"]:
            blocks = f", {mem['bram_blocks']} block RAMs" if "bram_blocks" in mem else ""
            if mem["kind"] == "logic":
                blocks = ", logic"
            parts = f", {len(mem['parts'])} lane-group parts" if len(mem["parts"]) > 1 else ""
            print(f"  memory {mem['name']:13} {mem['depth']:6} x {mem['width']:4} bits x{mem['copies']}{parts}{blocks}")
        est = acc["logic_estimate"]
        print(f"  logic estimate: {est['lut']} LUTs, {est['ff']} FFs, {est['multipliers']} multipliers")
        if "device" in acc:
            dev = acc["device"]
            print(f"  {dev['name']}: {dev['bram_blocks']}/{dev['available']['bram']} block RAMs, "
                  + ("fits" if acc["fits"] else "does NOT fit: " + "; ".join(acc["problems"])))
    meta = summary["metadata"]
    if meta:
        print()
        for key in ("dataset", "split", "accuracy", "weight_bits", "generator", "seed"):
            if key in meta:
                print(f"{key:11} {meta[key]}")
    return 0


# --- eval ----------------------------------------------------------------------------------

def _evaluate(model, images, backend, quiet):
    from tqdm import tqdm

    if backend == "golden":
        from .sim.model import run_model

        with tqdm(total=len(images), desc="golden", unit="img", disable=quiet,
                  file=sys.stderr) as bar:
            return run_model(model, images, progress=lambda done: bar.update(done - bar.n))
    if backend == "torch":
        try:
            from .quant import integer
        except ImportError as e:
            raise CLIError(f"the torch backend needs PyTorch ({e}); install it with "
                           "`pip install spikeforge[torch]`") from None
        return integer.evaluate(model, images)
    raise CLIError(f"unknown backend {backend!r}; allowed: golden, torch")


def cmd_eval(args):
    from .data import load_digits_split
    from .sim.model import run_model

    path, model = _load(args.model)
    images, labels = load_digits_split(args.split)
    if args.limit is not None:
        if args.limit < 1:
            raise CLIError(f"--limit must be at least 1, not {args.limit}")
        images, labels = images[:args.limit], labels[:args.limit]
    quiet = args.json or args.quiet
    result = _evaluate(model, images, args.backend, quiet)
    logits = np.asarray(result.logits, dtype=np.int64)
    classes = np.argmax(logits, axis=1)
    correct = int((classes == labels).sum())
    # Work counts come from the golden model (they are defined by spike values, which the
    # backends agree on exactly); reuse the result when the backend is the golden model.
    counts = result if args.backend == "golden" else run_model(model, images)
    first_conv = next(n.name for n in model.nodes if n.op == "conv")
    report = {
        "model": path,
        "backend": args.backend,
        "split": args.split,
        "n": int(len(labels)),
        "correct": correct,
        "accuracy": correct / len(labels),
        "firing_rate": {k: float(np.mean(v)) for k, v in result.firing.items()},
        "synaptic_ops_per_image": float(np.mean(sum(counts.sops.values()))),
        "synaptic_additions_per_image": float(np.mean(sum(counts.syn_adds.values()))),
        "energy_estimate": {
            "model": "45 nm energy model of the spike-driven transformer papers "
                     "(E_MAC = 4.6 pJ for the first layer's dense MACs, E_AC = 0.9 pJ per "
                     "synaptic operation); an estimate of that model, not a measurement",
            "uJ_per_image": float(np.mean(counts.energy_pj(first_conv))) * 1e-6,
        },
    }
    if args.save_logits:
        import io

        buf = io.BytesIO()
        np.save(buf, logits, allow_pickle=False)
        atomic_write(args.save_logits, buf.getvalue())
        report["logits"] = os.fspath(args.save_logits)
    if args.json:
        _print_json(report)
    else:
        print(f"{args.backend}: accuracy {100 * report['accuracy']:.2f}% "
              f"({correct}/{report['n']}) on the digits {args.split} split")
        print(f"synaptic ops/image {report['synaptic_ops_per_image']:.0f}, energy estimate "
              f"{report['energy_estimate']['uJ_per_image']:.4f} uJ/image (45 nm model)")
        for k, v in report["firing_rate"].items():
            print(f"  firing {k:24} {100 * v:6.2f}%")
    return 0


# --- train / generate (provided by quant/ and hdl/) -------------------------------------------

def _add_train(sub):
    p = sub.add_parser("train", help="train a model on the digits and export it")
    try:
        from .quant.cli import add_train_arguments
    except ImportError:
        p.set_defaults(func=lambda args: _missing("training", "PyTorch (pip install spikeforge[torch])"))
        return
    add_train_arguments(p)

    def run(args):
        from .quant.cli import run_train

        return run_train(args)

    p.set_defaults(func=run)


def _missing(what, need):
    raise CLIError(f"{what} is not available in this installation: it needs {need}")


def _add_generate(sub):
    p = sub.add_parser("generate", help="write Verilog for a unit or an accelerator")
    gsub = p.add_subparsers(dest="generate_what", required=True)
    u = gsub.add_parser("unit", help="one hardware unit as standalone Verilog")
    u.add_argument("name", help="unit name (see `spikeforge generate unit list`)")
    u.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="unit parameter, repeatable (integers or names)")
    u.add_argument("-o", "--output", default=".", help="output directory")
    u.set_defaults(func=cmd_generate_unit)
    a = gsub.add_parser("accel", help="the complete accelerator for a model (the default)")
    _add_accel_args(a)


def _add_accel_args(p):
    p.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    p.add_argument("--lanes", type=int, default=8, help="parallel adder lanes P (power of two)")
    p.add_argument("--target", help="device to check the design against: " + ", ".join(_devices()))
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.set_defaults(func=cmd_generate_accel)


def _devices():
    from .boards.synth import DEVICES

    return list(DEVICES)


def cmd_generate_accel(args):
    from .hdl.accel.generate import generate_accelerator

    path, model = _load(args.model)
    if args.target is not None and args.target not in _devices():
        raise CLIError(f"unknown target {args.target!r}; supported: {', '.join(_devices())}")
    out = generate_accelerator(model, args.output, lanes=args.lanes, target=args.target)
    an = out["analysis"]
    print(f"wrote {out['verilog']}")
    print(f"      {out['program']}")
    print(f"      {out['report']}")
    print(f"{an['lanes']} lanes: {an['cycles_per_image']['mean']:.0f} cycles/image (analytic), "
          f"{an['ratio_to_bound']:.3f} x the lower bound")
    return 0


def _parse_params(pairs):
    params = {}
    for pair in pairs:
        if "=" not in pair:
            raise CLIError(f"--param {pair!r} must look like KEY=VALUE")
        key, value = pair.split("=", 1)
        try:
            params[key] = int(value, 0)
        except ValueError:
            params[key] = value
    return params


def cmd_generate_unit(args):
    try:
        from .hdl.generate import UNITS, generate_unit
    except ImportError as e:
        raise CLIError(f"hardware unit generation is not available ({e})") from None
    if args.name == "list":
        for name in UNITS:
            print(name)
        return 0
    path = generate_unit(args.name, _parse_params(args.param), args.output)
    print(path)
    return 0


# --- main ----------------------------------------------------------------------------------

def build_parser():
    parser = argparse.ArgumentParser(
        prog="spikeforge",
        description="Quantized spike-driven transformers to bit-exact FPGA accelerators.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="describe a model file (and its accelerator with --lanes/--target)")
    p.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    p.add_argument("--lanes", type=int, help="add the accelerator's analytic model for P lanes")
    p.add_argument("--target", help="check the accelerator against a device")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("eval", help="accuracy and work counts on the digits test split")
    p.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    p.add_argument("--backend", choices=("golden", "torch"), default="golden")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--save-logits", metavar="PATH", help="write the integer logits as .npy")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    _add_train(sub)
    _add_generate(sub)
    _add_delegated(sub, "sim", "run test images through the accelerator's Verilog (cocotb)",
                   ".sim.accel_cli", "add_sim_arguments", "run_sim")
    _add_delegated(sub, "build", "synthesize a bitstream for a board, with the resource report",
                   ".boards.cli", "add_build_arguments", "run_build")
    _add_delegated(sub, "flash", "program a board with a bitstream (openFPGALoader / iceprog)",
                   ".boards.cli", "add_flash_arguments", "run_flash")
    _add_delegated(sub, "run", "inference on a board over its UART host link",
                   ".boards.cli", "add_run_arguments", "run_run")
    return parser


def _add_delegated(sub, name, help_text, module, add_fn, run_fn):
    """A subcommand whose options and action live in a stage's own ``cli`` module."""
    import importlib

    p = sub.add_parser(name, help=help_text)
    mod = importlib.import_module(module, __package__)
    getattr(mod, add_fn)(p)
    p.set_defaults(func=lambda args: getattr(mod, run_fn)(args))


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `spikeforge generate [MODEL] ...` is the accelerator; `generate unit NAME` a single unit.
    if argv[:1] == ["generate"] and argv[1:2] not in (["unit"], ["accel"], ["-h"], ["--help"]):
        argv.insert(1, "accel")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ModelError) as e:
        print(f"spikeforge: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError) as e:
        print(f"spikeforge: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:   # SIGINT, or SIGTERM / SIGHUP where a command catches them
        signum = getattr(e, "signum", 2)
        print(f"spikeforge: {e or 'interrupted'}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
