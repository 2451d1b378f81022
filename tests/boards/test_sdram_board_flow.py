"""`spikeforge build` and `run` refuse a program with the sdram mapping in one line until the
board flow around the SDRAM system is done (the host's SDRAM weight load, the top's synthesis):
a build would fail in Yosys and a board would answer NOT_LOADED forever."""

import pytest

from spikeforge.boards import build as build_mod
from spikeforge.boards.build import build_board
from spikeforge.boards.sdram_system import refuse_sdram_board_flow
from spikeforge.builder import random_model
from spikeforge.hdl.accel.program import MappingError
from spikeforge.hdl.accel.report import compile_for_target


def test_refusal_names_the_mapping_and_what_is_allowed():
    model = random_model(seed=3, channels=16)
    sdram = compile_for_target(model, 8, "ecp5-85f", weights="sdram")
    with pytest.raises(MappingError, match=r"spikeforge run: the model's weights \(\d+ SDRAM words\) take the "
                                           r"sdram mapping.*allowed on a board: models whose weights fit"):
        refuse_sdram_board_flow(sdram, "run")
    refuse_sdram_board_flow(compile_for_target(model, 8, "ecp5-85f", weights="bram"), "run")   # no error


def test_build_refuses_before_any_tool_runs(monkeypatch, tmp_path):
    model = random_model(seed=3, channels=16)
    sdram = compile_for_target(model, 8, "ecp5-85f", weights="sdram")
    # the fit check would pick the block RAM mapping for this small model: make it pick sdram,
    # as it does for a model whose weights exceed the block RAM
    monkeypatch.setattr(build_mod, "fit", lambda *a, **k: (sdram, {}))
    with pytest.raises(MappingError, match="spikeforge build: .*sdram mapping"):
        build_board(model, "ulx3s-85f", images=[], out_dir=tmp_path / "out", progress=lambda *_: None)
    assert not (tmp_path / "out").exists()
