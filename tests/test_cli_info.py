"""``spikeforge info`` as a person reads it: plain text, no Python reprs, SPRAM named as SPRAM,
the lower bound explained where the engine beats it."""

import json
import re

import pytest


import spikeforge.cli
from spikeforge.cli import main


@pytest.fixture(scope="module", autouse=True)
def _one_analysis_per_setting():
    """The analytic model of the shipped model takes seconds at 1 lane: compute each
    (lanes, target) once for the whole module (the text and JSON of one setting share it)."""
    real, seen = spikeforge.cli._accel_analysis, {}

    def cached(model, lanes, target, images, weights=None):
        if (lanes, target, weights) not in seen:
            seen[lanes, target, weights] = real(model, lanes, target, images, weights=weights)
        return seen[lanes, target, weights]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(spikeforge.cli, "_accel_analysis", cached)
        yield


def _info(capsys, *argv):
    assert main(["info", *argv]) == 0
    return capsys.readouterr().out




def test_no_python_reprs_anywhere(capsys):
    for argv in ([], ["--lanes", "32"], ["--target", "ice40-up5k", "--lanes", "1"]):
        out = _info(capsys, *argv)
        for repr_start in ("{'", '{"', "['", "[8,", "(4, 4", "True", "None"):
            assert repr_start not in out, (argv, repr_start)
    # the metadata tables as key value pairs
    assert re.search(r"^accuracy +.*golden 98\.6111", out, re.M)
    assert re.search(r"^config +.*weight_bits 4", out, re.M | re.S)
    assert re.search(r"^split +evaluated_on test; seed 0; test_fraction 0\.2$", out, re.M)
    assert re.search(r"^time steps +2 +input 8x8x1 +classes 10$", out, re.M)


def test_one_lane_and_spram_named_spram(capsys):
    out = _info(capsys, "--target", "ice40-up5k", "--lanes", "1")
    acc = json.loads(_info(capsys, "--target", "ice40-up5k", "--lanes", "1", "--json"))["accelerator"]
    assert "accelerator, 1 lane (" in out and "1 lanes" not in out
    sprams = [m for m in acc["memories"] if m["kind"] == "spram"]
    assert {m["name"] for m in sprams} == {"ints", "weights"}  # the compact SPRAM mapping
    for mem in acc["memories"]:
        line = next(line for line in out.splitlines() if line.startswith(f"  memory {mem['name']} "))
        if mem["kind"] == "spram":
            n = mem["copies"]
            assert line.endswith(f": {n} SPRAM" + ("" if n == 1 else "s")), line
            assert "block RAM" not in line and "logic" not in line, line
        else:
            assert "SPRAM" not in line, line
    assert sum(m["copies"] for m in sprams) == acc["device"]["spram_blocks"] == 4
    assert "4/4 SPRAMs" in out


def test_lower_bound_explained_only_where_beaten(capsys):
    up5k = ("--target", "ice40-up5k", "--lanes", "1")
    below = json.loads(_info(capsys, *up5k, "--json"))["accelerator"]["ratio_to_bound"]
    above = json.loads(_info(capsys, "--lanes", "32", "--json"))["accelerator"]["ratio_to_bound"]
    assert below < 1 < above
    out = _info(capsys, *up5k)
    note = [line for line in out.splitlines() if "below the bound" in line]
    assert len(note) == 1 and "§10" in note[0] and "overlaps" in note[0]
    assert "below the bound" not in _info(capsys, "--lanes", "32")
