"""The sdram weight mapping's compiler side (issue 21): segments in pass order, the window
halves, the refusal of a pass larger than a half, the SDRAM image, the executor's window and
load-time rules, and the choice of the mapping by ``compile_for_target`` and ``info``."""

import json

import numpy as np
import pytest

from spikeforge import builder
from spikeforge.cli import main
from spikeforge.hdl.accel.execute import execute_program, window_timeline
from spikeforge.hdl.accel.program import MappingError, compile_model
from spikeforge.hdl.accel.report import DeviceTooSmall, compile_for_target, memory_fit, window_words_for
from spikeforge.hdl.accel.weight_stream import (PREFETCH_LATENCY, Segment, load_bounds, load_cycles,
                                                sdram_timing_of, sdram_words_per_weight)
from spikeforge.hdl.sdram_timing import ULX3S_SDRAM, read_cycles
from spikeforge.modelfile import save_model


@pytest.fixture(scope="module")
def model():
    return builder.random_model(3, channels=8, blocks=1, weight_bits=4)


def _unpack(words16, P, wb):
    per = sdram_words_per_weight(P, wb)
    out = []
    for i in range(0, len(words16), per):
        word = sum(int(w) << (16 * k) for k, w in enumerate(words16[i:i + per]))
        lanes = [(word >> (ln * wb)) & ((1 << wb) - 1) for ln in range(P)]
        out.append([v - (1 << wb) if v >> (wb - 1) else v for v in lanes])
    return np.array(out, np.int64)


@pytest.mark.parametrize("lanes", [1, 2, 8])
def test_segments_follow_the_passes_and_the_image_holds_the_weights(model, lanes):
    bram = compile_model(model, lanes)
    prog = compile_model(model, lanes, memory="sdram")
    mm = prog.memory
    weighted = [i for i, p in enumerate(prog.passes) if p.kind == "syn" and p.wsrc == "wmem"]
    assert [s.pass_index for s in mm.segments] == weighted
    base = 0
    image = prog.sdram_image()
    assert len(image) == mm.sdram_words
    for j, s in enumerate(mm.segments):
        p, pb = prog.passes[s.pass_index], bram.passes[s.pass_index]
        assert s.base == base and s.half == j % 2          # contiguous, halves in turn
        assert p.w_base == s.half * mm.window_words         # the pass reads its half
        assert s.weight_words == p.kh * p.kw * p.tap_stride <= mm.window_words
        got = _unpack(image[s.base:s.base + s.words], lanes, 4)
        assert np.array_equal(got, bram.weights[pb.w_base:pb.w_base + s.weight_words])
        base += s.words


def test_a_pass_larger_than_a_half_is_refused_by_name(model):
    with pytest.raises(MappingError, match=r"pass 'block0.mlp_hidden' reads 64 weight words, more than a "
                                           r"window half of 48 words"):
        compile_model(model, 2, memory="sdram", window_words=48)
    with pytest.raises(MappingError, match="window_words is 0"):
        compile_model(model, 2, memory="sdram", window_words=0)
    with pytest.raises(ValueError, match="sdram_image: this program keeps its weights in bram"):
        compile_model(model, 2).sdram_image()


def test_executor_reads_the_window_and_waits_for_the_loads(model):
    img = builder.random_images(2, seed=5)
    for lanes in (1, 4):
        bram = compile_model(model, lanes)
        prog = compile_model(model, lanes, memory="sdram")
        for im in img:
            a, b = execute_program(bram, im), execute_program(prog, im)
            assert np.array_equal(a.logits, b.logits) and a.cls == b.cls
            for name in a.spikes:
                assert np.array_equal(a.spikes[name], b.spikes[name])
            # the compute is the block RAM engine's; a weighted pass adds its wait
            for name, c in a.cycles.items():
                assert b.cycles[name] == c + (b.weight_waits or {}).get(name, 0)
            lo, hi = b.cycle_bounds
            assert lo <= b.total_cycles <= hi
            # the first weighted pass waits for its whole segment: its load from an idle SDRAM
            seg0 = prog.memory.segments[0]
            assert b.weight_waits[seg0.node] > 0
            assert b.cycle_bounds[0] >= a.total_cycles


def test_a_wrong_window_address_changes_the_logits(model):
    """The executor reads the weights from the window, not from the compiler's array: a pass
    whose w_base pointed at the other half would compute with the wrong weights."""
    prog = compile_model(model, 2, memory="sdram")
    im = builder.random_images(1, seed=1)[0]
    good = execute_program(prog, im).logits
    seg = prog.memory.segments[-1]                     # the head
    prog.passes[seg.pass_index].w_base = (1 - seg.half) * prog.memory.window_words
    assert not np.array_equal(execute_program(prog, im).logits, good)


def test_load_bounds_hold_the_exact_cost_model():
    timing = ULX3S_SDRAM.timing(50e6, 2)
    for base, words in ((0, 1), (0, 300), (200, 700), (1000, 5000)):
        seg = Segment(0, "x", base, words, words, 0, 0)
        lo, nominal, hi = load_bounds(timing, seg)
        assert lo <= nominal <= hi
        for since in range(0, timing.refresh_every, 7):
            exact = load_cycles(timing, seg, since)
            assert exact == read_cycles(timing, base, words, since) + PREFETCH_LATENCY
            assert lo <= exact <= hi


def test_window_timeline_orders_the_loads(model):
    """Segment j + 2 may not load before the pass of segment j ends: with loads far slower than
    the compute, each pass waits, and the total grows with the load time."""
    prog = compile_model(model, 1, memory="sdram")
    compute = {p.node: 10 for p in prog.passes}
    lo, _ = window_timeline(prog, compute, 0)
    hi, waits = window_timeline(prog, compute, 2)
    assert sum(hi.values()) > sum(lo.values()) > sum(compute.values())
    assert all(w > 0 for w in waits.values())


def test_compile_for_target_weights_option(model):
    assert compile_for_target(model, 2, "ecp5-85f").memory.kind == "bram"
    prog = compile_for_target(model, 2, "ecp5-85f", weights="sdram")
    assert prog.memory.kind == "sdram" and prog.memory.window_words == 512
    usage, problems = memory_fit(prog, "ecp5-85f")
    assert not problems and any(m["name"] == "weight window" for m in usage["memories"])
    for target in ("ecp5-25f", "ice40-up5k", None):
        with pytest.raises(MappingError, match=f"--weights sdram: target {target!r} has no SDRAM"):
            compile_for_target(model, 2, target, weights="sdram")
    with pytest.raises(MappingError, match="weights mapping 'dram'"):
        compile_for_target(model, 2, "ecp5-85f", weights="dram")


def test_window_size_from_the_free_block_ram():
    # 32-bit words: a 512 x 36 block per 512 words; two halves of 3 x 512 words in 6 blocks
    assert window_words_for([32], 6, "ecp5", 10_000) == 1536
    assert window_words_for([32], 6, "ecp5", 700) == 1024          # no more than the largest pass needs
    assert window_words_for([16], 4, "ecp5", 100_000) == 2048      # 1024 x 18 blocks
    assert window_words_for([16, 16], 4, "ecp5", 100_000) == 1024  # lane groups: a block per part


def test_too_big_for_block_ram_takes_sdram_automatically():
    """A model whose block RAM mapping does not fit the ECP5-85F gets the sdram mapping; one
    whose largest pass exceeds even the window fails with both reasons."""
    m = builder.random_model(2, image=(4, 4, 1), channels=128, blocks=2, heads=4, mlp_ratio=4,
                             attention="mask", time_steps=1, weight_bits=8)
    bram = compile_model(m, 8)
    assert memory_fit(bram, "ecp5-85f")[1]
    for lanes in (8, 16):   # 16 lanes: the window in 4 lane-group parts
        prog = compile_for_target(m, lanes, "ecp5-85f")
        assert prog.memory.kind == "sdram" and not memory_fit(prog, "ecp5-85f")[1]
    with pytest.raises(DeviceTooSmall, match="the SDRAM mapping does not fit either: sdram mapping: pass "):
        compile_for_target(m, 64, "ecp5-85f")


def test_info_reports_the_mapping(tmp_path, capsys, model):
    path = tmp_path / "m.sfm"
    save_model(model, str(path))
    assert main(["info", str(path), "--target", "ecp5-85f", "--lanes", "2", "--weights", "sdram",
                 "--json"]) == 0
    acc = json.loads(capsys.readouterr().out)["accelerator"]
    assert acc["weights"] == "sdram" and acc["fits"]
    sd = acc["sdram"]
    assert sd["window_half_words"] == 512 and sd["segments"] == 8
    assert 0.97 < sd["bandwidth"]["sdram_words_per_cycle"] < 0.99
    lo, hi = acc["cycles_per_image"]["bounds"]
    assert lo <= acc["cycles_per_image"]["min"] and acc["cycles_per_image"]["max"] <= hi
    assert main(["info", str(path), "--target", "ecp5-85f", "--lanes", "2", "--weights", "sdram"]) == 0
    out = capsys.readouterr().out
    assert "weights in SDRAM:" in out and "pass embed" in out
    assert main(["info", str(path), "--target", "icebreaker", "--lanes", "1", "--weights", "sdram"]) != 0
    err = capsys.readouterr().err
    assert "--weights sdram: target 'ice40-up5k' has no SDRAM" in err and len(err.strip().splitlines()) == 1
    assert sdram_timing_of(compile_model(model, 2, memory="sdram").memory).cl == 2


def test_the_two_million_weight_model_takes_sdram_on_the_85f():
    """builder.SDRAM_CONFIG: >= 2 M 4-bit weights, more than the 85F's block RAM; at 8 lanes
    every pass fits a window half and the whole engine fits the device."""
    m = builder.random_model(**builder.SDRAM_CONFIG)
    weights = sum(int(t.size) for n in m.nodes for k, t in n.tensors.items() if k == "weight")
    assert weights >= 2_000_000 and {n.attrs["weight_bits"] for n in m.nodes if n.op in ("conv", "head")} == {4}
    prog = compile_for_target(m, 8, "ecp5-85f")
    assert prog.memory.kind == "sdram" and len(prog.memory.segments) == 26
    usage, problems = memory_fit(prog, "ecp5-85f")
    assert not problems, problems
    assert max(s.weight_words for s in prog.memory.segments) <= prog.memory.window_words


def test_generate_writes_the_sdram_image_and_documents_the_ports(tmp_path, capsys, model):
    path = tmp_path / "m.sfm"
    save_model(model, str(path))
    out = tmp_path / "gen"
    assert main(["generate", "accel", str(path), "--target", "ulx3s-85f", "--lanes", "2", "--weights", "sdram",
                 "-o", str(out)]) == 0
    prog = compile_model(model, 2, memory="sdram")
    words = [int(w, 16) for w in (out / "sdram.hex").read_text().split()]
    assert words == [int(w) for w in prog.sdram_image()]
    head = (out / "spikeforge_accel.v").read_text().split("\n\n")[0]
    assert "SDRAM mapping of the weights" in head and "sdram_req__payload" in head and "sdram_r__ready" in head
    doc = json.loads((out / "program.json").read_text())
    assert doc["memory_map"]["kind"] == "sdram" and len(doc["memory_map"]["segments"]) == 8
