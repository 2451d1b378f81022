"""``spikeforge import`` and ``spikeforge export`` from the command line: refusals are one line."""

from spikeforge.cli import default_model_path, main


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("spikeforge: error: "), err
    return err[0]


def test_export_refuses_attention_in_one_line(tmp_path, capsys):
    assert main(["export", str(default_model_path()), "-o", str(tmp_path / "g.nir")]) == 2
    assert "attention has no NIR primitive" in _one_line(capsys)
    assert not (tmp_path / "g.nir").exists()


def test_import_of_a_missing_graph_is_one_line(tmp_path, capsys):
    assert main(["import", str(tmp_path / "none.nir"), "-o", str(tmp_path / "m.sfm")]) == 2
    assert "none.nir" in _one_line(capsys)
    assert main(["import", str(tmp_path / "none.nir"), "-o", str(tmp_path / "m.sfm"), "--dt", "inf"]) == 2
    assert "--dt" in _one_line(capsys)
