"""Argument parsers and handlers of ``spikeforge build``, ``flash`` and ``run`` (wired in
:mod:`spikeforge.cli`). Each ``run_*`` returns the exit status; errors are printed as one line
``spikeforge <command>: error: ...`` on stderr; progress goes to stderr, results to stdout."""

import dataclasses
import json
import os
import sys

from .targets import get_target, target_names

__all__ = ["add_build_arguments", "run_build", "add_flash_arguments", "run_flash", "add_run_arguments", "run_run"]


def _err(command, message, code):
    print(f"spikeforge {command}: error: {message}", file=sys.stderr)
    return code


def _progress(line):
    print(line, file=sys.stderr, flush=True)


def _load_model(path):
    from ..cli import default_model_path
    from ..modelfile import load_model

    path = path or default_model_path()
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    return path, load_model(path)


def _positive_float(text):
    import argparse

    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be > 0")
    return v


# --- build -----------------------------------------------------------------------------------

def add_build_arguments(p):
    p.add_argument("model", nargs="?", help="model file (default: the shipped model)")
    p.add_argument("--board", required=True, choices=target_names(), help="target board")
    p.add_argument("--lanes", type=int, default=None,
                   help="engine lanes P (power of two; default: the board's, 1 on icebreaker, 8 on ulx3s-85f)")
    p.add_argument("--clock", type=_positive_float, default=None, metavar="MHZ",
                   help="system clock in MHz (default: the board's default; a PLL makes other clocks)")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate (default 115200)")
    p.add_argument("-o", "--output", default=None, metavar="DIR", help="output folder (default build/BOARD)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placement seed")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="write the bitstream even when fmax is below the clock (exit status still 3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run_build(args):
    from ..hdl.accel.program import MappingError
    from .build import BuildError, TimingFailed, build_board, format_report

    try:
        _, model = _load_model(args.model)
        out = args.output or os.path.join("build", get_target(args.board).name)
        report = build_board(model, args.board, lanes=args.lanes, clock_mhz=args.clock, baud=args.baud,
                             out_dir=out, seed=args.seed, allow_timing_fail=args.allow_timing_fail,
                             progress=_progress)
    except TimingFailed as e:
        report = e.report
        print(json.dumps(report, indent=1) if args.json else format_report(report))
        return _err("build", str(e), e.exit_code)
    except BuildError as e:
        return _err("build", str(e), e.exit_code)
    except (MappingError, ValueError, FileNotFoundError) as e:
        return _err("build", str(e), 2)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    if not report["timing_met"]:
        return _err("build", f"timing failed: fmax {report['fmax_mhz']} MHz < {report['clock']['mhz']} MHz "
                             "(bitstream written because of --allow-timing-fail)", 3)
    return 0


# --- flash -----------------------------------------------------------------------------------

def add_flash_arguments(p):
    p.add_argument("bitstream", nargs="?", help="bitstream file (default: build/BOARD/spikeforge_BOARD.*)")
    p.add_argument("--board", choices=target_names(), help="target board (default: from the file name)")
    p.add_argument("--flash", dest="to_flash", action="store_true",
                   help="write the SPI flash (kept at power-off) instead of the configuration SRAM")
    p.add_argument("--loader", choices=("openFPGALoader", "iceprog"), default=None,
                   help="loader (default: iceprog for iCE40 when installed, else openFPGALoader)")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")


def run_flash(args):
    import shlex

    from .flash import FlashError, flash

    try:
        cmd = flash(args.bitstream, args.board, dry_run=args.dry_run, to_flash=args.to_flash, loader=args.loader)
    except (FlashError, ValueError) as e:
        return _err("flash", str(e), 1)
    print(shlex.join(cmd) if args.dry_run else f"flashed: {shlex.join(cmd)}")
    return 0


# --- run -------------------------------------------------------------------------------------

def add_run_arguments(p):
    p.add_argument("model", nargs="?", help="model file the bitstream was built from (default: the shipped model)")
    p.add_argument("--board", required=True, choices=target_names(), help="target board")
    p.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB1")
    p.add_argument("--baud", type=int, default=115200, help="UART baud rate the bitstream was built with")
    p.add_argument("--lanes", type=int, default=None,
                   help="lanes the bitstream was built with (default: the board's default)")
    p.add_argument("--images", type=int, default=100, help="number of test images (default 100)")
    p.add_argument("--timeout", type=_positive_float, default=1.0, help="seconds per attempt (default 1)")
    p.add_argument("--retries", type=int, default=3, help="re-sends after a failed attempt (default 3)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per image")


def run_images(link, model, images, labels, *, progress=None):
    """Send ``images`` through ``link`` (a :class:`~spikeforge.boards.runtime.HostLink`) and
    compare with the golden model and ``labels``. Returns the summary dict; ``progress(i, line)``
    is called per image. Used by ``spikeforge run`` and the simulated-board test."""
    import numpy as np

    from ..sim.model import run_model

    golden = run_model(model, images)
    rows = []
    for i, image in enumerate(images):
        logits, cls, cycles = link.infer(image)
        ok = bool(np.array_equal(logits, golden.logits[i]) and cls == int(golden.classes[i]))
        rows.append(dict(index=i, cls=cls, label=int(labels[i]), golden_cls=int(golden.classes[i]),
                         logits_match=ok, cycles=cycles, logits=[int(v) for v in logits]))
        if progress:
            progress(i, f"image {i}: class {cls} (label {int(labels[i])}, golden {int(golden.classes[i])}) "
                        f"{'ok' if ok else 'MISMATCH ' + str(list(logits)) + ' vs ' + str(list(golden.logits[i]))}"
                        f", {cycles} cycles")
    n = len(rows)
    st = link.stats
    return {
        "images": n,
        "accuracy": sum(r["cls"] == r["label"] for r in rows) / n if n else float("nan"),
        "golden_accuracy": sum(r["golden_cls"] == r["label"] for r in rows) / n if n else float("nan"),
        "logits_match": sum(r["logits_match"] for r in rows),
        "latency_s": st.latency(),
        "images_per_second": st.throughput(),
        "board_cycles_mean": float(np.mean(st.board_cycles)) if st.board_cycles else None,
        "retries": st.retries, "timeouts": st.timeouts,
        "nacks": {getattr(k, "name", str(k)): v for k, v in st.nacks.items()},
        "bad_replies": st.bad_replies, "stale_replies": st.stale_replies,
        "results": rows,
    }


def format_run(s):
    lat = s["latency_s"]
    lines = [f"{s['images']} images: accuracy {100 * s['accuracy']:.2f}% (golden {100 * s['golden_accuracy']:.2f}%), "
             f"logits equal to the golden model on {s['logits_match']}/{s['images']}"]
    if lat:
        lines.append(f"latency mean {1e3 * lat['mean']:.2f} ms, p95 {1e3 * lat['p95']:.2f} ms, "
                     f"max {1e3 * lat['max']:.2f} ms; {s['images_per_second']:.1f} images/s")
    if s["board_cycles_mean"] is not None:
        lines.append(f"board cycles per image (last pixel to result): mean {s['board_cycles_mean']:.0f}")
    lines.append(f"link: {s['retries']} retries, {s['timeouts']} timeouts, NACKs {s['nacks'] or 'none'}, "
                 f"{s['bad_replies']} corrupt replies")
    return "\n".join(lines)


def run_run(args):
    from ..data import load_digits_split
    from ..hdl.accel.report import compile_for_target
    from .runtime import HostLink, LinkError, ResultMismatchError, SerialTransport

    try:
        target = get_target(args.board)
        _, model = _load_model(args.model)
        if args.images < 1:
            raise ValueError(f"--images is {args.images}; allowed: 1 or more")
        images, labels = load_digits_split("test")
        images, labels = images[:args.images], labels[:args.images]
        # The image size, pixel range, class count, and whether the build keeps its weights in
        # SPRAM (then the host loads them first): the same mapping decision as `spikeforge build`.
        program = compile_for_target(model, args.lanes or target.default_lanes, target.device)
        img = program.image
        transport = SerialTransport(args.port, args.baud)
    except (ValueError, OSError, TypeError) as e:
        return _err("run", str(e), 2)
    try:
        with transport:
            link = HostLink(transport, classes=program.classes, pixels=img.H * img.W * img.C,
                            max_value=int(img.levels), timeout=args.timeout, retries=args.retries)
            loaded = None
            if program.memory.kind == "spram":
                words = program.weight_image()
                _progress(f"loading {len(words)} weight words into SPRAM")
                loaded = link.load_weights(words, progress=lambda done, total: _progress(
                    f"  weights {done}/{total}") if done == total or done % 2048 == 0 else None)
            summary = run_images(link, model, images, labels,
                                 progress=(lambda i, line: _progress(line)) if args.verbose else
                                 (lambda i, line: _progress(f"{i + 1}/{len(images)}") if (i + 1) % 20 == 0 else None))
    except (LinkError, ResultMismatchError) as e:
        return _err("run", str(e), 1)
    summary["weights_loaded"] = None if loaded is None else dataclasses.asdict(loaded)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "results" or args.verbose}, indent=1))
    else:
        print(format_run(summary))
    return 0 if summary["logits_match"] == summary["images"] else 1
