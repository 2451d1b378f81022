"""The command line: info and eval on model files made by the public helper."""

import json
import subprocess
import sys

import numpy as np
import pytest

from spikeforge import save_model
from spikeforge.builder import random_model
from spikeforge.cli import main
from spikeforge.data import load_digits_split
from spikeforge.sim.model import run_model


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "rand.sfm"
    save_model(random_model(5, attention="qsd", levels=3, time_steps=2, channels=8), path)
    return path


def test_info_json(model_file, capsys):
    assert main(["info", str(model_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["time_steps"] == 2 and info["classes"] == 10
    names = [layer["name"] for layer in info["layers"]]
    assert names[0] == "image" and names[-1] == "head"
    conv = next(layer for layer in info["layers"] if layer["op"] == "conv")
    assert conv["tensors"]["weight"]["bits"] == 4
    assert info["memory_bits"] == sum(t["memory_bits"] for layer in info["layers"]
                                      for t in layer["tensors"].values())


def test_info_table(model_file, capsys):
    assert main(["info", str(model_file)]) == 0
    out = capsys.readouterr().out
    assert "sdsa_linear" in out and "memory" in out


def test_eval_golden_json_and_logits(model_file, tmp_path, capsys):
    logits_path = tmp_path / "out" / "logits.npy"
    assert main(["eval", str(model_file), "--backend", "golden", "--json",
                 "--save-logits", str(logits_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    images, labels = load_digits_split("test")
    want = run_model(__import__("spikeforge").load_model(model_file), images)
    saved = np.load(logits_path, allow_pickle=False)
    assert saved.dtype == np.int64 and np.array_equal(saved, want.logits)
    assert report["n"] == len(labels) == 360
    assert report["accuracy"] == pytest.approx(float((want.classes == labels).mean()))
    assert set(report["firing_rate"]) == set(want.firing)
    assert report["synaptic_ops_per_image"] > 0
    assert "45 nm" in report["energy_estimate"]["model"]


def test_eval_rejects_bad_limit(model_file, capsys):
    assert main(["eval", str(model_file), "--limit", "0"]) == 2
    assert "argument --limit: 0 is out of range; allowed: an integer >= 1" in capsys.readouterr().err


def test_console_script_runs_without_traceback(tmp_path):
    bad = tmp_path / "junk.sfm"
    bad.write_bytes(b"not a model")
    proc = subprocess.run([sys.executable, "-m", "spikeforge.cli", "info", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("spikeforge: error:") and "Traceback" not in proc.stderr


def test_a_reader_that_closes_early_ends_the_command_quietly():
    # `spikeforge info mnist --json | head -1`: the reader is gone before the command writes
    # (its pipe closed at once here); the command stops with SIGPIPE's status and no message
    # (it used to print "spikeforge: error: broken pipe; check the path" and exit 1).
    proc = subprocess.Popen([sys.executable, "-m", "spikeforge.cli", "info", "mnist", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    with proc.stderr:
        err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141, err
    assert err == b"", err


def test_only_spikeforge_is_importable_at_top_level(tmp_path):
    code = ("import importlib.util as u; "
            "print([n for n in ('sim','hdl','quant','boards') if u.find_spec(n)])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_generate_unit_writes_verilog(tmp_path, capsys):
    from spikeforge.hdl.generate import UNITS

    assert main(["generate", "unit", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln for ln in lines if not ln.startswith(" ")] == list(UNITS)
    assert main(["generate", "unit", "spike_event_encoder", "-p", "channels=5", "-o", str(tmp_path)]) == 0
    path = capsys.readouterr().out.strip()
    with open(path) as f:
        text = f.read()
    assert "module" in text and "i__valid" in text and "o__ready" in text


def test_generate_unit_errors_are_one_line(tmp_path, capsys):
    assert main(["generate", "unit", "nope", "-o", str(tmp_path)]) == 2
    assert "unknown unit 'nope'" in capsys.readouterr().err
    assert main(["generate", "unit", "sparse_add", "-p", "lanes", "-o", str(tmp_path)]) == 2
    assert "must look like KEY=VALUE" in capsys.readouterr().err
