"""``spikeforge verify --random-models N`` (sim/verify_campaign.py): golden model against the
accelerator's Verilator simulation on random models, one Dask task each.

The CI tier checks the rows of models that cannot be mapped or whose task raises, and the
options; the slow tier verifies two small random models through the command line on a local
cluster of processes (0 mismatches), then the same two (their simulator builds cached) with a
fault injected into the golden model of one: that one is reported with the command that reruns
it alone.
"""

import json
import shlex

import numpy as np
import pytest

from spikeforge.builder import random_config
from spikeforge.cli import build_parser, main
from spikeforge.hdl.accel.program import MappingError
from spikeforge.sim import accel_runner, verify_campaign
from spikeforge.sim.cluster import open_client
from spikeforge.sim.runners import simulator_missing_reason
from spikeforge.sim.verify_campaign import reproduce_command, run_campaign

#: two consecutive seeds of small random models (1 lane, 4x4 inputs): a Verilator build each
SEEDS = (2, 3)


def test_random_config_is_the_differential_tests():
    """The campaign's models are the differential test's: same configuration for a seed."""
    config, lanes = random_config(2)
    assert lanes == 1 and config["image"] == (4, 4, 1) and config["attention"] == "qsd"
    assert [random_config(s)[0]["attention"] for s in range(3)] == ["mask", "linear", "qsd"]


def test_unmappable_and_raising_models_are_rows(monkeypatch, tmp_path):
    def fake(model, images, *, lanes, **kw):
        if lanes == 1:
            raise MappingError("lanes is 1; nothing maps today")
        raise RuntimeError("the simulator crashed\nsecond line")

    monkeypatch.setattr(verify_campaign, "simulate_verilog", fake)
    lines = []
    with open_client(workers=1, processes=False) as client:
        s = run_campaign([2, 0], 2, client, out_dir=tmp_path, progress=lines.append)
    rows = {r["seed"]: r for r in s["rows"]}
    assert rows[2]["status"] == "unmappable" and "nothing maps today" in rows[2]["reason"]
    assert rows[0]["status"] == "error" and rows[0]["reason"] == "RuntimeError: the simulator crashed"
    assert s["counts"] == {"unmappable": 1, "error": 1} and s["mismatched_seeds"] == []
    assert s["failed_seeds"] == [2, 0] and s["reproduce"] == [reproduce_command(2, 2), reproduce_command(0, 2)]
    assert json.loads((tmp_path / "verify.json").read_text()) == s and len(lines) == 2


def test_the_reproduce_command_names_one_model():
    args = build_parser().parse_args(shlex.split(reproduce_command(1234, 7))[1:])
    assert (args.command, args.random_models, args.images, args.seed) == ("verify", 1, 7, 1234)


@pytest.mark.parametrize("argv,message", [
    (["--random-models", "0"], "argument --random-models: 0 is out of range; allowed: an integer >= 1"),
    (["--random-models", "2", "--images", "x"], "argument --images: 'x' is not an integer"),
    (["--random-models", "3", "--seed", "4294967294"], "the last model's seed 4294967296 is out of range"),
    (["--random-models", "1", "--workers", "1", "--scheduler", "tcp://h:1"], "--workers 1 sizes the local cluster"),
    (["--random-models", "1", "--timeout", "-5"], "argument --timeout: -5 is out of range"),
])
def test_bad_options_are_one_line_exit_2(capsys, argv, message):
    code = main(["verify", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("spikeforge: error: ") and message in err[0], err


# --- slow: Verilator -------------------------------------------------------------------------------

def need_verilator():
    why = simulator_missing_reason("verilator")
    if why:
        pytest.skip(why)


@pytest.mark.slow
def test_two_random_models_match_the_golden_model(tmp_path, capsys):
    need_verilator()
    code = main(["verify", "--random-models", "2", "--images", "3", "--seed", str(SEEDS[0]), "--workers", "2",
                 "-o", str(tmp_path), "--json"])
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert code == 0, cap.err
    assert summary["counts"] == {"ok": 2} and summary["mismatches"] == 0 and summary["reproduce"] == []
    assert [r["seed"] for r in summary["rows"]] == list(SEEDS)
    assert all(r["cycles_match"] and r["images"] == 3 for r in summary["rows"])
    assert json.loads((tmp_path / "verify.json").read_text()) == summary
    assert sum(ln.startswith("[") for ln in cap.err.splitlines()) == 2


@pytest.mark.slow
def test_a_mismatch_is_reported_with_its_seed(monkeypatch):
    """The golden model of model 3 is made wrong (one logit off by one); the campaign reports
    that model, and only it, with the command that reruns it."""
    need_verilator()
    real = accel_runner.run_model

    def faulty(model, images, **kw):
        result = real(model, images, **kw)
        if model.metadata.get("seed") == SEEDS[1]:
            result.logits = np.array(result.logits, copy=True)
            result.logits[0, 0] += 1
        return result

    monkeypatch.setattr(accel_runner, "run_model", faulty)
    lines = []
    with open_client(workers=1, processes=False) as client:   # threads: the patch reaches the task
        s = run_campaign(SEEDS, 3, client, progress=lines.append)
    rows = {r["seed"]: r for r in s["rows"]}
    assert rows[SEEDS[0]]["status"] == "ok"
    bad = rows[SEEDS[1]]
    assert bad["status"] == "mismatch" and bad["mismatches"] >= 1
    assert bad["first"][0]["what"] == "logits" and bad["first"][0]["image"] == 0
    assert s["mismatched_seeds"] == [SEEDS[1]]
    assert s["reproduce"] == [f"spikeforge verify --random-models 1 --images 3 --seed {SEEDS[1]}"]
    assert sum(f"reproduce: {s['reproduce'][0]}" in ln for ln in lines) == 1
