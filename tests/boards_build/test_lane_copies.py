"""The fast build's per-lane-group copies of control registers and memories survive synthesis."""

import re
import subprocess

import pytest
from amaranth.back import rtlil

from spikeforge.boards.build import KEEP_COPIES
from spikeforge.toolchain import ToolNotFound, find_tool
from spikeforge.builder import random_model
from spikeforge.hdl.accel.engine import CONST_LOGIC_DEPTH, COPY_ATTR, COPY_MARK, LANES_PER_COPY, Engine
from spikeforge.hdl.accel.memories import bram_ports
from spikeforge.hdl.accel.program import compile_model

GROUPS = 8 // LANES_PER_COPY


def _yosys_with_engine(tmp_path):
    """Yosys (the test skips without it) and the 8-lane fast engine's RTLIL in ``e.il``."""
    try:
        yosys = find_tool("yosys")
    except ToolNotFound as e:
        pytest.skip(str(e))
    engine = Engine(compile_model(random_model(3, channels=8, blocks=1), 8))
    (tmp_path / "e.il").write_text(rtlil.convert(engine, name="engine"))
    return yosys


def _copy_drivers(tmp_path, script_after_read, wires=("bank_ra",)):
    """The cells driving each of ``wires``' copies after synthesis, by wire."""
    yosys = _yosys_with_engine(tmp_path)
    selects = "; ".join(f"select -write {w}.txt w:*{w}{COPY_MARK}* a:{COPY_ATTR} %i %ci2 c:* %i" for w in wires)
    script = f"read_rtlil e.il; {script_after_read}; proc; opt -full; memory_collect; {selects}"
    subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True, check=True)
    return {w: set((tmp_path / f"{w}.txt").read_text().split()) for w in wires}


def test_engine_copies_control_registers_per_lane_group():
    prog = compile_model(random_model(3, channels=8, blocks=1), 8)
    names = rtlil.convert(Engine(prog), name="engine")
    owns = set(re.findall(rf"wire (?:width \d+ )?\\(bank_ra{COPY_MARK}\d+)", names))
    assert len(owns) == GROUPS
    # the flow keeps the copies by their attribute, which every copy carries
    marked = set(re.findall(rf"attribute \\{COPY_ATTR} 1\n  wire (?:width \d+ )?\\(\S+)", names))
    assert owns <= marked
    assert f"a:{COPY_ATTR}" in KEEP_COPIES and COPY_MARK not in KEEP_COPIES
    compact = compile_model(random_model(3, channels=8, blocks=1), 8, compact=True)
    text = rtlil.convert(Engine(compact), name="engine")
    assert COPY_MARK not in text and COPY_ATTR not in text


def test_lane_wide_memories_are_split_per_lane_group():
    """Weights, integers and accumulators: a memory per lane group in the fast build (each
    addressed by its group's registers), one memory in the compact build. The shallow
    constants memory: one per lane in the fast build (logic)."""
    for compact in (False, True):
        prog = compile_model(random_model(3, channels=8, blocks=1), 8, compact=compact)
        text = rtlil.convert(Engine(prog), name="engine")
        assert len(prog.consts) <= CONST_LOGIC_DEPTH
        for name, count in (("cmem", 8), ("wmem", GROUPS), ("imem", GROUPS), ("amem0", GROUPS),
                            ("amem1", GROUPS)):
            found = set(re.findall(rf"memory width \d+ size \d+ \\({name}(?:_g\d+)?)\n", text))
            assert len(found) == (1 if compact else count), (compact, name, found)


def test_keep_selects_the_same_registers_as_the_names_did(tmp_path):
    """The attribute selects exactly the registers that matching COPY_MARK in names did."""
    yosys = _yosys_with_engine(tmp_path)
    script = (f"read_rtlil e.il; select -write names.txt w:*{COPY_MARK}* %ci2 c:* %i; "
              f"select -write attrs.txt {KEEP_COPIES.split(' ', 4)[4]}")
    subprocess.run([yosys, "-q", "-p", script], cwd=tmp_path, capture_output=True, check=True)
    names, attrs = ((tmp_path / f).read_text().split() for f in ("names.txt", "attrs.txt"))
    assert len(names) > 2 * GROUPS and sorted(attrs) == sorted(names)


def test_synthesis_keeps_the_copies_apart(tmp_path):
    wires = ("bank_ra", "ew_c_adr_l", "im_ra", "syn_wa", "acc_ra0", "im_wa")
    kept = _copy_drivers(tmp_path, KEEP_COPIES, wires)
    assert {w: len(cells) for w, cells in kept.items()} == {w: 8 if w == "ew_c_adr_l" else GROUPS for w in wires}
    # Without the attribute Yosys merges them into one register (what the flow prevents).
    assert len(_copy_drivers(tmp_path, "")["bank_ra"]) == 1


def test_lane_group_widths_must_add_up():
    from amaranth.hdl import Fragment, Module
    m = Module()
    with pytest.raises(ValueError, match=r"lane group widths \[8, 8\] do not add up to the word width 20"):
        bram_ports(m, "x", 4, 20, [], 1, False, [8, 8])
    Fragment.get(m, None)  # the module is used (no warning at exit)
