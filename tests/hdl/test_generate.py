# amaranth: UnusedElaboratable=no
import pytest

from spikeforge.hdl.generate import UNITS, UnitError, generate_unit, make_unit


@pytest.mark.parametrize("name,params", [
    ("spike_event_encoder", {"channels": "8", "levels": "4"}),
    ("spike_event_encoder", {"channels": "5", "levels": "2", "fast": "true"}),
    ("sparse_add", {"in_channels": "4", "out_channels": "6", "kernel": "3", "lanes": "4"}),
    ("conv_window_scan", {"height": "4", "width": "4", "kernel": "3", "padding": "1"}),
    ("lif_array", {"channels": "6", "tokens": "4", "lanes": "4", "shift": "2"}),
    ("lif_array", {"channels": "4", "tokens": "2", "lanes": "2", "mode": "multispike",
                   "levels": "4", "ms_shift": "1"}),
    ("spike_attention_mask", {"channels": "4", "tokens": "4", "time_steps": "2"}),
    ("spike_attention_linear", {"channels": "4", "heads": "2", "tokens": "4", "levels_q": "2"}),
])
def test_generate_writes_verilog(tmp_path, name, params):
    path = generate_unit(name, params, tmp_path)
    text = path.read_text()
    assert path.name == f"{name}.v" and f"module {name}" in text


def test_every_unit_has_a_golden_function():
    from spikeforge.sim import golden
    for name in UNITS:
        assert callable(getattr(golden, name))


@pytest.mark.parametrize("name,params,match", [
    ("nope", {}, "unknown unit 'nope'"),
    ("sparse_add", {"lanez": "3"}, r"unknown parameter\(s\) \['lanez'\]"),
    ("spike_event_encoder", {"channels": "0"}, "channels is 0"),
    ("spike_event_encoder", {"fast": "1"}, "fast is 1; allowed: True or False"),
    ("lif_array", {"mode": "relu"}, "mode is 'relu'"),
])
def test_errors(name, params, match):
    with pytest.raises(UnitError, match=match):
        make_unit(name, params)
