"""Issue 24: a build cancelled from outside (SIGTERM, SIGINT, SIGHUP to its pid alone or to its
group) leaves no tool process and the output folder holds the complete previous set or the
complete new one; ``flash`` refuses a folder whose bitstream and report come from different
builds. Fake tools (shell scripts that write what Yosys, nextpnr and ecppack would, and can
sleep with a child of their own) stand in for the real ones: no synthesis runs."""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spikeforge.boards import cli as bcli
from spikeforge.boards import procs
from spikeforge.boards.buildset import MANIFEST, BuildSetError, check_bitstream, publish, staging_dir
from spikeforge.builder import random_model
from spikeforge.modelfile import save_model

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; POSIX signals")

BIT = "spikeforge_ulx3s-85f.bit"
VLOG = "spikeforge_ulx3s-85f.v"

STALL = """
if [ "$FAKE_STALL" = "$stage" ]; then
  sleep 60 &
  echo $! >> "$FAKE_PIDS"
  touch "$FAKE_MARK.$stage"
  wait
fi
"""

FAKE_TOOLS = {
    "yosys": """#!/bin/sh
echo $$ >> "$FAKE_PIDS"
case "$*" in
  *write_verilog*) stage=verilog
    printf 'module top(); // %s\\nendmodule\\n' "$FAKE_TOKEN" > top_rtl.v ;;
  *) stage=yosys
    echo '{"modules": {"top": {"ports": {}, "cells": {}}}}' > top.json
    echo '{"design": {"num_cells_by_type": {"LUT4": 1000, "TRELLIS_FF": 800, "DP16KD": 2}}}' > stat.json
    echo "yosys $FAKE_TOKEN" > top.rpt ;;
esac
""" + STALL,
    "nextpnr-ecp5": """#!/bin/sh
echo $$ >> "$FAKE_PIDS"
stage=nextpnr
printf "Info: Device utilisation:\\nInfo: \\t      TRELLIS_COMB:  1200/ 83640     1%%\\n" > top.tim
printf "Info: Max frequency for clock '\\$glbnet\\$clk25_0__i': 40.00 MHz (PASS at 25.00 MHz)\\n" >> top.tim
touch top.config
""" + STALL,
    "ecppack": """#!/bin/sh
echo $$ >> "$FAKE_PIDS"
stage=ecppack
printf 'bits %s' "$FAKE_TOKEN" > top.bit
""" + STALL,
}


def _state(pid):
    """The /proc state letter of ``pid``, or None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _group_members(pgid):
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """Fake tools, a model, and an output folder of one complete build (token "old")."""
    root = tmp_path_factory.mktemp("cancel")
    tools = root / "tools"
    tools.mkdir()
    env = dict(os.environ)
    for name, text in FAKE_TOOLS.items():
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
        env[name.upper().replace("-", "_")] = str(tools / name)
    model = root / "m.sfm"
    save_model(random_model(1, channels=4, heads=1), model)
    base = root / "base"
    proc = _start(env, model, base, root, token="old")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _assert_set(base, "old")
    return env, model, base, root


def _start(env, model, out, root, *, token, stall=""):
    env = dict(env, FAKE_TOKEN=token, FAKE_STALL=stall, FAKE_PIDS=str(root / f"pids-{token}"),
               FAKE_MARK=str(root / f"mark-{token}"))
    cmd = [sys.executable, "-m", "spikeforge.cli", "build", str(model), "--board", "ulx3s-85f", "--lanes", "1",
           "--clock", "25", "-o", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=_default_signals)


def _default_signals():
    """spikeforge starts with the signals at their defaults, as from a shell: a signal the test
    process ignores (a pytest worker after a test that ran a Dask cluster) would be inherited
    as ignored, and procs.guard() rightly leaves an ignored signal ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def _assert_set(out, token):
    """``out`` holds one complete build set, the one of ``token``."""
    manifest = check_bitstream(out / BIT)        # every output matches the manifest
    assert manifest is not None
    assert (out / BIT).read_bytes() == f"bits {token}".encode()
    assert f"// {token}" in (out / VLOG).read_text()
    assert f"yosys {token}" in (out / "build" / "top.rpt").read_text()
    report = json.loads((out / "build_report.json").read_text())
    assert Path(report["files"]["bitstream"]).name == BIT
    assert report["sha256"]["bitstream"] == manifest["files"][BIT]["sha256"]
    assert not staging_dir(out).exists()


@pytest.mark.parametrize("stall, sig, to_group", [
    ("yosys", signal.SIGTERM, False),
    ("nextpnr", signal.SIGINT, True),
    ("ecppack", signal.SIGHUP, False),
    ("verilog", signal.SIGTERM, True),
])
def test_signal_mid_build_kills_the_tools_and_keeps_the_previous_set(kit, tmp_path, stall, sig, to_group):
    env, model, base, root = kit
    out = tmp_path / "out"
    shutil.copytree(base, out)
    token = f"new-{stall}"
    proc = _start(env, model, out, root, token=token, stall=stall)
    mark = root / f"mark-{token}.{stall}"
    deadline = time.monotonic() + 120
    while not mark.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the fake tool never started"
        time.sleep(0.05)
    pids = [int(x) for x in (root / f"pids-{token}").read_text().split()]
    assert all(_state(p) not in (None, "Z") for p in pids[-2:])    # the stalled tool and its child run
    t0 = time.monotonic()
    if to_group:
        os.killpg(proc.pid, sig)
    else:
        os.kill(proc.pid, sig)
    try:
        # What must hold within 5 s: no tool process is left. spikeforge itself may take
        # longer to exit when the test's neighbours load both cores (seen in CI: > 5 s).
        while any(_state(p) not in (None, "Z") for p in pids) and time.monotonic() - t0 < 5:
            time.sleep(0.05)
        left = [p for p in pids if _state(p) not in (None, "Z")]
        assert not left, f"tool processes left running 5 s after {sig.name}: {left}"
        assert not any(_group_members(p) for p in pids)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()   # close the pipes even when an assertion failed
    assert proc.returncode == 128 + sig
    assert err.strip().splitlines()[-1] == f"spikeforge: interrupted by {sig.name}"
    _assert_set(out, "old")


def test_a_finished_rebuild_replaces_the_whole_set(kit, tmp_path):
    env, model, base, root = kit
    out = tmp_path / "out"
    shutil.copytree(base, out)
    proc = _start(env, model, out, root, token="fresh")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    _assert_set(out, "fresh")


def _fake_set(folder, token):
    stage = staging_dir(folder)
    (stage / "build").mkdir(parents=True)
    (stage / "build" / "top.rpt").write_text(f"yosys {token}")
    (stage / BIT).write_text(f"bits {token}")
    (stage / VLOG).write_text(f"module top(); // {token}\nendmodule\n")
    (stage / "build_report.json").write_text(json.dumps({"token": token}))
    return stage


def test_publish_holds_a_signal_until_the_set_is_complete(tmp_path, monkeypatch):
    out = tmp_path / "out"
    publish(_fake_set(out, "old"), out, [BIT, VLOG, "build_report.json"])
    stage = _fake_set(out, "new")
    real_replace = os.replace
    calls = []

    def replace_then_signal(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)     # a SIGTERM between two renames
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_signal)
    with procs.guard(), pytest.raises(procs.Interrupted, match="SIGTERM"):
        publish(stage, out, [BIT, VLOG, "build_report.json"])
    assert len(calls) >= 3
    assert (out / BIT).read_text() == "bits new" and "new" in (out / VLOG).read_text()
    assert check_bitstream(out / BIT)["files"][BIT]["bytes"] == len("bits new")


def test_flash_refuses_a_bitstream_that_does_not_match_its_report(kit, tmp_path, capsys):
    _, _, base, _ = kit

    def dry_run(folder):
        p = argparse.ArgumentParser()
        bcli.add_flash_arguments(p)
        code = bcli.run_flash(p.parse_args([str(folder / BIT), "--dry-run"]))
        cap = capsys.readouterr()
        return code, cap.err.strip()

    good = tmp_path / "good"
    shutil.copytree(base, good)
    assert dry_run(good) == (0, "")
    # a rebuild stopped after it wrote the new bitstream: the bitstream beside the old report
    mixed = tmp_path / "mixed"
    shutil.copytree(base, mixed)
    (mixed / BIT).write_bytes(b"bits of another build")
    code, err = dry_run(mixed)
    assert code == 1 and len(err.splitlines()) == 1
    assert f"{BIT}' does not match the build manifest" in err and "different builds; build again" in err
    # the report swapped instead
    other = tmp_path / "other"
    shutil.copytree(base, other)
    report = json.loads((other / "build_report.json").read_text())
    report["fmax_mhz"] = 99.0
    (other / "build_report.json").write_text(json.dumps(report))
    code, err = dry_run(other)
    assert code == 1 and "build_report.json' does not match the build manifest" in err
    # a report without a manifest (a publish cut off by a crash, or an older build)
    bare = tmp_path / "bare"
    shutil.copytree(base, bare)
    os.unlink(bare / MANIFEST)
    code, err = dry_run(bare)
    assert code == 1 and len(err.splitlines()) == 1 and f"has a build report but no {MANIFEST}" in err
    with pytest.raises(BuildSetError, match="is not in the build manifest"):
        (good / "spikeforge_other.bit").write_bytes(b"x")
        check_bitstream(good / "spikeforge_other.bit")


def test_procs_run_kills_the_tool_group_on_timeout_and_on_a_signal(tmp_path):
    """What synth.py and build.py run their tools with: the tool's own children die with it."""
    import threading

    def tool(name):
        return ["sh", "-c", f"sleep 30 & echo $! > {tmp_path / name}; wait"]

    def child_gone(name):
        t0 = time.monotonic()
        while not (tmp_path / name).exists() and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        pid = int((tmp_path / name).read_text())
        while _state(pid) not in (None, "Z") and time.monotonic() - t0 < 5:
            time.sleep(0.02)
        return _state(pid) in (None, "Z")

    with pytest.raises(subprocess.TimeoutExpired):
        procs.run(tool("a"), timeout=0.5)
    assert child_gone("a") and procs.running() == []
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    with procs.guard(), pytest.raises(procs.Interrupted, match="SIGTERM"):
        procs.run(tool("b"), timeout=30)
    timer.join()
    assert child_gone("b") and procs.running() == []
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL     # the handler is gone after guard()
