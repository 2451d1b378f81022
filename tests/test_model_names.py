"""Shipped models selected by name (issue 20): a bare MODEL argument (no folder part, no .sfm,
no such file here) is ``spikeforge/models/NAME.sfm`` for every command; an unknown one is one
line listing the shipped names; a file of that name in the working folder wins."""

import os
import shutil

import pytest

from spikeforge.cli import main
from spikeforge.options import CLIError, default_model_path, load_model_arg, shipped_model_names, \
    shipped_model_path

SHIPPED = ("default", "mnist")


def _one_error_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("spikeforge: error: "), err
    return lines[0]


def test_shipped_names_are_the_package_models():
    assert tuple(shipped_model_names()) == SHIPPED
    for name in SHIPPED:
        assert os.path.isfile(shipped_model_path(name))
    assert shipped_model_path("default") == default_model_path()


@pytest.mark.parametrize("name", SHIPPED)
def test_bare_name_is_the_shipped_model(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path, model = load_model_arg(name)
    assert path == shipped_model_path(name)
    assert model.metadata == load_model_arg(shipped_model_path(name))[1].metadata


def test_a_file_of_that_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(default_model_path(), tmp_path / "mnist")  # the 8x8 model under the name mnist
    path, model = load_model_arg("mnist")
    assert path == "mnist" and model.metadata["config"]["image"] == [8, 8, 1]


@pytest.mark.parametrize("arg, wanted", [
    ("mnistx", "model 'mnistx' is neither a model file nor a shipped model; shipped models: default, mnist"),
    ("mnist.sfm", "model file mnist.sfm does not exist"),
    (os.path.join("sub", "mnist"), f"model file {os.path.join('sub', 'mnist')} does not exist"),
])
def test_unknown_names_and_missing_paths(arg, wanted, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CLIError, match="^" + wanted.replace(".", r"\.")):
        load_model_arg(arg)


@pytest.mark.parametrize("argv", [
    ["eval", "nosuch"], ["info", "nosuch"], ["sim", "nosuch"], ["generate", "accel", "nosuch", "-o", "out"],
    ["build", "nosuch", "--board", "ulx3s-85f", "-o", "out"], ["run", "nosuch", "--board", "ulx3s-85f", "--simulate"],
])
def test_every_command_takes_a_name(argv, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "'nosuch' is neither a model file nor a shipped model; shipped models: default, mnist" in line
