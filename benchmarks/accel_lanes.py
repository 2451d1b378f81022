"""Cycles per image of the accelerator's Verilog (Verilator) against the analytic model and the
lower bound of spec §10, for several lane counts on the shipped default model.

    python benchmarks/accel_lanes.py [--images 20] [--lanes 1 2 4 8 16 32] [--json]
                                     [--analytic] [--plot DIR] [--clock MHZ]

Each lane count is one Verilator build (cached under $SPIKEFORGE_CACHE or
~/.cache/spikeforge/accel_sim; a cold build takes minutes on a small machine). Every image is
also checked against the golden model: a mismatch is reported in the last column and makes the
exit status 1. ``--analytic`` skips the Verilog (the analytic model and the bound only, in
seconds). ``--plot DIR`` also draws ``DIR/lanes.png``: cycles/image and images/s (at
``--clock`` MHz, default 100) against lanes; it needs matplotlib (``pip install "spikeforge[plot]"``).
"""

import argparse
import json
import sys
import time

import numpy as np

from spikeforge.cli import default_model_path
from spikeforge.data import load_digits_split
from spikeforge.modelfile import load_model


def _simulated_row(model, images, P, simulator):
    from spikeforge.sim.accel_runner import simulate_verilog

    r = simulate_verilog(model, images, lanes=P, simulator=simulator, progress=False)
    measured, predicted = r["cycles"].mean(), r["predicted_cycles"].mean()
    bound = r["lower_bound_cycles"].mean()
    return {
        "lanes": P, "images": len(images),
        "measured_cycles": float(measured), "predicted_cycles": float(predicted),
        "measured_minus_predicted": float(np.mean(r["cycles"] - r["predicted_cycles"])),
        "lower_bound_cycles": float(bound), "ratio_to_bound": float(measured / bound),
        "mismatched_images": len({m["image"] for m in r["mismatches"]}),
        "build_seconds": round(r["build_seconds"], 1), "sim_seconds": round(r["sim_seconds"], 1),
    }


def _analytic_row(model, images, P, golden):
    from spikeforge.hdl.accel.execute import execute_program
    from spikeforge.hdl.accel.program import compile_model

    program = compile_model(model, P)  # the program simulate_verilog runs
    predicted = float(np.mean([execute_program(program, im).total_cycles for im in images]))
    bound = float(np.mean(golden.lower_bound_cycles(P)))
    return {
        "lanes": P, "images": len(images),
        "measured_cycles": None, "predicted_cycles": predicted, "measured_minus_predicted": None,
        "lower_bound_cycles": bound, "ratio_to_bound": predicted / bound,
        "mismatched_images": None, "build_seconds": None, "sim_seconds": None,
    }


def _fmt(v, width, decimals=None):
    """``v`` right-aligned in ``width`` columns; "-" when there is no value (--analytic)."""
    text = "-" if v is None else f"{v:.{decimals}f}" if decimals is not None else str(v)
    return f"{text:>{width}}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--simulator", default="verilator")
    ap.add_argument("--analytic", action="store_true",
                    help="no Verilog simulation: the analytic model's cycles and the bound only")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--plot", metavar="DIR", help="also write DIR/lanes.png (needs matplotlib)")
    ap.add_argument("--clock", type=float, default=100.0, metavar="MHZ",
                    help="clock for the images/s of --plot (default 100 MHz)")
    args = ap.parse_args(argv)
    if args.images < 1:
        ap.error(f"--images must be at least 1, not {args.images}")
    if not args.clock > 0:
        ap.error(f"--clock must be a positive number of MHz, not {args.clock:g}")
    if args.plot is not None:
        from spikeforge.plots import PlotError, check_plot_dir

        try:
            check_plot_dir(args.plot)   # before minutes of simulation
        except PlotError as e:
            ap.error(str(e))
    model = load_model(default_model_path())
    images = load_digits_split("test")[0][:args.images]
    golden = None
    if args.analytic:
        from spikeforge.sim.model import run_model

        golden = run_model(model, images)
    rows = []
    for P in args.lanes:
        t0 = time.monotonic()
        rows.append(_analytic_row(model, images, P, golden) if args.analytic
                    else _simulated_row(model, images, P, args.simulator))
        rows[-1]["wall_seconds"] = round(time.monotonic() - t0, 1)
        print(f"lanes {P}: done in {rows[-1]['wall_seconds']} s", file=sys.stderr)
    how = "analytic model" if args.analytic else args.simulator
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"default model, {len(images)} digits test images, {how}")
        print(f"{'lanes':>5} {'measured':>10} {'predicted':>10} {'meas-pred':>9} {'bound':>10} "
              f"{'ratio':>6} {'mismatch':>8} {'build s':>8} {'sim s':>6}")
        for x in rows:
            print(f"{x['lanes']:>5} {_fmt(x['measured_cycles'], 10, 1)} {x['predicted_cycles']:>10.1f} "
                  f"{_fmt(x['measured_minus_predicted'], 9, 1)} {x['lower_bound_cycles']:>10.1f} "
                  f"{x['ratio_to_bound']:>6.3f} {_fmt(x['mismatched_images'], 8)} "
                  f"{_fmt(x['build_seconds'], 8)} {_fmt(x['sim_seconds'], 6)}")
    if args.plot is not None:
        from spikeforge.plots import plot_lanes

        paths = plot_lanes(rows, args.plot, args.clock,
                           title=f"Shipped default model, {len(images)} digits test images ({how})")
        print(f"wrote {', '.join(map(str, paths))}", file=sys.stderr)
    return 1 if any(x["mismatched_images"] for x in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
