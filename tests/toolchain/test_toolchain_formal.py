"""SymbiYosys BMC through spikeforge.sim.formal: true properties pass, false ones fail."""

import os
import stat

import pytest
from amaranth import Elaboratable, Module
from demo_units import AffineProof, Counter

from spikeforge.sim.formal import FormalToolError, _solver_bin, free_inputs, in_range, prove


class CounterBound(Elaboratable):
    def __init__(self, high):
        self.high = high

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = Counter(width=3)
        free_inputs(m, dut)
        in_range(m, dut.count, high=self.high, name="count")
        return m


def test_stream_rules_hold_for_correct_stage(tmp_path):
    result = prove(AffineProof(), depth=15, workdir=tmp_path)
    assert result.passed, result.log[-2000:]
    assert result.status == "PASS" and result.counterexample is None


def test_stream_rules_catch_broken_stage(tmp_path):
    result = prove(AffineProof(broken=True), depth=15, workdir=tmp_path)
    assert not result.passed and result.status == "FAIL"
    assert result.counterexample is not None and result.counterexample.is_file()
    assert any("payload changed while valid and not ready" in a for a in result.failed_assertions)


def test_in_range_bites_only_when_bound_is_wrong(tmp_path):
    assert prove(CounterBound(high=7), depth=12, workdir=tmp_path / "ok").passed
    bad = prove(CounterBound(high=5), depth=12, workdir=tmp_path / "bad")
    assert not bad.passed and any("count <= 5" in a for a in bad.failed_assertions)
    with pytest.raises(ValueError, match="low, high or both"):
        in_range(None, None)


def test_solver_wrapper_is_not_recursive(tmp_path):
    script = _solver_bin(tmp_path, "/usr/bin/true")
    assert script.name == "boolector" and script.stat().st_mode & stat.S_IXUSR
    assert '"/usr/bin/true"' in script.read_text()
    with pytest.raises(FormalToolError, match="refusing"):
        _solver_bin(tmp_path, tmp_path / "boolector")


def test_missing_tool_is_named(monkeypatch, tmp_path):
    monkeypatch.setitem(os.environ, "SBY", str(tmp_path / "no-such-sby"))
    with pytest.raises(FormalToolError, match="'sby' not found .* SBY"):
        prove(AffineProof(), depth=2, workdir=tmp_path)
