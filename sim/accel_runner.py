"""``spikeforge sim``: the generated accelerator Verilog under cocotb (Verilator or Icarus).

:func:`simulate_verilog` compiles the model for ``lanes`` lanes (a model the accelerator cannot
map is refused here, before any Verilog is written), writes the accelerator's Verilog into a
build folder keyed by (model, lanes, simulator, engine sources) and reused while none of these
changes, and runs the cocotb test of :mod:`spikeforge.sim.accel_cocotb` on it. Images and the
golden results travel in a JSON job file; the testbench writes back, per image, the logits,
the class, the ``cycles`` and ``events`` counters and the words of the spike memory banks that
still hold an inner layer's spikes when the image is done. Those are decoded with the bank/slot
layout of the engine (channel ``c`` in bank ``c % P``, slot ``c // P``) and compared with the
spikes of :func:`~spikeforge.hdl.accel.execute.execute_program`; logits and classes are
compared with the golden model (:func:`~spikeforge.sim.model.run_model`).
"""

import contextlib
import hashlib
import json
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..cache import cache_root, human_size
from ..hdl import accel as accel_pkg
from ..hdl.accel.engine import Engine
from ..hdl.accel.execute import execute_program
from ..hdl.accel.generate import TOP_NAME, verilog_text
from ..hdl.accel.program import EW, RED, compile_model
from ..modelfile import atomic_write
from .model import run_model
from .runners import SUPPORTED, run_cocotb

__all__ = ["simulate_verilog", "surviving_spikes", "decode_spike_rows", "default_build_root",
           "model_digest"]

HERE = Path(__file__).resolve().parent
TEST_MODULE = HERE / "accel_cocotb.py"
#: the signals the testbench touches (the ports, the counters and the spike banks): only these
#: are public in the Verilator build, so Verilator optimizes the rest
VISIBLE = {TOP_NAME: ["clk", "rst", "pixels__*", "result__*", "cycles", "events", "smem*"]}
#: cycles allowed per image beyond the analytic prediction before the testbench gives up
GUARD_FACTOR, GUARD_EXTRA = 4, 10_000


def default_build_root():
    """The accelerator's simulator builds: ``accel_sim`` in the cache folder
    (:func:`spikeforge.cache.cache_root`: ``$SPIKEFORGE_CACHE`` or
    ``$XDG_CACHE_HOME/spikeforge``, ``~/.cache/spikeforge``)."""
    return cache_root() / "accel_sim"


def model_digest(model):
    """SHA-256 of everything in ``model`` that the hardware depends on (graph, attributes,
    tensors, time steps)."""
    h = hashlib.sha256()
    h.update(f"T={int(model.time_steps)}".encode())
    for node in model.nodes:
        h.update(json.dumps([node.name, node.op, list(node.inputs)]).encode())
        h.update(json.dumps(node.attrs, sort_keys=True, default=lambda v: v.item()).encode())
        for name in sorted(node.tensors):
            arr = np.ascontiguousarray(np.asarray(node.tensors[name], np.int64))
            h.update(f"{name}{arr.shape}".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def _sources_digest():
    """The gateware's sources (every module under ``hdl/``, subfolders included: the engine is
    built from the units) and the simulator flags (``sim/runners.py``): a change to any of them
    means a new simulator build."""
    h = hashlib.sha256()
    hdl = Path(accel_pkg.__file__).resolve().parent.parent
    for path in [*sorted(hdl.rglob("*.py")), Path(__file__).resolve().with_name("runners.py")]:
        h.update(path.relative_to(hdl.parent).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def surviving_spikes(program):
    """Which spike tensors are still in the spike memory when the program ends.

    A later pass writing spikes over the same rows overwrites channel ``c`` of a row only if it
    has more than ``c`` channels (the engine writes one slot per real channel). Returns
    ``{tensor name: bool array [T, H, W, C]}``, ``True`` where the element is still there;
    tensors with nothing left are omitted.
    """
    writers = []  # (tensor, first row, row count) in program order
    for p in program.passes:
        if p.kind in (EW, RED):
            t = program.tensors.get(p.dst)
            if t is not None and t.space == "spike":
                writers.append((t, t.base, t.T * t.H * t.W))
    out = {}
    for i, (t, base, rows) in enumerate(writers):
        alive = np.ones((rows, t.C), bool)
        for later, lbase, lrows in writers[i + 1:]:
            lo, hi = max(base, lbase), min(base + rows, lbase + lrows)
            if lo < hi:
                alive[lo - base:hi - base, :later.C] = False
        if alive.any():
            out[t.name] = alive.reshape(t.T, t.H, t.W, t.C)
    return out


def decode_spike_rows(program, banks, rows, tensor):
    """Spike values ``[T, H, W, C]`` of ``tensor`` from bank words.

    ``banks[lane]`` is the list of words read from ``smem{lane}`` at the row numbers
    ``rows``; channel ``c`` is bank ``c % P``, slot ``c // P`` (``spike_planes`` bits each).
    """
    P, sb = program.lanes, program.spike_planes
    t = program.tensors[tensor]
    index = {r: i for i, r in enumerate(rows)}
    mask = (1 << sb) - 1
    out = np.zeros((t.T * t.H * t.W, t.C), np.int64)
    for r in range(t.T * t.H * t.W):
        i = index[t.base + r]
        for c in range(t.C):
            out[r, c] = (banks[c % P][i] >> ((c // P) * sb)) & mask
    return out.reshape(t.T, t.H, t.W, t.C)


@contextlib.contextmanager
def _locked(folder):
    """Hold an exclusive lock on ``folder`` (one simulation per build folder at a time)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _merge_ranges(ranges):
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out


def _progress_bar(total, enabled, desc="verilog sim"):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", file=sys.stderr)


def _say(text):
    print(f"spikeforge sim: {text}", file=sys.stderr, flush=True)


#: share of the signals a VCD records a change of, per clock cycle: 0.107 measured on a
#: Verilator trace of the accelerator (a random model of 8 channels at 2 lanes: 18.6 MB for one
#: image of 5,250 cycles, 3,531 signals of 19,315 bits); other models and lane counts differ,
#: so the estimate is good to a factor of about two
VCD_ACTIVITY = 0.107
#: FST (Icarus' compressed format) against that VCD estimate: 0.03 measured (0.59 MB of FST
#: for the same image)
FST_RATIO = 0.03


def _signal_bits(verilog):
    """``(signals, bits)`` declared in ``verilog`` (``reg``/``wire``/ports, memories excluded:
    neither simulator's dump holds them)."""
    signals = bits = 0
    for msb, lsb, rest in re.findall(r"^\s*(?:reg|wire|input|output)\s+(?:signed\s+)?"
                                     r"(?:\[(\d+):(\d+)\]\s+)?(\S+)\s*(?:=[^;]*)?;", verilog, re.M):
        if "[" in rest:  # a memory: ``reg [w:0] mem [depth:0]`` leaves "[" in the name part
            continue
        signals += 1
        bits += abs(int(msb) - int(lsb)) + 1 if msb else 1
    return signals, bits


def waves_size_estimate(verilog, cycles, simulator="verilator"):
    """Bytes the waveform of ``cycles`` clock cycles of ``verilog`` takes, estimated from its
    declared signals (:func:`_signal_bits`): a header line per signal, then per cycle two
    timestamps and a :data:`VCD_ACTIVITY` share of the signals changing, each written as its
    bits and an identifier. Icarus writes FST, compressed: :data:`FST_RATIO` of that."""
    signals, bits = _signal_bits(verilog)
    change_all = bits + 5 * signals  # every signal's value line once
    vcd = 32 * signals + change_all + cycles * (16 + VCD_ACTIVITY * change_all)
    return int(vcd * FST_RATIO if simulator == "icarus" else vcd)


def _size_text(n):
    return f"about {human_size(n)} (estimated from the signal count and cycles)"


def _run_job(folder, name, images, golden, execs, K, rows, P, simulator, verilog, vcd, timeout, progress,
             traced=False, stalls=None):
    """One cocotb run of ``images`` (the first ``len(images)`` of the golden results): the job
    file, "building the simulator" on stderr while it builds, then the progress bar.
    Returns ``(CocotbResult, the testbench's results document)``."""
    B = len(images)
    job = {
        "images": [im.reshape(-1).tolist() for im in images],
        "classes": K,
        "expected": [{"logits": golden.logits[i].tolist(), "cls": int(golden.classes[i])}
                     for i in range(B)],
        "guard_cycles": [GUARD_FACTOR * e.total_cycles + GUARD_EXTRA for e in execs[:B]],
        "spike_reads": {"banks": [f"smem{ln}" for ln in range(P)], "rows": rows},
        "out": str(folder / f"{name}_result.json"),
        "progress": str(folder / f"{name}_progress.txt"),
        "stalls": stalls,
    }
    job_path = folder / f"{name}.json"
    atomic_write(job_path, json.dumps(job).encode())
    for path in (job["out"], job["progress"]):
        Path(path).unlink(missing_ok=True)
    params = {"job": str(job_path), "waves": vcd is not None}
    tool = {"verilator": "Verilator", "icarus": "Icarus Verilog"}[simulator]
    stage = {"now": None}
    outcome = {}

    def on_stage(what, seconds=None):
        stage["now"] = what
        if progress and what == "build":
            _say(f"building the {'traced ' if vcd is not None else ''}simulator ({tool}) in {folder} ...")
        elif progress and what == "test":
            _say(f"simulator ready after {seconds:.1f} s; simulating {B} image{'s' if B != 1 else ''}")

    def work():
        try:
            outcome["result"] = run_cocotb([verilog], TOP_NAME, TEST_MODULE, simulator=simulator,
                                           build_dir=folder, parameters=params, waves=vcd,
                                           timeout=timeout, on_stage=on_stage, visible=VISIBLE)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="spikeforge-verilog-sim", daemon=True)
    thread.start()
    bar = None
    try:
        while thread.is_alive():
            thread.join(0.2)
            if progress and bar is None and stage["now"] == "test":  # only once the build is done
                bar = _progress_bar(B, True, "traced sim" if traced else "verilog sim")
            if bar is not None:
                try:
                    done = int(Path(job["progress"]).read_text() or 0)
                except (OSError, ValueError):
                    done = 0
                if done > bar.n:
                    bar.update(done - bar.n)
    finally:
        if bar is not None:
            bar.close()
    if "error" in outcome:
        raise outcome["error"]
    with open(job["out"]) as f:
        return outcome["result"], json.load(f)


def simulate_verilog(model, images, *, lanes=8, simulator="verilator", build_dir=None, vcd=None,
                     vcd_images=1, progress=True, timeout=None, stalls=None):
    """Simulate the accelerator's Verilog for ``model`` on ``images [B, H, W, C]``.

    ``build_dir`` (default :func:`default_build_root`) holds one folder per (model, lanes,
    simulator, sources); an unchanged one is reused without regenerating the Verilog.
    ``vcd``: path to write the waveform to (Icarus writes FST: the suffix becomes ``.fst``) of
    the first ``vcd_images`` images only: neither simulator can start or stop its dump part-way
    through cocotb's run, so when there are more images than that, all images run untraced and
    the first ``vcd_images`` run again in a traced build of their own.
    ``progress``: on stderr, "building the simulator (...)" while it builds, then a progress
    bar of images done (and, with ``vcd``, the waveform's estimated size). ``timeout``: seconds
    for the Verilator build and for the simulation each (default: 600 plus 2 s per image).
    ``stalls``: ``{"pixel_idle": p, "result_backpressure": q, "seed": s}``, random bubbles on
    ``pixels`` and backpressure on ``result`` (probabilities per cycle, :mod:`.accel_cocotb`);
    the default holds ``valid`` and ``ready`` high.

    Returns a dict: ``logits [B, K]``, ``classes [B]``, ``cycles [B]``, ``events [B]`` (the
    Verilog's), ``wait_cycles [B]`` (the testbench's count from the last pixel to the first
    result beat offered), ``feed_cycles [B]`` (cycles to send the pixels), ``refused_beats [B]``
    (cycles a result beat was offered and not taken), ``golden_logits``, ``golden_classes``,
    ``predicted_cycles [B]`` (the analytic model, equal to ``cycles``),
    ``predicted_events``,
    ``lower_bound_cycles [B]`` (§10 of the spec),
    ``spike_mismatches [B]`` (inner-layer spike elements that differ), ``mismatches`` (a list
    of ``{"image", "what", ...}``), ``inner_layers_compared`` (tensor -> elements compared
    per image), ``verilog``, ``build_dir``, ``build_seconds``, ``sim_seconds`` (the build and
    the simulation of all images, untraced when a traced run follows), ``waves``,
    ``waves_images``, ``waves_estimate_bytes``.
    Raises :class:`~spikeforge.hdl.accel.program.MappingError` for a model the accelerator
    cannot map (before anything is written), ``ValueError`` for bad arguments,
    :class:`~spikeforge.sim.runners.SimulatorNotFound` / ``SimulationFailed`` from the run.
    """
    if simulator not in SUPPORTED:
        raise ValueError(f"simulator is {simulator!r}; allowed: {', '.join(SUPPORTED)}")
    if isinstance(vcd_images, bool) or not isinstance(vcd_images, (int, np.integer)) or vcd_images < 1:
        raise ValueError(f"vcd_images is {vcd_images!r}; allowed: an integer >= 1")
    if stalls is not None:
        for key, value in stalls.items():
            if key not in ("pixel_idle", "result_backpressure", "seed"):
                raise ValueError(f"stalls has key {key!r}; allowed: pixel_idle, result_backpressure, seed")
            if key == "seed" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"stalls['seed'] is {value!r}; allowed: an integer")
            if key != "seed" and not (isinstance(value, (int, float)) and 0 <= value < 1):
                raise ValueError(f"stalls[{key!r}] is {value!r}; allowed: a probability in [0, 1)")
    program = compile_model(model, lanes)  # MappingError before anything is written
    images = np.asarray(images)
    img = program.image
    if images.ndim != 1 + len(img.sample_shape) or images.shape[1:] != img.sample_shape or len(images) == 0:
        raise ValueError(f"images have shape {images.shape}; expected [B >= 1, "
                         f"{', '.join(map(str, img.sample_shape))}] for this model")
    if images.min() < 0 or images.max() > img.levels:
        raise ValueError(f"pixel values span {images.min()}..{images.max()}; allowed 0..{img.levels}")
    images = images.astype(np.int64)
    B, K, P = len(images), program.classes, program.lanes

    golden = run_model(model, images)
    execs = [execute_program(program, im) for im in images]
    alive = surviving_spikes(program)
    rows = _merge_ranges([(program.tensors[n].base, program.tensors[n].base + a.shape[0] * a.shape[1] * a.shape[2])
                          for n, a in alive.items()])
    row_list = [r for lo, hi in rows for r in range(lo, hi)]

    key = hashlib.sha256(f"{model_digest(model)} lanes={P} sim={simulator} "
                         f"{_sources_digest()}".encode()).hexdigest()[:20]
    root = Path(build_dir) if build_dir is not None else default_build_root()
    folder = (root / f"{simulator}_P{P}_{key}").resolve()
    if timeout is None:
        timeout = 600 + 2 * B

    with _locked(folder):
        verilog = folder / f"{TOP_NAME}.v"
        if not verilog.is_file():
            atomic_write(verilog, verilog_text(Engine(program)).encode())
        # The spike banks ``smem{lane}`` are read through VPI after each image: VISIBLE makes
        # them public (as arrays) in the Verilator build.
        traced = min(int(vcd_images), B) if vcd is not None else 0
        estimate = None
        if traced:
            cycles = sum(e.total_cycles for e in execs[:traced]) + traced * (img.values + 2 * K + 4)
            estimate = waves_size_estimate(verilog.read_text(), cycles, simulator)
            what = f"the first {traced} image{'s' if traced != 1 else ''}" if traced < B else \
                f"all {B} image{'s' if B != 1 else ''}"
            how = "" if traced == B else ", run again in a traced build after the untraced run of all"
            _say(f"the waveform of {what}{how}: {_size_text(estimate)}; --vcd-images sets how many")
        t0 = time.monotonic()
        # One run over every image, traced only when it is the traced run as well.
        run, doc = _run_job(folder, "job", images, golden, execs, K, rows, P, simulator, verilog,
                            vcd if traced == B else None, timeout, progress, stalls=stalls)
        wall = time.monotonic() - t0
        waves = run.waves
        if traced and traced < B:
            wrun, wdoc = _run_job(folder, "job_waves", images[:traced], golden, execs, K, rows, P, simulator,
                                  verilog, vcd, timeout, progress, traced=True, stalls=stalls)
            waves = wrun.waves

    res = doc["results"]
    if len(res) != B:
        raise RuntimeError(f"the testbench returned {len(res)} results for {B} images "
                           f"(log: {run.build_dir / 'test.log'})")
    logits = np.array([r["logits"] for r in res], np.int64).reshape(B, K)
    classes = np.array([r["cls"] for r in res], np.int64)
    mismatches = []
    spike_bad = np.zeros(B, np.int64)
    for i, r in enumerate(res):
        if not np.array_equal(logits[i], golden.logits[i]):
            mismatches.append({"image": i, "what": "logits", "got": logits[i].tolist(),
                               "expected": golden.logits[i].tolist()})
        if classes[i] != golden.classes[i]:
            mismatches.append({"image": i, "what": "class", "got": int(classes[i]),
                               "expected": int(golden.classes[i])})
        banks = [r["spike_words"][f"smem{ln}"] for ln in range(P)]
        for name, where in alive.items():
            got = decode_spike_rows(program, banks, row_list, name)
            want = execs[i].spikes[name]
            bad = int(((got != want) & where).sum())
            if bad:
                spike_bad[i] += bad
                idx = tuple(int(v) for v in np.argwhere((got != want) & where)[0])
                mismatches.append({"image": i, "what": f"spikes {name}", "elements": bad,
                                   "first": {"index [t, y, x, c]": list(idx), "got": int(got[idx]),
                                             "expected": int(want[idx])}})
    if traced and traced < B:  # the traced build must compute what the untraced one did
        for i, r in enumerate(wdoc["results"]):
            if (r["logits"], r["cls"], r["cycles"]) != (res[i]["logits"], res[i]["cls"], res[i]["cycles"]):
                mismatches.append({"image": i, "what": "traced run", "got": [r["logits"], r["cls"], r["cycles"]],
                                   "expected": [res[i]["logits"], res[i]["cls"], res[i]["cycles"]]})
    return {
        "lanes": P,
        "simulator": simulator,
        "images": B,
        "logits": logits,
        "classes": classes,
        "cycles": np.array([r["cycles"] for r in res], np.int64),
        "events": np.array([r["events"] for r in res], np.int64),
        "wait_cycles": np.array([r["wait_cycles"] for r in res], np.int64),
        "feed_cycles": np.array([r["feed_cycles"] for r in res], np.int64),
        "refused_beats": np.array([r["refused_beats"] for r in res], np.int64),
        "golden_logits": np.asarray(golden.logits, np.int64),
        "golden_classes": np.asarray(golden.classes, np.int64),
        "predicted_cycles": np.array([e.total_cycles for e in execs], np.int64),
        "predicted_events": np.array([e.events for e in execs], np.int64),
        "lower_bound_cycles": np.asarray(golden.lower_bound_cycles(P), np.int64),
        "spike_mismatches": spike_bad,
        "mismatches": mismatches,
        "inner_layers_compared": {n: int(a.sum()) for n, a in alive.items()},
        "verilog": str(verilog),
        "build_dir": str(folder),
        "build_seconds": run.build_seconds,
        "sim_seconds": run.test_seconds,
        "wall_seconds": wall,
        "waves": str(waves) if waves else None,
        "waves_images": traced if waves else 0,
        "waves_estimate_bytes": estimate,
    }
