"""``spikeforge clean``: the simulator cache under $SPIKEFORGE_CACHE, listed with sizes and
deleted (``--dry-run`` only lists); a build folder a running simulation holds is kept."""

import fcntl
import re

import pytest

from spikeforge.cache import cache_root
from spikeforge.cli import main
from spikeforge.sim.accel_runner import default_build_root


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(root))
    for folder, size in (("accel_sim/verilator_P8_aaaa", 150_000), ("accel_sim/icarus_P8_bbbb", 2_000),
                         ("board_sim/icebreaker_P1_cccc", 30_000)):
        (root / folder / "obj").mkdir(parents=True)
        (root / folder / "obj" / "Vtop").write_bytes(b"x" * size)
    (root / "board_sim" / ".sim_board-1.v").write_bytes(b"y" * 100)  # a loose file
    (root / "datasets" / "digits").mkdir(parents=True)  # spikeforge.datasets' default folder
    (root / "datasets" / "digits" / "x.npz").write_bytes(b"z" * 1000)
    return root


def _clean(capsys, *argv):
    code = main(["clean", *argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def test_the_cache_is_where_the_simulators_put_it(cache):
    assert cache_root() == cache and default_build_root() == cache / "accel_sim"


def test_dry_run_lists_folders_with_sizes_and_deletes_nothing(cache, capsys):
    out, _ = _clean(capsys, "--dry-run")
    assert out.splitlines()[0] == f"simulator cache {cache} ($SPIKEFORGE_CACHE):"
    assert re.search(r"^  accel_sim +152\.0 KB +2 builds$", out, re.M)
    assert re.search(r"^ +150\.0 KB +verilator_P8_aaaa$", out, re.M)
    assert re.search(r"^  board_sim +30\.1 KB +1 build$", out, re.M)
    assert re.search(r"^  total +182\.1 KB$", out, re.M)
    assert "would delete 182.1 KB (--dry-run: nothing deleted)" in out
    assert (cache / "accel_sim" / "verilator_P8_aaaa" / "obj" / "Vtop").is_file()


def test_clean_deletes_everything_then_reports_empty(cache, capsys):
    out, _ = _clean(capsys)
    assert "deleted 182.1 KB" in out and "left alone (not simulator builds): datasets" in out
    assert [p.name for p in cache.iterdir()] == ["datasets"]  # the datasets are not a cache to clean
    assert (cache / "datasets" / "digits" / "x.npz").is_file()
    out, _ = _clean(capsys)
    assert out.strip() == (f"no simulator builds in {cache} ($SPIKEFORGE_CACHE): nothing to delete; "
                           "left alone (not simulator builds): datasets")


def test_a_build_in_use_is_kept(cache, capsys):
    busy = cache / "accel_sim" / "verilator_P8_aaaa"
    with open(busy / ".lock", "w") as lock:  # what simulate_verilog holds while it runs
        fcntl.flock(lock, fcntl.LOCK_EX)
        out, err = _clean(capsys)
    assert f"kept {busy}: a simulation is using it" in err
    assert busy.is_dir() and not (cache / "accel_sim" / "icarus_P8_bbbb").exists()
    assert not (cache / "board_sim").exists()
    assert "deleted 32.1 KB" in out
