# amaranth: UnusedElaboratable=no
"""Tier 2: every unit of ``spikeforge.hdl.generate.UNITS``, converted to Verilog exactly as
``spikeforge generate unit`` writes it, simulated with cocotb under Verilator (and Icarus when
installed), with random idle cycles on every input and backpressure on the output, against
the same golden functions as the tier-1 amaranth.sim tests.

One Verilator build per (unit, parameter set, simulator), each in its own temporary folder.
The default run builds one parameter set per unit; the other sets are marked ``slow``.
"""

from pathlib import Path

import pytest
from amaranth.back import verilog

from spikeforge.hdl.generate import UNITS, generate_unit, make_unit
from spikeforge.hdl.sparse_add import SparseAdd
from spikeforge.sim.runners import SimulationFailed, run_cocotb, simulator_missing_reason

HERE = Path(__file__).parent
SIMULATORS = ["verilator", "icarus"]
slow = pytest.mark.slow


def simulate_unit(unit, params, simulator, tmp_path_factory, **tb_params):
    """Generate ``unit`` with ``params`` and run ``tb_<unit>.py`` on it; returns the result."""
    reason = simulator_missing_reason(simulator)
    if reason is not None:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp(f"{unit}_{simulator}")
    src = generate_unit(unit, params, folder)
    parameters = {"unit": unit, "params": params, "seed": 1, "idle": 0.3, "backpressure": 0.4,
                  **tb_params}
    result = run_cocotb([src], unit, HERE / f"tb_{unit}.py", simulator=simulator, build_dir=folder,
                        parameters=parameters, timeout=900)
    assert result.passed == ["matches_golden"], result
    return result


def _sets(default, *extra):
    return [pytest.param(default, id="default")] + [
        pytest.param(p, id=f"slow{n}", marks=slow) for n, p in enumerate(extra)]


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("params", _sets({"channels": 9, "levels": 3},
                                         {"channels": 16, "levels": 16, "fast": True}))
def test_spike_event_encoder(simulator, params, tmp_path_factory):
    simulate_unit("spike_event_encoder", params, simulator, tmp_path_factory)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("params", _sets(
    {"in_channels": 5, "out_channels": 7, "kernel": 3, "weight_bits": 4, "levels": 3, "lanes": 4},
    {"in_channels": 16, "out_channels": 16, "kernel": 1, "weight_bits": 8, "levels": 1, "lanes": 8,
     "seed": 5},
    # the accumulate core in the engine's fast build's configuration; two tiles, so an
    # addition reads the word the one two ahead writes (the second forward)
    {"in_channels": 6, "out_channels": 8, "kernel": 1, "weight_bits": 6, "levels": 3, "lanes": 4,
     "fast": True, "banks": 2}))
def test_sparse_add(simulator, params, tmp_path_factory):
    simulate_unit("sparse_add", params, simulator, tmp_path_factory)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("params", _sets(
    {"height": 5, "width": 6, "kernel": 3, "stride": 2, "padding": 1},
    {"height": 8, "width": 8, "kernel": 3, "stride": 1, "padding": 1}))
def test_conv_window_scan(simulator, params, tmp_path_factory):
    simulate_unit("conv_window_scan", params, simulator, tmp_path_factory)


_LIF = {"channels": 6, "tokens": 3, "lanes": 4, "time_steps": 3, "in_bits": 10, "out_bits": 7,
        "mult": [3, -5, 17, 1, -1, 9], "bias": [0, 40, -100, 7, 3, -9], "shift": 3,
        "theta": [1, 5, 20, 63, 2, 9]}


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("params", _sets(
    _LIF,
    {**_LIF, "leak": 0, "reset": "soft"},
    {**_LIF, "mode": "multispike", "levels": 4, "ms_shift": 2, "theta": 1},
    {**_LIF, "mode": "pass", "lanes": 3, "theta": 1}))
def test_lif_array(simulator, params, tmp_path_factory):
    simulate_unit("lif_array", params, simulator, tmp_path_factory)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("params", _sets(
    {"channels": 5, "tokens": 4, "time_steps": 3, "theta": [1, 2, 3, 4, 6]},
    {"channels": 8, "tokens": 6, "time_steps": 4, "theta": [1, 2, 3, 5, 8, 12, 20, 30], "leak": 0,
     "reset": "soft"}))
def test_spike_attention_mask(simulator, params, tmp_path_factory):
    simulate_unit("spike_attention_mask", params, simulator, tmp_path_factory)


@pytest.mark.parametrize("simulator", SIMULATORS)
@pytest.mark.parametrize("params", _sets(
    {"channels": 6, "heads": 2, "tokens": 3, "levels_q": 3, "levels_k": 2, "levels_v": 1},
    {"channels": 8, "heads": 1, "tokens": 5}))
def test_spike_attention_linear(simulator, params, tmp_path_factory):
    simulate_unit("spike_attention_linear", params, simulator, tmp_path_factory)


def test_every_unit_has_a_tier2_test():
    tested = {name[len("test_"):] for name in globals() if name.startswith("test_")}
    assert set(UNITS) <= tested, sorted(set(UNITS) - tested)
    assert all((HERE / f"tb_{name}.py").is_file() for name in UNITS)


class _SparseAddLanesSwapped(SparseAdd):
    """Broken on purpose: weight rows packed with the lanes in reverse order."""

    def _init_rows(self):
        wb, p = self.weight_bits, self.lanes
        mask = (1 << wb) - 1
        rows = []
        for row in super()._init_rows():
            lanes = [(row >> (wb * n)) & mask for n in range(p)]
            rows.append(sum(v << (wb * n) for n, v in enumerate(reversed(lanes))))
        return rows


@slow  # one more Verilator build
def test_broken_unit_is_caught(tmp_path_factory):
    reason = simulator_missing_reason("verilator")
    if reason is not None:
        pytest.skip(reason)
    params = {"in_channels": 5, "out_channels": 7, "kernel": 3, "weight_bits": 4, "levels": 3, "lanes": 4}
    good = make_unit("sparse_add", params)
    folder = tmp_path_factory.mktemp("sparse_add_broken")
    src = folder / "sparse_add_broken.v"
    src.write_text(verilog.convert(_SparseAddLanesSwapped(weight=good.weight, levels=3, lanes=4),
                                   name="sparse_add_broken"))
    with pytest.raises(SimulationFailed, match="failing tests: matches_golden"):
        run_cocotb([src], "sparse_add_broken", HERE / "tb_sparse_add.py", build_dir=folder,
                   parameters={"unit": "sparse_add", "params": params, "seed": 1})
