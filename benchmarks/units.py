# amaranth: UnusedElaboratable=no
"""Benchmark of the single hardware units of ``spikeforge.hdl`` (prints Markdown tables).

1. SparseAdd: simulated cycles (amaranth.sim, no stalls) for one layer's worth of spike
   vectors at firing rates 0 % .. 100 %, beside the unit's ``cycles()`` model, the event count
   and the cycles a dense (spike-blind) schedule would need. Outputs are checked against
   ``golden.sparse_add``.
2. Resources: every unit at two or three sizes, synthesized and placed out of context with
   ``spikeforge.boards.synth.synthesize`` on the iCE40UP5K and the ECP5-85F: LUT, FF (the pin
   harness's shift register subtracted), BRAM, DSP and nextpnr's fmax, beside the unit's own
   ``logic_estimate()`` and ``memory_bits()``.

    python benchmarks/units.py                 # everything (about 10-20 min on 2 shared cores)
    python benchmarks/units.py --no-synth      # cycles table only (about 1 min)
    python benchmarks/units.py --devices ice40-up5k --json out.json
"""

import argparse
import json
import sys
import time

import numpy as np

from spikeforge.boards.synth import SynthError, synthesize
from spikeforge.hdl.generate import make_unit
from spikeforge.hdl.sparse_add import SparseAdd
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from spikeforge.sim.golden import sparse_add, spike_event_encoder

RATES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0)

_REQUANT = {"in_bits": 12, "out_bits": 8, "mult": 77, "bias": 100, "shift": 8, "theta": 40}

# unit -> sizes (parameters as for `spikeforge generate unit`), small to large
SIZES = {
    "spike_event_encoder": [{"channels": 16}, {"channels": 64}, {"channels": 64, "levels": 4}],
    "sparse_add": [{"in_channels": 16, "out_channels": 16, "lanes": 8},
                   {"in_channels": 64, "out_channels": 64, "lanes": 16},
                   {"in_channels": 16, "out_channels": 32, "kernel": 3, "lanes": 8, "levels": 4}],
    "conv_window_scan": [{"height": 8, "width": 8, "kernel": 3, "padding": 1},
                         {"height": 32, "width": 32, "kernel": 3, "stride": 2, "padding": 1}],
    # a real requantization (12-bit accumulators times a 7-bit multiplier): one multiplier per lane
    "lif_array": [{**_REQUANT, "channels": 16, "tokens": 64, "lanes": 8},
                  {**_REQUANT, "channels": 64, "tokens": 64, "lanes": 16},
                  {**_REQUANT, "channels": 64, "tokens": 64, "lanes": 8, "mode": "multispike", "levels": 4,
                   "ms_shift": 2}],
    "spike_attention_mask": [{"channels": 16, "tokens": 64}, {"channels": 64, "tokens": 64}],
    "spike_attention_linear": [{"channels": 8, "heads": 2, "tokens": 16},
                               {"channels": 16, "heads": 4, "tokens": 64},
                               {"channels": 16, "heads": 4, "tokens": 64, "levels_q": 4, "levels_k": 4,
                                "levels_v": 4}],
}

DEVICES = ("ice40-up5k", "ecp5-85f")


# -- 1. SparseAdd cycles vs spikes -----------------------------------------------------------------

def _run(dut, events, count):
    """Feed ``events`` without stalls, take ``count`` outputs; returns (outputs, transfer cycles)."""
    got, t_out = [], []

    async def put(ctx):
        await stream_put(ctx, dut.i, events)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, count, times=t_out, timeout=1_000_000))

    simulate(dut, put, get)
    return got, t_out


def sparse_add_cycles(in_channels=64, out_channels=32, lanes=8, vectors=16, seed=0):
    """Rows ``[rate, events, simulated, model, dense]``; one group (output position) per
    vector, as a linear layer over ``vectors`` tokens."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-8, 8, (in_channels, out_channels))
    rows = []
    for rate in RATES:
        dut = SparseAdd(weight=w, levels=1, lanes=lanes)
        x = (rng.random((vectors, in_channels)) < rate).astype(np.int64)
        hw, beats = [], []
        for c, b, empty, last, _n in spike_event_encoder(x, 1):
            hw.append({"channel": c, "plane": b, "empty": empty, "last": last, "tag": {"tap": 0, "end": 1}})
            beats.append((0, c, b, empty, last))
        want = sparse_add(beats, w, lanes)
        got, t_out = _run(dut, hw, len(want))
        if [(g["tile"], g["last"], g["acc"]) for g in got] != want:
            raise AssertionError(f"SparseAdd output differs from golden.sparse_add at rate {rate}")
        events = int(x.sum())
        dense = vectors * (in_channels * dut.tiles + dut.latency + dut.tiles)  # every input read
        rows.append([rate, events, t_out[-1] + 1, dut.cycles(beats), dense])
    return rows, dut


def print_cycles(rows, dut, vectors):
    print(f"### SparseAdd cycles vs firing rate\n\nLinear layer Ci={dut.in_channels}, Co={dut.out_channels}, "
          f"P={dut.lanes} lanes ({dut.tiles} tiles), binary spikes, {vectors} input vectors (one output "
          f"position each), no stalls; simulated with amaranth.sim, outputs equal `golden.sparse_add`. "
          f"Dense = the same schedule reading every input ({dut.in_channels} x {dut.tiles} + {dut.latency + dut.tiles} "
          f"cycles per vector).\n")
    print("| firing rate | events | simulated cycles | `cycles()` model | cycles / event | dense cycles | "
          "simulated / dense |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for rate, events, sim, model, dense in rows:
        per = f"{sim / events:.2f}" if events else "-"
        print(f"| {rate:.0%} | {events} | {sim} | {model} | {per} | {dense} | {sim / dense:.3f} |")
    print()


# -- 2. resources -----------------------------------------------------------------------------------

def _label(params):
    """Parameters as text; the common requantization of the lif_array rows is shortened."""
    rest = {k: v for k, v in params.items() if _REQUANT.get(k, object()) != v}
    text = ", ".join(f"{k}={v}" for k, v in rest.items())
    return "requant*, " + text if len(rest) < len(params) else text


def synth_rows(devices, units=None, progress=None):
    rows = []
    for unit, sizes in SIZES.items():
        if units and unit not in units:
            continue
        for params in sizes:
            probe = make_unit(unit, params)
            est, mem = probe.logic_estimate(), probe.memory_bits()
            for device in devices:
                t0 = time.monotonic()
                row = {"unit": unit, "params": _label(params), "device": device,
                       "est_lut": est["lut"], "est_ff": est["ff"], "mem_bits": mem}
                try:
                    r = synthesize(make_unit(unit, params), device, progress=progress)
                except SynthError as e:
                    lines = str(e).splitlines()
                    errors = [line for line in lines if "ERROR" in line]
                    row["error"] = (errors[0] if errors else lines[0]).strip()
                else:
                    row.update(lut=r.lut, ff=r.ff - r.harness_ff, bram=r.bram, dsp=r.dsp, fmax=r.fmax,
                               fits=r.fits(), harness_ff=r.harness_ff)
                row["seconds"] = round(time.monotonic() - t0, 1)
                print(f"  {unit} [{row['params']}] {device}: "
                      + (row.get("error") or f"{row['lut']} LUT {row['ff']} FF {row['bram']} BRAM "
                         f"{row['dsp']} DSP {row['fmax'] or 0:.0f} MHz") + f" ({row['seconds']} s)",
                      file=sys.stderr, flush=True)
                rows.append(row)
    return rows


def print_synth(rows):
    print("### Resources and fmax (out of context, pin harness)\n")
    print("LUT: SB_LUT4 (iCE40) / LUT4 + 2 x CCU2C (ECP5), harness XOR tree included (about one LUT "
          "per 3 output bits); FF: unit only (harness shift register subtracted); BRAM: SB_RAM40_4K / "
          "DP16KD; fmax: nextpnr after routing (seed 1, no constraint). est: the unit's "
          "`logic_estimate()`; mem: `memory_bits()`. requant*: "
          + ", ".join(f"{k}={v}" for k, v in _REQUANT.items()) + ".\n")
    print("| unit | parameters | device | LUT | FF | BRAM | DSP | fmax MHz | est LUT / FF | mem bits |")
    print("|---|---|---|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        est = f"{r['est_lut']} / {r['est_ff']}"
        if "error" in r:
            print(f"| {r['unit']} | {r['params']} | {r['device']} | - | - | - | - | failed: "
                  f"{r['error'][:90]} | {est} | {r['mem_bits']} |")
            continue
        fmax = f"{r['fmax']:.1f}" if r["fmax"] else "-"
        fits = "" if r["fits"] else " (does not fit)"
        print(f"| {r['unit']} | {r['params']} | {r['device']} | {r['lut']}{fits} | {r['ff']} | {r['bram']} | "
              f"{r['dsp']} | {fmax} | {est} | {r['mem_bits']} |")
    print()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-synth", action="store_true", help="only the SparseAdd cycles table")
    ap.add_argument("--no-cycles", action="store_true", help="only the resources table")
    ap.add_argument("--devices", nargs="+", default=list(DEVICES))
    ap.add_argument("--units", nargs="+", help="only these units in the resources table")
    ap.add_argument("--vectors", type=int, default=16)
    ap.add_argument("--json", help="also write the raw rows to this file")
    args = ap.parse_args(argv)
    out = {}
    if not args.no_cycles:
        t0 = time.monotonic()
        rows, dut = sparse_add_cycles(vectors=args.vectors)
        print_cycles(rows, dut, args.vectors)
        print(f"(cycles table: {time.monotonic() - t0:.0f} s)\n", file=sys.stderr)
        out["sparse_add_cycles"] = rows
    if not args.no_synth:
        rows = synth_rows(args.devices, args.units)
        print_synth(rows)
        out["synth"] = rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
