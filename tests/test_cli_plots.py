"""``--plot DIR`` on eval, info and build: the pictures are written, and a folder that cannot
take them (or a missing matplotlib) is one line before any work."""

import sys

import pytest

from spikeforge.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _pngs(folder):
    files = sorted(folder.glob("*.png"))
    for f in files:
        assert f.read_bytes()[:8] == PNG and f.stat().st_size > 1000, f
    return [f.name for f in files]


def test_eval_plot_writes_raster_firing_and_confusion(tmp_path, capsys):
    assert main(["eval", "--limit", "20", "--quiet", "--plot", str(tmp_path / "p")]) == 0
    assert _pngs(tmp_path / "p") == ["eval_confusion.png", "eval_firing_rate.png", "eval_spike_raster.png"]
    assert "plot: " in capsys.readouterr().err


def test_info_plot_writes_memory_logic_and_cycles(tmp_path):
    assert main(["info", "--target", "ice40-up5k", "--lanes", "1", "--plot", str(tmp_path)]) == 0
    assert _pngs(tmp_path) == ["info_cycles.png", "info_logic.png", "info_memory.png"]


@pytest.mark.parametrize("argv", [["eval"], ["info"], ["build", "--board", "icebreaker"]])
def test_plot_folder_that_is_a_file_fails_first(tmp_path, capsys, argv, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    assert main([*argv, "--plot", "afile"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spikeforge: error: --plot:") and "afile" in err[0]
    assert not (tmp_path / "build").exists()   # nothing compiled or synthesized


def test_plot_without_matplotlib_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    for name in [m for m in sys.modules if m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    assert main(["eval", "--limit", "5", "--plot", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "spikeforge[plot]"' in err[0]
    assert not (tmp_path / "p").exists()
