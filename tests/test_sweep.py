"""``spikeforge sweep`` (boards/sweep.py): a grid of builds as Dask tasks, one table, one plot.

The CI tier runs the orchestration on a cluster of threads in this process with the tool runs
replaced (the stand-in of tests/boards_build/test_build_flash.py, for iCE40): every status a
point can end in, the re-run that skips the points done, the options. The slow tier runs a real
lanes sweep of a tiny model on a local cluster of processes, kills one worker while it builds,
and checks the table and the plot against the build reports and the analytic model.
"""

import contextlib
import csv
import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import psutil  # a dependency of distributed
import pytest

from spikeforge.boards import build
from spikeforge.boards.build import BuildError
from spikeforge.boards.sweep import COLUMNS, DONE, grid, run_sweep
from spikeforge.builder import random_model
from spikeforge.cli import main
from spikeforge.hdl.accel.report import fit
from spikeforge.modelfile import save_model
from spikeforge.sim.cluster import open_client

BOARD = "icebreaker"


def tiny_model():
    """The smallest model of the family that maps: 8x8 digits-sized input, 4 channels, 2 classes."""
    return random_model(1, image=(8, 8, 1), channels=4, heads=1, blocks=1, patch=2, mlp_ratio=1, classes=2)


def images():
    return np.random.default_rng(0).integers(0, 17, (4, 8, 8, 1))


def fake_tools(fmax_by_seed, fail=None):
    """The tool runs of an iCE40 build, written as Yosys and nextpnr would; nextpnr's fmax from
    the ``--seed`` of its command line; ``fail``: seed -> exception the nextpnr stage raises."""
    def run_stage(stage, cmd, cwd, env, progress, deadline, log_name):
        cwd = Path(cwd)
        if "Yosys" in stage:
            (cwd / "top_rtl.v").write_text("module top(); endmodule\n")
            (cwd / "stat.json").write_text(json.dumps({"design": {"num_cells_by_type": {
                "SB_LUT4": 2400, "SB_CARRY": 100, "SB_DFFE": 1500, "SB_RAM40_4K": 9, "SB_MAC16": 1}}}))
        elif "nextpnr" in stage:
            seed = int(cmd[cmd.index("--seed") + 1])
            if fail and seed in fail:
                raise fail[seed]
            (cwd / "top.tim").write_text(
                "Info: Device utilisation:\nInfo: \t      ICESTORM_LC:  3400/ 5280    64%\n"
                f"Info: Max frequency for clock 'clk': {fmax_by_seed[seed]:.2f} MHz (PASS at 24.00 MHz)\n")
        elif "Verilog" not in stage:
            (cwd / "top.bin").write_bytes(b"bits")
        return 0.01
    return run_stage


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_outcome_is_a_row_and_a_rerun_builds_only_what_is_not_done(tmp_path, monkeypatch):
    """Seeds 1..4 at 1 lane: ok, timing failed (fmax 20 < 24 MHz), a tool failure, a timeout;
    2 lanes do not fit the UP5K; 500 MHz cannot be made. Each is a row with its reason, the
    table lists them all in grid order, each has its point file; a re-run keeps the done ones
    and builds the failed and timed-out points again (and now they succeed)."""
    fmax = {1: 30.0, 2: 20.0, 3: 31.0, 4: 32.0}
    fail = {3: BuildError("nextpnr place and route failed (exit 1)\nlog: x\n--- last lines ---\nERROR: no route"),
            4: build.BuildTimeout("nextpnr place and route was still running when the build's time limit of 5 s "
                                  "ran out; log: x")}
    monkeypatch.setattr(build, "_run_stage", fake_tools(fmax, fail))
    model, out = tiny_model(), tmp_path / "sweep"
    points = grid([1, 2], [24, 500], [1, 2, 3, 4])
    lines = []
    with open_client(workers=1, processes=False) as client:
        table = run_sweep(model, BOARD, points, images(), out, client, timeout=5, progress=lines.append)
    rows = {(r["lanes"], r["clock_mhz"], r["seed"]): r for r in table["rows"]}
    assert len(table["rows"]) == 16 and [(p.lanes, p.clock_mhz, p.seed) for p in points] == \
        [(r["lanes"], r["clock_mhz"], r["seed"]) for r in table["rows"]]
    ok, slow, broken, late = (rows[(1, 24.0, s)] for s in (1, 2, 3, 4))
    assert ok["status"] == "ok" and ok["timing_met"] and ok["luts"] == 2400 and ok["cells"] == 3400
    assert ok["bram"] == 9 and ok["fmax_mhz"] == 30.0 and ok["reason"] == ""
    _, analysis = fit(model, 1, BOARD, images=images())
    assert ok["cycles_per_image"] == pytest.approx(analysis["cycles_per_image"]["mean"], abs=0.01)
    assert ok["images_per_s"] == pytest.approx(24e6 / analysis["cycles_per_image"]["mean"], abs=0.1)
    assert slow["status"] == "timing-failed" and not slow["timing_met"] and slow["fmax_mhz"] == 20.0
    assert "fmax 20.00 MHz < requested clock 24 MHz" in slow["reason"]
    assert broken["status"] == "failed" and "ERROR: no route" in broken["reason"] and broken["luts"] is None
    assert late["status"] == "timeout" and "time limit of 5 s" in late["reason"]
    for s in (1, 2, 3, 4):
        assert rows[(2, 24.0, s)]["status"] == "does-not-fit" and "nothing was synthesized" in \
            rows[(2, 24.0, s)]["reason"]
        for lanes in (1, 2):
            r = rows[(lanes, 500.0, s)]
            assert r["status"] == "refused" and "--clock: clock 500 MHz is out of range" in r["reason"]
    assert table["counts"] == {"ok": 1, "timing-failed": 1, "failed": 1, "timeout": 1, "does-not-fit": 4,
                               "refused": 8}
    # one progress line per point; the files
    assert len(lines) == 16 and sum("1 lane, 24 MHz, seed 3: failed" in ln for ln in lines) == 1
    csv_rows = read_csv(out / "sweep.csv")
    assert list(csv_rows[0]) == list(COLUMNS) and len(csv_rows) == 16
    assert json.loads((out / "sweep.json").read_text())["rows"] == table["rows"]
    assert len(list((out / "points").glob("*.json"))) == 16
    assert not list(out.rglob(".tmp-*"))

    # Re-run: the 14 done points are kept; seeds 3 and 4 build again (the tools now work).
    monkeypatch.setattr(build, "_run_stage", fake_tools(fmax))
    lines.clear()
    with open_client(workers=1, processes=False) as client:
        again = run_sweep(model, BOARD, points, images(), out, client, timeout=5, progress=lines.append)
    assert again["built"] == 2 and again["reused"] == 14
    assert lines[0].startswith("14 of 16 points already done") and len(lines) == 3
    rows2 = {(r["lanes"], r["clock_mhz"], r["seed"]): r for r in again["rows"]}
    assert rows2[(1, 24.0, 3)]["status"] == "ok" and rows2[(1, 24.0, 4)]["status"] == "ok"
    assert all(rows2[k] == rows[k] for k in rows if rows[k]["status"] in DONE)


def test_a_new_tool_version_or_model_builds_again(tmp_path, monkeypatch):
    """The key holds the model's content and the tool versions: either changed, nothing is reused."""
    from spikeforge.boards import sweep

    monkeypatch.setattr(build, "_run_stage", fake_tools({1: 30.0}))
    points, out = grid([1], [24], [1]), tmp_path / "s"
    with open_client(workers=1, processes=False) as client:
        first = run_sweep(tiny_model(), BOARD, points, images(), out, client, progress=None)
        same = run_sweep(tiny_model(), BOARD, points, images(), out, client, progress=None)
        other = run_sweep(random_model(2, image=(8, 8, 1), channels=4, heads=1, blocks=1, patch=2, mlp_ratio=1,
                                       classes=2), BOARD, points, images(), out, client, progress=None)
        real = sweep.tool_versions
        monkeypatch.setattr(sweep, "tool_versions", lambda family: {**real(family), "yosys": "Yosys 99.0"})
        newer = run_sweep(tiny_model(), BOARD, points, images(), out, client, progress=None)
    assert (first["built"], same["built"], other["built"], newer["built"]) == (1, 0, 1, 1)
    assert first["versions"]["yosys"] != "Yosys 99.0" and first["versions"]["gateware_sources"]
    assert len({first["rows"][0]["key"], other["rows"][0]["key"], newer["rows"][0]["key"]}) == 3


def test_a_task_that_raises_is_a_row_not_the_end_of_the_sweep(tmp_path, monkeypatch):
    from spikeforge.boards import sweep

    real = sweep.build_board

    def broken(model, board, *, lanes, **kw):
        if lanes == 1:
            raise ZeroDivisionError("a bug")
        return real(model, board, lanes=lanes, **kw)

    monkeypatch.setattr(sweep, "build_board", broken)
    with open_client(workers=1, processes=False) as client:
        table = run_sweep(tiny_model(), BOARD, grid([1, 2], [24], [1]), images(), tmp_path, client, progress=None)
    assert [r["status"] for r in table["rows"]] == ["error", "does-not-fit"]
    assert table["rows"][0]["reason"] == "ZeroDivisionError: a bug"


# --- the command line --------------------------------------------------------------------------

@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny.sfm"
    save_model(tiny_model(), path)
    return str(path)


@pytest.mark.parametrize("argv,message", [
    (["--lanes", "3"], "argument --lanes: 3 is not a power of two; allowed: a power of two 1..64"),
    (["--lanes", "1", "--clock", "inf"], "argument --clock: 'inf' is not a finite number"),
    (["--lanes", "1", "--seeds", "-1"], "argument --seeds: -1 is out of range; allowed: an integer 0..4294967295"),
    (["--lanes", "1", "--workers", "0"], "argument --workers: 0 is out of range; allowed: an integer 1..1024"),
    (["--lanes", "1", "--timeout", "nan"], "argument --timeout: 'nan' is not a finite number"),
    (["--lanes", "1", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
     "--workers 2 sizes the local cluster and cannot go with --scheduler tcp://127.0.0.1:1"),
])
def test_bad_options_are_one_line_exit_2(model_file, tmp_path, capsys, argv, message):
    code = main(["sweep", model_file, "--board", BOARD, "--dataset", "digits", "-o", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("spikeforge: error: ") and message in err[0], err


def test_an_unreachable_scheduler_is_one_line(model_file, tmp_path, capsys, monkeypatch):
    from spikeforge.sim import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    code = main(["sweep", model_file, "--board", BOARD, "--lanes", "1", "--dataset", "digits",
                 "--scheduler", "tcp://127.0.0.1:9", "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--scheduler tcp://127.0.0.1:9: cannot connect" in err[0], err


def test_without_matplotlib_the_plot_is_skipped_in_one_line(model_file, tmp_path, capsys, monkeypatch):
    """A sweep whose points are all refused before synthesis (a real local cluster, one worker)."""
    from spikeforge import plots

    def no_matplotlib():
        raise plots.PlotError(f"plots need matplotlib, which is not installed; install it with {plots.INSTALL_HINT}")

    monkeypatch.setattr(plots, "_figure_class", no_matplotlib)
    out = tmp_path / "o"
    code = main(["sweep", model_file, "--board", BOARD, "--lanes", "2", "4", "--clock", "24", "--dataset",
                 "digits", "--workers", "1", "-o", str(out)])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    skipped = [ln for ln in cap.err.splitlines() if "sweep.png" in ln]
    assert skipped == ["sweep.png not written: plots need matplotlib, which is not installed; install it with "
                       'pip install "spikeforge[plot]"']
    assert [r["status"] for r in read_csv(out / "sweep.csv")] == ["does-not-fit", "does-not-fit"]
    assert "2 points (2 does-not-fit); 2 run now, 0 reused" in cap.out and not (out / "sweep.png").exists()


# --- slow: real builds on a local cluster of processes ----------------------------------------------

def _executing(dask_worker):
    return [str(ts.key) for ts in dask_worker.state.executing]


class WorkerKiller(threading.Thread):
    """Kills (SIGKILL) the worker process that has been building a 1-lane point for ``after``
    seconds, and the tool it runs (as when its machine goes down; the tools run in their own
    session and would otherwise finish on their own): the sweep must still finish every point."""

    def __init__(self, client, after=4.0):
        super().__init__(daemon=True)
        self.client, self.after, self.killed = client, after, None
        self.stop = threading.Event()

    def run(self):
        since = {}
        while not self.stop.is_set() and self.killed is None:
            try:
                busy = self.client.run(_executing)
            except Exception:  # noqa: BLE001 - the cluster is closing
                return
            now = time.monotonic()
            for addr, keys in busy.items():
                key = next((k for k in keys if k.startswith("sweep-1lanes")), None)
                if key is None:
                    since.pop(addr, None)
                    continue
                if now - since.setdefault((addr, key), now) >= self.after:
                    pid = self.client.run(os.getpid, workers=[addr])[addr]
                    tools = psutil.Process(pid).children(recursive=True)
                    os.kill(pid, signal.SIGKILL)
                    for tool in tools:
                        with contextlib.suppress(psutil.Error):
                            tool.kill()
                    self.killed = (addr, key, pid)
                    return
            time.sleep(0.5)


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory):
    """A lanes sweep 1, 2, 4, 8 x seeds 1, 2 of the tiny model on the iCEBreaker (2 worker
    processes): 2 builds (one of them cut short by a killed worker and built again), 6 points
    refused by the pre-check. About 80 s of CPU."""
    out = tmp_path_factory.mktemp("sweep")
    lines = []
    t0 = time.monotonic()
    with open_client(workers=2) as client:
        killer = WorkerKiller(client)
        killer.start()
        table = run_sweep(tiny_model(), BOARD, grid([1, 2, 4, 8], [24], [1, 2]), images(), out, client,
                          timeout=600, progress=lines.append)
        killer.stop.set()
        killer.join()
    return dict(out=out, table=table, lines=lines, killed=killer.killed, seconds=time.monotonic() - t0)


@pytest.mark.slow
def test_lanes_sweep_survives_a_killed_worker_and_writes_table_and_plot(real_sweep):
    from spikeforge.plots import plot_sweep

    table, out = real_sweep["table"], real_sweep["out"]
    print(f"sweep wall time {real_sweep['seconds']:.1f} s; killed {real_sweep['killed']}")
    print("\n".join(real_sweep["lines"]))
    assert real_sweep["killed"] is not None, "no worker was killed mid-build"
    rows = table["rows"]
    assert len(rows) == 8 and len(real_sweep["lines"]) == 8
    built = [r for r in rows if r["lanes"] == 1]
    assert [r["seed"] for r in built] == [1, 2]
    assert all(r["status"] in ("ok", "timing-failed") for r in built), built
    _, analysis = fit(tiny_model(), 1, BOARD, images=images())
    for r in built:
        doc = json.loads((out / "points" / f"{r['key']}.json").read_text())
        rep = doc["report"]
        assert r["luts"] == rep["resources"]["lut"]["used"] > 500
        assert r["cells"] == rep["placed"]["logic_cells"]["used"] <= 5280
        assert r["fmax_mhz"] == rep["fmax_mhz"] > 0 and r["timing_met"] == (r["fmax_mhz"] >= 24)
        assert r["cycles_per_image"] == pytest.approx(analysis["cycles_per_image"]["mean"], abs=0.01)
        assert r["images_per_s"] == pytest.approx(24e6 / r["cycles_per_image"], rel=1e-3)
    assert all(r["status"] == "does-not-fit" for r in rows if r["lanes"] > 1)
    assert [r["lanes"] for r in read_csv(out / "sweep.csv")] == [str(r["lanes"]) for r in rows]
    path, = plot_sweep(json.loads((out / "sweep.json").read_text()), out)
    assert path == out / "sweep.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_rerunning_the_real_sweep_builds_nothing(real_sweep):
    out = real_sweep["out"]
    lines = []
    with open_client(workers=1, processes=False) as client:
        again = run_sweep(tiny_model(), BOARD, grid([1, 2, 4, 8], [24], [1, 2]), images(), out, client,
                          progress=lines.append)
    assert again["built"] == 0 and again["reused"] == 8 and lines == [
        f"8 of 8 points already done in {out} (same model, board and tool versions)"]
    assert again["rows"] == real_sweep["table"]["rows"]


def test_a_builds_timeout_bounds_the_whole_build(tmp_path, monkeypatch):
    """``build_board(timeout=...)`` is one limit for all the tool runs of a build (a sweep's
    ``--timeout``): each tool gets what is left, and the one that overruns it is a
    :class:`BuildTimeout`. Before, every tool had the whole limit to itself."""
    import subprocess

    given = []

    def fake_run(cmd, *, timeout=None, **kw):
        given.append((Path(cmd[0]).name, timeout))
        if len(given) == 3:
            raise subprocess.TimeoutExpired(cmd, timeout)
        time.sleep(0.3)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(build.procs, "run", fake_run)
    with pytest.raises(build.BuildTimeout, match=r"^icepack was still running when the build's time limit of "
                                                 r"100 s ran out; log: "):
        build.build_board(tiny_model(), BOARD, images=images(), lanes=1, out_dir=tmp_path / "o", progress=None,
                          timeout=100)
    assert [tool in name for tool, (name, _) in zip(("yosys", "nextpnr-ice40", "icepack"), given)] == [True] * 3
    limits = [t for _, t in given]
    assert limits[0] <= 100 and all(b <= a - 0.3 for a, b in zip(limits, limits[1:])), limits
