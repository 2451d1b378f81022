"""The ``spikeforge`` command line: one entry point for every stage.

Every user error (bad model file, bad option value, unwritable output, missing tool or optional
package) ends in one line on stderr, ``spikeforge: error: ...``, and exit status 2; never a
bare traceback (:mod:`spikeforge.options`). Only ``train`` and ``eval --backend torch`` need
PyTorch, and they import it only when they run.
"""

import json
import os
import sys

import numpy as np

from .graph import ModelError
from .modelfile import atomic_write
from .options import (check_plot_option, lanes_text,
                       COUNT, USER_ERROR, CLIError, Parser, add_dataset_arguments, add_lanes_argument, analysis_images,
                       check_count, check_output_dir, check_output_file, error_line, model_dataset_images,
                       os_error_message, resolve_lanes)
from .options import MODEL_HELP, TORCH_INSTALL, default_model_path, require_torch
from .options import load_model_arg as _load

__all__ = ["main", "default_model_path", "CLIError", "require_torch", "TORCH_INSTALL"]

def _print_json(obj):
    print(json.dumps(obj, indent=2, sort_keys=False))


# --- info ----------------------------------------------------------------------------------

def _plots_written(paths):
    for path in paths:
        print(f"plot: {path}", file=sys.stderr)


def _accel_analysis(model, lanes, target, images, weights=None):
    """The analytic model on ``images``; with a ``target`` (board or device) the one fit check
    of info/generate/build (:func:`spikeforge.hdl.accel.report.fit`); ``weights``: force the
    weights' mapping (``bram`` or ``sdram``)."""
    from .hdl.accel.report import analyze, compile_for_target, fit

    if target is None:
        return analyze(compile_for_target(model, lanes, weights=weights), images=images)
    return fit(model, lanes, target, images=images, weights=weights)[1]


def _shape_text(shape):
    """``[4, 4, 32]`` as ``4x4x32`` (H x W x C)."""
    return "x".join(str(int(n)) for n in shape)


def _memory_place(mem):
    """Where a memory of the analytic model lives, in words: block RAMs, SPRAMs or logic."""
    if mem["kind"] == "spram":
        n = mem["copies"]
        return f"{n} SPRAM" + ("" if n == 1 else "s")
    if mem["kind"] == "logic" or mem.get("bram_blocks", 1) == 0:
        return "logic"
    if "bram_blocks" in mem:
        n = mem["bram_blocks"]
        return f"{n} block RAM" + ("" if n == 1 else "s")
    return "block RAM"


#: why the engine can need fewer cycles than spec §10's lower bound (shown when it does)
BOUND_NOTE = ("below the bound: spec §10 counts synaptic additions and neuron updates separately; "
              "the engine overlaps them (requantization and neuron in one pass)")


def _accel_lines(acc):
    """The accelerator part of ``info``'s text."""
    cyc = acc["cycles_per_image"]
    lines = [f"accelerator, {lanes_text(acc['lanes'])} (analytic model, {acc['images']} test images):",
             f"  cycles/image {cyc['mean']:.0f} (min {cyc['min']}, max {cyc['max']}), lower bound "
             f"{acc['lower_bound_cycles']:.0f} (spec §10), ratio {acc['ratio_to_bound']:.3f}"]
    if acc["ratio_to_bound"] < 1:
        lines.append(f"  {BOUND_NOTE}")
    for mem in acc["memories"]:
        copies = "" if mem["copies"] == 1 else f" x {mem['copies']}"
        parts = f", {len(mem['parts'])} lane-group parts" if len(mem["parts"]) > 1 else ""
        rom = ", read-only" if mem.get("rom") else ""
        lines.append(f"  memory {mem['name']:13} {mem['depth']:6} words x {mem['width']:4} bits{copies}"
                     f"{parts}{rom}: {_memory_place(mem)}")
    if acc.get("weights") == "sdram":
        sd, lo_hi = acc["sdram"], cyc.get("bounds")
        bw = sd["bandwidth"]
        lines.append(f"  weights in SDRAM: {sd['sdram_words']} words ({sd['sdram_bytes']} bytes) in {sd['segments']} "
                     f"segments, window of 2 x {sd['window_half_words']} weight words; at {sd['clock_mhz']:g} MHz "
                     f"{bw['sdram_words_per_cycle']} SDRAM words/cycle ({bw['weight_words_per_cycle']} weight "
                     f"words/cycle, refresh {100 * bw['refresh_overhead']:.2f} %); cycles/image within "
                     f"{lo_hi[0]}..{lo_hi[1]}")
        for name, sp in sd["per_pass"].items():
            lines.append(f"    pass {name:22} {sp['weight_words']:7} weight words: load >= "
                         f"{sp['load_cycles_bound']} cycles, compute {sp['compute_cycles']:.0f}, waits "
                         f"{sp['wait_cycles']:.0f}")
    est = acc["logic_estimate"]
    lines.append(f"  logic estimate: {est['lut']} LUTs, {est['ff']} FFs, {est['multipliers']} "
                 + ("multiplier" if est["multipliers"] == 1 else "multipliers"))
    if "device" in acc:
        dev = acc["device"]
        lines.append(f"  {dev['name']}: {dev['bram_blocks']}/{dev['available']['bram']} block RAMs, "
                     f"{dev['spram_blocks']}/{dev['available'].get('spram', 0)} SPRAMs, logic counted "
                     "with the host link of a board build: " + ("fits" if acc["fits"] else "does NOT fit"))
    return lines


def _value_text(value):
    """A metadata value as plain text: numbers, words, ``a, b, c`` for lists, never a repr."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value_text(v) for v in value) or "(empty)"
    if isinstance(value, dict):
        return "; ".join(f"{k} {_value_text(v)}" for k, v in value.items()) or "(empty)"
    return str(value)


def _metadata_lines(meta, width=100):
    """The model file's metadata as ``key  value`` lines; a table (``accuracy``, ``config``,
    ``split``) as its own ``key value`` pairs, wrapped and indented under its name."""
    import textwrap

    keyw = max(11, *(len(str(k)) + 1 for k in meta))
    lines = []
    for key, value in meta.items():
        if isinstance(value, dict) and value:
            pairs = [f"{k} {_value_text(v)}" for k, v in value.items()]
            body = textwrap.wrap("; ".join(pairs), width - keyw - 1, break_long_words=False,
                                 break_on_hyphens=False)
            lines.append(f"{str(key):{keyw}} {body[0]}")
            lines += [f"{'':{keyw}} {b}" for b in body[1:]]
        else:
            lines.append(f"{str(key):{keyw}} {_value_text(value)}")
    return lines


def cmd_info(args):
    from .summary import summarize

    plot_dir = check_plot_option(args.plot)
    path, model = _load(args.model)
    summary = {"model": path, **summarize(model)}
    if args.lanes is not None or args.target is not None or args.weights is not None or plot_dir is not None:
        _check_target(args.target)
        images = analysis_images(model, args)
        summary["accelerator"] = _accel_analysis(model, resolve_lanes(args.lanes, args.target), args.target,
                                                 images, weights=args.weights)
    if plot_dir is not None:
        from .plots import plot_info

        acc = summary["accelerator"]
        _plots_written(plot_info(model, acc["lanes"], args.target, plot_dir, images=images, analysis=acc))
    misfit = summary.get("accelerator", {}).get("fits") is False
    if args.json:
        _print_json(summary)
        return _misfit(summary["accelerator"], args.target) if misfit else 0
    print(f"model       {path}")
    frames = " frames (T x H x W x C)" if summary["input_encoding"] == "frames" else ""
    print(f"time steps  {summary['time_steps']}    input {_shape_text(summary['input_shape'])}{frames}    "
          f"classes {summary['classes']}")
    print(f"weights     {summary['weights']}    memory {summary['memory_bits']} bits "
          f"({summary['memory_bits'] / 8192:.1f} KiB)")
    print()
    print(f"{'node':24} {'op':12} {'output shape':14} {'output':22} {'memory bits':>11}")
    for layer in summary["layers"]:
        bits = sum(t["memory_bits"] for t in layer["tensors"].values())
        widths = " ".join(f"{n}:{t['bits']}b" for n, t in layer["tensors"].items())
        print(f"{layer['name']:24} {layer['op']:12} {_shape_text(layer['output_shape']):14} "
              f"{layer['output']:22} {bits:>11}  {widths}".rstrip())
    acc = summary.get("accelerator")
    if acc:
        print()
        for line in _accel_lines(acc):
            print(line)
    if summary["metadata"]:
        print()
        for line in _metadata_lines(summary["metadata"]):
            print(line)
    return _misfit(acc, args.target) if misfit else 0


def _check_target(target):
    if target is not None:
        from .hdl.accel.report import resolve_target

        try:
            resolve_target(target)
        except ValueError as e:
            raise CLIError(f"--target: {e}") from None


def _misfit(acc, target):
    """The misfit line and exit status of info and generate: those of `build` (2)."""
    print(error_line(f"the model does not fit {target} with {lanes_text(acc['lanes'])}: "
                     + "; ".join(acc["problems"]) + " (needed vs available); try "
                     + ("fewer lanes (--lanes)" if acc["lanes"] > 1 else "a smaller model") + " or a larger device"),
          file=sys.stderr)
    return USER_ERROR


# --- eval ----------------------------------------------------------------------------------

def _evaluate(model, images, backend, quiet):
    from tqdm import tqdm

    if backend == "golden":
        from .sim.model import run_model

        with tqdm(total=len(images), desc="golden", unit="img", disable=quiet,
                  file=sys.stderr) as bar:
            return run_model(model, images, progress=lambda done: bar.update(done - bar.n))
    if backend == "torch":
        require_torch("eval --backend torch")
        from .quant import integer

        return integer.evaluate(model, images)
    raise CLIError(f"unknown backend {backend!r}; allowed: golden, torch")


def cmd_eval(args):
    from .sim.model import run_model

    check_output_file(args.save_logits, "--save-logits")
    plot_dir = check_plot_option(args.plot)
    if args.backend == "torch":
        require_torch("eval --backend torch")
    path, model = _load(args.model)
    ds = model_dataset_images(model, args, split=args.split)
    images, labels = ds.images, ds.labels
    where = f"the {ds.name} {ds.split} split"
    if args.limit is not None:
        check_count("--limit", args.limit, len(images), where)
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
        "dataset": ds.name,
        "split": ds.split,
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
    if plot_dir is not None:
        from .plots import plot_eval

        _plots_written(plot_eval(model, images, labels, plot_dir, result=result))
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
              f"({correct}/{report['n']}) on {where}")
        print(f"synaptic ops/image {report['synaptic_ops_per_image']:.0f}, energy estimate "
              f"{report['energy_estimate']['uJ_per_image']:.4f} uJ/image (45 nm model)")
        for k, v in report["firing_rate"].items():
            print(f"  firing {k:24} {100 * v:6.2f}%")
    return 0


# --- train / generate (provided by quant/ and hdl/) -------------------------------------------

def _add_train(sub):
    from .quant.cli import add_train_arguments  # torch-free: the options only

    p = sub.add_parser("train", help="train a model on the digits and export it (needs the torch extra)")
    add_train_arguments(p)

    def run(args):
        from .quant.cli import run_train

        return run_train(args)

    p.set_defaults(func=run)


def _add_generate(sub):
    p = sub.add_parser("generate", help="write Verilog for a unit or an accelerator")
    gsub = p.add_subparsers(dest="generate_what", required=True)
    u = gsub.add_parser("unit", help="one hardware unit as standalone Verilog")
    u.add_argument("name", help="unit name, or `list` for every unit with its parameters, defaults and ranges")
    u.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                   help="unit parameter, repeatable (integers or names); every parameter has a default")
    u.add_argument("-o", "--output", default=".", help="output directory")
    u.set_defaults(func=cmd_generate_unit)
    a = gsub.add_parser("accel", help="the complete accelerator for a model (the default)")
    _add_accel_args(a)


def _add_accel_args(p):
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    add_lanes_argument(p)
    p.add_argument("--target", help=_TARGET_HELP)
    p.add_argument("--weights", choices=("bram", "sdram"), default=None, help=_WEIGHTS_HELP)
    p.add_argument("-o", "--output", required=True, help="output directory")
    add_dataset_arguments(p)
    p.set_defaults(func=cmd_generate_accel)


_WEIGHTS_HELP = ("where the weights live: block RAM, or streamed from the board's SDRAM (ecp5-85f / ulx3s-85f); "
                 "default: block RAM, SDRAM when they do not fit")
_TARGET_HELP = ("check the accelerator against a board (icebreaker, ulx3s-85f) or a device (ice40-up5k, "
                "ecp5-25f, ecp5-85f): the fit check of `spikeforge build`")


def cmd_generate_accel(args):
    from .hdl.accel.generate import generate_accelerator

    _check_target(args.target)
    check_output_dir(args.output, "-o")
    path, model = _load(args.model)
    out = generate_accelerator(model, args.output, images=analysis_images(model, args),
                               lanes=resolve_lanes(args.lanes, args.target), target=args.target,
                               weights=args.weights)
    an = out["analysis"]
    print(f"wrote {out['verilog']}")
    print(f"      {out['program']}")
    print(f"      {out['report']}")
    if "sdram" in out:
        print(f"      {out['sdram']} (the SDRAM's contents, {an['sdram']['sdram_words']} words)")
    print(f"{lanes_text(an['lanes'])}: {an['cycles_per_image']['mean']:.0f} cycles/image (analytic), "
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
    from .hdl.generate import describe_units, generate_unit

    if args.name == "list":
        for name, params in describe_units().items():
            print(name)
            for p in params:
                print(f"    {p['name']:14} default {p['default']!s:8} {p['allowed']}")
        return 0
    check_output_dir(args.output, "-o")
    path = generate_unit(args.name, _parse_params(args.param), args.output)
    print(path)
    return 0


# --- clean ---------------------------------------------------------------------------------

def cmd_clean(args):
    from .cache import SIM_FOLDERS, cache_root, clean, human_size

    root = cache_root()
    where = "$SPIKEFORGE_CACHE" if os.environ.get("SPIKEFORGE_CACHE") else "the default; $SPIKEFORGE_CACHE moves it"
    entries, freed, skipped = clean(root, dry_run=args.dry_run)
    others = sorted(p.name for p in root.iterdir() if p.name not in SIM_FOLDERS) if root.is_dir() else []
    kept = f"; left alone (not simulator builds): {', '.join(others)}" if others else ""
    if not entries:
        print(f"no simulator builds in {root} ({where}): nothing to delete{kept}")
        return 0
    print(f"simulator cache {root} ({where}):")
    total = sum(e["bytes"] for e in entries)
    width = max(len(e["kind"]) for e in entries)
    for e in entries:
        n = len(e["builds"])
        builds = (f"{n} build" + ("" if n == 1 else "s")) if e["folder"] else "file"
        print(f"  {e['kind']:{width}}  {human_size(e['bytes']):>9}  {builds}")
        for b in e["builds"]:
            print(f"  {'':{width}}  {human_size(b['bytes']):>9}    {b['path'].name}")
    print(f"  {'total':{width}}  {human_size(total):>9}")
    for path in skipped:
        print(f"kept {path}: a simulation is using it", file=sys.stderr)
    if args.dry_run:
        print(f"would delete {human_size(total - sum(_build_bytes(entries, p) for p in skipped))} "
              "(--dry-run: nothing deleted)")
    else:
        print(f"deleted {human_size(freed)}")
    if others:
        print(kept[2:])
    return 0


def _build_bytes(entries, path):
    return next((b["bytes"] for e in entries for b in e["builds"] if b["path"] == path), 0)


# --- main ----------------------------------------------------------------------------------

def build_parser():
    parser = Parser(
        prog="spikeforge",
        description="Quantized spike-driven transformers to bit-exact FPGA accelerators.")
    from . import __version__, nir_cli
    from .boards import cli as boards_cli
    from .sim import accel_cli

    parser.add_argument("--version", action="version", version=f"spikeforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="describe a model file (and its accelerator with --lanes/--target)")
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    add_lanes_argument(p, "add the accelerator's analytic model for P lanes")
    p.add_argument("--target", help=_TARGET_HELP + "; a misfit exits with status 2")
    p.add_argument("--weights", choices=("bram", "sdram"), default=None, help=_WEIGHTS_HELP)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="DIR", help="write pictures (PNG): memory and logic per node, cycles per "
                                                 "node against the lower bound (needs the plot extra)")
    add_dataset_arguments(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("eval", help="accuracy and work counts on the test split of the model's dataset")
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--backend", choices=("golden", "torch"), default="golden")
    p.add_argument("--split", choices=("test", "train"), default=None,
                   help="split of the dataset (default: the one the model records, else test)")
    add_dataset_arguments(p)
    p.add_argument("--limit", type=COUNT, help="only the first N images (at most the split's size)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--save-logits", metavar="PATH", help="write the integer logits as .npy")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--plot", metavar="DIR", help="write pictures (PNG): spike raster of one image, firing rate "
                                                 "per layer, confusion matrix (needs the plot extra)")
    p.set_defaults(func=cmd_eval)

    _add_train(sub)
    _add_generate(sub)
    _add_delegated(sub, "sim", "run test images through the accelerator's Verilog (cocotb)",
                   accel_cli, "add_sim_arguments", "run_sim")
    _add_delegated(sub, "build", "synthesize a bitstream for a board, with the resource report",
                   boards_cli, "add_build_arguments", "run_build")
    _add_delegated(sub, "flash", "program a board with a bitstream (openFPGALoader / iceprog)",
                   boards_cli, "add_flash_arguments", "run_flash")
    _add_delegated(sub, "run", "inference on a board over its UART host link (or a simulated board)",
                   boards_cli, "add_run_arguments", "run_run")
    _add_delegated(sub, "sweep", "build a grid of lanes x clocks x placement seeds as Dask tasks: one table, "
                   "one Pareto plot", boards_cli, "add_sweep_arguments", "run_sweep")
    _add_delegated(sub, "verify", "golden model against the accelerator's Verilator simulation on many random "
                   "models, as Dask tasks", accel_cli, "add_verify_arguments", "run_verify")
    p = sub.add_parser("clean", help="show and delete the simulator build cache (~/.cache/spikeforge or "
                                     "$SPIKEFORGE_CACHE)")
    p.add_argument("--dry-run", action="store_true", help="only list the cache folders and their sizes")
    p.set_defaults(func=cmd_clean)
    _add_delegated(sub, "import", "a NIR graph (snnTorch, Norse, ...) to a model file, by post-training quantization",
                   nir_cli, "add_import_arguments", "run_import")
    _add_delegated(sub, "export", "a model file to a NIR graph (the operators NIR has)",
                   nir_cli, "add_export_arguments", "run_export")
    return parser


def _add_delegated(sub, name, help_text, mod, add_fn, run_fn):
    """A subcommand whose options and action live in a stage's own ``cli`` module ``mod``."""
    p = sub.add_parser(name, help=help_text)
    getattr(mod, add_fn)(p)
    p.set_defaults(func=lambda args: getattr(mod, run_fn)(args))


def main(argv=None):
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # `spikeforge generate [MODEL] ...` is the accelerator; `generate unit NAME` a single unit.
    if argv[:1] == ["generate"] and argv[1:2] not in (["unit"], ["accel"], ["-h"], ["--help"]):
        argv.insert(1, "accel")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, or an option error (one line, status 2)
        return e.code
    try:
        return args.func(args)
    except (CLIError, ModelError, ValueError) as e:
        print(error_line(e), file=sys.stderr)
        return USER_ERROR
    except BrokenPipeError:
        # The reader of stdout went away (`spikeforge info | head`): stop quietly, as the
        # shell tools do; stdout goes to devnull so that the interpreter's final flush does
        # not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13   # SIGPIPE
    except OSError as e:
        print(error_line(os_error_message(e)), file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt as e:   # SIGINT, or SIGTERM / SIGHUP where a command catches them
        signum = getattr(e, "signum", 2)
        print(f"spikeforge: {e or 'interrupted'}", file=sys.stderr)
        return 128 + signum


if __name__ == "__main__":
    sys.exit(main())
