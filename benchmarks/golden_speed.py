"""Golden model throughput on one core: images per second for a reference-sized model.

Model: 16 tokens (8x8 input, patch 2), 64 channels, 2 transformer blocks, T = 4, for each
attention variant. Prints figures; asserts nothing (speed is not a test).

    python benchmarks/golden_speed.py [--images N] [--batch B]
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from spikeforge.builder import random_model  # noqa: E402
from spikeforge.data import load_digits_split  # noqa: E402
from spikeforge.sim.model import run_model  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=360)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    images, _ = load_digits_split("test")
    images = np.resize(images, (args.images, *images.shape[1:]))
    print(f"golden model, 1 core, {args.images} images, batch {args.batch}")
    print(f"{'attention':10} {'tokens':>6} {'channels':>8} {'blocks':>6} {'T':>2} {'images/s':>10}")
    for attention in ("linear", "mask", "qsd"):
        model = random_model(0, channels=64, blocks=2, heads=8, time_steps=4, patch=2,
                             attention=attention, levels=4 if attention == "qsd" else 1)
        run_model(model, images[:8])  # warm-up
        t0 = time.perf_counter()
        run_model(model, images, batch_size=args.batch)
        dt = time.perf_counter() - t0
        print(f"{attention:10} {16:>6} {64:>8} {2:>6} {4:>2} {args.images / dt:>10.1f}")


if __name__ == "__main__":
    main()
