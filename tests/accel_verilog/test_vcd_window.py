"""``spikeforge sim --vcd PATH --vcd-images N`` on a real simulator: Icarus (a build of seconds)
traces only the first N images, in a traced build of its own, and its waveform's size is about
the estimate printed beforehand. (Without a simulator, tests/test_cli_sim_progress.py checks
the calls and messages.)"""

import json
from pathlib import Path

import pytest

from spikeforge.builder import random_model
from spikeforge.data import load_digits_split
from spikeforge.sim.accel_runner import simulate_verilog
from spikeforge.sim.runners import simulator_missing_reason


@pytest.mark.slow
def test_icarus_traces_the_first_image_only(tmp_path, capsys):
    reason = simulator_missing_reason("icarus")
    if reason is not None:
        pytest.skip(reason)
    images = load_digits_split("test")[0][:2]
    r = simulate_verilog(random_model(1, channels=8), images, lanes=2, simulator="icarus",
                         build_dir=tmp_path / "cache", vcd=tmp_path / "w.vcd", vcd_images=1, progress=False)
    assert r["mismatches"] == []  # both runs equal the golden model, and the traced one the untraced
    waves = Path(r["waves"])
    assert waves == tmp_path / "w.fst" and r["waves_images"] == 1
    with open(Path(r["build_dir"]) / "job_waves.json") as f:
        assert len(json.load(f)["images"]) == 1
    assert r["waves_estimate_bytes"] / 3 < waves.stat().st_size < 3 * r["waves_estimate_bytes"]
    assert "the waveform of the first 1 image, run again in a traced build" in capsys.readouterr().err
