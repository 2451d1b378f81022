"""`spikeforge run` end to end over a real serial device: a pseudo-terminal whose other end is
served by the Python reference board (golden logits), so SerialTransport, HostLink and the
report are exercised without hardware."""

import argparse
import json
import os
import threading

import pytest

from spikeforge.boards import cli as bcli
from spikeforge.boards.hostlink import VERSION, Info, model_hash, weight_set_crc
from spikeforge.boards.runtime import ReferenceBoard
from spikeforge.devices import get_target
from spikeforge.builder import random_model
from spikeforge.hdl.accel.report import compile_for_target
from pty_board import serve_pty
from spikeforge.modelfile import save_model
from spikeforge.sim.model import run_model


def _board(model, logits_fn, *, flashed=None, info=True):
    """The reference board as a board built from ``flashed`` (default ``model``) for the
    iCEBreaker would be: its INFO (None: a version 2 board, HELLO is BAD_TYPE) and weight CRC."""
    target = get_target("icebreaker")
    program = compile_for_target(flashed or model, target.default_lanes, target.device)
    img = program.image
    assert program.memory.kind == "bram"    # weights in the bitstream: nothing to load
    board_info = Info(VERSION, model_hash(flashed or model), (img.H, img.W, img.C), int(img.levels),
                      program.classes, program.lanes, 24_000_000, 0)
    return ReferenceBoard(logits_fn, weight_crc=weight_set_crc(program), info=board_info if info else None)


def _run(tmp_path, board, extra=()):
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    stop = threading.Event()
    server = threading.Thread(target=serve_pty, args=(master, board, stop), daemon=True)
    server.start()
    try:
        p = argparse.ArgumentParser()
        bcli.add_run_arguments(p)
        args = p.parse_args([str(tmp_path / "m.sfm"), "--board", "icebreaker", "--port", os.ttyname(slave),
                             "--images", "6", *extra])
        return bcli.run_run(args)
    finally:
        stop.set()
        server.join(2)
        os.close(slave)
        os.close(master)


@pytest.mark.parametrize("wrong", [False, True])
def test_run_over_pty(tmp_path, capsys, wrong):
    pytest.importorskip("termios")

    model = random_model(2, channels=8)
    save_model(model, tmp_path / "m.sfm")

    def logits_fn(image):
        out = run_model(model, image.reshape(1, 8, 8, 1)).logits[0].copy()
        if wrong:
            out[0] += 1  # a board that computes one logit wrong
        return out

    code = _run(tmp_path, _board(model, logits_fn), ["--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 6
    if wrong:
        assert code == 1 and out["logits_match"] == 0
    else:
        assert code == 0 and out["logits_match"] == 6
        assert out["latency_s"]["mean"] > 0 and out["images_per_second"] > 0
        assert 0 <= out["accuracy"] <= 1 and out["retries"] == 0


def test_run_bad_port_is_one_line(tmp_path, capsys):
    p = argparse.ArgumentParser()
    bcli.add_run_arguments(p)
    code = bcli.run_run(p.parse_args(["--board", "ulx3s-85f", "--port", str(tmp_path / "ttyNONE")]))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "cannot open" in err and "ttyNONE" in err


def test_run_refuses_a_board_with_another_model_or_an_old_protocol(tmp_path, capsys):
    """HELLO before the first image: a board flashed with another model is refused in one line
    naming both model hashes; a version 2 board (HELLO answered BAD_TYPE) in one line saying to
    rebuild and reflash. No image is sent to either."""
    pytest.importorskip("termios")
    model, other = random_model(2, channels=8), random_model(3, channels=8)
    save_model(model, tmp_path / "m.sfm")
    board = _board(model, lambda image: [0] * 10, flashed=other)
    assert _run(tmp_path, board) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another model" in err
    assert model_hash(other).hex() in err and model_hash(model).hex() in err
    assert board.images == []
    old = _board(model, lambda image: [0] * 10, info=False)
    assert _run(tmp_path, old) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "protocol version 2 or older; rebuild and reflash" in err
    assert old.images == []
