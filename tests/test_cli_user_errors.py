"""The user's path through the CLI (issue 18 defects 1, 4-11; issue 24 item 5): every user error
is one line ``spikeforge: error: ...`` naming the option or the user's own path, exit status 2;
numbers are checked the same way everywhere; outputs are checked before the work; torch is
needed only by ``train`` and ``eval --backend torch``."""

import json
import os
import subprocess
import sys
import textwrap
import types

import pytest

from spikeforge import save_model
from spikeforge.builder import random_model
from spikeforge.cli import main
from spikeforge.options import BAUD_RATES, os_error_message


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("spikeforge: error: "), err
    assert "Traceback" not in err and "[Errno" not in err and ".tmp-" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "small.sfm"
    save_model(random_model(1, channels=8, mlp_ratio=1), path)
    return path


# --- defect 1: no torch ----------------------------------------------------------------------

_NO_TORCH = textwrap.dedent("""
    import contextlib, io, json, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ModuleNotFoundError("No module named 'torch'", name=name)
    sys.meta_path.insert(0, Block())
    from spikeforge.cli import main
    results = []
    for argv in json.loads(sys.argv[1]):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except BaseException as e:  # a traceback is what the test must catch
                import traceback
                code, err = "raised", io.StringIO(traceback.format_exc())
        results.append([code, out.getvalue(), err.getvalue()])
    # what `sim` and `build` run past their option checks (a real run is minutes: not here)
    import spikeforge.boards.build, spikeforge.boards.runtime, spikeforge.sim.accel_runner  # noqa: E401
    results.append("torch" in sys.modules)
    print(json.dumps(results))
""")


def test_cli_works_without_torch_and_names_the_extra(tmp_path):
    """Defect 1: the CLI in a process where torch cannot be imported (no uninstall needed)."""
    argvs = [["--help"], ["info"], ["eval", "--limit", "3", "--quiet"], ["generate", "-o", str(tmp_path / "g")],
             ["sim", "--help"], ["build", "--help"], ["train", "--print-config"],
             ["train", "-o", str(tmp_path / "m.sfm")], ["eval", "--backend", "torch", "--limit", "2"]]
    proc = subprocess.run([sys.executable, "-c", _NO_TORCH, json.dumps(argvs)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    *results, torch_loaded = json.loads(proc.stdout)
    for argv, (code, out, err) in zip(argvs[:7], results[:7]):
        assert code == 0, (argv, err)
        assert "Traceback" not in err, (argv, err)
    assert (tmp_path / "g" / "spikeforge_accel.v").is_file()
    assert json.loads(results[6][1])["weight_bits"] == 4  # --print-config needs no torch either
    for argv, (code, out, err) in zip(argvs[7:], results[7:]):
        line = _one_error_line(err)
        assert code == 2 and "needs PyTorch" in line and 'pip install "spikeforge[torch]"' in line, (argv, err)
        assert 'pip install -e ".[torch]"' in line
    assert not (tmp_path / "m.sfm").exists()
    assert torch_loaded is False


def test_no_torch_ci_script_exists_and_is_executable():
    """The CI step (.ci/no_torch_check.sh) that proves it in a fresh venv without torch."""
    path = os.path.join(os.path.dirname(__file__), "..", ".ci", "no_torch_check.sh")
    assert os.access(path, os.X_OK)
    with open(path) as f:
        text = f.read()
    for cmd in ("spikeforge --help", "spikeforge info", "spikeforge eval", "spikeforge generate"):
        assert cmd in text
    assert "Traceback" in text  # it fails on any traceback


# --- defect 4: outputs checked before the work --------------------------------------------------

def test_train_checks_output_before_training(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    fake = types.ModuleType("spikeforge.quant.train")

    def no_training(*a, **k):
        raise AssertionError("training must not start when -o cannot be written")

    fake.train = no_training
    monkeypatch.setitem(sys.modules, "spikeforge.quant.train", fake)
    code, _, err = _run(capsys, "train", "--epochs", "1", "-o", blocker / "m.sfm")
    line = _one_error_line(err)
    assert code == 2 and f"-o {blocker / 'm.sfm'}" in line and "is a file, not a folder" in line
    code, _, err = _run(capsys, "train", "--epochs", "1", "-o", tmp_path)
    assert code == 2 and "is a folder; give a file name" in _one_error_line(err)


def test_every_output_option_is_checked_first(tmp_path, capsys, monkeypatch, small_model):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    import spikeforge.boards.build
    import spikeforge.cli
    import spikeforge.hdl.accel.generate
    import spikeforge.hdl.generate
    import spikeforge.sim.accel_runner

    def no_work(*a, **k):
        raise AssertionError("the work must not start when an output cannot be written")

    # (the commands import these at call time, so the patches end with the test)
    for module, name in ((spikeforge.cli, "_evaluate"), (spikeforge.hdl.accel.generate, "generate_accelerator"),
                         (spikeforge.hdl.generate, "generate_unit"), (spikeforge.sim.accel_runner, "simulate_verilog"),
                         (spikeforge.boards.build, "build_board")):
        monkeypatch.setattr(module, name, no_work)
    cases = [
        (["eval", small_model, "--save-logits", blocker / "l.npy"], "--save-logits"),
        (["eval", small_model, "--save-logits", tmp_path], "--save-logits"),
        (["generate", small_model, "-o", blocker], "-o"),
        (["generate", "unit", "sparse_add", "-o", blocker], "-o"),
        (["sim", small_model, "--vcd", blocker / "w.vcd"], "--vcd"),
        (["sim", small_model, "--build-dir", blocker], "--build-dir"),
        (["build", small_model, "--board", "icebreaker", "-o", blocker / "sub"], "-o"),
    ]
    for argv, option in cases:
        code, _, err = _run(capsys, *argv)
        line = _one_error_line(err)
        assert code == 2 and line.startswith(f"spikeforge: error: {option} {argv[-1]}: "), (argv, line)
    monkeypatch.setenv("SPIKEFORGE_CACHE", str(blocker))  # the default simulator cache too
    code, _, err = _run(capsys, "sim", small_model)
    assert code == 2 and f"$SPIKEFORGE_CACHE) {blocker / 'accel_sim'}: " in _one_error_line(err)
    assert blocker.read_text() == "x"


# --- defect 5 / 11: one error style -------------------------------------------------------------

def test_os_errors_name_the_users_path_not_errno_or_temporary_names():
    e = IsADirectoryError(21, "Is a directory", "/data/.tmp-2ep5_spbro", None, "/data/ro")
    msg = os_error_message(e)
    assert msg.startswith("cannot write /data/ro: is a directory;") and ".tmp" not in msg and "Errno" not in msg
    e = FileExistsError(17, "File exists", "afile")
    assert os_error_message(e) == "cannot write afile: file exists; a file of that name is in the way; " \
                                  "choose another path"


def test_run_bad_port_has_no_errno_text(tmp_path, capsys):
    code, _, err = _run(capsys, "run", "--board", "icebreaker", "--port", tmp_path / "ttyNONE", "--images", "2")
    line = _one_error_line(err)
    assert code == 2 and f"--port {tmp_path / 'ttyNONE'}: cannot open it (no such file or directory)" in line
    assert "SerialTransport" not in line


@pytest.mark.parametrize("argv", [
    ["build", "--board", "nexys"],          # argparse, formerly "spikeforge build: error" + usage
    ["train", "--levels", "0"],             # formerly "spikeforge train: error"
    ["info", "--lanes", "x"],
    ["generate", "unit", "sparse_add", "-p", "lanes"],
])
def test_one_prefix_one_line_status_2(capsys, argv):
    code, _, err = _run(capsys, *argv)
    assert code == 2
    _one_error_line(err)


def test_build_errors_use_the_one_prefix(tmp_path, capsys, monkeypatch, small_model):
    import spikeforge.boards.build as build

    monkeypatch.setattr(build, "_run_stage", lambda *a, **k: pytest.fail("no synthesis in this test"))
    code, _, err = _run(capsys, "build", small_model, "--board", "icebreaker", "--lanes", "8", "-o", tmp_path / "o")
    line = _one_error_line(err.splitlines()[-1])  # after the progress lines
    assert code == 2 and "does not fit icebreaker" in line


# --- defect 6: one --lanes, one fit check -------------------------------------------------------

@pytest.mark.parametrize("command", [["info"], ["generate", "-o", "unused"], ["sim"],
                                     ["build", "--board", "icebreaker"], ["run", "--board", "icebreaker",
                                                                          "--port", "/dev/null"]])
@pytest.mark.parametrize("lanes, why", [("0", "0 is out of range"), ("3", "3 is not a power of two"),
                                        ("128", "128 is out of range")])
def test_lanes_is_validated_the_same_everywhere(capsys, command, lanes, why):
    code, _, err = _run(capsys, *command, "--lanes", lanes)
    line = _one_error_line(err)
    assert code == 2 and f"argument --lanes: {why}; allowed: a power of two 1..64" in line


def test_lanes_is_one_option_definition():
    from spikeforge.cli import build_parser

    from spikeforge.options import LANES

    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    found, several = {}, {}
    for name, p in sub.items():
        for parser in [p] + [q for a in p._actions if a.dest == "generate_what" for q in a.choices.values()]:
            for a in parser._actions:
                if "--lanes" in a.option_strings:
                    if a.nargs is None:
                        found[parser.prog] = (a.type, a.default, a.help.split(":", 1)[1])
                    else:
                        several[parser.prog] = (a.type, a.nargs)
    assert set(found) == {"spikeforge info", "spikeforge generate accel", "spikeforge sim", "spikeforge build",
                          "spikeforge run"}
    assert len(set(found.values())) == 1, found
    # `sweep --lanes 4 8 16 32`: a list, each value checked by the same LANES
    assert several == {"spikeforge sweep": (LANES, "+")} and next(iter(found.values()))[0] is LANES


def test_fit_verdict_is_the_same_for_info_generate_and_build(tmp_path, capsys, monkeypatch, small_model):
    """An 8-channel model at 2 lanes: the engine alone fits the iCE40UP5K's logic, with the host
    link of a board build it does not. info said "fits" and exited 0 where build refused."""
    import spikeforge.boards.build as build

    monkeypatch.setattr(build, "_run_stage", lambda *a, **k: pytest.fail("no synthesis in this test"))
    for argv in (["info", small_model, "--lanes", "2", "--target", "ice40-up5k"],
                 ["info", small_model, "--lanes", "2", "--target", "icebreaker", "--json"],
                 ["generate", small_model, "--lanes", "2", "--target", "icebreaker", "-o", tmp_path / "g"],
                 ["build", small_model, "--lanes", "2", "--board", "icebreaker", "-o", tmp_path / "b"]):
        code, out, err = _run(capsys, *argv)
        line = _one_error_line(err.splitlines()[-1] if argv[0] == "build" else err)
        assert code == 2 and "logic: needs about" in line and "ice40-up5k has 5280" in line, (argv, err)
    assert not (tmp_path / "g").exists()
    code, out, err = _run(capsys, "info", small_model, "--lanes", "1", "--target", "icebreaker")
    assert code == 0 and "fits" in out


def test_memory_misfit_exits_2_on_every_device(capsys, small_model):
    """ecp5-25f at 64 lanes: block RAM beyond the device (formerly status 0 on ECP5, 2 on iCE40)."""
    code, out, err = _run(capsys, "info", small_model, "--lanes", "64", "--target", "ecp5-25f")
    assert code == 2 and "does NOT fit" in out and "block RAM: needs" in _one_error_line(err)


# --- defect 7 and issue 24 item 5: numbers ------------------------------------------------------

@pytest.mark.parametrize("argv, option", [
    (["run", "--board", "icebreaker", "--port", "/dev/null", "--timeout", "inf"], "--timeout"),
    (["run", "--board", "icebreaker", "--port", "/dev/null", "--timeout", "nan"], "--timeout"),
    (["run", "--board", "icebreaker", "--port", "/dev/null", "--timeout", "0"], "--timeout"),
    (["run", "--board", "icebreaker", "--port", "/dev/null", "--retries", "-1"], "--retries"),
    (["run", "--board", "icebreaker", "--port", "/dev/null", "--baud", "12345"], "--baud"),
    (["build", "--board", "icebreaker", "--clock", "inf"], "--clock"),
    (["build", "--board", "icebreaker", "--clock", "nan"], "--clock"),
    (["build", "--board", "icebreaker", "--clock", "-5"], "--clock"),
    (["build", "--board", "icebreaker", "--baud", "-1"], "--baud"),
    (["build", "--board", "icebreaker", "--baud", "0"], "--baud"),
    (["build", "--board", "icebreaker", "--baud", "12345"], "--baud"),
    (["build", "--board", "icebreaker", "--seed", "1.5"], "--seed"),
    (["sim", "--seed", "-3"], "--seed"),
    (["sim", "--images", "0"], "--images"),
    (["eval", "--limit", "-2"], "--limit"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--theta", "inf"], "--theta"),
    (["train", "--lr", "nan"], "--lr"),
])
def test_numeric_options_one_line_naming_the_option(capsys, argv, option):
    code, _, err = _run(capsys, *argv)
    line = _one_error_line(err)
    assert code == 2 and f"argument {option}" in line and "allowed:" in line, line


def test_build_checks_baud_and_clock_before_compiling(tmp_path, capsys, monkeypatch, small_model):
    import spikeforge.boards.build as build

    # build imports fit at module level: patch its name there
    monkeypatch.setattr(build, "fit", lambda *a, **k: pytest.fail("compiled before checking --baud/--clock"))
    monkeypatch.setattr(build, "_run_stage", lambda *a, **k: pytest.fail("no synthesis in this test"))
    # 3.5 Mbaud on the icebreaker: its FT2232H makes 3.56 Mbaud, 1.6% off
    for argv, option in ((["--baud", "3500000"], "--baud"), (["--clock", "5"], "--clock"),
                         (["--clock", "300"], "--clock")):
        code, _, err = _run(capsys, "build", small_model, "--board", "icebreaker", *argv, "-o", tmp_path / "o")
        line = _one_error_line(err)
        assert code == 2 and line.startswith(f"spikeforge: error: {option}: "), line
    assert not (tmp_path / "o").exists()


def test_build_and_run_take_the_same_baud_rates():
    """One list (boards.hostlink): the option, the board top's check and the serial port's."""
    from spikeforge.boards import hostlink, runtime, top
    from spikeforge.devices import get_target
    from spikeforge.options import BAUD

    assert BAUD.choices is BAUD_RATES is hostlink.BAUD_RATES is runtime.BAUD_RATES
    icebreaker = get_target("icebreaker")
    for baud in (9600, 115200, 921600):
        top.check_link_settings(icebreaker, None, baud)
    for baud in (12345, 115200.0, True):
        with pytest.raises(ValueError, match=r"^--baud: .* is not supported; allowed: one of 1200, 2400"):
            top.check_link_settings(icebreaker, None, baud)


def test_clock_plan_refuses_infinity():
    from spikeforge.devices import get_target
    from spikeforge.boards.top import plan_clock

    for bad in (float("inf"), float("nan")):
        with pytest.raises(ValueError, match="allowed: a positive number of MHz"):
            plan_clock(get_target("icebreaker"), bad)


# --- defect 8: one rule for image counts --------------------------------------------------------

@pytest.mark.parametrize("argv", [["run", "--board", "icebreaker", "--port", "/dev/null", "--images", "1000"],
                                  ["sim", "--images", "361"], ["eval", "--limit", "400"]])
def test_image_counts_beyond_the_split_are_errors(capsys, argv):
    code, _, err = _run(capsys, *argv)
    line = _one_error_line(err)
    assert code == 2 and f"{argv[-2]}: {argv[-1]} is more than the digits test split holds; allowed: 1..360" in line


# --- defect 9: every unit has documented defaults -----------------------------------------------

def test_generate_unit_without_parameters(tmp_path, capsys):
    """Formerly a Python signature message ("missing 3 required keyword-only arguments")."""
    code, out, err = _run(capsys, "generate", "unit", "spike_attention_linear", "-o", tmp_path)
    assert code == 0, err
    assert "module spike_attention_linear" in (tmp_path / "spike_attention_linear.v").read_text()


def test_unit_list_shows_every_parameter_with_default_and_range(capsys):
    import inspect

    from spikeforge.hdl import generate as g

    code, out, _ = _run(capsys, "generate", "unit", "list")
    assert code == 0
    lines = out.splitlines()
    for name, factory in g.UNITS.items():
        # the parameters a unit takes are exactly the documented ones, with the same defaults
        target = {
            "spike_event_encoder": g.SpikeEventEncoder, "conv_window_scan": g.ConvWindowScan,
            "spike_attention_linear": g.SpikeAttentionLinear}.get(name, factory)
        sig = {p.name: p.default for p in inspect.signature(target).parameters.values()
               if p.kind == p.KEYWORD_ONLY and p.name != "tag_shape"}
        assert list(sig) == list(g.PARAMS[name]), name
        for key, default in sig.items():
            if default is not inspect.Parameter.empty:
                assert g.PARAMS[name][key][0] == default, (name, key)
        start = lines.index(name)
        for key, (default, allowed) in g.PARAMS[name].items():
            row = lines[start + 1 + list(g.PARAMS[name]).index(key)].split()
            assert row[:3] == [key, "default", str(default)] and allowed.split()[-1] in row, (name, row)
