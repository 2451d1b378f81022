"""``spikeforge sim``'s progress tells the truth: "building the simulator" while it builds, the
per-image bar only after; ``--vcd`` traces a window of ``--vcd-images`` images and warns about
the size first. The simulator is a fake here (no Verilator build): these are the runner's and
the CLI's messages and calls, not the simulation (tests/accel_verilog run that)."""

import json
import re
import time

import pytest

from spikeforge import save_model
from spikeforge.builder import random_model
from spikeforge.cli import main
from spikeforge.sim import accel_runner
from spikeforge.sim.runners import CocotbResult

BUILD_SECONDS = 0.5  # the fake build: two polls of the runner's progress loop


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One build folder for the module: the accelerator's Verilog is written once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "small.sfm"
    save_model(random_model(2, channels=8, mlp_ratio=1), path)
    return str(path)


@pytest.fixture
def fake(monkeypatch):
    """Replace the cocotb run: a build of BUILD_SECONDS, then golden results for the job's
    images. Records every call and when the progress bar appeared."""
    log = {"calls": [], "events": []}

    def run_cocotb(sources, toplevel, test_module, *, simulator, build_dir, parameters, waves, timeout,
                   on_stage=None, **_):
        with open(parameters["job"]) as f:
            job = json.load(f)
        log["calls"].append({"images": len(job["images"]), "waves": waves, "job": parameters["job"]})
        on_stage("build")
        log["events"].append(("build started", time.monotonic()))
        time.sleep(BUILD_SECONDS)
        log["events"].append(("build done", time.monotonic()))
        on_stage("test", BUILD_SECONDS)
        rows = sum(hi - lo for lo, hi in job["spike_reads"]["rows"])
        results = [{"logits": e["logits"], "cls": e["cls"], "cycles": 1, "events": 1,
                    "wait_cycles": 1, "feed_cycles": 1, "refused_beats": 0,
                    "spike_words": {b: [0] * rows for b in job["spike_reads"]["banks"]}}
                   for e in job["expected"]]
        with open(job["progress"], "w") as f:
            f.write(str(len(results)))
        with open(job["out"], "w") as f:
            json.dump({"results": results}, f)
        result = CocotbResult(simulator=simulator, toplevel=toplevel, passed=["accelerator_images"],
                              build_dir=build_dir, build_seconds=BUILD_SECONDS, test_seconds=0.01)
        if waves is not None:
            with open(waves, "w") as f:
                f.write("$enddefinitions $end\n")
            result.waves = waves
        return result

    real_bar = accel_runner._progress_bar

    def progress_bar(total, enabled, desc="verilog sim"):
        log["events"].append((f"bar {desc} {total}", time.monotonic()))
        return real_bar(total, enabled, desc)

    monkeypatch.setattr(accel_runner, "run_cocotb", run_cocotb)
    monkeypatch.setattr(accel_runner, "_progress_bar", progress_bar)
    monkeypatch.setenv("SPIKEFORGE_CACHE", "unused-by-the-tests")
    return log


@pytest.fixture
def sim(capsys, model_file, cache):
    def run(*argv):
        code = main(["sim", model_file, "--build-dir", str(cache), *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_building_message_then_the_bar_only_after_the_build(fake, sim, tmp_path):
    code, out, err = sim("--images", "2", "--json")
    assert code in (0, 1)  # the fake's spike words are zeros: inner-layer mismatches are fine here
    names = [name for name, _ in fake["events"]]
    assert names == ["build started", "build done", "bar verilog sim 2"]
    times = dict(fake["events"])
    assert times["bar verilog sim 2"] >= times["build done"]  # no bar while the simulator builds
    building = err.index("building the simulator (Verilator)")
    assert building < err.index(f"simulator ready after {BUILD_SECONDS:.1f} s") < err.index("verilog sim")
    assert json.loads(out)["waves"] is None


def test_quiet_prints_no_progress(fake, sim, tmp_path):
    _, _, err = sim("--images", "1", "--quiet", "--json")
    assert "building" not in err and "verilog sim" not in err


def test_vcd_traces_a_window_in_a_separate_run_and_warns_about_its_size(fake, sim, tmp_path):
    vcd = tmp_path / "w.vcd"
    code, out, err = sim("--images", "3", "--vcd", str(vcd), "--vcd-images", "2",
                          "--json")
    # all 3 images untraced, then the first 2 traced (neither simulator can window its dump)
    assert [(c["images"], c["waves"]) for c in fake["calls"]] == [(3, None), (2, str(vcd))]
    m = re.search(r"the waveform of the first 2 images, run again in a traced build after the untraced run "
                  r"of all: about ([\d.]+) (KB|MB|GB) \(estimated from the signal count and cycles\); "
                  r"--vcd-images sets how many", err)
    assert m and float(m[1]) > 0
    assert err.index("the waveform of") < err.index("building the simulator")  # warned before the work
    assert "building the traced simulator (Verilator)" in err and "traced sim" in err
    report = json.loads(out)
    assert report["waves"] == str(vcd) and report["waves_images"] == 2 and vcd.is_file()


def test_vcd_default_window_is_one_image_and_one_run_when_it_covers_all(fake, sim, tmp_path):
    vcd = tmp_path / "w.vcd"
    sim("--images", "2", "--vcd", str(vcd), "--json")
    assert [(c["images"], c["waves"]) for c in fake["calls"]] == [(2, None), (1, str(vcd))]
    fake["calls"].clear()
    _, _, err = sim("--images", "2", "--vcd", str(vcd), "--vcd-images", "5",
                     "--json")
    assert [(c["images"], c["waves"]) for c in fake["calls"]] == [(2, str(vcd))]
    assert "the waveform of all 2 images: about" in err


def test_vcd_images_needs_vcd(model_file, capsys):
    assert main(["sim", model_file, "--vcd-images", "2"]) == 2
    assert capsys.readouterr().err.strip() == ("spikeforge: error: --vcd-images 2 without --vcd; give --vcd PATH "
                                               "to write a waveform")


def test_size_estimate_counts_signals_not_memories_and_grows_with_cycles():
    verilog = ("module m(a);\n  input [7:0] a;\n  reg [3:0] mem [15:0];\n  wire b;\n"
               "  reg signed [2:0] c = 3'h0;\nendmodule\n")
    assert accel_runner._signal_bits(verilog) == (3, 12)
    one, two = (accel_runner.waves_size_estimate(verilog, n) for n in (1000, 2000))
    assert two - one == pytest.approx(one - accel_runner.waves_size_estimate(verilog, 0), rel=1e-3)
    assert accel_runner.waves_size_estimate(verilog, 1000, "icarus") < one  # FST is compressed
