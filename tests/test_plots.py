"""Pictures (spikeforge.plots): every PNG is written, valid and non-empty, and the data drawn
is the data the model, the analytic report or the build report give."""

from pathlib import Path
import importlib.util
import json
import os
import struct
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from matplotlib.image import imread  # noqa: E402

from spikeforge import plots  # noqa: E402
from spikeforge.builder import random_model  # noqa: E402
from spikeforge.data import load_digits_split  # noqa: E402
from spikeforge.sim.model import run_model  # noqa: E402
from spikeforge.summary import summarize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]  # the repository

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """``(width, height)`` from the IHDR chunk; checks the signature and that the pixels decode."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    w, h = struct.unpack(">II", data[16:24])
    assert w > 100 and h > 100, (w, h)
    pixels = imread(path)
    assert pixels.shape[:2] == (h, w)
    assert pixels.std() > 0, f"{path} is blank"
    return w, h


def only_pngs(folder, names):
    """The folder holds exactly these PNGs: nothing half-written (no temporary file) is left."""
    assert sorted(os.listdir(folder)) == sorted(f"{n}.png" for n in names)


@pytest.fixture(scope="module")
def model():
    # multi-level spikes (graded raster) and the Q-SDSA attention
    return random_model(3, attention="qsd", levels=3, time_steps=2, channels=8)


@pytest.fixture(scope="module")
def data():
    images, labels = load_digits_split("test")
    return images[:24], labels[:24]


def test_eval_pictures_show_the_models_results(model, data, tmp_path):
    images, labels = data
    result = run_model(model, images)
    figs = plots.figures_eval(model, images, labels, result=result, image_index=5)
    assert list(figs) == ["eval_spike_raster", "eval_firing_rate", "eval_confusion"]

    # confusion matrix: numpy's count of (true, predicted) pairs
    want = np.zeros((10, 10), np.int64)
    np.add.at(want, (labels, result.classes), 1)
    drawn = np.asarray(figs["eval_confusion"].axes[0].images[0].get_array())
    assert np.array_equal(drawn, want) and drawn.sum() == len(images)

    # firing rate bars: run_model's rates, in percent, layer by layer
    spiking = [n.name for n in model.nodes if n.name in result.firing]
    ax = figs["eval_firing_rate"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == spiking
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == pytest.approx([100 * np.mean(result.firing[name]) for name in spiking])

    # raster: image 5's spikes of each spiking layer, [T, tokens x channels]
    recorded = run_model(model, images, record=True).tensors
    strips = figs["eval_spike_raster"].axes
    assert len(strips) == len(spiking) >= 5
    for ax, name in zip(strips, spiking):
        assert ax.get_ylabel() == name
        shown = np.asarray(ax.images[0].get_array())
        assert np.array_equal(shown, recorded[name][5].reshape(model.time_steps, -1))
    assert any(recorded[name][5].max() > 1 for name in spiking)  # graded spikes are drawn too

    paths = plots.plot_eval(model, images, labels, tmp_path / "new" / "eval", result=result, dpi=60)
    assert [p.name for p in paths] == ["eval_spike_raster.png", "eval_firing_rate.png", "eval_confusion.png"]
    for p in paths:
        png_size(p)
    only_pngs(tmp_path / "new" / "eval", figs)


def test_eval_runs_the_golden_model_when_given_no_result(model, data):
    images, labels = data
    figs = plots.figures_eval(model, images[:6], labels[:6])
    drawn = np.asarray(figs["eval_confusion"].axes[0].images[0].get_array())
    want = np.zeros((10, 10), np.int64)
    np.add.at(want, (labels[:6], run_model(model, images[:6]).classes), 1)
    assert np.array_equal(drawn, want)


def test_eval_rejects_mismatched_labels_and_image_index(model, data):
    images, labels = data
    with pytest.raises(ValueError, match=r"labels have shape \(23,\); expected \(24,\)"):
        plots.figures_eval(model, images, labels[:-1])
    with pytest.raises(ValueError, match="labels span 1..10; the model has classes 0..9"):
        plots.figures_eval(model, images, np.where(labels == 9, 10, labels))
    with pytest.raises(ValueError, match="image_index is 24; allowed 0..23"):
        plots.figures_eval(model, images, labels, image_index=24)


@pytest.mark.parametrize("target", ["ice40-up5k", "ecp5-85f", None])
def test_info_pictures_show_the_analytic_report(model, data, tmp_path, target):
    from spikeforge.hdl.accel.report import analyze, compile_for_target

    images = data[0][:4]
    lanes = 1 if target == "ice40-up5k" else 2
    analysis = analyze(compile_for_target(model, lanes, target), target=target, images=images)
    figs = plots.figures_info(model, lanes, target, images=images, analysis=analysis)

    # cycles per node: the passes of a node summed (the total is the report's cycles/image);
    # the bound's per-node terms add up to the report's lower bound
    ax = figs["info_cycles"].axes[0]
    bars = ax.patches
    n = len(bars) // 2
    cycles, bound = [b.get_width() for b in bars[:n]], [b.get_width() for b in bars[n:]]
    assert sum(cycles) == pytest.approx(analysis["cycles_per_image"]["mean"], abs=0.05 * len(cycles))
    assert sum(bound) == pytest.approx(analysis["lower_bound_cycles"])
    names = [t.get_text() for t in ax.get_yticklabels()]
    golden = run_model(model, images)
    for name, b in zip(names, bound):
        want = np.mean(-(-np.asarray(golden.syn_adds.get(name, 0)) // lanes)
                       + -(-golden.neuron_updates[name] // lanes))
        assert b == pytest.approx(want)

    # memory: the parameter bits of every node (in kbit) and the engine's memories
    params, engine = figs["info_memory"].axes
    summary = summarize(model)
    assert sum(b.get_width() for b in params.patches) == pytest.approx(summary["memory_bits"] / 1000)
    assert [b.get_width() for b in engine.patches] == pytest.approx([m["bits"] / 1000 for m in analysis["memories"]])

    # logic: the estimate against the device, in percent
    ax = figs["info_logic"].axes[0]
    widths = [b.get_width() for b in ax.patches]
    est = analysis["logic_estimate"]
    if target is None:
        assert widths == [est["lut"], est["ff"], est["multipliers"]]
    else:
        avail = analysis["device"]["available"]
        first = est["cells"] if target.startswith("ice40") else est["lut"]
        assert widths[:2] == pytest.approx([100 * first / avail["lut"], 100 * est["ff"] / avail["ff"]])
        assert widths[2] == pytest.approx(100 * analysis["device"]["bram_blocks"] / avail["bram"])

    paths = plots.plot_info(model, lanes, target, tmp_path, images=images, analysis=analysis, dpi=60)
    assert [p.name for p in paths] == ["info_memory.png", "info_logic.png", "info_cycles.png"]
    for p in paths:
        png_size(p)
    only_pngs(tmp_path, figs)


def test_info_refuses_an_analysis_of_other_lanes(model, data):
    with pytest.raises(ValueError, match="the analysis given is for 4 lanes and 3 images, not 2 lanes and 3 images"):
        plots.figures_info(model, 2, None, images=data[0][:3], analysis={"lanes": 4, "images": 3})


def ice40_report():
    """The fields of a build_report.json (boards/build.py) that the picture reads."""
    return {
        "board": "icebreaker", "device": "ice40-up5k", "lanes": 1,
        "clock": {"requested_mhz": 24.0, "mhz": 24.0, "source": "pll"},
        "fmax_mhz": 33.8, "timing_met": True,
        "resources": {"lut": {"used": 3390, "available": 5280}, "ff": {"used": 2249, "available": 5280},
                      "bram": {"used": 21, "available": 30}, "spram": {"used": 4, "available": 4},
                      "dsp": {"used": 2, "available": 8}},
        "placed": {"logic_cells": {"used": 4967, "available": 5280}, "bram": {"used": 21, "available": 30}},
        "precheck": {"bram_blocks": 21, "spram_blocks": 4,
                     "logic_estimate": {"lut": 3620, "ff": 2404, "cells": 5222, "multipliers": 1}},
    }


def test_build_picture_shows_the_reports_utilization(tmp_path):
    report = ice40_report()
    ax = plots.figures_build(report)["build_utilization"].axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["logic cells\n(placed)", "LUT4 (Yosys)", "flip-flops", "block RAMs", "SPRAMs", "DSPs"]
    want = [4967 / 5280] + [v["used"] / v["available"] for v in report["resources"].values()]
    assert [b.get_width() for b in ax.patches] == pytest.approx([100 * w for w in want])
    # the pre-check's estimates are drawn as markers beside the measured bars
    xs, ys = ax.lines[0].get_data()
    assert list(ys) == [0, 1, 2, 3, 4, 5]
    assert list(xs) == pytest.approx([100 * 5222 / 5280, 100 * 3620 / 5280, 100 * 2404 / 5280, 70, 100, 12.5])

    ecp5 = dict(report, board="ulx3s-85f", device="ecp5-85f", placed={}, fmax_mhz=None, timing_met=False,
                resources={"lut": {"used": 9000, "available": 83640}, "ff": {"used": 7000, "available": 83640},
                           "bram": {"used": 300, "available": 208}, "spram": {"used": 0, "available": 0}})
    ax = plots.figures_build(ecp5)["build_utilization"].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["LUTs (Yosys)", "flip-flops", "block RAMs"]
    assert ax.patches[2].get_width() == pytest.approx(100 * 300 / 208)   # over the device: drawn, red
    assert "no fmax reported" in ax.get_title()

    path = tmp_path / "build_report.json"
    path.write_text(json.dumps(report))
    out = plots.plot_build(path, tmp_path / "plots", dpi=60)
    assert [p.name for p in out] == ["build_utilization.png"]
    png_size(out[0])


def test_build_picture_refuses_a_bad_report_in_one_line(tmp_path):
    bad = ice40_report()
    del bad["resources"]
    cases = [(bad, "the build report has no 'resources' entry")]
    (tmp_path / "notjson.json").write_text("{ not json")
    cases.append((tmp_path / "notjson.json", f"build report {tmp_path / 'notjson.json'} is not JSON"))
    cases.append((tmp_path / "absent.json", f"build report {tmp_path / 'absent.json'} does not exist"))
    (tmp_path / "list.json").write_text("[1, 2]")
    cases.append((tmp_path / "list.json", "holds a list, not a JSON object"))
    for report, message in cases:
        with pytest.raises(plots.PlotError) as e:
            plots.plot_build(report, tmp_path / "out")
        assert message in str(e.value) and "\n" not in str(e.value)
    assert not list((tmp_path / "out").iterdir())


def test_lanes_picture_and_the_benchmarks_plot_option(tmp_path, capsys):
    rows = [{"lanes": P, "measured_cycles": 1000 / P + 7, "predicted_cycles": 1000 / P + 5,
             "lower_bound_cycles": 1000 / P} for P in (4, 1, 2)]
    cyc, ips = plots.figures_lanes(rows, clock_mhz=50)["lanes"].axes
    measured, predicted, bound = (line.get_ydata() for line in cyc.lines)
    assert list(cyc.lines[0].get_xdata()) == [1, 2, 4]
    assert list(measured) == [1007, 507, 257] and list(predicted) == [1005, 505, 255]
    assert list(bound) == [1000, 500, 250]
    assert list(ips.lines[0].get_ydata()) == pytest.approx([50e6 / c for c in (1007, 507, 257)])

    spec = importlib.util.spec_from_file_location("accel_lanes", ROOT / "benchmarks" / "accel_lanes.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "lanes"
    assert bench.main(["--analytic", "--images", "2", "--lanes", "4", "8", "--plot", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["lanes"] for r in got] == [4, 8] and got[0]["measured_cycles"] is None
    assert got[0]["predicted_cycles"] > got[1]["predicted_cycles"] > got[1]["lower_bound_cycles"] * 0.9
    png_size(out / "lanes.png")
    only_pngs(out, ["lanes"])

    with pytest.raises(SystemExit):   # checked before any simulation
        bench.main(["--analytic", "--plot", str(out / "lanes.png")])
    assert "cannot write plots to" in capsys.readouterr().err


def test_missing_matplotlib_is_one_line_naming_the_extra(model, data, tmp_path, monkeypatch):
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.setitem(sys.modules, name, None)   # import now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    images, labels = data
    out = tmp_path / "out"
    calls = [lambda: plots.plot_eval(model, images, labels, out),
             lambda: plots.plot_info(model, 1, None, out),
             lambda: plots.plot_build(ice40_report(), out),
             lambda: plots.plot_lanes([{"lanes": 1, "predicted_cycles": 9, "lower_bound_cycles": 8}], out, 10),
             lambda: plots.figures_eval(model, images, labels),
             lambda: plots.check_plot_dir(out)]
    for call in calls:
        with pytest.raises(plots.PlotError) as e:
            call()
        msg = str(e.value)
        assert msg == 'plots need matplotlib, which is not installed; install it with pip install "spikeforge[plot]"'
    assert not out.exists()   # nothing created before the check


def test_unwritable_plot_folder_is_one_line(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [(afile, f"cannot write plots to {afile}: it is a file, not a folder"),
             (afile / "sub", f"cannot create the plot folder {afile / 'sub'}: a part of that path is a file")]
    for out, message in cases:
        with pytest.raises(plots.PlotError) as e:
            plots.plot_build(ice40_report(), out)
        assert str(e.value).startswith(message) and "\n" not in str(e.value)
        assert "Errno" not in str(e.value)
    assert afile.read_text() == "x"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_plot_folder_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(plots.PlotError, match=f"cannot write plots to {ro}: permission denied"):
            plots.plot_build(ice40_report(), ro)
    finally:
        ro.chmod(0o700)


def test_a_picture_replaces_an_older_one_atomically(tmp_path):
    (tmp_path / "build_utilization.png").write_bytes(b"old")
    (path,) = plots.plot_build(ice40_report(), tmp_path, dpi=50)
    png_size(path)
    only_pngs(tmp_path, ["build_utilization"])
