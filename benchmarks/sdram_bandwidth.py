"""Bandwidth of the SDRAM controller on a long sequential read: the controller (amaranth.sim)
driving the cycle-accurate model of the ULX3S part, against the analytic cost model.

    python benchmarks/sdram_bandwidth.py [--words 20000] [--json]

For each clock / CAS latency: the cycles from the request to the last word measured in
simulation, the analytic schedule's cycles (hdl/sdram_timing.py, read_cycles), words/cycle
measured and from the closed form (sequential_bandwidth), the refresh overhead, and the number of
AUTO REFRESH commands the model saw. Prints figures; asserts nothing about speed.
"""

import argparse
import json
import time

from spikeforge.hdl.sdram import SdramController
from spikeforge.hdl.sdram_timing import ULX3S_SDRAM, read_cycles, sequential_bandwidth
from spikeforge.hdl.testing import sdram_timed_read
from spikeforge.sim.sdram_model import SdramModel

POINTS = [(50_000_000, 2), (100_000_000, 2), (100_000_000, 3), (133_000_000, 3)]


def measure(clk_hz, cl, words):
    dut = SdramController(clk_hz=clk_hz, cas_latency=cl, max_count=words)
    model = SdramModel(ULX3S_SDRAM.timing(clk_hz, cl))
    model.mem[:words] = [k & 0xFFFF for k in range(words)]
    t0 = time.time()
    cycles, since_ref, data = sdram_timed_read(dut, model, 0, words)
    assert data == [k & 0xFFFF for k in range(words)], "read data differ from the model's memory"
    t = dut.timing
    bw, ref = sequential_bandwidth(t)
    return {"clk_mhz": clk_hz / 1e6, "cl": cl, "words": words, "cycles": cycles,
            "analytic_cycles": read_cycles(t, 0, words, since_ref),
            "words_per_cycle": round(words / (cycles + 1), 4), "analytic_words_per_cycle": round(bw, 4),
            "refresh_overhead": round(ref, 4), "refreshes": len(model.refreshes) - 2,
            "mbyte_per_s": round(words / (cycles + 1) * 2 * clk_hz / 1e6, 1),
            "sim_seconds": round(time.time() - t0, 1)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--words", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = [measure(clk, cl, args.words) for clk, cl in POINTS]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    print(f"{'MHz':>5} {'CL':>2} {'words':>6} {'cycles':>7} {'analytic':>8} {'w/cycle':>7} "
          f"{'closed':>7} {'refresh':>7} {'REFs':>4} {'MB/s':>6}")
    for r in rows:
        print(f"{r['clk_mhz']:5.0f} {r['cl']:2d} {r['words']:6d} {r['cycles']:7d} "
              f"{r['analytic_cycles']:8d} {r['words_per_cycle']:7.4f} "
              f"{r['analytic_words_per_cycle']:7.4f} {r['refresh_overhead']:7.2%} "
              f"{r['refreshes']:4d} {r['mbyte_per_s']:6.1f}")


if __name__ == "__main__":
    main()
