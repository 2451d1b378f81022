# amaranth: UnusedElaboratable=no
"""Lint: the Verilog that ``spikeforge generate unit`` writes for every unit passes
``verilator --lint-only -Wall`` with only the allowed, documented warnings
(``AMARANTH_HARMLESS_WARNINGS``, docs/toolchain.md) and ``ASCRANGE`` for zero-width signals
(docs/units.md): Amaranth writes a zero-width signal, e.g. the default empty ``tag`` of an
event or the payload of a start-only stream, as ``wire [-1:0] x;``, which nothing drives or
reads. Any other warning fails the test.

And no ``always @*`` process that assigns only constants: it has nothing to be sensitive to, so
Icarus never runs it and the signal stays X (a one-tile SparseAdd's ``tile`` field did that)."""

import re
from pathlib import Path

import pytest

from spikeforge.cli import main
from spikeforge.hdl.generate import UNITS
from spikeforge.sim.runners import AMARANTH_HARMLESS_WARNINGS, simulator_missing_reason, verilator_lint

DOCS = Path(__file__).resolve().parents[2] / "docs"

# unit -> parameter sets (command-line strings); defaults where the unit has them
LINT_PARAMS = {
    "spike_event_encoder": [{"channels": "8"}, {"channels": "5", "levels": "16", "fast": "true"}],
    "sparse_add": [{}, {"in_channels": "3", "out_channels": "10", "kernel": "3", "levels": "4", "lanes": "4"},
                   {"in_channels": "3", "out_channels": "4", "lanes": "4"}],     # one tile
    "conv_window_scan": [{"height": "8", "width": "8", "kernel": "3", "padding": "1"},
                         {"height": "5", "width": "7", "kernel": "2", "stride": "2"}],
    "lif_array": [{}, {"mode": "multispike", "levels": "4", "ms_shift": "2", "shift": "3"},
                  {"mode": "pass", "lanes": "3", "channels": "8", "leak": "0", "reset": "soft"}],
    "spike_attention_mask": [{}, {"leak": "0", "reset": "soft", "theta": "3"}],
    "spike_attention_linear": [{"channels": "8", "heads": "2", "tokens": "4"},
                               {"channels": "4", "heads": "1", "tokens": "3", "levels_q": "3", "levels_k": "2"}],
}

ZERO_WIDTH = re.compile(r"^ASCRANGE: .*bit range: \[-1:0\]$")
_CONST = r"[^\s=;]+ = \d+'[hbd][0-9a-fA-FxXzZ]+;"
CONSTANT_PROCESS = re.compile(rf"always @\*\s*(?:{_CONST}|begin\s*(?:{_CONST}\s*)+end)")


def unexpected_warnings(path):
    """Lint warnings outside the allow-list and the zero-width rule."""
    return [w for w in verilator_lint(path) if not ZERO_WIDTH.match(w)]


@pytest.fixture(autouse=True)
def _need_verilator():
    reason = simulator_missing_reason("verilator")
    if reason is not None:
        pytest.skip(reason)


def test_every_unit_is_linted():
    assert set(LINT_PARAMS) == set(UNITS)


@pytest.mark.parametrize("unit,params", [pytest.param(u, p, id=f"{u}-{n}")
                                         for u, sets in LINT_PARAMS.items() for n, p in enumerate(sets)])
def test_generated_unit_lints_clean(unit, params, tmp_path, capsys):
    args = ["generate", "unit", unit, "-o", str(tmp_path)]
    for key, value in params.items():
        args += ["-p", f"{key}={value}"]
    assert main(args) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == tmp_path / f"{unit}.v" and path.is_file()
    assert unexpected_warnings(path) == []
    assert CONSTANT_PROCESS.findall(path.read_text()) == []


def test_constant_process_rule_finds_both_forms():
    text = ("always @*\n    o[20] = 1'h0;\nalways @*\n    o[21] = a;\n"
            "always @* begin\n  x = 2'h1;\n  y[1:0] = 2'h0;\nend\nalways @* begin\n  x = 2'h1;\n  y = b;\nend\n")
    assert [m.split()[2] for m in CONSTANT_PROCESS.findall(text)] == ["o[20]", "begin"]


def test_zero_width_rule_is_narrow(tmp_path):
    """Only ``[-1:0]`` is excused: another ascending range, or any warning outside the list,
    is still reported."""
    bad = tmp_path / "asc.v"
    bad.write_text("module asc(input [0:3] a, input [-1:0] z, output y);\n  assign y = a[1];\nendmodule\n")
    found = unexpected_warnings(bad)
    assert any(w.startswith("ASCRANGE") and "[0:3]" in w for w in found), found
    assert not any("[-1:0]" in w for w in found), found


def test_allowed_warnings_are_documented():
    toolchain = (DOCS / "toolchain.md").read_text()
    for code in AMARANTH_HARMLESS_WARNINGS:
        assert f"`{code}`" in toolchain, code
    assert "ASCRANGE" in (DOCS / "units.md").read_text()
