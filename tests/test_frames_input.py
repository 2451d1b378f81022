# amaranth: UnusedElaboratable=no
"""Spec §4 frames input (issue 20): ``encoding: "frames"`` on the input node, ``X[t] = frames[t]``.

The model-file attribute (round trip, old files without it, bad values refused in one line),
golden == torch == executor == engine (amaranth.sim) on a small frames model from
:func:`spikeforge.builder.random_model`, the one-line refusals of a still image for a frames model
and of frames for a direct model, and the command line on N-MNIST files written here in their
real format (train, eval, and the dataset/encoding mismatch both ways).
"""

import json
import zipfile

import gc

import numpy as np
import pytest

from spikeforge import ModelError, load_model, save_model
from spikeforge.builder import random_config, random_images, random_model
from spikeforge.cli import default_model_path, main
from spikeforge.graph import input_encoding, input_shape
from spikeforge.hdl.accel.execute import execute_program
from spikeforge.hdl.accel.program import compile_model
from spikeforge.sim.model import run_model

T, SHAPE, MAX = 4, (10, 10, 2), 15


@pytest.fixture(scope="module")
def frames_model():
    return random_model(5, image=SHAPE, max_value=MAX, time_steps=T, channels=8, heads=2, encoding="frames")


@pytest.fixture(scope="module")
def frames_inputs():
    return random_images(3, (T, *SHAPE), seed=1, max_value=MAX)


def _one_line(excinfo, *words):
    text = str(excinfo.value)
    assert "\n" not in text, text
    for w in words:
        assert w in text, (w, text)


# --- the model file ---------------------------------------------------------------------------

def test_model_file_round_trip_keeps_the_encoding(tmp_path, frames_model, frames_inputs):
    path = tmp_path / "frames.sfm"
    save_model(frames_model, path)
    with zipfile.ZipFile(path) as zf:
        doc = json.loads(zf.read("model.json"))
    assert doc["nodes"][0]["attrs"]["encoding"] == "frames"
    back = load_model(path)
    assert input_encoding(back) == "frames" and input_shape(back) == (T, *SHAPE)
    np.testing.assert_array_equal(run_model(back, frames_inputs).logits, run_model(frames_model, frames_inputs).logits)


def test_a_file_without_the_attribute_is_direct_and_direct_writes_none(tmp_path):
    old = load_model(default_model_path())                    # written before the attribute existed
    assert "encoding" not in old.input.attrs and input_encoding(old) == "direct"
    assert input_shape(old) == (8, 8, 1)
    path = tmp_path / "direct.sfm"
    save_model(random_model(1, channels=8), path)
    with zipfile.ZipFile(path) as zf:
        assert "encoding" not in json.loads(zf.read("model.json"))["nodes"][0]["attrs"]
    explicit = random_model(1, channels=8)
    explicit.input.attrs["encoding"] = "direct"                # stated: the same model
    save_model(explicit, path)
    assert input_encoding(load_model(path)) == "direct"


def test_a_bad_encoding_is_refused_in_one_line(tmp_path, frames_model):
    path = tmp_path / "frames.sfm"
    save_model(frames_model, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    doc = json.loads(members["model.json"])
    doc["nodes"][0]["attrs"]["encoding"] = "events"
    members["model.json"] = json.dumps(doc).encode()
    bad = tmp_path / "bad.sfm"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, data in members.items():
            zf.writestr(n, data)
    with pytest.raises(ModelError) as e:
        load_model(bad)
    _one_line(e, "encoding", "events")
    frames_model.input.attrs["encoding"] = 3
    try:
        with pytest.raises(ModelError) as e:
            save_model(frames_model, tmp_path / "never.sfm")
        _one_line(e, "'encoding'", "allowed: direct, frames")
    finally:
        frames_model.input.attrs["encoding"] = "frames"
    assert not (tmp_path / "never.sfm").exists()


# --- three implementations agree ------------------------------------------------------------

def test_frames_are_presented_one_per_time_step(frames_model, frames_inputs):
    """X[t] = frames[t]: the frames model's input tensor is the frames, and its result differs
    from the same frames all set to frame 0 (a model that read one frame for every t)."""
    rec = run_model(frames_model, frames_inputs, record=True)
    np.testing.assert_array_equal(rec.tensors["image"], frames_inputs)
    first = np.repeat(frames_inputs[:, :1], T, axis=1)
    assert not np.array_equal(run_model(frames_model, first).logits, rec.logits)


def test_golden_torch_executor_agree_on_frames(frames_model, frames_inputs):
    pytest.importorskip("torch")
    from spikeforge.quant.integer import evaluate

    golden = run_model(frames_model, frames_inputs)
    np.testing.assert_array_equal(evaluate(frames_model, frames_inputs).logits, golden.logits)
    for lanes, compact in ((8, False), (2, True)):
        program = compile_model(frames_model, lanes, compact=compact)
        assert program.image.T == T and program.image.sample_shape == (T, *SHAPE)
        for i, sample in enumerate(frames_inputs):
            np.testing.assert_array_equal(execute_program(program, sample).logits, golden.logits[i])


def test_engine_equals_golden_and_cycle_model_on_frames(frames_model, frames_inputs):
    """The engine (amaranth.sim, one sample) reads frame t of its image memory at time step t:
    logits, class, cycles and events equal the golden model and the executor."""
    from spikeforge.hdl.accel.plan import EnginePlan
    from spikeforge.hdl.accel.report import memories
    from spikeforge.hdl.accel.simulate import simulate_engine

    program = compile_model(frames_model, 8)
    plan = EnginePlan(program)
    assert plan.img_frames and plan.img_depth == T * SHAPE[0] * SHAPE[1]
    image_mem = next(m for m in memories(program) if m["name"] == "image")
    assert image_mem["depth"] == T * SHAPE[0] * SHAPE[1]
    x = frames_inputs[:1]
    logits, classes, cycles, events = simulate_engine(program, x)
    golden = run_model(frames_model, x)
    np.testing.assert_array_equal(logits, golden.logits)
    np.testing.assert_array_equal(classes, golden.classes)
    ref = execute_program(program, x[0])
    assert int(cycles[0]) == ref.total_cycles and int(events[0]) == ref.events


def test_random_config_draws_frames_models():
    configs = [random_config(s)[0] for s in range(10)]
    assert [c["encoding"] for c in configs].count("frames") == 2
    config = random_config(4)[0]
    assert config["encoding"] == "frames"
    model = random_model(4, **config)
    assert input_shape(model) == (config["time_steps"], *config["image"])


# --- refusals ---------------------------------------------------------------------------------

def test_a_still_image_for_a_frames_model_and_frames_for_a_direct_model_are_refused(frames_model, frames_inputs):
    still = frames_inputs[:, 0]
    with pytest.raises(ValueError) as e:
        run_model(frames_model, still)
    _one_line(e, "(10, 10, 2)", "frames encoding", "4 frames of 10x10x2", "direct input encoding")
    direct = random_model(5, image=SHAPE, max_value=MAX, time_steps=T, channels=8, heads=2)
    with pytest.raises(ValueError) as e:
        run_model(direct, frames_inputs)
    _one_line(e, "(4, 10, 10, 2)", "direct encoding", "frames input encoding")
    with pytest.raises(ValueError) as e:
        run_model(frames_model, frames_inputs + MAX)
    _one_line(e, "image values span", f"0..{MAX}")
    program = compile_model(frames_model, 4)
    with pytest.raises(ValueError) as e:
        execute_program(program, still[0])
    _one_line(e, "10x10x2", "4x10x10x2")


# --- the command line on N-MNIST files -------------------------------------------------------

def _write_nmnist(root, split, n, seed):
    """``n`` N-MNIST samples in the real format (40-bit events) under ``root/nmnist/<split>``."""
    from test_data import nmnist_event

    rng = np.random.default_rng(seed)
    for i in range(n):
        label = i % 10
        folder = root / "nmnist" / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        k = 60
        xs, ys = rng.integers(0, 34, k), rng.integers(0, 34, k)
        ps, ts = rng.integers(0, 2, k), np.sort(rng.integers(0, 100_000, k))
        (folder / f"{i:05d}.bin").write_bytes(b"".join(nmnist_event(int(a), int(b), int(c), int(d))
                                                        for a, b, c, d in zip(xs, ys, ps, ts)))


def _error(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def nmnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    _write_nmnist(root, "Train", 20, 1)
    _write_nmnist(root, "Test", 6, 2)
    return root


@pytest.fixture(scope="module")
def nmnist_model(nmnist_root, tmp_path_factory):
    """A frames model trained for one epoch on 20 synthetic N-MNIST samples (T=2 frames of 34x34x2)."""
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("trained") / "nmnist.sfm"
    code = main(["train", "--dataset", "nmnist", "--data-root", str(nmnist_root), "--time-steps", "2",
                 "--channels", "8", "--blocks", "0", "--epochs", "1", "--batch-size", "8", "--quiet",
                 "-o", str(out)])
    assert code == 0
    return out


def test_train_and_eval_a_frames_model_on_nmnist(nmnist_model, nmnist_root, capsys):
    model = load_model(nmnist_model)
    assert input_encoding(model) == "frames" and input_shape(model) == (2, 34, 34, 2)
    assert model.metadata["input"]["time_steps"] == 2 and model.metadata["config"]["encoding"] == "frames"
    capsys.readouterr()
    code = main(["eval", str(nmnist_model), "--data-root", str(nmnist_root), "--json", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert (report["dataset"], report["n"]) == ("nmnist", 6)


def test_dataset_and_encoding_mismatch_is_one_line_both_ways(nmnist_model, nmnist_root, tmp_path, capsys):
    line = _error(capsys, "eval", nmnist_model, "--dataset", "digits")   # another shape: named first
    assert "8x8x1" in line and "34x34x2" in line
    digits_frames = tmp_path / "digits_frames.sfm"
    save_model(random_model(3, channels=8, encoding="frames"), digits_frames)   # 8x8x1 in 0..16, as digits
    line = _error(capsys, "eval", digits_frames, "--dataset", "digits")
    assert "still images (8x8x1)" in line and "frames encoding" in line and "nmnist, dvs-gesture" in line
    direct = tmp_path / "direct.sfm"
    save_model(random_model(3, image=(34, 34, 2), max_value=15, channels=8), direct)
    for cmd in ("eval", "sim"):
        line = _error(capsys, cmd, direct, "--dataset", "nmnist", "--data-root", nmnist_root)
        assert "event frames (T x 34x34x2)" in line and "direct encoding" in line and "frames input encoding" in line


@pytest.mark.slow
def test_frames_model_in_verilator(frames_model, tmp_path, capsys):
    """The generated Verilog of the 10x10x2 frames model (8 lanes) on 2 samples under Verilator:
    logits, classes, inner spikes and cycles against the golden model and the executor."""
    from spikeforge.sim.accel_runner import simulate_verilog

    x = random_images(2, (T, *SHAPE), seed=3, max_value=MAX)
    r = simulate_verilog(frames_model, x, lanes=8, progress=False)
    assert len(r["mismatches"]) == 0
    np.testing.assert_array_equal(r["cycles"], r["predicted_cycles"])


# --- the board and its host link ----------------------------------------------------------------

# The system's parts (engine, link, adapter) are built in boards/top.py and not elaborated here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_board_link_carries_the_frames(frames_model):
    """The board's IMAGE payload and INFO are T*H*W*C values for a frames model (frames stacked
    as one (T*H) x W x C image in INFO), H*W*C as before for a direct one."""
    from spikeforge.boards.hostlink import encode_image
    from spikeforge.boards.inference import board_mismatch
    from spikeforge.boards.top import AcceleratorSystem

    program = compile_model(frames_model, 4)
    system = AcceleratorSystem(program, divisor=8)
    assert system.pixels == T * SHAPE[0] * SHAPE[1] * SHAPE[2]
    assert system.info.shape == (T * SHAPE[0], SHAPE[1], SHAPE[2]) and system.info.pixels == system.pixels
    assert board_mismatch(system.info, frames_model, program) is None
    sample = random_images(1, (T, *SHAPE), seed=4, max_value=MAX)[0]
    encode_image(sample, 0, pixels=system.pixels, max_value=MAX)          # one IMAGE frame of all T frames
    with pytest.raises(ValueError, match="pixels"):
        encode_image(sample[0], 0, pixels=system.pixels, max_value=MAX)   # one frame is not a sample
    direct = random_model(5, image=SHAPE, max_value=MAX, time_steps=T, channels=8, heads=2)
    dprog = compile_model(direct, 4)
    dsys = AcceleratorSystem(dprog, divisor=8)
    assert dsys.pixels == SHAPE[0] * SHAPE[1] * SHAPE[2] and dsys.info.shape == SHAPE
    why = board_mismatch(dsys.info, frames_model, program)
    assert why is not None and "\n" not in why
    del system, dsys
    gc.collect()      # their unused parts warn now, under this test's filter


@pytest.mark.slow
def test_frames_model_on_the_simulated_board(frames_model):
    """Two frames samples through the simulated ULX3S (Verilator): UART host link, IMAGE frames
    of T*H*W*C bytes, the board's logits equal the golden model's."""
    from spikeforge.boards.simulate import simulate_board

    x = random_images(2, (T, *SHAPE), seed=5, max_value=MAX)
    s = simulate_board(frames_model, "ulx3s-85f", x, np.array([0, 1]), lanes=4)
    assert s["images"] == 2 and s["mismatches"] == 0 and s["logits_match"] == 2
