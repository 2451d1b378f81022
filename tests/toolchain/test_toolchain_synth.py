"""Tool discovery and out-of-context synthesis + place & route (spikeforge.boards)."""

import os

import pytest
from amaranth.hdl import Fragment
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from demo_units import AffineStage, WideXor

from spikeforge.boards.synth import DEVICES, PinHarness, critical_path, parse_nextpnr_log, synthesize
from spikeforge.toolchain import ToolNotFound, find_tool, openfpgaloader_problem, toolchain_env

NEXTPNR_LOG = """\
Info: Device utilisation:
Info: \t         ICESTORM_LC:      20/   5280     0%
Info: \t        ICESTORM_RAM:       0/     30     0%
Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 90.00 MHz (PASS at 12.00 MHz)
Info: Device utilisation:
Info: \t         ICESTORM_LC:      22/   5280     0%
Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 115.45 MHz (PASS at 12.00 MHz)
"""


def test_toolchain_env_covers_every_tool():
    env = toolchain_env(required=True)
    assert set(env) == {"YOSYS", "NEXTPNR_ICE40", "NEXTPNR_ECP5", "ICEPACK", "ECPPACK", "OPENFPGALOADER"}
    assert all(os.path.isabs(p) and os.access(p, os.X_OK) for p in env.values())
    problem = openfpgaloader_problem()
    assert problem is None or "openFPGALoader" in problem


def test_tool_override_and_unknown_names(monkeypatch, tmp_path):
    monkeypatch.setitem(os.environ, "NEXTPNR_ECP5", str(tmp_path / "missing"))
    with pytest.raises(ToolNotFound, match="NEXTPNR_ECP5"):
        find_tool("nextpnr-ecp5")
    with pytest.raises(ValueError, match="unknown tool 'vivado'"):
        find_tool("vivado")


def test_parse_nextpnr_log_keeps_last_values():
    util, fmax = parse_nextpnr_log(NEXTPNR_LOG)
    assert util == {"ICESTORM_LC": [22, 5280], "ICESTORM_RAM": [0, 30]}
    assert fmax == {"clk$SB_IO_IN_$glb_clk": 115.45}


def _step(kind, src, dst, delay, net=None, sources=()):
    step = {"type": kind, "delay": delay, "from": {"cell": src, "port": "Q", "loc": [0, 0]},
            "to": {"cell": dst, "port": "D", "loc": [1, 1]}}
    if net:
        step.update(net=net, sources=list(sources))
    return step


def test_critical_path_sums_the_longest_clocked_path():
    """nextpnr's ``--report`` JSON: the clock-to-clock path with the largest total wins (an
    I/O path is longer here and is ignored), clock-to-out counts as logic (as nextpnr's log
    counts it), and the toolchain's own cell library is not a source line."""
    report = {"critical_paths": [
        {"from": "posedge clk", "to": "posedge clk", "path": [
            _step("clk-to-q", "a_FF", "a_FF", 0.5),
            _step("routing", "a_FF", "lut", 6.0, "a", ["/x/hdl/accel/engine.py:10"]),
            _step("logic", "lut", "lut", 0.25),
            _step("routing", "lut", "b_FF", 1.25, "lut_Z", ["/y/share/lattice/cells_map_trellis.v:108"]),
            _step("setup", "b_FF", "b_FF", 0.0)]},
        {"from": "posedge clk", "to": "posedge clk", "path": [_step("clk-to-q", "c", "c", 0.5),
                                                              _step("routing", "c", "d", 1.0, "c")]},
        {"from": "<async>", "to": "posedge clk", "path": [_step("routing", "pin", "e", 20.0, "pin")]},
    ]}
    cp = critical_path(report)
    assert (cp["clock"], cp["from"], cp["to"]) == ("clk", "a_FF", "b_FF")
    assert (cp["delay_ns"], cp["logic_ns"], cp["routing_ns"]) == (8.0, 0.75, 7.25)
    assert cp["sources"] == ["/x/hdl/accel/engine.py:10"]
    assert cp["steps"][1] == ["routing", "a", 6.0] and len(cp["steps"]) == 5
    assert critical_path({"critical_paths": report["critical_paths"][2:]}) is None
    assert critical_path({}) is None


def test_harness_counts_port_bits_and_rejects_outputless_units():
    h = PinHarness(AffineStage(width=8))
    assert (h.input_bits, h.output_bits) == (8 + 1 + 1, 8 + 1 + 1)
    Fragment.get(h, None)  # elaborates (the harness must be usable as a design)

    class Sink(wiring.Component):
        a: In(4)

        def elaborate(self, platform):
            from amaranth import Module
            return Module()

    sink = Sink()
    with pytest.raises(ValueError, match="no output ports"):
        PinHarness(sink)
    Fragment.get(sink, None)
    with pytest.raises(ValueError, match="unknown device 'ice40-hx8k'"):
        synthesize(None, "ice40-hx8k")


def test_synth_ice40_up5k(tmp_path):
    lines = []
    r = synthesize(WideXor(width=64), "ice40-up5k", workdir=tmp_path, progress=lines.append)
    assert len(lines) == 3 and all(line.startswith("[synth ice40-up5k]") for line in lines)
    assert r.totals == DEVICES["ice40-up5k"].totals
    # 2 x 64 input bits from the shift register, 64 + 16 registered outputs of the unit
    assert r.harness_ff == 129 and r.ff >= 129 + 64  # the 16-bit accumulator may sit inside the DSP
    assert r.lut > 64 and r.dsp == 1  # the 16x16 multiply lands in an SB_MAC16
    assert r.utilization["ICESTORM_LC"][1] == 5280
    assert r.fmax is not None and 5 < r.fmax < 500
    d = r.as_dict()
    assert d["fits"] and d["fmax"] == r.fmax and d["device"] == "ice40-up5k"


def test_synth_ecp5_85f(tmp_path):
    r = synthesize(AffineStage(width=8), "ecp5-85f", workdir=tmp_path, progress=None)
    assert r.totals["lut"] == 83640 and r.totals["dsp"] == 156
    assert r.utilization["TRELLIS_FF"][0] >= r.harness_ff
    assert r.lut > 0 and r.fmax is not None and r.fmax > 20
