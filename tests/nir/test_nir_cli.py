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


def test_import_reads_real_datasets_like_the_other_commands(tmp_path, capsys, monkeypatch):
    # --data-root and --download reach the dataset loader (a folder without the MNIST files
    # and no --download: one line naming what is missing); an unknown dataset is refused by
    # name with the allowed ones.
    import spikeforge.nir_cli as nir_cli

    seen = []
    real = nir_cli.load_dataset

    def spy(name, split, **kw):
        seen.append((name, split, kw.get("data_root"), kw.get("download")))
        return real(name, split, **kw)

    monkeypatch.setattr(nir_cli, "read_graph", lambda path: None)
    monkeypatch.setattr(nir_cli, "load_dataset", spy)
    out = tmp_path / "m.sfm"
    assert main(["import", "g.nir", "-o", str(out), "--dataset", "mnist", "--data-root", str(tmp_path)]) == 2
    assert "mnist" in _one_line(capsys) and seen == [("mnist", "train", str(tmp_path), False)]
    assert not out.exists()
    monkeypatch.setattr(nir_cli, "load_dataset", lambda name, split, **kw: seen.append(kw["download"]) or 1 / 0)
    try:
        main(["import", "g.nir", "-o", str(out), "--dataset", "mnist", "--download"])
    except ZeroDivisionError:
        pass
    assert seen[-1] is True
    assert main(["import", "g.nir", "-o", str(out), "--dataset", "imagenet"]) == 2
    assert "invalid choice: 'imagenet'" in _one_line(capsys)
