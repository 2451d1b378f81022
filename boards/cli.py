"""Argument parsers and handlers of ``spikeforge build``, ``flash`` and ``run`` (wired in
:mod:`spikeforge.cli`). Each ``run_*`` returns the exit status; errors are printed as one line
``spikeforge: error: ...`` on stderr (:mod:`spikeforge.options`: user errors exit with 2);
progress goes to stderr, results to stdout."""

import dataclasses
import json
import os
import sys

from ..options import (check_plot_option, lanes_text,
                       BAUD, BUILD_TIMEOUT, CLOCK, COUNT, LANES,
                       MODEL_HELP, add_cluster_arguments, cluster_options, RETRIES, SEED, TIMEOUT, USER_ERROR, CLIError,
                       add_dataset_arguments,
                       add_lanes_argument, analysis_images, check_count, check_output_dir, error_line, load_model_arg,
                       model_dataset_images, os_error_message, resolve_lanes)
from ..devices import DEFAULT_PLACER, PLACERS, get_target, target_names
from ..options import Number

#: ``run --window``: requests in flight (the board's INFO caps it)
WINDOW = Number(int, low=1, high=255)

__all__ = ["add_build_arguments", "run_build", "add_flash_arguments", "run_flash", "add_run_arguments", "run_run",
           "add_sweep_arguments", "run_sweep"]


def _err(message, code):
    print(error_line(message), file=sys.stderr)
    return code


def _progress(line):
    print(line, file=sys.stderr, flush=True)


# --- build -----------------------------------------------------------------------------------

def add_build_arguments(p):
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--board", required=True, choices=target_names(), help="target board")
    add_lanes_argument(p)
    p.add_argument("--clock", type=CLOCK, default=None, metavar="MHZ",
                   help="system clock in MHz (default: the board's default; a PLL makes other clocks)")
    p.add_argument("--baud", type=BAUD, default=None, help="UART baud rate (default: the board's, 3000000 on "
                   "both boards, docs/hostlink.md): a standard rate, " + ", ".join(map(str, BAUD.choices)))
    p.add_argument("-o", "--output", default=None, metavar="DIR", help="output folder (default build/BOARD)")
    p.add_argument("--seed", type=SEED, default=1, help=f"nextpnr placement seed ({SEED.allowed()})")
    p.add_argument("--placer", choices=PLACERS, default=None,
                   help="nextpnr placer (default: the board family's, " + ", ".join(
                       f"{v} on {k}" for k, v in DEFAULT_PLACER.items()) + ")")
    p.add_argument("--allow-timing-fail", action="store_true",
                   help="write the bitstream even when fmax is below the clock (exit status still 3)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--plot", metavar="DIR", help="write a picture (PNG) of the utilization against the device "
                                                 "(needs the plot extra)")
    add_dataset_arguments(p)


def _plot_build(args, report):
    if args.plot:
        from ..plots import plot_build

        for path in plot_build(report, args.plot):
            _progress(f"plot: {path}")


def run_build(args):
    from ..hdl.accel.program import MappingError
    from .build import BuildError, TimingFailed, build_board, format_report
    from .top import check_link_settings

    try:
        target = get_target(args.board)
        lanes = resolve_lanes(args.lanes, target.name)
        check_link_settings(target, args.clock, args.baud)  # before the model is even loaded
        out = args.output or os.path.join("build", target.name)
        check_output_dir(out, "-o" if args.output else "the output folder")
        check_plot_option(args.plot)
        _, model = load_model_arg(args.model)
        report = build_board(model, args.board, images=analysis_images(model, args), lanes=lanes,
                             clock_mhz=args.clock, baud=args.baud, out_dir=out, seed=args.seed, placer=args.placer,
                             allow_timing_fail=args.allow_timing_fail, progress=_progress)
    except TimingFailed as e:
        report = e.report
        print(json.dumps(report, indent=1) if args.json else format_report(report))
        _plot_build(args, report)
        return _err(str(e), e.exit_code)
    except BuildError as e:
        return _err(str(e), e.exit_code)
    except (CLIError, MappingError, ValueError) as e:
        return _err(str(e), USER_ERROR)
    except OSError as e:
        return _err(os_error_message(e), USER_ERROR)
    print(json.dumps(report, indent=1) if args.json else format_report(report))
    _plot_build(args, report)
    if not report["timing_met"]:
        return _err(f"timing failed: fmax {report['fmax_mhz']} MHz < {report['clock']['mhz']} MHz "
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

    from .flash import FlashError, flash, resolve_bitstream

    try:
        resolve_bitstream(args.bitstream, args.board)  # a missing or misnamed file: a user error
    except (FlashError, ValueError) as e:
        return _err(str(e), USER_ERROR)
    try:
        cmd = flash(args.bitstream, args.board, dry_run=args.dry_run, to_flash=args.to_flash, loader=args.loader)
    except (FlashError, ValueError) as e:
        return _err(str(e), 1)
    print(shlex.join(cmd) if args.dry_run else f"flashed: {shlex.join(cmd)}")
    return 0


# --- run -------------------------------------------------------------------------------------

def add_run_arguments(p):
    p.add_argument("model", nargs="?", help="the model the bitstream was built from: " + MODEL_HELP)
    p.add_argument("--board", required=True, choices=target_names(), help="target board")
    p.add_argument("--port", help="serial port, e.g. /dev/ttyUSB1 (required unless --simulate)")
    p.add_argument("--simulate", action="store_true",
                   help="no board: run the board's build under Verilator (host link included, at the real "
                        "bit rate, in simulated time) through the same host runtime")
    p.add_argument("--baud", type=BAUD, default=None,
                   help="UART baud rate the bitstream was built with (default: the board's default, as build)")
    p.add_argument("--clock", type=CLOCK, default=None, metavar="MHZ",
                   help="system clock the bitstream was built with (default: the board's default, as build): "
                        "the simulated board's clock, and what the default --baud is divided from")
    add_lanes_argument(p, "lanes the bitstream was built with")
    p.add_argument("--images", "-n", type=COUNT, default=100,
                   help="number of test images of the model's dataset (default 100; digits' split has 360)")
    add_dataset_arguments(p)
    p.add_argument("--timeout", type=TIMEOUT, default=1.0, help=f"seconds per attempt (default 1; {TIMEOUT.allowed()})")
    p.add_argument("--retries", type=RETRIES, default=3,
                   help=f"re-sends after a failed attempt (default 3; {RETRIES.allowed()})")
    p.add_argument("--logits", action="store_true",
                   help="ask for the logits too and compare them with the golden model (default: the class only, "
                        "shorter replies; the RESULT's check still binds it to the image and weights)")
    p.add_argument("--window", type=WINDOW, default=4,
                   help=f"requests in flight (default 4, at most the board's: 2 on the ULX3S, 1 on the iCEBreaker; "
                        f"{WINDOW.allowed()})")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per image")


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


def format_simulated(s):
    cyc, pred, ips = s["cycles_per_image"], s["predicted_cycles_per_image"], s["images_per_second"]
    sim = s["simulated_seconds"]
    lines = [f"simulated {s['board']} ({lanes_text(s['lanes'])}, {s['memory']} weights, {s['clock_mhz']:g} MHz, "
             f"UART {s['baud']} baud): {s['images']} images, accuracy {100 * s['accuracy']:.2f}% "
             f"(golden {100 * s['golden_accuracy']:.2f}%), {s['mismatches']} mismatches against the golden model",
             f"board cycles per image (last pixel to result): mean {cyc['mean']:.0f} (min {cyc['min']}, "
             f"max {cyc['max']}); analytic model {pred['mean']:.0f}",
             f"images/s: {ips['end_to_end']:.1f} end to end (simulated time), {ips['link_bound']:.1f} link-bound, "
             f"{ips['compute']:.0f} compute; {s['window']} request(s) in flight (the board takes "
             f"{s['board_window']}), {'logits and class' if s['logits'] else 'class only'}"]
    if sim["weights"]:
        lines.append(f"weights loaded over the link in {sim['weights']:.3f} s (simulated)")
    lines.append(f"link: {s['retries']} retries, {s['timeouts']} timeouts, NACKs {s['nacks'] or 'none'}, "
                 f"{s['bad_replies']} corrupt replies; simulation took {s['wall_seconds']:.0f} s")
    return "\n".join(lines)


def _run_simulated(args, target, lanes, model, images, labels):
    from .simulate import simulate_board

    _progress(f"building the simulated {target.name} board (Verilator; cached after the first build), then "
              f"{len(images)} images at {args.baud} baud in simulated time")
    summary = simulate_board(model, target.name, images, labels, lanes=lanes, baud=args.baud, clock_mhz=args.clock,
                             timeout=args.timeout, retries=args.retries, logits=args.logits, window=args.window,
                             progress=lambda done, total: _progress(f"{done}/{total}")
                             if args.verbose or done == total or done % 10 == 0 else None)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "results" or args.verbose}, indent=1))
    else:
        print(format_simulated(summary))
    return 0 if summary["mismatches"] == 0 else 1


def run_run(args):
    from ..hdl.accel.report import compile_for_target
    from .sdram_system import refuse_sdram_board_flow
    from ..sim.runners import SimulationFailed, SimulatorNotFound
    from .hostlink import weight_set_crc
    from .inference import board_mismatch, run_images
    from .runtime import HostLink, LinkError, ResultMismatchError, SerialTransport

    try:
        if args.simulate and args.port:
            raise CLIError(f"--port {args.port} and --simulate exclude each other: a simulated board has no port")
        if not args.simulate and not args.port:
            raise CLIError("--port is required (the board's serial port, e.g. /dev/ttyUSB1), "
                           "or --simulate to run the board's build in simulation")
        target = get_target(args.board)
        lanes = resolve_lanes(args.lanes, target.name)
        _, model = load_model_arg(args.model)
        ds = model_dataset_images(model, args, split="test")
        images, labels = ds.images, ds.labels
        check_count("--images", args.images, len(images), f"the {ds.name} test split")
        images, labels = images[:args.images], labels[:args.images]
        # The image size, pixel range, class count, and whether the build keeps its weights in
        # SPRAM (then the host loads them first): the same mapping decision as `spikeforge build`.
        program = compile_for_target(model, lanes, target.device)
        refuse_sdram_board_flow(program, "run")
        img = program.image
        from .top import check_link_settings, default_baud

        check_link_settings(target, args.clock, args.baud)
        if args.baud is None:
            args.baud = default_baud(target, args.clock)
        if args.simulate:
            try:
                return _run_simulated(args, target, lanes, model, images, labels)
            except SimulatorNotFound as e:
                raise CLIError(str(e)) from None
            except SimulationFailed as e:
                return _err(f"the simulated board failed: {str(e).splitlines()[0]} (log: {e.log_path})", 1)
        try:
            transport = SerialTransport(args.port, args.baud)
        except OSError as e:
            cause = e.__cause__ if isinstance(e.__cause__, OSError) else None
            reason = cause.strerror.lower() if cause is not None and cause.strerror else \
                str(e).removeprefix("SerialTransport: ").removeprefix(f"{args.port} ")
            raise CLIError(f"--port {args.port}: cannot open it ({reason}); check that the board is plugged in "
                           "and the device path (ls /dev/ttyUSB* /dev/ttyACM*)") from None
    except (CLIError, ValueError, TypeError) as e:
        return _err(str(e), USER_ERROR)
    except OSError as e:
        return _err(os_error_message(e, doing="cannot read"), USER_ERROR)
    try:
        with transport:
            spram = program.memory.kind == "spram"
            link = HostLink(transport, classes=program.classes, pixels=img.values,
                            max_value=int(img.levels), timeout=args.timeout, retries=args.retries,
                            weight_crc=0 if spram else weight_set_crc(program), logits=args.logits,
                            window=args.window)
            # before the first image: is this board built from this model (protocol version 4)?
            why = board_mismatch(link.hello(), model, program)
            if why:
                return _err(why, 1)
            loaded = None
            if spram:
                words = program.weight_image()
                _progress(f"loading {len(words)} weight words into SPRAM")
                loaded = link.load_weights(words, progress=lambda done, total: _progress(
                    f"  weights {done}/{total}") if done == total or done % 2048 == 0 else None)
            summary = run_images(link, model, images, labels,
                                 progress=(lambda i, line: _progress(line)) if args.verbose else
                                 (lambda i, line: _progress(f"{i + 1}/{len(images)}") if (i + 1) % 20 == 0 else None))
    except (LinkError, ResultMismatchError) as e:
        return _err(str(e), 1)
    summary["weights_loaded"] = None if loaded is None else dataclasses.asdict(loaded)
    if args.json:
        print(json.dumps({k: v for k, v in summary.items() if k != "results" or args.verbose}, indent=1))
    else:
        print(format_run(summary))
    return 0 if summary["logits_match"] == summary["images"] else 1


# --- sweep -----------------------------------------------------------------------------------

def add_sweep_arguments(p):
    p.add_argument("model", nargs="?", help=MODEL_HELP)
    p.add_argument("--board", required=True, choices=target_names(), help="target board")
    p.add_argument("--lanes", type=LANES, nargs="+", required=True, metavar="P",
                   help=f"lane counts to build ({LANES.allowed()} each)")
    p.add_argument("--clock", type=CLOCK, nargs="+", default=None, metavar="MHZ",
                   help="system clocks in MHz (default: the board's default clock)")
    p.add_argument("--seeds", type=SEED, nargs="+", default=[1], metavar="S",
                   help=f"nextpnr placement seeds ({SEED.allowed()} each; default 1)")
    add_cluster_arguments(p, "builds")
    p.add_argument("--timeout", type=BUILD_TIMEOUT, default=3600, metavar="SECONDS",
                   help=f"seconds each build may take (default 3600; {BUILD_TIMEOUT.allowed()}); a tool still "
                        "running then is killed and the point's row says timeout")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder of the sweep: sweep.csv, sweep.json, sweep.png and points/ (one JSON file per "
                        "build, reused when the sweep runs again)")
    add_dataset_arguments(p)


def run_sweep(args):
    from ..sim.cluster import ClusterError, describe, open_client
    from .sweep import format_table, grid, run_sweep as sweep

    try:
        target = get_target(args.board)
        scheduler, workers = cluster_options(args)
        check_output_dir(args.output)
        _, model = load_model_arg(args.model)
        images = analysis_images(model, args)
        points = grid(args.lanes, args.clock, args.seeds)
        plot_problem = None
        try:
            from ..plots import PlotError, check_plot_dir

            check_plot_dir(args.output)
        except PlotError as e:
            plot_problem = str(e)
    except (CLIError, ValueError) as e:
        return _err(str(e), USER_ERROR)
    except OSError as e:
        return _err(os_error_message(e), USER_ERROR)
    try:
        with open_client(scheduler, workers=workers) as client:
            _progress(f"sweep of {len(points)} builds on {target.name} ({describe(client)}); "
                      f"results in {args.output}")
            table = sweep(model, target.name, points, images, args.output, client, timeout=args.timeout,
                          progress=_progress)
    except ClusterError as e:
        return _err(str(e), USER_ERROR)
    except OSError as e:
        return _err(os_error_message(e), USER_ERROR)
    print(format_table(table["rows"]))
    counts = ", ".join(f"{n} {k}" for k, n in sorted(table["counts"].items()))
    print(f"{len(table['rows'])} points ({counts}); {table['built']} run now, {table['reused']} reused, "
          f"{table['seconds']:.0f} s; table: {os.path.join(args.output, 'sweep.csv')}, "
          f"{os.path.join(args.output, 'sweep.json')}")
    if plot_problem:
        _progress(f"sweep.png not written: {plot_problem}")
    elif any(r["luts"] is not None for r in table["rows"]):
        from ..plots import plot_sweep

        for path in plot_sweep(table, args.output):
            print(f"plot: {path}")
    else:
        _progress("sweep.png not written: no point was built")
    rerun = [r for r in table["rows"] if r["status"] in ("failed", "timeout", "error")]
    return 1 if rerun else 0
