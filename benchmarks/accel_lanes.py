"""Cycles per image of the accelerator's Verilog (Verilator) against the analytic model and the
lower bound of spec §10, for several lane counts on the shipped default model.

    python benchmarks/accel_lanes.py [--images 20] [--lanes 1 2 4 8 16 32] [--json]

Each lane count is one Verilator build (cached under $SPIKEFORGE_CACHE or
~/.cache/spikeforge/accel_sim; a cold build takes minutes on a small machine). Every image is
also checked against the golden model: a mismatch is reported in the last column and makes the
exit status 1.
"""

import argparse
import json
import sys
import time

import numpy as np

from spikeforge.cli import default_model_path
from spikeforge.data import load_digits_split
from spikeforge.modelfile import load_model
from spikeforge.sim.accel_runner import simulate_verilog


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--lanes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    ap.add_argument("--simulator", default="verilator")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    model = load_model(default_model_path())
    images = load_digits_split("test")[0][:args.images]
    rows = []
    for P in args.lanes:
        t0 = time.monotonic()
        r = simulate_verilog(model, images, lanes=P, simulator=args.simulator, progress=False)
        measured, predicted = r["cycles"].mean(), r["predicted_cycles"].mean()
        bound = r["lower_bound_cycles"].mean()
        rows.append({
            "lanes": P, "images": len(images),
            "measured_cycles": float(measured), "predicted_cycles": float(predicted),
            "measured_minus_predicted": float(np.mean(r["cycles"] - r["predicted_cycles"])),
            "lower_bound_cycles": float(bound), "ratio_to_bound": float(measured / bound),
            "mismatched_images": len({m["image"] for m in r["mismatches"]}),
            "build_seconds": round(r["build_seconds"], 1), "sim_seconds": round(r["sim_seconds"], 1),
            "wall_seconds": round(time.monotonic() - t0, 1),
        })
        print(f"lanes {P}: done in {rows[-1]['wall_seconds']} s", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"default model, {len(images)} digits test images, {args.simulator}")
        print(f"{'lanes':>5} {'measured':>10} {'predicted':>10} {'meas-pred':>9} {'bound':>10} "
              f"{'ratio':>6} {'mismatch':>8} {'build s':>8} {'sim s':>6}")
        for x in rows:
            print(f"{x['lanes']:>5} {x['measured_cycles']:>10.1f} {x['predicted_cycles']:>10.1f} "
                  f"{x['measured_minus_predicted']:>9.1f} {x['lower_bound_cycles']:>10.1f} "
                  f"{x['ratio_to_bound']:>6.3f} {x['mismatched_images']:>8} {x['build_seconds']:>8} "
                  f"{x['sim_seconds']:>6}")
    return 1 if any(x["mismatched_images"] for x in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
