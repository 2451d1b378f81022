"""Mutation fuzzing of the model loader: counts per outcome class and peak memory.

Each input is a seed model file (``spikeforge.modelfuzz.seed_files``) damaged by one to three
random mutations, loaded with ``spikeforge.modelfile.load_model`` and classified
(``spikeforge.modelfuzz.classify``): refused with a one-line ModelError, accepted and exact
(golden logits equal the big-integer ones), or one of the failure classes (another exception,
accepted although invalid, accepted with wrong logits). Peak memory: the process's peak
resident set, and the largest Python allocation of one load (tracemalloc) over a sample of
inputs that includes every zip bomb and size edit. Prints figures; exits 1 if any input
landed in a failure class.

    python benchmarks/fuzz_modelfile.py --inputs 100000 [--seed 0]
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import collections  # noqa: E402
import io  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from spikeforge.modelfile import load_model  # noqa: E402
from spikeforge.modelfuzz import OUTCOMES, classify, mutate, seed_files  # noqa: E402

FAILURES = ("other-exception", "accepted-invalid", "accepted-wrong")


def _peak_load(data):
    """Largest Python allocation while loading ``data`` (bytes)."""
    tracemalloc.start()
    try:
        load_model(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - only the memory is measured here
        pass
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=10000, help="number of mutated files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=5, help="examples printed per failure class")
    parser.add_argument("--sample", type=int, default=50, help="measure one load in this many with tracemalloc")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    seeds = seed_files()
    for s in seeds:  # warm up (schema catalog, imports) so the baseline is the steady state
        classify(s, np.random.default_rng(0))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = np.random.default_rng(args.seed)
    counts = collections.Counter()
    by_mutation = collections.defaultdict(collections.Counter)
    examples = collections.defaultdict(list)
    peak_load, peak_what = 0, ""
    t0 = time.perf_counter()
    for i in range(args.inputs):
        data, applied = mutate(seeds[i % len(seeds)], rng)
        outcome, detail = classify(data, rng)
        counts[outcome] += 1
        for name in applied:
            by_mutation[name][outcome] += 1
        if outcome in FAILURES and len(examples[outcome]) < args.show:
            examples[outcome].append((i, applied, detail))
        if i % args.sample == 0 or {"bomb", "sizes"} & set(applied):
            peak = _peak_load(data)
            if peak > peak_load:
                peak_load, peak_what = peak, f"input {i} ({'+'.join(applied)}, {len(data)} bytes)"
        if (i + 1) % 10000 == 0:
            print(f"  {i + 1} inputs, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"model loader fuzzing: {args.inputs} inputs from {len(seeds)} seed models, seed {args.seed}, "
          f"1 core, {elapsed:.0f} s ({args.inputs / elapsed:.0f} inputs/s)")
    for outcome in OUTCOMES:
        print(f"  {outcome:20} {counts[outcome]:8}")
    print(f"peak memory: resident set {rss0 / 1024:.0f} MiB after warm-up, {rss1 / 1024:.0f} MiB at the end; "
          f"largest single load {peak_load / 2**20:.2f} MiB of Python allocations ({peak_what})")
    print("per mutation (an input may carry several):")
    for name in sorted(by_mutation):
        c = by_mutation[name]
        print(f"  {name:11} " + "  ".join(f"{o} {c[o]}" for o in OUTCOMES if c[o]))
    for outcome in FAILURES:
        for i, applied, detail in examples[outcome]:
            print(f"{outcome}: input {i} ({'+'.join(applied)}): {detail}")
    return 1 if any(counts[o] for o in FAILURES) else 0


if __name__ == "__main__":
    sys.exit(main())
