"""The shipped mnist model (issue 20, "a model that needs the ECP5"): ``spikeforge/models/mnist.sfm``,
selected by name, trained by ``quant/configs/mnist.json`` on mnist-5k; its accuracy through the
golden model, its block RAM count on the ECP5-85F (it fits at 8 lanes, as Yosys counts), its dataset
record, and (slow) the generated accelerator under Verilator."""

import json
import pathlib

import pytest

from spikeforge.cli import main
from spikeforge.datasets import MNIST5K_CAVEAT, dataset_spec
from spikeforge.modelfile import load_model
from spikeforge.options import shipped_model_path
from spikeforge.quant.config import read_config_file

CONFIG = pathlib.Path(__file__).resolve().parents[1] / "quant" / "configs" / "mnist.json"


def _json(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_mnist_model_records_its_training_and_dataset():
    meta = load_model(shipped_model_path("mnist")).metadata
    spec = dataset_spec("mnist-5k")
    config = read_config_file(CONFIG)
    for key, value in config.items():   # the configuration file is the one that made it
        where = meta if key in ("epochs", "seed", "dataset") else meta["config"]
        if key in ("batch_size", "lr"):
            continue                    # not recorded by the trainer
        assert where[key] == value, key
    rec = meta["input"]
    assert (rec["dataset"], rec["shape"], rec["max_value"], rec["split"]) == ("mnist-5k", [28, 28, 1], 15, "test")
    assert (rec["source"], rec["licence"]) == (spec.source, spec.licence)
    assert meta["split"]["rule"] == spec.splits and meta["split"]["caveat"] == MNIST5K_CAVEAT


def test_eval_mnist_by_name(capsys, tmp_path, monkeypatch):
    """All 1,000 mnist-5k test images through the golden model (about 5 s of CPU)."""
    monkeypatch.chdir(tmp_path)
    report = _json(capsys, "eval", "mnist", "--json", "--quiet")
    assert (report["dataset"], report["split"], report["n"], report["backend"]) == ("mnist-5k", "test", 1000, "golden")
    assert report["model"] == shipped_model_path("mnist")
    assert report["accuracy"] >= 0.97
    recorded = load_model(shipped_model_path("mnist")).metadata["accuracy"]["golden"]
    assert report["accuracy"] * 100 == pytest.approx(recorded)


def test_info_mnist_on_the_ecp5_85f_fits_and_counts_block_rams_as_yosys_does(capsys, tmp_path, monkeypatch):
    """The fit pre-check against the measured build. The spike memories (at 8 lanes 1,862 x 8 bits, eight
    slots of one bit) were once written per slot: an ECP5 block RAM has no write enable per bit,
    so Yosys gave each bit blocks of its own (8 per copy, 128 at 8 lanes; 230 DP16KD blocks in
    all, of 208, and place and route failed). The fast build now writes them a whole word at a
    time (read-modify-write on a third read port): 3 blocks per lane. ``info`` says the model
    fits at 8 lanes and never counts fewer blocks than Yosys used on the ULX3S build
    (``spikeforge build mnist --board ulx3s-85f --lanes 8``: 126 DP16KD, 24 of them the spike
    memories as counted here, 1 the link's receive buffer, which ``info`` does not count). The
    rest of the difference (10 blocks) is where Yosys packs better than one block shape per
    memory: the integer memory 56 blocks (counted 60), the weights 24 (26), and the 45-word
    descriptor ROM in logic (counted 4)."""
    monkeypatch.chdir(tmp_path)
    for lanes in (8, 4):
        code = main(["info", "mnist", "--target", "ecp5-85f", "--lanes", str(lanes), "--json"])
        out, err = capsys.readouterr()
        info = json.loads(out)
        acc = info["accelerator"]
        assert code == 0 and info["input_shape"] == [28, 28, 1] and acc["lanes"] == lanes, err
        assert acc["fits"] is True and acc["problems"] == []
        spikes = {m["name"]: m for m in acc["memories"]}["spikes"]
        assert (spikes["depth"], spikes["width"], spikes["granularity"]) == (1862, 64 // lanes, None)
        # 3 copies per lane of 1,862 x 8 (one block) or x 16 (two); per bit: 128 or 192 blocks
        assert spikes["copies"] == 3 * lanes and spikes["bram_blocks"] == {8: 24, 4: 24}[lanes]
        assert acc["device"]["bram_blocks"] <= 208
        if lanes == 8:
            assert 126 <= acc["device"]["bram_blocks"] + 1 <= 126 * 1.08


@pytest.mark.slow
def test_sim_mnist_in_verilator(capsys, tmp_path, monkeypatch):
    """The mnist model's generated Verilog (8 lanes) on 20 mnist-5k test images: logits,
    classes and inner-layer spikes equal the golden model's, cycles the analytic model's."""
    monkeypatch.chdir(tmp_path)
    report = _json(capsys, "sim", "mnist", "--images", "20", "--lanes", "8", "--json", "--quiet")
    assert report["dataset"] == "mnist-5k" and report["images"] == 20
    assert report["mismatches"] == 0 and report["logits_equal_golden"] and report["inner_spike_mismatches"] == 0
    assert report["events_equal_predicted"]


@pytest.mark.slow
def test_mnist_torch_equals_golden_on_every_test_image():
    """The integer torch evaluation and the golden model give the same logits on all 1,000
    mnist-5k test images."""
    pytest.importorskip("torch")
    import numpy as np

    from spikeforge.datasets import load_dataset
    from spikeforge.quant.integer import evaluate
    from spikeforge.sim.model import run_model

    model = load_model(shipped_model_path("mnist"))
    test = load_dataset("mnist-5k", "test", max_value=15)
    assert len(test) == 1000
    np.testing.assert_array_equal(evaluate(model, test.images).logits, run_model(model, test.images).logits)
