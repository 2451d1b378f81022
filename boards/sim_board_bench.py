"""cocotb side of ``spikeforge run --simulate``: the unchanged host runtime drives the simulated
board through its UART pins (:class:`~spikeforge.boards.sim_board.UARTPinTransport`).

Run by :func:`spikeforge.boards.simulate.simulate_board`; the only parameter is ``job``, the
path of a JSON job file:

``model``, ``lanes``, ``device``
    the model file and the mapping, as ``spikeforge build`` compiles it for the board;
``images``, ``labels``
    one flat list of pixels per image (row-major, channels fastest) and the labels;
``divisor``, ``period_ps``
    clock cycles per UART bit and the clock period: the board's real bit rate;
``timeout``, ``settle``, ``retries``
    the host link's settings (seconds of simulated time);
``faults`` (optional)
    transmission errors to inject: ``corrupt_image`` (index of the image whose first IMAGE
    frame gets a flipped pixel bit: the board must NACK it, the host re-send it),
    ``corrupt_reply_image`` (index of the image whose first RESULT frame arrives with a
    flipped bit: the host must detect it and ask again), ``corrupt_weights`` (SPRAM builds:
    the second WEIGHTS frame gets a flipped data bit);
``fuzz`` (optional)
    ``{"requests", "faults", "rate", "seed"}`` (optional ``"babble"``, ``"stall"``: their mean
    seconds): instead of one pass over the images, after a
    clean weight load, ``requests`` requests (the images in turn) through a
    :class:`~spikeforge.boards.faults.FaultyTransport` around the pins, counted as
    :func:`~spikeforge.boards.faults.fuzz_requests` does (right, wrong, refused, hung);
``out``, ``progress``
    files to write the summary (JSON) and the number of images done to.

Before anything else the host asks the board what it is (HELLO) and checks it against the
model (:func:`spikeforge.boards.cli.board_mismatch`).
"""

import collections
import dataclasses
import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge
from cocotb.triggers import RisingEdge
from cocotb.utils import get_sim_time

from spikeforge.boards.faults import FaultyTransport, fuzz_requests, request_bound
from spikeforge.boards.hostlink import weight_set_crc
from spikeforge.boards.inference import board_mismatch, merge_runs, run_images
from spikeforge.boards.runtime import HostLink
from spikeforge.boards.sim_board import UARTPinTransport
from spikeforge.boards.uart import parse_divisor
from spikeforge.hdl.accel.report import compile_for_target
from spikeforge.modelfile import load_model
from spikeforge.sim.cocotb_util import test_parameters
from spikeforge.sim.model import run_model


#: bytes before an IMAGE or WEIGHTS frame's payload (docs/hostlink.md)
FRAME_HEADER = 5


def _write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


@cocotb.test()
async def board_images(dut):
    """Load the weights (SPRAM builds), then send every image of the job through the host link."""
    import numpy as np

    with open(test_parameters()["job"]) as f:
        job = json.load(f)
    model = load_model(job["model"])
    program = compile_for_target(model, job["lanes"], job["device"])
    img = program.image
    images = np.array(job["images"], np.int64).reshape(-1, *img.sample_shape)
    labels = np.array(job["labels"], np.int64)
    period_ps = int(job["period_ps"])

    dut.rx.value = 1
    Clock(dut.clk, period_ps, unit="ps", impl="gpi").start()
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    transport = UARTPinTransport(dut, divisor=parse_divisor(job["divisor"]), period_ns=period_ps / 1000)
    spram = program.memory.kind == "spram"
    link = HostLink(transport, classes=program.classes, pixels=img.values,
                    max_value=int(img.levels), timeout=job["timeout"], settle=job["settle"],
                    retries=job["retries"], weight_crc=0 if spram else weight_set_crc(program),
                    logits=job.get("logits", True), window=job.get("window", 1))
    info = await bridge(link.hello)()
    why = board_mismatch(info, model, program)
    assert why is None, why

    if job.get("fuzz"):
        await _fuzz(job, link, transport, program, model, images)
        return

    faults = job.get("faults") or {}
    loaded = None
    t_load = 0.0
    if program.memory.kind == "spram":
        if faults.get("corrupt_weights"):
            # write 0: begin load; write 2: the second data chunk, a data byte corrupted
            transport.corrupt_write(2, FRAME_HEADER + 40)
        t0 = get_sim_time("ns") * 1e-9
        loaded = await bridge(lambda: link.load_weights(program.weight_image()))()
        t_load = get_sim_time("ns") * 1e-9 - t0

    progress_path = job.get("progress")

    def progress(i, _line):
        if progress_path:
            with open(progress_path, "w") as f:
                f.write(str(i + 1))

    def run():
        if "corrupt_image" in faults:
            # image k's first attempt is write number (writes so far + k): corrupt a pixel byte
            transport.corrupt_write(transport.writes + int(faults["corrupt_image"]), FRAME_HEADER + 10)
        split = int(faults.get("corrupt_reply_image", len(images)))
        first = run_images(link, model, images[:split], labels[:split], progress=progress)
        if split == len(images):
            return first
        # the next reply's byte 12 (a logit byte) arrives corrupted: a CRC error, the host asks again
        transport.corrupt_read(transport.received + 12)
        rest = run_images(link, model, images[split:], labels[split:],
                          progress=lambda i, line: progress(split + i, line))
        return merge_runs(first, rest, link)

    t0 = get_sim_time("ns") * 1e-9
    summary = await bridge(run)()
    t_images = get_sim_time("ns") * 1e-9 - t0
    transport.close()
    summary["simulated_seconds"] = {"weights": t_load, "images": t_images}
    # what the host used after HELLO: the requests in flight (its --window, at most the board's)
    summary.update(window=link.window, board_window=info.window, logits=link.logits, logit_bits=link.logit_bits,
                   pixel_bits=info.pixel_bits)
    summary["weights_loaded"] = None if loaded is None else dataclasses.asdict(loaded)
    _write_json(job["out"], summary)


async def _fuzz(job, link, transport, program, model, images):
    spec = job["fuzz"]
    if program.memory.kind == "spram":
        await bridge(lambda: link.load_weights(program.weight_image()))()
    golden = run_model(model, images).logits
    line = FaultyTransport(transport, rate=spec["rate"], faults=spec["faults"], seed=spec["seed"],
                           reset=transport.reset_board, baud=1e12 / transport.bit_ps,
                           babble_seconds=spec.get("babble", 0.3), stall_seconds=spec.get("stall", 0.5))
    link.transport = line
    counts, examples, wrong = collections.Counter(), {}, []
    n = int(spec["requests"])
    words = len(program.weight_image()) if program.memory.kind == "spram" else 0
    bounds = (request_bound(link), request_bound(link, words))
    progress_path = job.get("progress")

    def batches():
        for start in range(0, n, len(images)):
            k = min(len(images), n - start)
            yield images[:k], golden[:k]
            if progress_path:
                with open(progress_path, "w") as f:
                    f.write(str(start + k))

    transport.phases.clear()     # the requests' own, not the weight load's
    t0, wall0, cpu0 = get_sim_time("ns") * 1e-9, time.perf_counter(), time.process_time()
    await bridge(lambda: fuzz_requests(link, line, batches(), counts=counts, examples=examples, wrong=wrong,
                                       bounds=bounds))()
    transport.close()
    _write_json(job["out"], {
        "requests": n, "faults": spec["faults"], "rate": spec["rate"], "seed": spec["seed"],
        **{k: counts.get(k, 0) for k in ("right", "wrong", "refused", "refused_unclear", "hung")},
        "reloads": link.stats.weight_reloads, "foreign_results": link.stats.foreign_results,
        "injected": dict(line.injected), "simulated_seconds": get_sim_time("ns") * 1e-9 - t0,
        "fuzz_wall_seconds": time.perf_counter() - wall0, "fuzz_cpu_seconds": time.process_time() - cpu0,
        "phases": transport.phases,
        "attempts": link.stats.attempts, "timeouts": link.stats.timeouts,
        "examples": examples, "wrong_details": wrong})
