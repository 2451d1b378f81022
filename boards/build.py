"""``spikeforge build``: model -> board bitstream, with a resource pre-check and a report.

Stages (one progress line each):

1. compile the model for ``lanes`` lanes (:func:`~spikeforge.hdl.accel.program.compile_model`);
2. resource pre-check with the board's device (:func:`~spikeforge.hdl.accel.report.analyze`):
   a model that does not fit stops here with "needed vs available" (:class:`DoesNotFit`);
3. elaborate :class:`~spikeforge.boards.top.BoardTop` on the amaranth-boards platform and write
   Amaranth's build plan (RTLIL, constraints, the Verilog of the whole top);
4. Yosys, 5. nextpnr, 6. the bitstream packer: the commands of Amaranth's plan
   (``build_top.json``), each run with the tool found by :func:`~spikeforge.toolchain.find_tool`
   (system tool when on PATH, else the YoWASP wheel). nextpnr runs with ``--timing-allow-fail``
   (and ``--router router2 --tmg-ripup`` on ECP5) so that its log can be read; a clock below the requested
   one is then a :class:`TimingFailed` (exit status 3) and no bitstream is written to the output folder unless
   ``allow_timing_fail``.

Outputs in ``out_dir``, published as one set (:mod:`spikeforge.boards.buildset`):
``spikeforge_<board>.bin`` / ``.bit``, ``spikeforge_<board>.v`` (Verilog of the whole board top,
as read by Yosys), ``weights.hex`` (SPRAM builds), ``build_report.json``, the tools' work folder
and logs ``build/``, and last ``build_manifest.json`` with the SHA-256 of each. Everything is
built in a staging folder beside ``out_dir`` and swapped in at the end, so an interrupted or
failed build leaves the previous set untouched (a failed tool's logs stay in the staging folder,
named in the error). The tools run in their own process group, killed when spikeforge gets
SIGINT, SIGTERM or SIGHUP or exits (:mod:`spikeforge.boards.procs`).
"""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from ..devices import DEFAULT_PLACER, DEVICES, LINK_LOGIC, check_placer, get_target
from ..hdl.accel.engine import COPY_ATTR
from ..hdl.accel.report import analyze, fit
from ..modelfile import atomic_write
from ..toolchain import ToolNotFound, find_tool
from . import procs
from .buildset import MANIFEST, REPORT, publish, sha256_file, staging_dir
from .hostlink import link_bound_images_per_second
from .output_registers import absorb_output_registers_file
from .sdram_system import refuse_sdram_board_flow
from .synth import _CELL_CLASSES, NO_RW_CHECK_COMMANDS, critical_path, parse_nextpnr_log
from .top import BoardTop, check_link_settings
from .uart import divisor_json, divisor_text

__all__ = ["BuildError", "BuildTimeout", "DoesNotFit", "TimingFailed", "build_board", "format_report", "precheck"]

#: nextpnr bel -> report resource, per family
_PNR_BELS = {
    "ice40": {"ICESTORM_LC": "logic_cells", "ICESTORM_RAM": "bram", "ICESTORM_SPRAM": "spram",
              "ICESTORM_DSP": "dsp", "SB_IO": "io", "ICESTORM_PLL": "pll"},
    "ecp5": {"TRELLIS_COMB": "lut", "TRELLIS_FF": "ff", "DP16KD": "bram", "MULT18X18D": "dsp",
             "TRELLIS_IO": "io", "EHXPLLL": "pll"},
}


class BuildError(RuntimeError):
    """A build stopped; ``exit_code`` is what the CLI returns (2 pre-check, 3 timing, 1 other)."""

    exit_code = 1


class DoesNotFit(BuildError):
    exit_code = 2


class TimingFailed(BuildError):
    exit_code = 3


class BuildTimeout(BuildError):
    """A tool was still running when the build's time limit (``timeout``) ran out; it was killed."""


def _say(progress, line):
    if progress is not None:
        progress(line)


def precheck(program, target, *, images):
    """Analytic report for ``target``'s device on ``images``; :class:`DoesNotFit` listing every
    resource whose need exceeds the device ("needed vs available") when the model does not fit."""
    analysis = analyze(program, images=images, target=target.device, extra_logic=LINK_LOGIC)
    _refuse_misfit(analysis, target, program.lanes)
    return analysis


def _refuse_misfit(analysis, target, lanes):
    """:class:`DoesNotFit` naming every resource the model needs beyond the device."""
    if not analysis["fits"]:
        raise DoesNotFit(
            f"the model does not fit {target.name} ({target.device}) with {lanes} lanes: "
            + "; ".join(analysis["problems"])
            + " (needed vs available). Try "
            + ("fewer lanes (--lanes) or " if lanes > 1 else "a smaller model or ")
            + "a larger board (ulx3s-85f); nothing was synthesized")


#: Yosys command that keeps the engine's per-lane-group copies of control registers (the wires
#: with the attribute hdl/accel/lanes.py COPY_ATTR) apart: they have the same input, and Yosys
#: would merge them back into one register of full fan-out. Two steps back from the copy's
#: wire: a copy that drives a memory port is an alias of the port's address wire, which its FF
#: drives.
KEEP_COPIES = f"setattr -set keep 1 a:{COPY_ATTR} %ci2 c:* %i"


#: How far past the requested clock nextpnr aims, per family. router2 stops once its own
#: timing estimate meets the target, and the final timing analysis of a 32-lane ULX3S build
#: came out 1-2 % below it (98.45 and 99.2 MHz at 100 with seeds 1 and 3, no failing net left
#: to the router); aiming at 104 MHz gave 102.1 MHz with seed 1. fmax is judged against the
#: requested clock, not this target.
PNR_MARGIN = {"ice40": 0.0, "ecp5": 0.04}


_LPF_FREQUENCY = re.compile(r'^(FREQUENCY (?:NET|PORT) "[^"]*" )([0-9.eE+]+)( HZ;)$', re.M)


def aim_past_clock(lpf, margin):
    """The LPF constraints ``lpf`` with every clock frequency raised by ``margin`` (a fraction):
    the target nextpnr places and routes for. A PLL's output constraint is derived from its
    input's, so the oscillator's line carries the margin to the system clock."""
    if margin == 0:
        return lpf
    out, n = _LPF_FREQUENCY.subn(lambda mt: f"{mt[1]}{float(mt[2]) * (1 + margin):.1f}{mt[3]}", lpf)
    if n == 0:
        raise BuildError("the LPF constraints name no clock frequency (no FREQUENCY line) to aim "
                         "nextpnr past the requested clock")
    return out


def _run_stage(stage, cmd, cwd, env, progress, deadline, log_name):
    """Run one tool; a progress line every 30 s while it runs; the output goes to ``log_name``.
    ``deadline``: ``(time.monotonic() value, the build's limit in s)``: the tool is killed then
    (:class:`BuildTimeout`)."""
    t0 = time.monotonic()
    timeout = max(0.1, deadline[0] - t0)
    log_path = Path(cwd) / log_name
    next_note = [30]

    def tick(elapsed):
        if elapsed >= next_note[0]:
            _say(progress, f"      ... {stage} still running ({elapsed:.0f} s)")
            next_note[0] += 30

    with open(log_path, "wb") as log:
        try:
            proc = procs.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, tick=tick)
        except OSError as e:
            raise BuildError(f"{stage}: cannot start {cmd[0]}: {e}") from e
        except subprocess.TimeoutExpired:
            raise BuildTimeout(f"{stage} was still running when the build's time limit of {deadline[1]:g} s ran "
                               f"out; log: {log_path}") from None
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        raise BuildError(f"{stage} failed (exit {proc.returncode}); command: {' '.join(map(str, cmd))}\n"
                         f"log: {log_path}\n--- last lines ---\n{tail}")
    return seconds


def _system_fmax(fmax_by_clock, target, pll):
    """fmax of the design's clock: nextpnr also reports the oscillator pad feeding a PLL and,
    on iCE40, a constant-driven DSP clock (``$PACKER_GND_NET``); those are not the system clock."""
    clocks = {k: v for k, v in fmax_by_clock.items()
              if "PACKER_GND" not in k and not (pll and target.clock_resource in k)}
    clocks = clocks or fmax_by_clock
    return min(clocks.values()) if clocks else None


def _yosys_counts(stat_path, family):
    stat = json.loads(Path(stat_path).read_text())
    cells = stat.get("design", {}).get("num_cells_by_type")
    if cells is None:
        cells = {}
        for mod in stat.get("modules", {}).values():
            for k, v in mod.get("num_cells_by_type", {}).items():
                cells[k] = cells.get(k, 0) + v
    counts = dict(lut=0, ff=0, carry=0, bram=0, spram=0, dsp=0, lutram=0)
    for cell, n in cells.items():
        for pattern, kind in _CELL_CLASSES[family]:
            if pattern.match(cell):
                counts[kind] += n
    if family == "ecp5":
        counts["lut"] += 2 * counts["carry"]  # a CCU2C takes two LUT4 positions
    return counts, {k: v for k, v in sorted(cells.items()) if not k.startswith("$")}


def build_board(model, board, *, images, lanes=None, clock_mhz=None, baud=None, out_dir="build", seed=1,
                allow_timing_fail=False, progress=print, timeout=3600, placer=None):
    """Build a bitstream of ``model`` for ``board``; returns the report (a JSON-able dict).
    ``images``: the images of the analytic model's cycle counts (the command line's: the first
    16 test images).

    Raises :class:`DoesNotFit` (pre-check), :class:`TimingFailed` (fmax below the clock),
    :class:`BuildError` (a tool failed or is missing), ``ValueError`` (bad board, clock, baud),
    :class:`~spikeforge.hdl.accel.program.MappingError` (the model cannot be mapped),
    :class:`~spikeforge.boards.procs.Interrupted` (SIGINT, SIGTERM or SIGHUP: the tools are
    killed, the staging folder removed, ``out_dir`` as it was). ``timeout``: seconds the whole
    build may take; a tool still running then is killed (:class:`BuildTimeout`). ``placer``:
    nextpnr's placer (:data:`PLACERS`; None: the family's :data:`DEFAULT_PLACER`).
    """
    check_placer(placer)
    stage_dir = staging_dir(out_dir)
    with procs.guard():
        try:
            return _build_board(model, board, images=images, lanes=lanes, clock_mhz=clock_mhz, baud=baud,
                                out_dir=out_dir, stage_dir=stage_dir, seed=seed, allow_timing_fail=allow_timing_fail,
                                progress=progress, timeout=timeout, placer=placer)
        except BuildError:
            raise      # published (TimingFailed) or a tool failed: its logs stay in the staging folder
        except BaseException:
            shutil.rmtree(stage_dir, ignore_errors=True)
            raise


def _build_board(model, board, *, images, lanes, clock_mhz, baud, out_dir, stage_dir, seed, allow_timing_fail, progress,
                 timeout, placer):
    target = get_target(board)
    placer = placer or DEFAULT_PLACER[target.family]
    if lanes is None:
        lanes = target.default_lanes
    check_link_settings(target, clock_mhz, baud)  # before anything is compiled (ValueError)
    dev = DEVICES[target.device]
    out_dir = Path(out_dir)
    t_all = time.monotonic()
    deadline = (t_all + timeout, timeout)
    seconds = {}
    stages = 6

    t0 = time.monotonic()
    _say(progress, f"[1/{stages}] compile the model for {lanes} lanes")
    # The one fit check of `info --target` and `generate --target` too (memories and logic,
    # host link included).
    program, analysis = fit(model, lanes, target.name, images=images)
    refuse_sdram_board_flow(program, "build")
    spram = program.memory.kind == "spram"
    if spram:
        _say(progress, f"      SPRAM mapping: integer memory in {program.memory.int_banks} SPRAM banks, "
                       f"weights ({program.memory.weight_words} words) in SPRAM, loaded by the host "
                       "at start-up")
    seconds["compile"] = time.monotonic() - t0

    t0 = time.monotonic()
    _say(progress, f"[2/{stages}] resource pre-check on {target.device} ({target.name})")
    _refuse_misfit(analysis, target, lanes)
    seconds["precheck"] = time.monotonic() - t0
    _say(progress, f"      fits: {analysis['device']['bram_blocks']}/{dev.totals['bram']} block RAMs, "
                   f"{analysis['device']['spram_blocks']}/{dev.totals['spram']} SPRAMs, "
                   + (f"about {analysis['logic_estimate']['cells']}/{dev.totals['lut']} logic cells (estimate)"
                      if target.family == "ice40" else
                      f"about {analysis['logic_estimate']['lut']}/{dev.totals['lut']} LUTs (estimate)"))

    t0 = time.monotonic()
    top = BoardTop(target, program, clock_mhz=clock_mhz, baud=baud)
    baud = top.baud       # None: the board's default (top.default_baud)
    clk = top.clock
    _say(progress, f"[3/{stages}] elaborate the board top: {clk.mhz:g} MHz "
                   f"({'PLL from ' + format(target.osc_mhz, 'g') + ' MHz' if clk.pll else 'oscillator'}), "
                   f"UART {baud} baud (divisor {divisor_text(top.divisor)})")
    tools = {}
    try:
        for name in ("yosys", f"nextpnr-{target.family}", "icepack" if target.family == "ice40" else "ecppack"):
            tools[name] = find_tool(name)
    except ToolNotFound as e:
        raise BuildError(str(e)) from e
    # (The Verilog is written by a separate Yosys run below: written from the synthesis script,
    # it changed the design's order enough to trip an ABC9 assertion of Yosys 0.70.)
    overrides = dict(script_after_read="\n".join([KEEP_COPIES, *NO_RW_CHECK_COMMANDS]),
                     script_after_synth="tee -q -o stat.json stat -json",
                     nextpnr_opts=f"--timing-allow-fail --seed {int(seed)} --placer {placer} --report timing.json")
    if target.family == "ice40":
        # (-dff, abc9 seeing the flip-flops, gave the default model 51 fewer cells and about
        # 2.7 MHz, but YoWASP's WebAssembly Yosys traps with "call stack exhausted" on small
        # models with it: not used.)
        overrides["synth_opts"] = "-dsp"
    else:
        # router1 did not finish a 32-lane ULX3S build in 40 minutes; router2 routes it in 3.
        # Its timing-driven rip-up re-routes the failing paths' nets: the 32-lane build went
        # from 80.1 to 99.4 MHz with it (the same netlist and seed), in the same time.
        overrides["nextpnr_opts"] += " --router router2 --tmg-ripup"
    platform = target.make_platform()
    plan = platform.prepare(top, name="top", **overrides)
    margin = PNR_MARGIN[target.family]
    if margin:
        plan.files["top.lpf"] = aim_past_clock(plan.files["top.lpf"], margin)
    if stage_dir.exists():
        shutil.rmtree(stage_dir)      # left by an earlier build that failed
    work = stage_dir / "build"
    plan.extract(str(work))
    commands = json.loads(plan.files["build_top.json"])["commands"]
    seconds["elaborate"] = time.monotonic() - t0

    env = dict(os.environ)
    absorbed = []   # block RAM read ports given their read register (ECP5, output_registers.py)
    for step, cmd in enumerate(commands):
        tool = cmd[0]
        if tool not in tools:
            raise BuildError(f"Amaranth's build plan runs {tool!r}, which this flow does not know "
                             f"(known: {', '.join(tools)})")
        stage = {"yosys": "Yosys synthesis", "icepack": "icepack", "ecppack": "ecppack"}.get(
            tool, "nextpnr place and route")
        _say(progress, f"[{4 + step}/{stages}] {stage} ({Path(tools[tool]).name})")
        seconds[tool] = _run_stage(stage, [tools[tool], *cmd[1:]], work, env, progress, deadline, f"{tool}.out")
        _say(progress, f"      done in {seconds[tool]:.1f} s")
        if tool == "yosys" and target.family == "ecp5":
            try:
                absorbed = absorb_output_registers_file(work / "top.json")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise BuildError(f"Yosys's netlist {work / 'top.json'} cannot be read for the block RAM "
                                 f"output registers: {e}") from e
            _say(progress, f"      block RAM output registers: {len(absorbed)} read ports take their "
                           f"read register ({sum(n for _c, _p, n in absorbed)} flip-flops)")
    seconds["verilog"] = _run_stage("write the Verilog", [tools["yosys"], "-q", "-p",
                                    "read_rtlil top.il; write_verilog -norename top_rtl.v"],
                                    work, env, progress, deadline, "verilog.out")

    counts, cells = _yosys_counts(work / "stat.json", target.family)
    moved = sum(n for _c, _p, n in absorbed)   # flip-flops now inside block RAMs (OUTREG)
    counts["ff"] -= moved
    if moved and "TRELLIS_FF" in cells:
        cells["TRELLIS_FF"] -= moved
    util, fmax_by_clock = parse_nextpnr_log((work / "top.tim").read_text(errors="replace"))
    placed = {}
    for bel, (used, total) in util.items():
        if bel in _PNR_BELS[target.family]:
            placed[_PNR_BELS[target.family][bel]] = {"used": used, "available": total}
    totals = dict(dev.totals)
    resources = {k: {"used": counts[k], "available": totals[k]} for k in ("lut", "ff", "bram", "spram", "dsp")}
    fmax = _system_fmax(fmax_by_clock, target, clk.pll is not None)
    timing_met = fmax is not None and fmax >= clk.mhz
    try:
        path = critical_path(json.loads((work / "timing.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        path = None  # an older nextpnr without --report: the log still has it

    cyc = analysis["cycles_per_image"]
    # the host link as `run` uses it by default: the class only (no --logits), the board's window
    window = top.system.window
    link_ips = link_bound_images_per_second(baud, top.system.pixels, program.classes,
                                            max_value=top.system.max_value, window=window)
    compute_ips = clk.mhz * 1e6 / cyc["mean"]
    # one request in flight: the line and the engine take turns; two: the next request is on the
    # line while the engine computes (docs/hostlink.md), the slower of the two bounds
    end_to_end = 1 / (1 / compute_ips + 1 / link_ips) if window == 1 else min(compute_ips, link_ips)
    report = {
        "board": target.name, "device": target.device, "lanes": lanes,
        "memory_map": analysis["memory_map"],
        "clock": clk.as_dict(), "fmax_mhz": fmax, "fmax_by_clock": fmax_by_clock, "timing_met": timing_met,
        "pnr_target_mhz": clk.mhz * (1 + margin), "placer": placer, "seed": int(seed),
        "critical_path": path,
        "baud": baud, "uart_divisor": divisor_json(top.divisor),
        "resources": resources, "placed": placed, "cells": cells,
        "bram_output_registers": {"read_ports": len(absorbed), "flip_flops": moved},
        "cycles_per_image": cyc,
        "images_per_second": {"compute": compute_ips,
                              "compute_at_fmax": (fmax * 1e6 / cyc["mean"]) if fmax else None,
                              "uart_link": link_ips, "end_to_end": end_to_end, "window": window},
        "precheck": {"bram_blocks": analysis["device"]["bram_blocks"],
                     "spram_blocks": analysis["device"]["spram_blocks"],
                     "logic_estimate": analysis["logic_estimate"]},
        "files": {}, "build_dir": str(out_dir / "build"), "seconds": {}, "sha256": {},
    }

    bit_name = f"spikeforge_{target.name}{Path(target.bitstream).suffix}"
    v_name = f"spikeforge_{target.name}.v"
    names = {"verilog": v_name, "report": REPORT}
    atomic_write(stage_dir / v_name, (work / "top_rtl.v").read_bytes())
    if spram:  # what `spikeforge run` loads into the weight SPRAM after configuration
        names["weights"] = "weights.hex"
        atomic_write(stage_dir / "weights.hex", "".join(f"{int(w):04x}\n" for w in program.weight_image()).encode())
    if timing_met or allow_timing_fail:
        names["bitstream"] = bit_name
        atomic_write(stage_dir / bit_name, (work / target.bitstream).read_bytes())
    files = {k: out_dir / v for k, v in names.items()}
    report["files"] = {**{k: str(v) for k, v in files.items()}, "manifest": str(out_dir / MANIFEST)}
    report["sha256"] = {k: sha256_file(stage_dir / v) for k, v in names.items() if k != "report"}
    seconds["total"] = time.monotonic() - t_all
    report["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
    atomic_write(stage_dir / REPORT, json.dumps(report, indent=1).encode())
    # an older bitstream (or weights) never stays beside this build's report
    publish(stage_dir, out_dir, list(names.values()), stale=[bit_name, "weights.hex"], board=target.name)
    if not timing_met and not allow_timing_fail:
        got = f"{fmax:.2f} MHz" if fmax is not None else "no fmax reported"
        err = TimingFailed(f"timing failed on {target.name}: fmax {got} < requested clock {clk.mhz:g} MHz; "
                           f"no bitstream written (report: {files['report']})"
                           + (f"; critical path {path['from']} -> {path['to']}, {path['delay_ns']:.2f} ns"
                              if path else "") + ". Build again with "
                           f"--clock {int(fmax) if fmax else 'LOWER'} or fewer lanes")
        err.report = report
        raise err
    return report


def format_report(r):
    """The build report as a readable table."""
    lines = [f"board {r['board']} ({r['device']}), {r['lanes']} lanes"]
    clk = r["clock"]
    src = f"PLL from {clk['oscillator_mhz']:g} MHz" if clk["source"] == "pll" else "oscillator"
    fmax = f"{r['fmax_mhz']:.2f} MHz" if r["fmax_mhz"] is not None else "n/a"
    aim = r.get("pnr_target_mhz")
    aim = f", place and route aimed at {aim:.4g} MHz" if aim and aim != clk["mhz"] else ""
    if r.get("placer"):
        aim += f", nextpnr placer {r['placer']} seed {r['seed']}"
    lines.append(f"clock {clk['mhz']:g} MHz ({src}{aim}); fmax {fmax}: "
                 + ("timing met" if r["timing_met"] else "TIMING FAILED"))
    cp = r.get("critical_path")
    if cp:
        lines.append(f"critical path: {cp['from']} -> {cp['to']}: {cp['delay_ns']:.2f} ns "
                     f"({cp['logic_ns']:.2f} logic, {cp['routing_ns']:.2f} routing)"
                     + (f", from {', '.join(cp['sources'][:3])}" if cp["sources"] else ""))
    lines.append(f"{'resource':<10}{'used':>9}{'available':>11}{'%':>7}")
    for k, v in r["resources"].items():
        pct = f"{100 * v['used'] / v['available']:.1f}%" if v["available"] else "-"
        lines.append(f"{k.upper():<10}{v['used']:>9}{v['available']:>11}{pct:>7}")
    moved = r.get("bram_output_registers") or {}
    if moved.get("read_ports"):
        lines.append(f"block RAM output registers: {moved['read_ports']} read ports "
                     f"({moved['flip_flops']} flip-flops moved into their block RAMs)")
    if r.get("placed"):
        lines.append("placed (nextpnr): " + ", ".join(f"{k} {v['used']}/{v['available']}"
                                                     for k, v in r["placed"].items()))
    cyc = r["cycles_per_image"]
    ips = r["images_per_second"]
    lines.append(f"cycles per image (analytic): mean {cyc['mean']:.0f} (min {cyc['min']}, max {cyc['max']})")
    lines.append(f"images/s at {clk['mhz']:g} MHz: {ips['compute']:.0f} compute, "
                 f"{ips['uart_link']:.0f} UART-bound at {r['baud']} baud, {ips['end_to_end']:.0f} end to end "
                 f"(estimate, {ips.get('window', 1)} request(s) in flight; measured: spikeforge run --simulate)")
    for k, v in r["files"].items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines)
