"""A board top for a program with the sdram mapping is refused until the board top connects
the SDRAM (docs/sdram.md, "What remains"): an engine with open sdram ports would hang."""

import pytest

from spikeforge.boards.top import AcceleratorSystem
from spikeforge.builder import random_model
from spikeforge.hdl.accel.program import MappingError
from spikeforge.hdl.accel.report import compile_for_target


def test_board_top_refuses_the_sdram_mapping():
    model = random_model(seed=3, channels=16)
    prog = compile_for_target(model, 8, "ecp5-85f", weights="sdram")
    assert prog.memory.kind == "sdram"
    with pytest.raises(MappingError, match=r"sdram mapping, and the board top does not connect the SDRAM yet"):
        AcceleratorSystem(prog, divisor=4)
    # the same model with its weights in block RAM still makes a board top
    AcceleratorSystem(compile_for_target(model, 8, "ecp5-85f", weights="bram"), divisor=4)
