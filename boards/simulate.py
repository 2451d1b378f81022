"""``spikeforge run --board NAME --simulate``: the board's build under Verilator, driven by the
same host runtime and protocol as a real board.

:func:`simulate_board` compiles the model as ``spikeforge build`` does for the board (the compact
SPRAM build on the iCEBreaker, the fast build on the ULX3S), writes the board's system (engine,
UART host link, LEDs: :class:`~spikeforge.boards.top.AcceleratorSystem`) at the board's clock
and UART divisor, and runs :mod:`spikeforge.boards.sim_board_bench` on it: the host runtime
loads the weights over the link (SPRAM builds) and sends the images bit by bit at the real bit
rate, in simulated time. The Verilator build is cached under ``$SPIKEFORGE_CACHE`` (default
``~/.cache/spikeforge``) in ``board_sim/``, keyed by the Verilog.

The simulated board differs from the real one only in what Verilator cannot simulate: no PLL
(the clock is the PLL's output frequency), no pin buffers, behavioural models of SPRAM and of
the ECP5 multipliers.
"""

import hashlib
import json
import threading
import time
from pathlib import Path

import numpy as np

from ..devices import get_target
from ..hdl.accel.execute import execute_program
from ..hdl.accel.report import compile_for_target
from ..modelfile import atomic_write, save_model
from ..sim import runners
from ..sim.accel_runner import default_build_root
from .hostlink import link_bound_images_per_second
from .sim_board import SIM_TOP, write_sim_board
from .top import default_baud, plan_clock
from .uart import baud_divisor, divisor_json

__all__ = ["simulate_board", "fuzz_link_times", "BENCH_MODULE", "REAL_BAUD"]

BENCH_MODULE = Path(__file__).resolve().with_name("sim_board_bench.py")
#: the host's quiet time before a retry, in simulated seconds
SETTLE_S = 1e-3
#: Verilator flags of the board build, on top of sim/runners.py's (which make only the pins
#: public): Verilator's slower optimizations and the C++ compiled with -O2 instead of
#: verilated.mk's -Os. The board simulates about 1.3 times faster (measured: 391k -> 525k clock
#: cycles per CPU second on the iCEBreaker build); the build takes about twice as long.
VERILATOR_ARGS = ("-O3", "--x-assign", "fast", "-CFLAGS", "-O2")
#: the bit rate at which the fuzz's link times (:func:`fuzz_link_times`) are given (the reference
#: rate: protocol version 3's default; version 4's is 3 Mbaud)
REAL_BAUD = 115200


def _cache_root():
    return default_build_root().parent / "board_sim"


def fuzz_link_times(model, board, images, baud, *, lanes=None, clock_mhz=None, timeout=0.05, settle=SETTLE_S,
                    babble=0.3, stall=0.5):
    """The host's times for a fault-injection run of the simulated ``board`` at ``baud``, given
    at :data:`REAL_BAUD` (115200, the reference rate): the times on the line (``settle``, the mean
    ``babble`` and ``stall``) are scaled by ``REAL_BAUD / baud`` (the same number of byte
    times); of ``timeout``, the engine's compute time (its longest over ``images``, from the
    analytic model) stays and the rest, line time, is scaled. Returns a dict: ``timeout``,
    ``settle``, ``babble``, ``stall`` (simulated seconds), ``compute`` (seconds), ``scale``,
    ``divisor`` and ``bit_rate`` (the clock over the divisor: what the simulation runs at).
    Raises ``ValueError`` for a ``baud`` that is not a positive finite number or a
    ``timeout`` shorter than the compute time."""
    if isinstance(baud, bool) or not isinstance(baud, (int, float)) or not 0 < baud < float("inf"):
        raise ValueError(f"fuzz_link_times: baud is {baud!r}; allowed: a positive finite number")
    target = get_target(board)
    lanes = target.default_lanes if lanes is None else lanes
    program = compile_for_target(model, lanes, target.device)
    clock = plan_clock(target, clock_mhz)
    divisor = baud_divisor(clock.mhz * 1e6, baud)
    cycles = max(execute_program(program, im).total_cycles for im in np.asarray(images, np.int64))
    compute = cycles / (clock.mhz * 1e6)
    if not timeout > compute:
        raise ValueError(f"fuzz_link_times: timeout is {timeout!r} s; allowed: longer than the engine's "
                         f"compute time {compute:.4g} s")
    scale = REAL_BAUD / baud
    return {"timeout": compute + (timeout - compute) * scale, "settle": settle * scale, "babble": babble * scale,
            "stall": stall * scale, "compute": compute, "scale": scale, "divisor": divisor,
            "bit_rate": float(clock.mhz * 1e6 / divisor)}


def simulate_board(model, board, images, labels, *, lanes=None, clock_mhz=None, baud=None, timeout=1.0,
                   retries=3, build_dir=None, progress=None, faults=None, fuzz=None, settle=SETTLE_S, logits=True,
                   window=1):
    """Run ``images`` (``[B, H, W, C]`` integers) through the simulated ``board``.

    Returns the summary of :func:`spikeforge.boards.inference.run_images` (per-image results, link
    counters) plus ``mismatches``, ``cycles_per_image`` (the board's own counter: last pixel to
    result), ``predicted_cycles_per_image`` (the analytic model), ``simulated_seconds`` and
    ``images_per_second`` (``end_to_end`` measured in simulated time, ``link_bound`` and
    ``compute`` from the frame sizes and the clock). ``progress(done, total)`` is called as
    images complete. ``timeout``, ``settle``, ``retries``: the host link's (simulated seconds);
    ``logits``: ask for the logits (else the class only); ``window``: requests in flight (at most
    the board's, from its INFO). ``baud`` None: the board's default (``top.default_baud``).
    ``faults``: transmission errors to inject, as described in
    :mod:`spikeforge.boards.sim_board_bench` (the run then shows the NACKs and retries they
    cause). ``fuzz``: ``{"requests", "faults", "rate", "seed"}`` (optional ``"babble"``,
    ``"stall"``: mean seconds of a babble and a stall, default 0.3 and 0.5) runs the fault-injecting
    transport (:class:`~spikeforge.boards.faults.FaultyTransport`) against the simulated board
    instead (see :mod:`spikeforge.boards.sim_board_bench`) and returns its counts (right,
    wrong, refused, hung, ...). Raises ``ValueError`` (board, lanes, clock, baud, images) and
    :class:`~spikeforge.hdl.accel.program.MappingError` before anything is built, and the
    simulator runners' errors after.
    """
    target = get_target(board)
    lanes = target.default_lanes if lanes is None else lanes
    program = compile_for_target(model, lanes, target.device)
    clock = plan_clock(target, clock_mhz)
    if baud is None:
        baud = default_baud(target, clock_mhz)
    divisor = baud_divisor(clock.mhz * 1e6, baud)
    img = program.image
    images = np.asarray(images, np.int64)
    labels = np.asarray(labels, np.int64)
    if images.ndim != 1 + len(img.sample_shape) or images.shape[1:] != img.sample_shape or len(images) == 0:
        want = ", ".join(map(str, img.sample_shape))
        raise ValueError(f"images have shape {images.shape}; expected [B >= 1, {want}]")
    if labels.shape != (len(images),):
        raise ValueError(f"labels have shape {labels.shape}; expected [{len(images)}]")
    period_ps = 2 * round(5e5 / clock.mhz)  # whole picoseconds, even (two equal clock halves)

    root = Path(build_dir) if build_dir is not None else _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    verilog_tmp = root / f".sim_board-{threading.get_ident()}.v"
    write_sim_board(program, verilog_tmp, divisor=divisor, clock_hz=clock.mhz * 1e6)
    text = verilog_tmp.read_bytes()
    # The build depends on the Verilog and the simulator flags (sim/runners.py), not on the
    # testbench, which cocotb loads afresh at every run.
    key = hashlib.sha256(text + Path(runners.__file__).read_bytes()
                         + json.dumps(VERILATOR_ARGS).encode()).hexdigest()[:20]
    folder = root / f"{target.name}_P{lanes}_{key}"
    folder.mkdir(parents=True, exist_ok=True)
    verilog = folder / "sim_board.v"
    if not verilog.is_file():
        verilog_tmp.replace(verilog)
    else:
        verilog_tmp.unlink()
    model_path = folder / "model.sfm"
    save_model(model, model_path)
    out = folder / "summary.json"
    progress_path = folder / "progress.txt"
    for path in (out, progress_path):
        path.unlink(missing_ok=True)
    job = {"model": str(model_path), "lanes": lanes, "device": target.device,
           "images": [im.reshape(-1).tolist() for im in images], "labels": labels.tolist(),
           "divisor": divisor_json(divisor), "period_ps": period_ps, "timeout": float(timeout), "settle": float(settle),
           "retries": int(retries), "out": str(out), "progress": str(progress_path),
           "logits": bool(logits), "window": int(window),
           "faults": dict(faults or {}), "fuzz": dict(fuzz) if fuzz else None}
    job_path = folder / "job.json"
    atomic_write(job_path, json.dumps(job).encode())

    outcome = {}

    def work():
        try:
            outcome["run"] = runners.run_cocotb([verilog], SIM_TOP, str(BENCH_MODULE), build_dir=folder,
                                        parameters={"job": str(job_path)}, timeout=3600,
                                        build_args=VERILATOR_ARGS,
                                        visible={SIM_TOP: ["*"]})   # the pins: the top's own signals
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    t0 = time.monotonic()
    thread = threading.Thread(target=work, name="spikeforge-board-sim", daemon=True)
    thread.start()
    done = 0
    while thread.is_alive():
        thread.join(0.5)
        if progress is not None:
            try:
                now = int(progress_path.read_text() or 0)
            except (OSError, ValueError):
                now = 0
            if now > done:
                done = now
                progress(done, len(images))
    if "error" in outcome:
        raise outcome["error"]
    summary = json.loads(out.read_text())
    run = outcome["run"]
    if fuzz:
        summary.update({"board": target.name, "lanes": lanes, "clock_mhz": clock.mhz, "baud": baud,
                        "uart_divisor": divisor_json(divisor), "bit_rate": float(clock.mhz * 1e6 / divisor),
                        "timeout": float(timeout), "settle": float(settle),
                        "build_seconds": run.build_seconds, "sim_seconds": run.test_seconds,
                        "wall_seconds": time.monotonic() - t0})
        return summary

    predicted = np.array([execute_program(program, im).total_cycles for im in images], np.int64)
    cycles = np.array([r["cycles"] for r in summary["results"]], np.int64)
    sim_images = summary["simulated_seconds"]["images"]
    summary.update({
        "board": target.name, "lanes": lanes, "memory": program.memory.kind,
        "clock_mhz": clock.mhz, "baud": baud, "uart_divisor": divisor_json(divisor),
        "mismatches": summary["images"] - summary["logits_match"],
        "cycles_per_image": {"mean": float(cycles.mean()), "min": int(cycles.min()), "max": int(cycles.max())},
        "predicted_cycles_per_image": {"mean": float(predicted.mean()), "min": int(predicted.min()),
                                       "max": int(predicted.max())},
        "images_per_second": {
            "end_to_end": len(images) / sim_images if sim_images > 0 else None,
            "link_bound": link_bound_images_per_second(baud, img.values, program.classes,
                                                       max_value=int(img.levels), logits=summary["logits"],
                                                       logit_bits=summary["logit_bits"], window=summary["window"]),
            "compute": clock.mhz * 1e6 / float(predicted.mean()),
        },
        "build_seconds": run.build_seconds, "sim_seconds": run.test_seconds,
        "wall_seconds": time.monotonic() - t0,
    })
    return summary
