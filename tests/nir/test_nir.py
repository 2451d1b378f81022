"""NIR import and export: snnTorch -> NIR -> spikeforge (golden, accelerator) and back.

The snnTorch network is trained here on the digits (one thread, fixed seeds, a few seconds).
"""

import argparse
import json

import nir
import numpy as np
import pytest

from snn_digits import BETA, T, build_and_train, export
from spikeforge.builder import random_model
from spikeforge.data import load_digits_split
from spikeforge.modelfile import load_model, save_model
from spikeforge.nir_cli import add_export_arguments, add_import_arguments, run_export, run_import
from spikeforge.nir_export import export_model, write_graph
from spikeforge.nir_import import NIRError, evaluate_float, import_graph, read_graph
from spikeforge.sim.model import run_model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    net, sample, accuracy, scores = build_and_train()
    path = tmp_path_factory.mktemp("nir") / "digits.nir"
    nir.write(path, export(net, sample))
    return dict(path=path, graph=nir.read(path), accuracy=accuracy, scores=scores)


@pytest.fixture(scope="module")
def imported(trained):
    xtr, _ = load_digits_split("train")
    return import_graph(trained["graph"], xtr[:256], max_value=16, time_steps=T)


def test_float_reference_reproduces_snntorch(trained):
    """The NumPy evaluation of the NIR graph computes what the snnTorch network computed."""
    xte, yte = load_digits_split("test")
    scores, _ = evaluate_float(trained["graph"], xte, T, 1 / 16)
    np.testing.assert_allclose(scores, trained["scores"], atol=1e-4)
    assert trained["accuracy"] > 0.6  # the network learned something: the comparison means something


def test_import_matches_snntorch_accuracy(trained, imported):
    model, report = imported
    xte, yte = load_digits_split("test")
    golden = run_model(model, xte).classes
    accuracy = float((golden == yte).mean())
    assert abs(accuracy - trained["accuracy"]) <= 0.02, (accuracy, trained["accuracy"])
    assert [n.op for n in model.nodes] == ["input", "conv", "lif", "conv", "lif", "head"]
    # AvgPool2d + Flatten + Linear folded into one 8x8 stride-2 convolution.
    assert (model.nodes[3].attrs["kernel"], model.nodes[3].attrs["stride"]) == (8, 2)
    for r in report["neurons"]:
        assert r["leak_shift"] == 1 and r["leak_error"] < 1e-6  # beta = 0.5 is exact
        assert r["threshold_error"] < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("which", ["snntorch", "residual"])
def test_import_golden_equals_accelerator(which, request):
    """The imported models run bit-exactly on the accelerator (amaranth simulation, 3 images):
    the snnTorch one, and the hand-made one with add, IF (leak 0), leaks 2 and 3 and the
    spike-count head."""
    from spikeforge.hdl.accel.program import compile_model
    from spikeforge.hdl.accel.simulate import simulate_engine

    if which == "snntorch":
        model, _ = request.getfixturevalue("imported")
    else:
        xtr, _ = load_digits_split("train")
        model, _ = import_graph(_residual_graph(np.random.default_rng(1)), xtr[:128], max_value=16,
                                time_steps=T)
        assert "add" in [n.op for n in model.nodes]
    xte, _ = load_digits_split("test")
    logits, _, _, _ = simulate_engine(compile_model(model, 8), xte[:3])
    np.testing.assert_array_equal(logits, run_model(model, xte[:3]).logits)


def _args(add, argv):
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args(argv)


def test_cli_import_then_export_round_trip(trained, tmp_path, capsys):
    out = tmp_path / "m.sfm"
    args = _args(add_import_arguments, [str(trained["path"]), "-o", str(out), "--dataset", "digits",
                                        "--calibration-images", "64", "--eval-images", "120",
                                        "--time-steps", str(T), "--json"])
    assert run_import(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 120
    assert abs(report["integer_accuracy"] - report["float_accuracy"]) <= 0.05
    model = load_model(out)
    assert model.metadata["dataset"] == "digits"
    assert model.metadata["nir_import"]["integer_accuracy"] == report["integer_accuracy"]

    text = tmp_path / "t.sfm"
    args = _args(add_import_arguments, [str(trained["path"]), "-o", str(text), "--calibration-images",
                                        "16", "--eval-images", "20", "--weight-bits", "4"])
    assert run_import(args) == 0
    printed = capsys.readouterr().out
    assert "beta 0.5000 -> shift 1" in printed and "float (NIR)" in printed
    assert "on 20 digits test images" in printed
    assert load_model(text).node("5.syn").attrs["weight_bits"] == 4
    from spikeforge.cli import main

    assert main(["import", str(trained["path"]), "-o", str(tmp_path / "x.sfm"), "--calibration-images", "0"]) == 2
    assert "argument --calibration-images: 0 is out of range" in capsys.readouterr().err
    assert not (tmp_path / "x.sfm").exists()

    graph_path = tmp_path / "back.nir"
    assert run_export(_args(add_export_arguments, [str(out), "-o", str(graph_path)])) == 0
    back = read_graph(graph_path)
    # The exported graph, run in float on integer pixels, classifies like the integer model.
    xte, _ = load_digits_split("test")
    scores, _ = evaluate_float(back, xte, T, 1.0)
    golden = run_model(model, xte)
    assert (scores.argmax(1) == golden.classes).mean() >= 0.97
    assert np.corrcoef(scores.ravel(), golden.logits.ravel())[0, 1] > 0.99
    # ... and imports again into a model of the same accuracy.
    xtr, _ = load_digits_split("train")
    again, _ = import_graph(back, xtr[:64], max_value=16, time_steps=T, input_scale=1.0)
    assert abs((run_model(again, xte).classes == golden.classes).mean() - 1) <= 0.03


def test_export_refuses_attention_and_multilevel_spikes(tmp_path):
    model = random_model(0, attention="linear")
    with pytest.raises(NIRError, match=r"node 'block0\.attn' \(sdsa_linear\): spike-driven attention "
                                       r"has no NIR primitive"):
        export_model(model)
    with pytest.raises(NIRError, match=r"\(multispike\): multi-level spikes"):
        export_model(random_model(0, levels=2, attention="qsd"))
    with pytest.raises(NIRError, match="soft reset"):
        export_model(random_model(0, reset="soft"))
    path = tmp_path / "m.sfm"
    save_model(model, path)
    with pytest.raises(NIRError, match="attention"):
        run_export(_args(add_export_arguments, [str(path), "-o", str(tmp_path / "g.nir")]))
    assert not (tmp_path / "g.nir").exists()


# --- hand-made graphs: every mapped operator, and the refusals --------------------------------

def _lif(shape, thr=1.0, beta=BETA, dt=1e-4):
    tau = np.full(shape, dt / (1 - beta))
    return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros(shape), v_threshold=np.full(shape, thr),
                   v_reset=np.zeros(shape))


def _conv(rng, ci, co, k, padding=0, stride=1, scale=0.5):
    return nir.Conv2d(input_shape=None, weight=rng.normal(0, scale, (co, ci, k, k)), stride=stride,
                      padding=padding, dilation=1, groups=1, bias=rng.normal(0, 0.1, co))


def _residual_graph(rng):
    """IF, residual sum, SumPool2d, AvgPool2d, Scale, Flatten, Affine, Linear, CubaLIF (tau_syn = dt),
    spike-count read-out."""
    dt = 1e-4
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "c1": _conv(rng, 1, 4, 3, padding=1),
        "if1": nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.full((4, 8, 8), 1.0), v_reset=np.zeros((4, 8, 8))),
        "sum": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "c2": _conv(rng, 4, 4, 3, padding=1, scale=0.3),
        "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "sc": nir.Scale(scale=np.array([1.0, 0.5, 2.0, 1.5])),
        "lif2": _lif((4, 4, 4), thr=0.8),
        "fl": nir.Flatten(input_type={"input": np.array([4, 4, 4])}, start_dim=0, end_dim=-1),
        "fc1": nir.Affine(weight=rng.normal(0, 0.3, (16, 64)), bias=rng.normal(0, 0.1, 16)),
        "cuba": nir.CubaLIF(tau_syn=np.full(16, dt), tau_mem=np.full(16, dt / 0.75), r=np.full(16, 4.0),
                            v_leak=np.zeros(16), v_threshold=np.full(16, 0.5), v_reset=np.zeros(16),
                            w_in=np.ones(16)),
        "fc2": nir.Linear(weight=rng.normal(0, 0.5, (10, 16))),
        "lif3": _lif((10,), thr=0.5, beta=2.0 ** -3),
        "out": nir.Output(output_type={"output": np.array([10])}),
    }
    edges = [("in", "c1"), ("c1", "if1"), ("if1", "sum"), ("sum", "c2"), ("c2", "lif2"),
             ("if1", "avg"), ("avg", "sc"), ("sc", "lif2"), ("lif2", "fl"), ("fl", "fc1"),
             ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "lif3"), ("lif3", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def test_residual_pool_scale_if_cubalif_spike_count_readout():
    graph = _residual_graph(np.random.default_rng(1))
    xtr, _ = load_digits_split("train")
    xte, _ = load_digits_split("test")
    model, report = import_graph(graph, xtr[:128], max_value=16, time_steps=T)
    ops = {n.name: n.op for n in model.nodes}
    assert ops["lif2.sum1"] == "add" and ops["if1"] == "lif" and ops["cuba"] == "lif"
    assert model.node("if1").attrs["leak"] == 0 and model.node("lif3").attrs["leak"] == 3
    assert report["readout"]["kind"] == "spike count"
    x = xte[:100]
    _, trace = evaluate_float(graph, x, T, 1 / 16, record=True)
    golden = run_model(model, x, record=True)
    for name in ("if1", "lif2", "cuba", "lif3"):
        f = trace[name]["spikes"]  # [T, B, C, H, W] or [T, B, n]; golden is [B, T, H, W, C]
        f = f.transpose(1, 0, 3, 4, 2) if f.ndim == 5 else f.transpose(1, 0, 2)
        g = golden.tensors[name].reshape(f.shape)
        rate = f.mean()
        assert 0.02 < rate < 0.98, (name, rate)  # neither silent nor saturated: a real check
        assert (f == g).mean() > 0.97, name


def _simple(**replace):
    rng = np.random.default_rng(0)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "fl": nir.Flatten(input_type={"input": np.array([1, 8, 8])}, start_dim=0, end_dim=-1),
        "fc1": nir.Affine(weight=rng.normal(0, 0.3, (16, 64)), bias=np.zeros(16)),
        "lif": _lif((16,)),
        "fc2": nir.Linear(weight=rng.normal(0, 0.5, (10, 16))),
        "out": nir.Output(output_type={"output": np.array([10])}),
    }
    edges = [("in", "fl"), ("fl", "fc1"), ("fc1", "lif"), ("lif", "fc2"), ("fc2", "out")]
    nodes.update(replace)
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


@pytest.mark.parametrize("replace, message", [
    (dict(lif=nir.Delay(delay=np.ones(16))), r"node 'lif' \(Delay\): the operator has no spikeforge mapping"),
    (dict(lif=nir.CubaLIF(tau_syn=np.full(16, 5e-4), tau_mem=np.full(16, 2e-4), r=np.full(16, 2.0),
                          v_leak=np.zeros(16), v_threshold=np.ones(16), v_reset=np.zeros(16))),
     r"node 'lif' \(CubaLIF\): synaptic decay alpha .* no synaptic current state"),
    (dict(lif=nir.LIF(tau=np.full(16, 2e-4), r=np.full(16, 2.0), v_leak=np.zeros(16),
                      v_threshold=np.ones(16), v_reset=np.full(16, 0.2))),
     r"node 'lif' \(LIF\): v_reset = 0.2; spec §6.1 resets to 0"),
    (dict(fl=nir.Scale(scale=np.ones(1))),
     r"node 'fc1' \(Affine\): it reads a 1x8x8 tensor that is not flattened"),
    (dict(fc1=nir.Conv2d(input_shape=None, weight=np.ones((16, 1, 1, 1)), stride=1, padding=0,
                         dilation=1, groups=1, bias=np.zeros(16))),
     r"node 'fc1' \(Conv2d\): it reads a flattened tensor"),
])
def test_refused_in_one_line_naming_node_and_type(replace, message):
    xtr, _ = load_digits_split("train")
    with pytest.raises(NIRError, match=message) as err:
        import_graph(_simple(**replace), xtr[:8], max_value=16, time_steps=T)
    assert "\n" not in str(err.value)


def test_output_must_read_one_token():
    rng = np.random.default_rng(0)
    nodes = {"in": nir.Input(input_type={"input": np.array([1, 8, 8])}),
             "c": _conv(rng, 1, 4, 3, padding=1), "lif": _lif((4, 8, 8)),
             "out": nir.Output(output_type={"output": np.array([4, 8, 8])})}
    graph = nir.NIRGraph(nodes=nodes, edges=[("in", "c"), ("c", "lif"), ("lif", "out")], type_check=False)
    xtr, _ = load_digits_split("train")
    with pytest.raises(NIRError, match=r"node 'out' \(Output\): the output reads a 4x8x8 spiking layer"):
        import_graph(graph, xtr[:8], max_value=16, time_steps=T)


def test_input_shape_must_match_the_dataset():
    with pytest.raises(NIRError, match=r"node 'in' \(Input\): input shape \(1, 8, 8\) does not match "
                                       r"the dataset's images \(C, H, W\) = \(1, 28, 28\)"):
        import_graph(_simple(), np.zeros((2, 28, 28, 1), np.int64), max_value=255, time_steps=T)


def test_per_channel_scale_on_a_flattened_tensor_refused():
    """NIR leaves a 4-value Scale of 256 flattened values undefined: refused, not guessed."""
    rng = np.random.default_rng(0)
    nodes = {"in": nir.Input(input_type={"input": np.array([1, 8, 8])}),
             "c": _conv(rng, 1, 4, 3, padding=1), "lif": _lif((4, 8, 8)),
             "fl": nir.Flatten(input_type={"input": np.array([4, 8, 8])}, start_dim=0, end_dim=-1),
             "sc": nir.Scale(scale=np.ones(4)),
             "fc": nir.Linear(weight=rng.normal(0, 0.1, (10, 256))), "lif2": _lif((10,)),
             "out": nir.Output(output_type={"output": np.array([10])})}
    edges = [("in", "c"), ("c", "lif"), ("lif", "fl"), ("fl", "sc"), ("sc", "fc"), ("fc", "lif2"),
             ("lif2", "out")]
    xtr, _ = load_digits_split("train")
    with pytest.raises(NIRError, match=r"node 'sc' \(Scale\): scale has 4 values for a 4x8x8 tensor "
                                       r"\(flattened\)"):
        import_graph(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), xtr[:8],
                     max_value=16, time_steps=T)


def test_recurrent_edge_refused():
    g = _simple()
    g.edges.append(("lif", "fc1"))
    xtr, _ = load_digits_split("train")
    with pytest.raises(NIRError, match=r"\(Affine\)|\(LIF\).*cycle"):
        import_graph(g, xtr[:8], max_value=16, time_steps=T)


def test_a_single_node_is_not_a_graph():
    with pytest.raises(NIRError, match="the NIR file holds a single Linear node, not a graph"):
        import_graph(nir.Linear(weight=np.ones((2, 2))), np.zeros((1, 8, 8, 1), np.int64),
                     max_value=16, time_steps=T)


def test_read_graph_errors(tmp_path):
    with pytest.raises(NIRError, match="does not exist"):
        read_graph(tmp_path / "missing.nir")
    bad = tmp_path / "bad.nir"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(NIRError, match=r"cannot read NIR graph .*bad\.nir") as err:
        read_graph(bad)
    assert "\n" not in str(err.value)


def test_write_graph_is_atomic(tmp_path):
    target = tmp_path / "g.nir"
    with pytest.raises(AttributeError):  # nir.write fails half-way through: no file is left
        write_graph(object(), target)
    assert list(tmp_path.iterdir()) == []
