"""`spikeforge run` end to end over a real serial device: a pseudo-terminal whose other end is
served by the Python reference board (golden logits), so SerialTransport, HostLink and the
report are exercised without hardware."""

import argparse
import json
import os
import threading

import pytest

from spikeforge.boards import cli as bcli
from spikeforge.boards.hostlink import VERSION, Info, model_hash, pixel_bits, weight_set_crc
from spikeforge.boards.runtime import ReferenceBoard
from spikeforge.devices import get_target
from spikeforge.builder import random_model
from spikeforge.hdl.accel.report import compile_for_target
from pty_board import serve_pty
from spikeforge.modelfile import save_model
from spikeforge.sim.model import run_model


def _board(model, logits_fn, *, flashed=None, info=True, version=VERSION, window=1):
    """The reference board as a board built from ``flashed`` (default ``model``) for the
    iCEBreaker would be: its INFO (None: a version 2 board, HELLO is BAD_TYPE; ``version`` 3:
    a version 3 board's 25-byte INFO) and weight CRC."""
    target = get_target("icebreaker")
    program = compile_for_target(flashed or model, target.default_lanes, target.device)
    img = program.image
    assert program.memory.kind == "bram"    # weights in the bitstream: nothing to load
    board_info = Info(version, model_hash(flashed or model), (img.H, img.W, img.C), int(img.levels),
                      program.classes, program.lanes, 24_000_000, 0, pixel_bits(int(img.levels)), 32, window)
    board = ReferenceBoard(logits_fn, weight_crc=weight_set_crc(program), info=board_info if info else None)
    if version == 3:     # a version 3 board's INFO: 25 bytes, without pixel bits, logit bits, window
        from spikeforge.boards.hostlink import encode_frame, encode_info

        board.info = None
        inner = board.__call__

        def v3(data, inner=inner):
            if data[1] == 0x03:
                return encode_frame(0x84, data[2], encode_info(board_info)[5:-4][:25])
            return inner(data)
        return v3
    return board


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

    code = _run(tmp_path, _board(model, logits_fn), ["--json", "--logits"])
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
    v3 = _board(model, lambda image: [0] * 10, version=3)
    assert _run(tmp_path, v3) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "protocol version 3, this spikeforge version 5: rebuild and reflash" in err


def test_run_without_logits_checks_the_class_with_a_window(tmp_path, capsys):
    """The default run (no --logits): the class only, several requests in flight (the board's
    window caps --window); a board whose logits differ but whose class is right still matches,
    one whose class is wrong does not."""
    pytest.importorskip("termios")
    model = random_model(2, channels=8)
    save_model(model, tmp_path / "m.sfm")

    def shifted(image):          # the same argmax, other logits
        return run_model(model, image.reshape(1, 8, 8, 1)).logits[0] * 2 + 1
    code = _run(tmp_path, _board(model, shifted, window=3), ["--json", "--window", "4"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["logits_match"] == 6 and (out["window"], out["logits"]) == (3, False)

    def wrong_class(image):
        return -run_model(model, image.reshape(1, 8, 8, 1)).logits[0]
    code = _run(tmp_path, _board(model, wrong_class, window=3), ["--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["logits_match"] < 6
