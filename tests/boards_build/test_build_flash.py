"""spikeforge build / flash (boards.cli handlers): the resource pre-check refuses a model that
does not fit before any synthesis; flash errors are one clear line and --dry-run prints the
exact command; PLL and clock planning; a ULX3S build of a small model (slow)."""

import argparse
import json
import shlex
from pathlib import Path

import pytest

from spikeforge.boards import cli as bcli
from spikeforge.boards.build import DoesNotFit, precheck
from spikeforge.boards.flash import FlashError, flash, resolve_bitstream
from spikeforge.devices import get_target
from spikeforge.toolchain import find_tool, openfpgaloader_problem
from spikeforge.boards.top import default_baud, ecp5_pll, ice40_pll, plan_clock
from spikeforge.boards.uart import baud_divisor
from spikeforge.builder import random_model
from spikeforge.data import load_digits_split
from spikeforge.hdl.accel.program import compile_model
from spikeforge.modelfile import save_model


def _parse(add, argv):
    p = argparse.ArgumentParser()
    add(p)
    return p.parse_args(argv)


def test_build_precheck_refuses_default_model_on_icebreaker(tmp_path, capsys, monkeypatch):
    import spikeforge.boards.build as build

    def no_synthesis(*a, **k):
        raise AssertionError("synthesis must not start when the pre-check fails")

    monkeypatch.setattr(build, "_run_stage", no_synthesis)
    args = _parse(bcli.add_build_arguments, ["--board", "icebreaker", "--lanes", "8", "-o", str(tmp_path / "out")])
    code = bcli.run_build(args)
    err = capsys.readouterr().err
    assert code == 2
    line = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(line) == 1
    assert "does not fit icebreaker (ice40-up5k) with 8 lanes" in line[0]
    assert "block RAM: needs" in line[0] and "ice40-up5k has 30" in line[0]
    assert "needed vs available" in line[0]
    assert not (tmp_path / "out").exists()


def test_precheck_passes_small_model_on_icebreaker():
    images = load_digits_split("test")[0][:4]
    program = compile_model(random_model(1, channels=4, heads=1), 1)
    analysis = precheck(program, get_target("icebreaker"), images=images)
    assert analysis["fits"] and analysis["images"] == 4
    with pytest.raises(DoesNotFit, match="block RAM: needs"):
        precheck(compile_model(random_model(1, channels=8), 8), get_target("icebreaker"), images=images)


def test_unknown_board_and_bad_clock():
    with pytest.raises(ValueError, match="unknown board 'nexys'; supported boards: icebreaker, ulx3s-85f"):
        get_target("nexys")
    with pytest.raises(ValueError, match=r"clock 5 MHz is out of range for icebreaker; allowed: 12 MHz"):
        plan_clock(get_target("icebreaker"), 5)


@pytest.mark.parametrize("fout", [16, 24, 30, 48, 60])
def test_ice40_pll_meets_icepll_rules(fout):
    p = ice40_pll(12.0, fout)
    fpfd = 12.0 / (p["DIVR"] + 1)
    fvco = fpfd * (p["DIVF"] + 1)
    assert 10 <= fpfd <= 133 and 533 <= fvco <= 1066 and 1 <= p["DIVQ"] <= 6
    assert p["fout"] == pytest.approx(fvco / 2 ** p["DIVQ"])
    assert abs(p["fout"] - fout) / fout < 0.01


@pytest.mark.parametrize("fout", [30, 40, 50, 75, 100])
def test_ecp5_pll_meets_ecppll_rules(fout):
    p = ecp5_pll(25.0, fout)
    assert 400 <= p["fvco"] <= 800
    assert p["fout"] == pytest.approx(25.0 / p["CLKI_DIV"] * p["CLKFB_DIV"])
    assert p["fvco"] == pytest.approx(p["fout"] * p["CLKOP_DIV"])
    assert abs(p["fout"] - fout) / fout < 0.01


def test_clock_plan_uses_oscillator_when_it_is_the_request():
    t = get_target("ulx3s-85f")
    assert plan_clock(t, 25).pll is None
    assert plan_clock(t, 50).pll is not None and plan_clock(t, 50).mhz == pytest.approx(50)


# --- flash -----------------------------------------------------------------------------------

def _fake_bitstream(tmp_path, board):
    t = get_target(board)
    path = tmp_path / f"spikeforge_{t.name}{Path(t.bitstream).suffix}"
    path.write_bytes(b"\xff\x00not a real bitstream")
    return path


def test_flash_dry_run_prints_exact_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda *a, **k: None)  # no iceprog: openFPGALoader
    path = _fake_bitstream(tmp_path, "ulx3s-85f")
    code = bcli.run_flash(_parse(bcli.add_flash_arguments, [str(path), "--dry-run"]))
    out = capsys.readouterr().out.strip()
    assert code == 0
    assert shlex.split(out) == [find_tool("openFPGALoader"), "-b", "ulx3s", str(path)]
    ice = _fake_bitstream(tmp_path, "icebreaker")
    cmd = flash(str(ice), dry_run=True, to_flash=True)
    assert cmd[1:] == ["-b", "ice40_generic", "-f", str(ice)]


def test_flash_missing_bitstream_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = bcli.run_flash(_parse(bcli.add_flash_arguments, ["--board", "icebreaker"]))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1  # a user error: status 2, like every other
    assert "build/icebreaker/spikeforge_icebreaker.bin' does not exist" in err
    assert "spikeforge build --board icebreaker" in err


def test_flash_wrong_suffix_and_unknown_name(tmp_path):
    bad = tmp_path / "design.bit"
    bad.write_bytes(b"x")
    with pytest.raises(FlashError, match=r"has suffix '.bit'; icebreaker takes '.bin' files"):
        resolve_bitstream(str(bad), "icebreaker")
    odd = tmp_path / "design.xyz"
    odd.write_bytes(b"x")
    with pytest.raises(FlashError, match="cannot tell the board"):
        resolve_bitstream(str(odd))


@pytest.mark.skipif(openfpgaloader_problem() is None, reason="openFPGALoader runs here (system libraries present)")
def test_flash_without_system_library_fails_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda *a, **k: None)
    path = _fake_bitstream(tmp_path, "ulx3s-85f")
    code = bcli.run_flash(_parse(bcli.add_flash_arguments, [str(path)]))
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "needs the system library libusb" in err


def test_flash_no_cable_is_one_line(tmp_path, capsys, monkeypatch):
    """A loader that finds no cable (stand-in script with openFPGALoader's message)."""
    fake = tmp_path / "openFPGALoader"
    fake.write_text("#!/bin/sh\necho 'write to ram'\necho 'unable to open ftdi device: -3 (device not found)' >&2\n"
                    "exit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("OPENFPGALOADER", str(fake))
    monkeypatch.setattr("shutil.which", lambda cmd, *a, **k: str(fake) if cmd == str(fake) else None)
    path = _fake_bitstream(tmp_path, "ulx3s-85f")
    code = bcli.run_flash(_parse(bcli.add_flash_arguments, [str(path), "--board", "ulx3s-85f"]))
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "no board or cable found: openFPGALoader says: unable to open ftdi device" in err


# --- a real build ----------------------------------------------------------------------------

@pytest.mark.slow
def test_ulx3s_build_small_model_report(tmp_path, capsys):
    """Yosys + nextpnr-ecp5 (YoWASP) on a small random model: about 4-6 minutes here."""
    model_path = tmp_path / "m.sfm"
    save_model(random_model(1, channels=8, blocks=1), model_path)
    out = tmp_path / "out"
    args = _parse(bcli.add_build_arguments, [str(model_path), "--board", "ulx3s-85f", "--lanes", "2",
                                             "--clock", "25", "-o", str(out), "--json"])
    code = bcli.run_build(args)
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 0, captured.err
    assert "[5/6] nextpnr place and route" in captured.err
    assert report["board"] == "ulx3s-85f" and report["device"] == "ecp5-85f" and report["lanes"] == 2
    for k in ("lut", "ff", "bram", "spram", "dsp"):
        assert set(report["resources"][k]) == {"used", "available"}
    assert 500 < report["resources"]["lut"]["used"] < report["resources"]["lut"]["available"] == 83640
    assert report["resources"]["bram"]["used"] > 0 and report["resources"]["dsp"]["used"] > 0
    assert report["timing_met"] and report["fmax_mhz"] >= 25
    assert report["clock"]["source"] == "oscillator" and report["clock"]["mhz"] == 25
    cp = report["critical_path"]   # from nextpnr's --report JSON: the path that sets fmax
    assert 1000 / cp["delay_ns"] == pytest.approx(report["fmax_mhz"], rel=0.05)
    assert cp["routing_ns"] + cp["logic_ns"] == pytest.approx(cp["delay_ns"], abs=0.02)
    from spikeforge.boards.build import format_report
    assert f"critical path: {cp['from']} -> {cp['to']}" in format_report(report)
    assert report["cycles_per_image"]["mean"] > 0
    assert report["images_per_second"]["compute"] == pytest.approx(25e6 / report["cycles_per_image"]["mean"])
    bit = Path(report["files"]["bitstream"])
    assert bit.name == "spikeforge_ulx3s-85f.bit" and bit.stat().st_size > 100_000
    verilog = Path(report["files"]["verilog"]).read_text()
    assert "module top" in verilog
    # the fast build's requantization multipliers in the DSP blocks' own registers
    assert verilog.count("MULT18X18D ") == 2 and "REG_OUTPUT_CLK" in verilog
    # the EW reads' first registers moved into their block RAMs (output_registers.py), and the
    # netlist nextpnr placed says so
    moved = report["bram_output_registers"]
    assert moved["read_ports"] > 0 and moved["flip_flops"] >= moved["read_ports"]
    placed = json.loads((out / "build" / "top.json").read_text())["modules"]["top"]["cells"]
    assert sum(c["type"] == "DP16KD" and "OUTREG" in (c["parameters"].get("REGMODE_A"), c["parameters"].get(
        "REGMODE_B")) for c in placed.values()) == moved["read_ports"]
    assert f"block RAM output registers: {moved['read_ports']} read ports" in format_report(report)
    assert json.loads(Path(report["files"]["report"]).read_text())["fmax_mhz"] == report["fmax_mhz"]


@pytest.mark.parametrize("board, clock, cell, constraint", [
    ("icebreaker", 24, "SB_PLL40_PAD", "set_frequency"),
    ("ulx3s-85f", 50, "EHXPLLL", "FREQUENCY NET"),
    ("icebreaker", 12, None, "set_frequency"),
])
def test_board_top_plan_has_pll_pins_and_clock(board, clock, cell, constraint):
    """Amaranth's build plan of the board top (no tools run): the PLL cell when the clock needs
    it, the UART and LED pins of the board, the clock constraint at the planned clock."""
    from spikeforge.boards.top import BoardTop

    t = get_target(board)
    top = BoardTop(t, compile_model(random_model(1, channels=4, heads=1), 1), clock_mhz=clock)
    plan = t.make_platform().prepare(top, name="top")
    rtlil = plan.files["top.il"]
    cons = plan.files["top.pcf" if t.family == "ice40" else "top.lpf"]
    if cell:
        assert f"cell \\{cell} " in rtlil or f"cell {cell} " in rtlil
    else:
        assert "SB_PLL40" not in rtlil and "EHXPLLL" not in rtlil
    assert "uart_0__rx__io" in cons and "uart_0__tx__io" in cons
    assert all(f"led_{n}__io" in cons for _, n in t.leds)
    if t.family == "ice40":
        assert f"set_frequency system.adapter.clk {float(clock)}" in cons or clock == 12
    else:
        assert f'FREQUENCY NET "system.adapter.clk" {clock * 1e6}' in cons
    # the board's default rate (3 Mbaud): an integer divisor where one is within 1 %, else a fraction
    assert top.baud == default_baud(t, clock) and top.divisor == baud_divisor(clock * 1e6, top.baud)


def test_aim_past_clock_raises_every_frequency_and_needs_one():
    from spikeforge.boards.build import BuildError, aim_past_clock

    lpf = ('LOCATE COMP "x" SITE "A1";\nFREQUENCY NET "a.clk" 100000000.0 HZ;\n'
           'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;\n')
    out = aim_past_clock(lpf, 0.04)
    assert out.splitlines() == ['LOCATE COMP "x" SITE "A1";', 'FREQUENCY NET "a.clk" 104000000.0 HZ;',
                                'FREQUENCY PORT "clk25_0__io" 26000000.0 HZ;']
    assert aim_past_clock(lpf, 0) == lpf
    with pytest.raises(BuildError, match="no FREQUENCY line"):
        aim_past_clock('LOCATE COMP "x" SITE "A1";\n', 0.04)


def _fake_tools(fmax, commands=None):
    """A stand-in for the tool runs: writes what Yosys, nextpnr and ecppack would (and appends
    each command line to ``commands``)."""
    def run_stage(stage, cmd, cwd, env, progress, timeout, log_name):
        cwd = Path(cwd)
        if commands is not None:
            commands.append(list(cmd))
        if "Yosys" in stage:
            (cwd / "top_rtl.v").write_text("module top(); endmodule\n")
            (cwd / "top.json").write_text(json.dumps({"modules": {"top": {"ports": {}, "cells": {}}}}))
            (cwd / "stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {
                "LUT4": 1000, "CCU2C": 50, "TRELLIS_FF": 800, "DP16KD": 12, "MULT18X18D": 4}}}))
        elif "nextpnr" in stage:
            (cwd / "top.tim").write_text(
                "Info: Device utilisation:\nInfo: \t      TRELLIS_COMB:  1200/ 83640     1%\n"
                f"Info: Max frequency for clock '$glbnet$clk25_0__i': {fmax:.2f} MHz (FAIL at 25.00 MHz)\n")
        else:
            (cwd / "top.bit").write_bytes(b"bits")
        return 0.1
    return run_stage


@pytest.mark.parametrize("fmax", [20.0, 25.5, 40.0])
def test_build_timing_failure_exits_3_without_bitstream(tmp_path, capsys, monkeypatch, fmax):
    import spikeforge.boards.build as build

    commands = []
    monkeypatch.setattr(build, "_run_stage", _fake_tools(fmax, commands))
    model_path = tmp_path / "m.sfm"
    save_model(random_model(1, channels=4, heads=1), model_path)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / "spikeforge_ulx3s-85f.bit"
    stale.write_bytes(b"old")
    args = _parse(bcli.add_build_arguments, [str(model_path), "--board", "ulx3s-85f", "--lanes", "1",
                                             "--clock", "25", "-o", str(out)])
    code = bcli.run_build(args)
    cap = capsys.readouterr()
    report = json.loads((out / "build_report.json").read_text())
    assert report["fmax_mhz"] == fmax
    # ECP5: router2 with its timing-driven rip-up, a fixed seed, timing failures left to the flow
    pnr = [c for c in commands if "nextpnr" in Path(c[0]).name]
    assert len(pnr) == 1 and {"--tmg-ripup", "--timing-allow-fail"} <= set(pnr[0])
    assert pnr[0][pnr[0].index("--router") + 1] == "router2" and pnr[0][pnr[0].index("--seed") + 1] == "1"
    # the ECP5's default placer is the electrostatic one (devices.DEFAULT_PLACER), recorded
    assert pnr[0][pnr[0].index("--placer") + 1] == "static" and report["placer"] == "static"
    # nextpnr aims 4 % past the 25 MHz clock (the oscillator's constraint, which a PLL would
    # carry to its output); fmax is judged against 25 MHz (25.5 meets it)
    lpf = (out / "build" / "top.lpf").read_text()
    assert 'FREQUENCY PORT "clk25_0__io" 26000000.0 HZ;' in lpf and "25000000" not in lpf
    assert report["pnr_target_mhz"] == pytest.approx(26.0)
    assert report["resources"]["lut"] == {"used": 1100, "available": 83640}   # LUT4 + 2 x CCU2C
    assert report["resources"]["bram"]["used"] == 12 and report["resources"]["dsp"]["used"] == 4
    if fmax < 25:
        assert code == 3 and not stale.exists()
        assert not report["timing_met"] and "bitstream" not in report["files"]
        assert "TIMING FAILED" in cap.out
        line = [ln for ln in cap.err.splitlines() if "error:" in ln]
        assert len(line) == 1 and "fmax 20.00 MHz < requested clock 25 MHz; no bitstream written" in line[0]
    else:
        assert code == 0 and stale.read_bytes() == b"bits"
        assert report["timing_met"] and "timing met" in cap.out
        assert "(oscillator, place and route aimed at 26 MHz, nextpnr placer static seed 1); fmax" in cap.out
        assert report["images_per_second"]["compute"] == pytest.approx(25e6 / report["cycles_per_image"]["mean"])


def test_build_placer_option_reaches_nextpnr_and_bad_one_is_refused(tmp_path, capsys, monkeypatch):
    import spikeforge.boards.build as build

    commands = []
    monkeypatch.setattr(build, "_run_stage", _fake_tools(30.0, commands))
    model_path = tmp_path / "m.sfm"
    save_model(random_model(1, channels=4, heads=1), model_path)
    args = _parse(bcli.add_build_arguments, [str(model_path), "--board", "ulx3s-85f", "--lanes", "1",
                                             "--placer", "heap", "--seed", "7", "--clock", "25",
                                             "-o", str(tmp_path / "out")])
    assert bcli.run_build(args) == 0, capsys.readouterr().err
    pnr = [c for c in commands if "nextpnr" in Path(c[0]).name][0]
    assert pnr[pnr.index("--placer") + 1] == "heap" and pnr[pnr.index("--seed") + 1] == "7"
    assert "nextpnr placer heap seed 7" in capsys.readouterr().out
    with pytest.raises(ValueError, match="placer is 'sa'; allowed: heap, static"):
        build.build_board(random_model(1, channels=4, heads=1), "ulx3s-85f", images=None, placer="sa",
                          out_dir=tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_build_with_an_unreadable_netlist_fails_clearly(tmp_path, capsys, monkeypatch):
    """The ECP5 flow reads Yosys's JSON netlist (block RAM output registers): a broken one is a
    one-line error naming the file, not a traceback, and no bitstream."""
    import spikeforge.boards.build as build

    fake = _fake_tools(40.0)

    def run_stage(stage, cmd, cwd, *rest):
        seconds = fake(stage, cmd, cwd, *rest)
        if "Yosys" in stage:
            (Path(cwd) / "top.json").write_text('{"modules": ')
        return seconds

    monkeypatch.setattr(build, "_run_stage", run_stage)
    model_path = tmp_path / "m.sfm"
    save_model(random_model(1, channels=4, heads=1), model_path)
    out = tmp_path / "out"
    args = _parse(bcli.add_build_arguments, [str(model_path), "--board", "ulx3s-85f", "--lanes", "1",
                                             "-o", str(out)])
    code = bcli.run_build(args)
    err = [ln for ln in capsys.readouterr().err.splitlines() if "error:" in ln]
    assert code != 0 and len(err) == 1
    assert "top.json cannot be read for the block RAM output registers" in err[0]
    assert not (out / "spikeforge_ulx3s-85f.bit").exists()


@pytest.mark.slow
def test_icebreaker_build_tiny_model_through_pll(tmp_path, capsys):
    """The whole iCEBreaker path (pre-check, SB_PLL40_PAD at 24 MHz, pins, Yosys -dsp, nextpnr-ice40,
    icepack) on a model small enough for the UP5K: about 1-3 minutes here. The pipelined engine
    closes 24 MHz there (37.3 MHz with seed 1); --allow-timing-fail keeps the bitstream so that a
    regression shows its fmax in the report before the assertion fails."""
    model_path = tmp_path / "m.sfm"
    save_model(random_model(1, channels=4, heads=1), model_path)
    out = tmp_path / "out"
    args = _parse(bcli.add_build_arguments, [str(model_path), "--board", "icebreaker", "--lanes", "1",
                                             "--clock", "24", "-o", str(out), "--json", "--allow-timing-fail"])
    code = bcli.run_build(args)
    cap = capsys.readouterr()
    report = json.loads(cap.out)
    assert code == 0 and report["timing_met"], (report["fmax_mhz"], cap.err)
    assert report["clock"]["source"] == "pll" and report["clock"]["pll"]["DIVF"] == 63
    assert report["placed"]["pll"]["used"] == 1
    assert report["resources"]["lut"]["available"] == 5280
    assert 0 < report["resources"]["lut"]["used"] <= 5280 and 0 < report["resources"]["bram"]["used"] <= 30
    assert report["fmax_mhz"] >= 24 and "clk" in report["fmax_by_clock"]   # the PLL output net
    bit = Path(report["files"]["bitstream"])
    assert bit.name == "spikeforge_icebreaker.bin" and bit.stat().st_size > 100_000
