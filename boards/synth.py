"""Out-of-context synthesis and place & route of one Amaranth component.

A unit's ports are usually wider than the device has pins, so :class:`PinHarness` wraps it:
every input bit of the unit comes from a shift register fed from one pin (``din``), and all
output bits are XOR-reduced into one registered pin (``dout``).  Nothing can be optimized
away and nextpnr can place the design with four pins (``clk``, ``rst``, ``din``, ``dout``).
The harness costs one flip-flop per input bit plus one, and about one LUT per three output
bits; :class:`SynthResult` reports ``harness_ff`` so it can be subtracted.

Flow: Amaranth -> RTLIL -> ``yosys synth_ice40 -dsp`` / ``synth_ecp5`` (+ ``stat -json``) ->
``nextpnr-ice40`` / ``nextpnr-ecp5`` with unconstrained pins.  Tools come from
:mod:`spikeforge.toolchain` (system first, YoWASP wheels otherwise).
"""

import json
import re
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from amaranth import Cat, Module, Signal
from amaranth.hdl import Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..devices import DEVICES, Device
from ..hdl.accel.memories import NO_RW_CHECK
from . import procs
from .output_registers import absorb_output_registers_file
from ..toolchain import find_tool

__all__ = ["DEVICES", "Device", "PinHarness", "SynthResult", "SynthError", "synthesize", "parse_nextpnr_log",
           "critical_path"]


def _no_rw_check_commands(max_reads=4, max_writes=2):
    """Yosys commands giving the memories marked :data:`~spikeforge.hdl.accel.memories.NO_RW_CHECK`
    an undefined read/write collision (``RD_COLLISION_X_MASK``, one bit per read and write
    port pair): their block RAMs then need no emulation of the old word. Amaranth's memories
    are collected into ``$mem_v2`` cells first (after ``proc``: ``memory_collect`` skips
    modules with processes); one command per port count, as the mask's width must match."""
    cmds = ["proc", "memory_collect"]
    for r in range(1, max_reads + 1):
        for w in range(1, max_writes + 1):
            cmds.append(f"setparam -set RD_COLLISION_X_MASK {r * w}'b{'1' * (r * w)} "
                        f"a:{NO_RW_CHECK} t:$mem_v2 %i r:RD_PORTS={r} %i r:WR_PORTS={w} %i")
    return cmds


#: See :func:`_no_rw_check_commands`; run after reading the design, before synthesis.
NO_RW_CHECK_COMMANDS = _no_rw_check_commands()


# yosys cell type -> resource, per family
_CELL_CLASSES = {
    "ice40": [
        (re.compile(r"^SB_LUT4$"), "lut"),
        (re.compile(r"^SB_DFF"), "ff"),
        (re.compile(r"^SB_CARRY$"), "carry"),
        (re.compile(r"^SB_RAM40_4K"), "bram"),
        (re.compile(r"^SB_SPRAM256KA$"), "spram"),
        (re.compile(r"^SB_MAC16$"), "dsp"),
    ],
    "ecp5": [
        (re.compile(r"^LUT4$"), "lut"),
        (re.compile(r"^TRELLIS_FF$"), "ff"),
        (re.compile(r"^CCU2C$"), "carry"),  # each is two LUT4s with carry logic
        (re.compile(r"^TRELLIS_DPR16X4$"), "lutram"),
        (re.compile(r"^(DP16KD|PDPW16KD)$"), "bram"),
        (re.compile(r"^MULT18X18D$"), "dsp"),
    ],
}

# nextpnr bel type -> resource, for the device totals
_BEL_CLASSES = {
    "ICESTORM_LC": "lc", "ICESTORM_RAM": "bram", "ICESTORM_SPRAM": "spram", "ICESTORM_DSP": "dsp",
    "TRELLIS_COMB": "lut", "TRELLIS_FF": "ff", "DP16KD": "bram", "MULT18X18D": "dsp",
}


class SynthError(RuntimeError):
    """A synthesis or place & route step failed."""


class PinHarness(wiring.Component):
    """Feeds all inputs of ``unit`` from a shift register on ``din``; XORs its outputs into ``dout``."""

    din: In(1)
    dout: Out(1)

    def __init__(self, unit):
        try:
            self._collect_ports(unit)
        except Exception:
            self._MustUse__used = True  # a harness that could not be built is not a forgotten design
            raise
        super().__init__()

    def _collect_ports(self, unit):
        if not isinstance(getattr(unit, "signature", None), wiring.Signature):
            raise TypeError(f"synthesis needs a wiring.Component with a signature, got {unit!r}")
        self.unit = unit
        self.inputs, self.outputs = [], []
        for path, member, value in unit.signature.flatten(unit):
            value = Value.cast(value)
            (self.inputs if member.flow == In else self.outputs).append(("__".join(map(str, path)), value))
        self.input_bits = sum(len(v) for _, v in self.inputs)
        self.output_bits = sum(len(v) for _, v in self.outputs)
        if self.output_bits == 0:
            raise ValueError(f"unit {type(unit).__name__} has no output ports: synthesis would remove it all")

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = self.unit
        if self.input_bits:
            chain = Signal(self.input_bits)
            if self.input_bits == 1:
                m.d.sync += chain.eq(self.din)
            else:
                m.d.sync += chain.eq(Cat(self.din, chain[:-1]))
            offset = 0
            for _name, value in self.inputs:
                m.d.comb += value.eq(chain[offset:offset + len(value)])
                offset += len(value)
        m.d.sync += self.dout.eq(Cat(*(v for _, v in self.outputs)).xor())
        return m


@dataclass
class SynthResult:
    """Resources used by a unit (including its :class:`PinHarness`) on one device."""

    device: str
    unit: str
    lut: int = 0
    ff: int = 0
    carry: int = 0
    bram: int = 0
    spram: int = 0
    dsp: int = 0
    lutram: int = 0
    bram_output_registers: int = 0  # ECP5 read ports given their read register (OUTREG)
    totals: dict = field(default_factory=dict)
    cells: dict = field(default_factory=dict)  # yosys cell type -> count
    utilization: dict = field(default_factory=dict)  # nextpnr bel type -> [used, available]
    fmax_mhz: dict = field(default_factory=dict)  # clock net -> MHz (after routing)
    harness_ff: int = 0
    input_bits: int = 0
    output_bits: int = 0
    seconds: dict = field(default_factory=dict)  # stage -> wall seconds
    workdir: str = ""

    @property
    def fmax(self):
        """The lowest clock fmax in MHz (None if nextpnr reported none)."""
        return min(self.fmax_mhz.values()) if self.fmax_mhz else None

    def fits(self):
        return all(getattr(self, k) <= v for k, v in self.totals.items() if k in ("lut", "ff", "bram", "spram", "dsp"))

    def as_dict(self):
        d = asdict(self)
        d["fmax"] = self.fmax
        d["fits"] = self.fits()
        return d


def _run(stage, cmd, cwd, log_path, timeout):
    try:   # in its own process group, killed on SIGINT / SIGTERM / SIGHUP or exit (procs.py)
        with procs.guard():
            proc = procs.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SynthError(f"{stage} did not finish within {timeout} s: {' '.join(cmd)}") from None
    Path(log_path).write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
        raise SynthError(f"{stage} failed (exit {proc.returncode}); command: {' '.join(cmd)}\n"
                         f"full log: {log_path}\n--- last lines ---\n{tail}")
    return proc.stdout + proc.stderr


_UTIL_RE = re.compile(r"^Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+\d+%")
_FMAX_RE = re.compile(r"Max frequency for clock\s+'([^']+)':\s+([0-9.]+) MHz")


def parse_nextpnr_log(text):
    """(utilization {bel: [used, total]}, fmax {clock: MHz}) from a nextpnr log; last values win."""
    util, fmax = {}, {}
    for line in text.splitlines():
        m = _UTIL_RE.match(line)
        if m:
            util[m.group(1)] = [int(m.group(2)), int(m.group(3))]
            continue
        m = _FMAX_RE.search(line)
        if m:
            fmax[m.group(1)] = float(m.group(2))
    return util, fmax


def critical_path(report):
    """The longest register-to-register path of a nextpnr ``--report`` JSON (a dict), summed
    up: ``{"clock", "from", "to", "delay_ns", "logic_ns", "routing_ns", "sources", "steps"}``;
    ``None`` when the report has none. ``sources``: the design's own source lines on the path
    (Amaranth records where each net was defined), not the toolchain's cell library.
    ``steps``: ``[type, cell or net, ns]`` in order."""
    best = None
    for cp in report.get("critical_paths", []):
        if not (cp.get("from", "").startswith("posedge") and cp.get("to", "").startswith("posedge")):
            continue
        path = cp.get("path", [])
        total = sum(step["delay"] for step in path)
        if path and (best is None or total > best[0]):
            best = (total, cp)
    if best is None:
        return None
    total, cp = best
    path = cp["path"]
    sources = []
    for step in path:
        for src in step.get("sources", []):
            if "/share/" not in src and src not in sources:
                sources.append(src)
    kinds = {}
    for step in path:
        kinds[step["type"]] = kinds.get(step["type"], 0.0) + step["delay"]
    return {
        "clock": cp["to"].removeprefix("posedge "),
        "from": path[0]["from"]["cell"], "to": path[-1]["to"]["cell"],
        "delay_ns": round(total, 2), "routing_ns": round(kinds.get("routing", 0.0), 2),
        "logic_ns": round(total - kinds.get("routing", 0.0), 2),
        "sources": sources,
        "steps": [[step["type"], step.get("net", step["to"]["cell"]), round(step["delay"], 2)] for step in path],
    }


def synthesize(unit, device="ice40-up5k", *, workdir=None, seed=1, freq_mhz=None, timeout=1800, progress=print):
    """Synthesize and place & route ``unit`` (a ``wiring.Component``) for ``device``.

    ``device`` is one of :data:`DEVICES`.  ``workdir`` defaults to a new temporary folder.
    ``freq_mhz`` sets nextpnr's timing target (timing failures never stop the run; read
    ``fmax``).  ``progress`` is called with one line per stage (``None`` for silence).
    Returns a :class:`SynthResult`; raises :class:`SynthError` when a tool fails.
    """
    from amaranth.back import rtlil

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; supported: {', '.join(DEVICES)}")
    dev = DEVICES[device]
    say = progress or (lambda line: None)
    yosys = find_tool("yosys")
    nextpnr = find_tool(f"nextpnr-{dev.family}")
    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix=f"spikeforge-synth-{device}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    unit_name = type(unit).__name__
    result = SynthResult(device=device, unit=unit_name, totals=dict(dev.totals), workdir=str(workdir))
    t_all = time.monotonic()

    t0 = time.monotonic()
    harness = PinHarness(unit)
    (workdir / "top.il").write_text(rtlil.convert(harness, name="top"))
    result.seconds["rtlil"] = round(time.monotonic() - t0, 2)
    result.harness_ff = harness.input_bits + 1
    result.input_bits, result.output_bits = harness.input_bits, harness.output_bits
    say(f"[synth {device}] {unit_name}: {harness.input_bits} input bits, {harness.output_bits} output bits "
        f"-> RTLIL ({result.seconds['rtlil']:.1f} s)")

    t0 = time.monotonic()
    script = (f"read_rtlil top.il; {'; '.join(NO_RW_CHECK_COMMANDS)}; {dev.synth_command} -top top -json top.json; "
              "tee -q -o stat.json stat -json")
    _run("yosys synthesis", [yosys, "-q", "-p", script], workdir, workdir / "yosys.log", timeout)
    result.seconds["yosys"] = round(time.monotonic() - t0, 2)
    stat = json.loads((workdir / "stat.json").read_text())
    cells = stat.get("design", {}).get("num_cells_by_type") or stat["modules"]["\\top"]["num_cells_by_type"]
    result.cells = {k: v for k, v in sorted(cells.items()) if not k.startswith("$")}
    for cell, count in cells.items():
        for pattern, kind in _CELL_CLASSES[dev.family]:
            if pattern.match(cell):
                setattr(result, kind, getattr(result, kind) + count)
    if dev.family == "ecp5":
        result.lut += 2 * result.carry  # a CCU2C occupies two LUT4 positions
        absorbed = absorb_output_registers_file(workdir / "top.json")
        result.bram_output_registers = len(absorbed)
        result.ff -= sum(n for _c, _p, n in absorbed)
    say(f"[synth {device}] yosys: {result.lut} LUT, {result.ff} FF, {result.bram} BRAM, {result.spram} SPRAM, "
        f"{result.dsp} DSP ({result.seconds['yosys']:.1f} s)")

    t0 = time.monotonic()
    cmd = [nextpnr, *dev.nextpnr_args, "--json", "top.json", "--seed", str(seed), "--timing-allow-fail",
           "--report", "report.json", "-l", "nextpnr.log"]
    cmd.append("--pcf-allow-unconstrained" if dev.family == "ice40" else "--lpf-allow-unconstrained")
    if freq_mhz is not None:
        cmd += ["--freq", str(freq_mhz)]
    text = _run("nextpnr place & route", cmd, workdir, workdir / "nextpnr.out", timeout)
    result.seconds["nextpnr"] = round(time.monotonic() - t0, 2)
    result.utilization, result.fmax_mhz = parse_nextpnr_log(text)
    for bel, (_used, total) in result.utilization.items():
        kind = _BEL_CLASSES.get(bel)
        if kind == "lc":
            result.totals["lut"] = result.totals["ff"] = total
        elif kind:
            result.totals[kind] = total
    result.seconds["total"] = round(time.monotonic() - t_all, 2)
    fmax = f"{result.fmax:.1f} MHz" if result.fmax else "no clock"
    say(f"[synth {device}] nextpnr: fmax {fmax} "
        f"({result.seconds['nextpnr']:.1f} s; total {result.seconds['total']:.1f} s)")
    return result
