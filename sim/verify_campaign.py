"""``spikeforge verify --random-models N``: golden model against the accelerator on many random
models, each one Dask task.

Model ``seed`` is :func:`~spikeforge.builder.random_model` with the configuration and lane
count of :func:`~spikeforge.builder.random_config` (the random models of the differential test,
tests/accel/test_engine.py), fed :func:`~spikeforge.builder.random_images` (``images`` of them,
drawn from the same seed). :func:`verify_model` runs it in the Verilator simulation of the
accelerator's Verilog (:func:`~spikeforge.sim.accel_runner.simulate_verilog`: logits, classes
and every surviving inner spike tensor against the golden model, cycles and events against the
analytic model) and returns one row; a mismatch carries the command that reruns that model
alone. A model the accelerator cannot map, a simulator failure or a lost worker is a row with
its status, never the campaign's end.
"""

import json
import time
import uuid
from pathlib import Path

import numpy as np

from ..builder import random_config, random_images, random_model
from ..graph import input_shape
from ..hdl.accel.program import MappingError
from ..modelfile import atomic_write
from .accel_runner import simulate_verilog
from .runners import SimulationFailed, SimulatorNotFound

__all__ = ["reproduce_command", "verify_model", "run_campaign", "format_row"]

#: mismatch entries kept per model in the summary
KEEP = 5


def reproduce_command(seed, images):
    """The command that verifies random model ``seed`` alone."""
    return f"spikeforge verify --random-models 1 --images {images} --seed {seed}"


def verify_model(seed, images, *, timeout=None):
    """Random model ``seed`` on ``images`` random images: golden model against the Verilator
    simulation. Returns the row ``{"seed", "lanes", "config", "status" ("ok", "mismatch",
    "unmappable", "failed"), "mismatches" (count), "first" (up to 5 mismatch entries), "cycles_match",
    "reason", "reproduce", "seconds"}``."""
    t0 = time.monotonic()
    config, lanes = random_config(seed)
    row = {"seed": int(seed), "lanes": lanes, "config": {k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in config.items()},
           "images": int(images), "status": "ok", "mismatches": 0, "first": [], "cycles_match": None,
           "reason": "", "reproduce": reproduce_command(seed, images)}
    try:
        model = random_model(seed, **config)
        r = simulate_verilog(model, random_images(images, input_shape(model), seed=seed), lanes=lanes,
                             progress=False, timeout=timeout)
    except MappingError as e:
        row.update(status="unmappable", reason=" ".join(str(e).split()))
    except (SimulationFailed, SimulatorNotFound) as e:
        row.update(status="failed", reason=" ".join(str(e).splitlines()[0].split()))
    else:
        bad = list(r["mismatches"])
        cycles_ok = bool(np.array_equal(r["cycles"], r["predicted_cycles"])
                         and np.array_equal(r["events"], r["predicted_events"]))
        if not cycles_ok:
            bad.append({"what": "cycles/events against the analytic model",
                        "got": [np.asarray(r["cycles"]).tolist(), np.asarray(r["events"]).tolist()],
                        "expected": [np.asarray(r["predicted_cycles"]).tolist(),
                                     np.asarray(r["predicted_events"]).tolist()]})
        row.update(mismatches=len(bad), first=_jsonable(bad[:KEEP]), cycles_match=cycles_ok,
                   status="mismatch" if bad else "ok")
        if bad:
            row["reason"] = f"{len(bad)} mismatches, first: image {bad[0].get('image', '-')} {bad[0]['what']}"
    row["seconds"] = round(time.monotonic() - t0, 1)
    return row


def _jsonable(value):
    return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist") else str(v)))


def format_row(row):
    """One progress line of a finished model."""
    what = {"ok": f"{row['images']} images equal to the golden model, cycles as predicted"}.get(
        row["status"], f"{row['status'].upper()}: {row['reason']}")
    line = f"model {row['seed']} ({row['lanes']} lane{'' if row['lanes'] == 1 else 's'}, " \
           f"{row['config'].get('attention')}): {what}"
    if row["status"] == "mismatch":
        line += f"; reproduce: {row['reproduce']}"
    return line + (f" ({row['seconds']:.0f} s)" if row.get("seconds") is not None else "")


def run_campaign(seeds, images, client, *, out_dir=None, timeout=None, progress=print):
    """Verify random models ``seeds`` on ``images`` images each, one Dask task per model on
    ``client``. ``out_dir``: where ``verify.json`` (the summary) is written, atomically, after
    every model. Returns the summary ``{"models", "images", "counts", "mismatched_seeds",
    "reproduce", "rows", "seconds"}``."""
    from distributed import as_completed

    t0 = time.monotonic()
    say = progress or (lambda line: None)
    seeds = [int(s) for s in seeds]
    rows = {}

    def summary():
        done = [rows[s] for s in seeds if s in rows]
        counts = {}
        for r in done:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        bad = [r["seed"] for r in done if r["status"] != "ok"]
        doc = {"models": len(seeds), "images": int(images), "done": len(done), "counts": counts,
               "mismatches": sum(r["mismatches"] for r in done),
               "mismatched_seeds": [r["seed"] for r in done if r["status"] == "mismatch"],
               "failed_seeds": [s for s in bad if rows[s]["status"] != "mismatch"],
               "reproduce": [rows[s]["reproduce"] for s in bad],
               "rows": done, "seconds": round(time.monotonic() - t0, 1)}
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            atomic_write(Path(out_dir) / "verify.json", json.dumps(doc, indent=1).encode())
        return doc

    run = uuid.uuid4().hex[:8]
    futures = {client.submit(verify_model, s, images, timeout=timeout, key=f"verify-model{s}-{run}"): s
               for s in seeds}
    for f in as_completed(list(futures)):
        s = futures.pop(f)
        try:
            row = f.result()
        except Exception as e:  # noqa: BLE001 - a bug or a lost worker: that model's row
            config, lanes = random_config(s)
            row = {"seed": s, "lanes": lanes, "config": _jsonable(config), "images": int(images), "status": "error",
                   "mismatches": 0, "first": [], "cycles_match": None,
                   "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                   "reproduce": reproduce_command(s, images), "seconds": None}
        rows[s] = row
        say(f"[{len(rows)}/{len(seeds)}] {format_row(row)}")
        summary()
    return summary()
