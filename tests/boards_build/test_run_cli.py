"""`spikeforge run` end to end over a real serial device: a pseudo-terminal whose other end is
served by the Python reference board (golden logits), so SerialTransport, HostLink and the
report are exercised without hardware."""

import argparse
import json
import os
import threading

import pytest

from spikeforge.boards import cli as bcli
from spikeforge.boards.runtime import ReferenceBoard
from spikeforge.builder import random_model
from pty_board import serve_pty
from spikeforge.modelfile import save_model
from spikeforge.sim.model import run_model




@pytest.mark.parametrize("wrong", [False, True])
def test_run_over_pty(tmp_path, capsys, wrong):
    pytest.importorskip("termios")
    import tty

    model = random_model(2, channels=8)
    path = tmp_path / "m.sfm"
    save_model(model, path)

    def logits_fn(image):
        out = run_model(model, image.reshape(1, 8, 8, 1)).logits[0].copy()
        if wrong:
            out[0] += 1  # a board that computes one logit wrong
        return out

    master, slave = os.openpty()
    tty.setraw(master)
    stop = threading.Event()
    server = threading.Thread(target=serve_pty, args=(master, ReferenceBoard(logits_fn), stop), daemon=True)
    server.start()
    try:
        p = argparse.ArgumentParser()
        bcli.add_run_arguments(p)
        args = p.parse_args([str(path), "--board", "icebreaker", "--port", os.ttyname(slave), "--images", "6",
                             "--json"])
        code = bcli.run_run(args)
    finally:
        stop.set()
        server.join(2)
        os.close(slave)
        os.close(master)
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
