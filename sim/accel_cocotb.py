"""cocotb side of ``spikeforge sim``: the generated accelerator Verilog, image by image.

Run by :func:`spikeforge.sim.accel_runner.simulate_verilog` through ``run_cocotb``; the only
parameter is ``job``, the path of a JSON job file written by the runner:

``images``
    one flat list of pixels per image (row-major, channels fastest: the order of ``pixels``);
``classes``
    ``K``, the number of logits before the class beat;
``expected``
    per image ``{"logits": [...], "cls": c}`` (the golden model), checked here as the
    results arrive so that the log names the first mismatches;
``guard_cycles``
    per image, the cycles to wait for the first result beat before giving up;
``spike_reads``
    ``{"banks": ["smem0", ...], "rows": [[lo, hi], ...]}``: the spike memory rows to read
    after every image (the runner decodes them);
``out``, ``progress``
    files to write the results to (JSON) and the number of images done to;
``stalls`` (optional)
    ``{"pixel_idle": p, "result_backpressure": q, "seed": s}``: before each pixel the source
    idles (``valid`` low) each cycle with probability ``p``, and while result beats are due
    ``ready`` is low each cycle with probability ``q`` (seeded); the stream rules on ``result``
    (``valid`` held, payload unchanged until the transfer) are checked every cycle then.
    Without it ``valid`` and ``ready`` are held high.

The test is fast on purpose: the clock is the GPI's (C, not a Python task), and Python waits on
clock edges only while pixels go in and result beats come out; the whole computation in between
is one wait on ``result__valid`` (with a ``Timer`` guard), run by the simulator alone.
"""

import json
import os
import random
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from spikeforge.sim.cocotb_util import StreamSource, test_parameters

PERIOD_NS = 10


def _signed(value, width):
    value = int(value)
    return value - (1 << width) if value >> (width - 1) else value


def _write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


async def _read_result(dut, count, rng=None, backpressure=0.0):
    """``count`` beats of ``result``: ``([(value, last), ...], refused)``. ``ready`` is held
    high, or with ``rng`` low each cycle with probability ``backpressure``; then a beat offered
    and refused (``refused`` counts those cycles) must be offered again, unchanged, in the next
    cycle (``AssertionError`` otherwise)."""
    width = len(dut.result__payload) - 1  # value in the low bits, ``last`` in the top bit
    beats = []
    pending = None
    cycle = refused = 0
    while len(beats) < count:
        ready = rng is None or rng.random() >= backpressure
        dut.result__ready.value = int(ready)
        await ReadOnly()
        valid = bool(dut.result__valid.value)
        word = int(dut.result__payload.value) if valid else None
        if pending is not None and word != pending:
            raise AssertionError(f"result beat {len(beats)}: offered {pending}, then "
                                 f"{'valid fell' if word is None else f'changed to {word}'} "
                                 f"before the transfer (cycle {cycle} of the result)")
        if valid and ready:
            beats.append((_signed(word & ((1 << width) - 1), width), word >> width))
            pending = None
        elif valid:
            pending = word
            refused += 1
        await RisingEdge(dut.clk)
        cycle += 1
    dut.result__ready.value = 1
    return beats, refused


def _read_banks(dut, reads):
    """The spike memory words of the rows named in ``reads``: per bank, one list in the order
    of the row ranges."""
    return {bank: [int(getattr(dut, bank)[row].value)
                   for lo, hi in reads["rows"] for row in range(lo, hi)]
            for bank in reads["banks"]}


@cocotb.test()
async def accelerator_images(dut):
    """Send every image of the job, collect logits, class, counters and spike memory rows."""
    job_path = test_parameters()["job"]
    with open(job_path) as f:
        job = json.load(f)
    K = job["classes"]
    reads = job.get("spike_reads") or {"banks": [], "rows": []}
    results = []
    dut.pixels__valid.value = 0
    dut.result__ready.value = 0
    # The clock toggles in the simulator's GPI layer, not in a Python task (cocotb's default):
    # between the last pixel and the first result no Python code runs at all.
    Clock(dut.clk, PERIOD_NS, unit="ns", impl="gpi").start()
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    stalls = job.get("stalls") or {}
    seed = int(stalls.get("seed", 0))
    source = StreamSource(dut, "pixels", dut.clk, idle=float(stalls.get("pixel_idle", 0.0)), seed=seed)
    result_rng = random.Random(seed + 1) if stalls.get("result_backpressure") else None
    dut.result__ready.value = 1
    mismatches = 0
    try:
        for i, pixels in enumerate(job["images"]):
            w0 = time.perf_counter()
            t0 = get_sim_time("ns")
            await source.send(pixels)
            t_fed = get_sim_time("ns")
            guard = Timer(job["guard_cycles"][i] * PERIOD_NS, "ns")
            fired = await First(RisingEdge(dut.result__valid), guard)
            if fired is guard and not dut.result__valid.value:
                raise TimeoutError(f"image {i}: no result within {job['guard_cycles'][i]} cycles "
                                   "after its last pixel")
            t_first = get_sim_time("ns")
            w1 = time.perf_counter()
            beats, refused = await _read_result(dut, K + 1, result_rng,
                                                float(stalls.get("result_backpressure", 0.0)))
            lasts = [last for _, last in beats]
            if lasts != [0] * K + [1]:
                raise AssertionError(f"image {i}: result 'last' flags {lasts}; expected {K} "
                                     "zeros then a one")
            logits = [v for v, _ in beats[:K]]
            cls = beats[K][0]
            res = {
                "logits": logits,
                "cls": cls,
                "cycles": int(dut.cycles.value),
                "events": int(dut.events.value),
                "feed_cycles": round((t_fed - t0) / PERIOD_NS),
                "wait_cycles": round((t_first - t_fed) / PERIOD_NS),
                "refused_beats": refused,
                "spike_words": _read_banks(dut, reads),
            }
            res["host_seconds"] = {"run": w1 - w0, "read": time.perf_counter() - w1}
            results.append(res)
            want = job["expected"][i]
            if logits != want["logits"] or cls != want["cls"]:
                mismatches += 1
                if mismatches <= 5:
                    dut._log.warning("image %d: logits %s class %d; golden %s class %d", i, logits, cls,
                                     want["logits"], want["cls"])
            with open(job["progress"], "w") as f:  # read by the runner's progress bar
                f.write(str(i + 1))
    finally:
        _write_json(job["out"], {"results": results, "mismatches": mismatches})
    dut._log.info("%d images, %d logit/class mismatches", len(results), mismatches)
