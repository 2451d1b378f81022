"""``spikeforge sim``: run the accelerator's generated Verilog on test images of the model's dataset.

Wired into :mod:`spikeforge.cli` by the lead with::

    p = sub.add_parser("sim", help=...)
    add_sim_arguments(p)
    p.set_defaults(func=run_sim)

Exit status: 0 when every image matched the golden model (logits, class, inner-layer spikes),
1 when some did not; user errors raise ``ValueError`` (a bad option value, or a
:class:`~spikeforge.hdl.accel.program.MappingError` for a model the accelerator cannot map,
raised before any Verilog is written), which the CLI prints as one line with status 2.
"""

import json
import sys

import numpy as np

__all__ = ["add_sim_arguments", "run_sim", "summarize", "add_verify_arguments", "run_verify"]


def add_sim_arguments(parser):
    from ..options import COUNT, MODEL_HELP, SEED, add_dataset_arguments, add_lanes_argument

    parser.add_argument("model", nargs="?", help=MODEL_HELP)
    parser.add_argument("--images", "-n", type=COUNT, default=20,
                        help="number of test images of the model's dataset (default 20; digits' split has 360)")
    add_dataset_arguments(parser)
    parser.add_argument("--seed", type=SEED,
                        help=f"pick the images at random with this seed ({SEED.allowed()}; default: the first N)")
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    add_lanes_argument(parser)
    parser.add_argument("--vcd", metavar="PATH",
                        help="write the waveform of the first --vcd-images images (Icarus: FST, suffix .fst); "
                             "the expected size is printed first")
    parser.add_argument("--vcd-images", type=COUNT, default=None, metavar="N",
                        help="how many images the waveform holds (default 1; with fewer than --images, the "
                             "first N run again in a traced build of their own)")
    parser.add_argument("--build-dir", metavar="DIR",
                        help="build cache folder (default: $SPIKEFORGE_CACHE or ~/.cache/spikeforge)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _stats(a):
    a = np.asarray(a, np.float64)
    return {"mean": float(a.mean()), "min": int(a.min()), "max": int(a.max())}


def summarize(result, labels=None):
    """The JSON report of ``spikeforge sim`` from a :func:`simulate_verilog` result."""
    B = result["images"]
    failed = sorted({m["image"] for m in result["mismatches"]})
    cycles, predicted, bound = result["cycles"], result["predicted_cycles"], result["lower_bound_cycles"]
    report = {
        "simulator": result["simulator"],
        "lanes": result["lanes"],
        "images": B,
        "mismatches": len(failed),
        "mismatched_images": failed,
        "mismatch_details": result["mismatches"][:20],
        "logits_equal_golden": bool(np.array_equal(result["logits"], result["golden_logits"])),
        "classes_equal_golden": bool(np.array_equal(result["classes"], result["golden_classes"])),
        "inner_layers_compared": result["inner_layers_compared"],
        "inner_spike_mismatches": int(np.sum(result["spike_mismatches"])),
        "cycles_per_image": _stats(cycles),
        "predicted_cycles_per_image": _stats(predicted),
        "cycles_minus_predicted": _stats(cycles - predicted),
        "lower_bound_cycles": float(np.mean(bound)),
        "ratio_to_bound": float(np.mean(cycles) / np.mean(bound)),
        "events_per_image": float(np.mean(result["events"])),
        "events_equal_predicted": bool(np.array_equal(result["events"], result["predicted_events"])),
        "verilog": result["verilog"],
        "build_seconds": round(result["build_seconds"], 2),
        "sim_seconds": round(result["sim_seconds"], 2),
        "waves": result["waves"],
        "waves_images": result.get("waves_images", 0),
    }
    if labels is not None:
        labels = np.asarray(labels)
        report["accuracy"] = float(np.mean(result["classes"] == labels))
        report["golden_accuracy"] = float(np.mean(result["golden_classes"] == labels))
    return report


def _table(r):
    c, p = r["cycles_per_image"], r["predicted_cycles_per_image"]
    ok = "all match" if r["mismatches"] == 0 else f"{r['mismatches']} MISMATCHED: {r['mismatched_images'][:10]}"
    rows = [
        ("simulator", f"{r['simulator']}, {r['lanes']} lanes"),
        ("images", f"{r['images']} ({ok})"),
        ("accuracy", f"{100 * r['accuracy']:.2f}% (golden {100 * r['golden_accuracy']:.2f}%)"),
        ("logits / classes", f"{'equal' if r['logits_equal_golden'] else 'DIFFER'} / "
                             f"{'equal' if r['classes_equal_golden'] else 'DIFFER'} to golden"),
        ("inner layers", f"{len(r['inner_layers_compared'])} spike tensors, "
                         f"{r['inner_spike_mismatches']} elements differ "
                         f"({', '.join(r['inner_layers_compared'])})"),
        ("cycles/image", f"mean {c['mean']:.0f}, min {c['min']}, max {c['max']}"),
        ("predicted", f"mean {p['mean']:.0f}, min {p['min']}, max {p['max']} (analytic model)"),
        ("lower bound", f"{r['lower_bound_cycles']:.0f} (spec §10), ratio {r['ratio_to_bound']:.3f}"),
        ("events/image", f"{r['events_per_image']:.0f}"
                         f"{'' if r['events_equal_predicted'] else ' (DIFFER from the analytic model)'}"),
        ("time", f"build {r['build_seconds']:.1f} s, simulation {r['sim_seconds']:.1f} s"),
    ]
    if r["waves"]:
        n = r.get("waves_images", 0)
        rows.append(("waves", f"{r['waves']} (the first {n} image{'s' if n != 1 else ''})"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def run_sim(args):
    from ..options import CLIError, error_line
    from ..options import load_model_arg as _load
    from ..hdl.accel.program import compile_model
    from .accel_runner import simulate_verilog
    from .runners import SimulationFailed, SimulatorNotFound

    from ..options import check_count, check_output_dir, check_output_file, model_dataset_images, resolve_lanes

    lanes = resolve_lanes(args.lanes)
    if args.vcd_images is not None and args.vcd is None:
        raise CLIError(f"--vcd-images {args.vcd_images} without --vcd; give --vcd PATH to write a waveform")
    vcd_images = 1 if args.vcd_images is None else args.vcd_images
    check_output_file(args.vcd, "--vcd")
    if args.build_dir is not None:
        check_output_dir(args.build_dir, "--build-dir")
    else:
        from .accel_runner import default_build_root

        check_output_dir(default_build_root(), "the simulator cache ($SPIKEFORGE_CACHE)")
    path, model = _load(args.model)
    ds = model_dataset_images(model, args, split="test")
    images, labels = ds.images, ds.labels
    check_count("--images", args.images, len(images), f"the {ds.name} test split")
    compile_model(model, lanes)  # MappingError (a ValueError) before anything else
    if args.seed is not None:
        pick = np.sort(np.random.default_rng(args.seed).choice(len(images), args.images, replace=False))
    else:
        pick = np.arange(args.images)
    try:
        result = simulate_verilog(model, images[pick], lanes=lanes, simulator=args.simulator,
                                  build_dir=args.build_dir, vcd=args.vcd, vcd_images=vcd_images,
                                  progress=not args.quiet)
    except SimulatorNotFound as e:
        raise CLIError(str(e)) from None
    except SimulationFailed as e:
        print(error_line(f"the Verilog simulation failed: {e}"), file=sys.stderr)
        return 1
    report = {"model": path, "dataset": ds.name, **summarize(result, labels[pick]), "image_indices": pick.tolist()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_table(report))
    return 0 if report["mismatches"] == 0 else 1


# --- verify --random-models ------------------------------------------------------------------

def add_verify_arguments(parser):
    from ..options import BUILD_TIMEOUT, COUNT, SEED, add_cluster_arguments

    parser.add_argument("--random-models", type=COUNT, required=True, metavar="N",
                        help="how many random models (the differential test's kind: shapes, bit widths, "
                             "attention variants, time steps, depth and lanes drawn from each model's seed)")
    parser.add_argument("--images", type=COUNT, default=5, metavar="M",
                        help="random images per model (default 5)")
    parser.add_argument("--seed", type=SEED, default=0, metavar="S",
                        help="seed of the first model; the models are S, S+1, ..., S+N-1 (default 0)")
    add_cluster_arguments(parser, "simulations")
    parser.add_argument("--timeout", type=BUILD_TIMEOUT, default=None, metavar="SECONDS",
                        help="seconds each model's simulator build and each run may take (default: 600 plus "
                             "2 s per image)")
    parser.add_argument("-o", "--output", metavar="DIR", help="write the summary as DIR/verify.json")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    return parser


def run_verify(args):
    from ..options import SEED, CLIError, check_output_dir, cluster_options
    from .cluster import ClusterError, describe, open_client
    from .runners import simulator_missing_reason
    from .verify_campaign import run_campaign

    scheduler, workers = cluster_options(args)
    last = args.seed + args.random_models - 1
    if SEED.problem(last):
        raise CLIError(f"--seed {args.seed} with --random-models {args.random_models}: the last model's seed "
                       f"{last} is out of range; allowed: seeds {SEED.allowed()}")
    check_output_dir(args.output)
    if scheduler is None:
        why = simulator_missing_reason("verilator")
        if why:
            raise CLIError(f"verify runs the accelerator in Verilator: {why}")

    def progress(line):
        print(line, file=sys.stderr, flush=True)

    seeds = range(args.seed, last + 1)
    try:
        with open_client(scheduler, workers=workers) as client:
            progress(f"verify {args.random_models} random models (seeds {args.seed}..{last}), {args.images} "
                     f"images each, golden model against Verilator ({describe(client)})")
            summary = run_campaign(seeds, args.images, client, out_dir=args.output, timeout=args.timeout,
                                   progress=progress)
    except ClusterError as e:
        raise CLIError(str(e)) from None
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(summary["counts"].items()))
        print(f"{summary['models']} random models x {summary['images']} images: {counts}; "
              f"{len(summary['mismatched_seeds'])} with mismatches ({summary['seconds']:.0f} s)")
        for cmd in summary["reproduce"]:
            print(f"reproduce: {cmd}")
        if args.output:
            print(f"summary: {args.output}/verify.json")
    return 0 if summary["counts"].get("ok", 0) == summary["models"] else 1
