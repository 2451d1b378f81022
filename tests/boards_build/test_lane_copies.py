"""The fast build's per-lane-group copies of control registers survive synthesis."""

import re
import subprocess

import pytest
from amaranth.back import rtlil

from spikeforge.boards.build import KEEP_COPIES
from spikeforge.boards.toolchain import ToolNotFound, find_tool
from spikeforge.builder import random_model
from spikeforge.hdl.accel.engine import COPY_MARK, LANES_PER_COPY, Engine
from spikeforge.hdl.accel.program import compile_model


def _copy_drivers(tmp_path, script_after_read):
    try:
        yosys = find_tool("yosys")
    except ToolNotFound as e:
        pytest.skip(str(e))
    engine = Engine(compile_model(random_model(3, channels=8, blocks=1), 8))
    (tmp_path / "e.il").write_text(rtlil.convert(engine, name="engine"))
    script = (f"read_rtlil e.il; {script_after_read}; proc; opt -full; "
              f"select -write drivers.txt w:*bank_ra{COPY_MARK}* %ci2 c:* %i")
    subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True, check=True)
    return set((tmp_path / "drivers.txt").read_text().split())


def test_engine_copies_control_registers_per_lane_group():
    prog = compile_model(random_model(3, channels=8, blocks=1), 8)
    names = rtlil.convert(Engine(prog), name="engine")
    owns = set(re.findall(rf"wire (?:width \d+ )?\\(bank_ra{COPY_MARK}\d+)", names))
    assert len(owns) == 8 // LANES_PER_COPY
    compact = compile_model(random_model(3, channels=8, blocks=1), 8, compact=True)
    assert COPY_MARK not in rtlil.convert(Engine(compact), name="engine")


def test_synthesis_keeps_the_copies_apart(tmp_path):
    assert len(_copy_drivers(tmp_path, KEEP_COPIES)) == 8 // LANES_PER_COPY
    # Without the attribute Yosys merges them into one register (what the flow prevents).
    assert len(_copy_drivers(tmp_path, "")) == 1
