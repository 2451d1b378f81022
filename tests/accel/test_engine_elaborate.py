# amaranth: UnusedElaboratable=no
"""Elaborating an engine is a pure function of its program and options (issue 19 item 4).

tests/accel/test_engine.py::test_elaborating_twice_gives_the_same_design compares RTLIL (fast
and compact builds, block RAM). Here the Verilog that ships (``generate.verilog_text``) with
the synthesis primitives (SPRAM and ECP5 multiplier instances): one engine converted twice and
two engines of one program give the same text, and a different program a different one (the
comparison can fail).
"""

import pytest
from amaranth.hdl import Fragment
from amaranth.lib import data

from spikeforge.builder import random_model
from spikeforge.hdl.accel.engine import LANES_PER_COPY, Engine
from spikeforge.hdl.accel.generate import verilog_text
from spikeforge.hdl.accel.logits import Logits
from spikeforge.hdl.accel.program import compile_model
from spikeforge.hdl.accel.sequencer import Sequencer
from spikeforge.hdl.accel.syn_decode import DESC_FIELDS, SynDecode
from spikeforge.hdl.accel.syn_drain import SynDrain
from spikeforge.hdl.accel.syn_fetch import SynFetch
from spikeforge.hdl.accel.syn_issue import SynIssue
from spikeforge.hdl.accel.syn_fifo import RowFifo, row_layout
from spikeforge.hdl.event_encoder import SpikeEventEncoder
from spikeforge.hdl.row_scan import RowScan
from spikeforge.hdl.accumulate_lanes import AccumulateLanes
from spikeforge.hdl.sparse_add import SparseAdd
from spikeforge.hdl.accel.ew_lanes import lif_lane_registers
from spikeforge.hdl.accel.ew_nest import EwNest
from spikeforge.hdl.accel.ew_operands import EwOperands
from spikeforge.hdl.lif_array import LifArray
from spikeforge.hdl.lif_lane import LifLane


def instances(engine, cls):
    """``(name, component)`` of every ``cls`` the elaborated ``engine`` instantiates, depth first."""
    found = []

    def walk(fragment):
        for sub, name, _ in fragment.subfragments:
            found.extend((name, o) for o in sub.origins or () if isinstance(o, cls))
            walk(sub)

    walk(Fragment.get(engine, None))
    return found


def the_stage(cls, name, lanes, compact, **options):
    """``(program, engine, component)``: the one ``cls`` named ``name`` in the engine of a
    small attention model (both builds have every stage)."""
    prog = compile_model(random_model(3, attention="qsd", levels=2, time_steps=2, channels=8, heads=2), lanes,
                         compact=compact)
    engine = Engine(prog, **options)
    found = instances(engine, cls)
    assert [n for n, _ in found] == [name]
    return prog, engine, found[0][1]


@pytest.mark.parametrize("memory,compact,lanes,options", [
    ("spram", True, 1, {"spram_primitive": True}),
    ("bram", False, 2, {"mult_primitive": True}),
])
def test_verilog_of_one_program_is_always_the_same(memory, compact, lanes, options):
    model = random_model(3, attention="qsd", levels=2, time_steps=2, channels=8, heads=2)
    prog = compile_model(model, lanes, memory=memory, compact=compact)
    assert prog.memory.kind == memory
    engine = Engine(prog, **options)
    first = verilog_text(engine)
    assert verilog_text(engine) == first
    assert verilog_text(Engine(prog, **options)) == first
    other = compile_model(random_model(4, attention="qsd", levels=2, time_steps=2, channels=8, heads=2),
                          lanes, memory=memory, compact=compact)
    assert verilog_text(Engine(other, **options)) != first


@pytest.mark.parametrize("compact", [True, False])
def test_scan_stage_is_the_encoders_row_scan(compact):
    """The SYN scan stage is a :class:`RowScan`, the component SpikeEventEncoder is built on
    (so the encoder's proof and tests cover it), in the build's mode: fast in the fast build."""
    model = random_model(3, attention="qsd", levels=2, time_steps=2, channels=8, heads=2)
    engine = Engine(compile_model(model, 2, compact=compact))
    found = instances(engine, RowScan)
    assert [name for name, _ in found] == ["syn_scan"]
    scan = found[0][1]
    assert scan.fast is not compact and scan.width == engine.row_bits
    assert SpikeEventEncoder.row_scan is RowScan


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_accumulate_stage_is_sparse_adds_core(compact, lanes):
    """The SYN accumulate stage's additions are an :class:`AccumulateLanes`, the component
    SparseAdd is built on (so SparseAdd's proof and tests cover it), in the build's
    configuration: the plan's accumulator width, two banks, registered sums and a copy of the
    flags per lane group in the fast build."""
    model = random_model(3, attention="qsd", levels=2, time_steps=2, channels=8, heads=2)
    engine = Engine(compile_model(model, lanes, compact=compact))
    found = instances(engine, AccumulateLanes)
    assert [name for name, _ in found] == ["syn_acc"]
    core = found[0][1]
    assert (core.lanes, core.acc_bits, core.banks) == (lanes, engine.ab, 2)
    assert core.sum_reg is not compact
    assert core.lanes_per_copy == (lanes if compact else min(lanes, LANES_PER_COPY))
    assert SparseAdd.accumulate is AccumulateLanes


@pytest.mark.parametrize("compact,lanes,options", [(True, 2, {}), (False, 4, {"mult_primitive": True})])
def test_ew_lanes_are_lifarrays_lanes(compact, lanes, options):
    """Each EW lane is a :class:`LifLane`, the component LifArray is built on (so LifArray's
    tests and proof, and the lane's proof in the builds' registers, cover it): one per lane,
    registered as the build says, its widths the plan's."""
    model = random_model(3, attention="qsd", levels=2, time_steps=2, channels=8, heads=2)
    engine = Engine(compile_model(model, lanes, compact=compact), **options)
    found = instances(engine, LifLane)
    assert [name for name, _ in found] == [f"ew_lane{ln}" for ln in range(lanes)]
    registered, product_regs = lif_lane_registers(engine.build)
    assert registered == ({"product", "sum", "sat"} if compact else {"product", "sum", "shift", "sat", "pre"})
    for _, unit in found:
        assert (unit.registered, unit.product_regs) == (registered, product_regs)
        assert unit.primitive is (not compact)
        assert (unit.a_bits, unit.mult_bits, unit.z_bits, unit.y_bits, unit.theta_bits, unit.v_bits, unit.w_bits,
                unit.spike_bits) == (engine.ow, engine.mb, engine.pw, engine.yw, engine.tb, engine.mw, engine.uw,
                                     engine.slot_bits)
    assert LifArray.lif_lane is LifLane


@pytest.mark.parametrize("compact,lanes", [(True, 2), (False, 2), (False, 8)])
def test_result_stage_is_the_proven_logits_component(compact, lanes):
    """The engine's result stage is a :class:`Logits` (the component test_formal_units.py
    proves) of the program's classes, lanes and logit width, in the build's mode: the fast
    build shifts under a copy of the beat per lane group."""
    prog, engine, stage = the_stage(Logits, "logits", lanes, compact)
    assert (stage.classes, stage.lanes, stage.logit_bits) == (prog.classes, lanes, engine.logit_bits)
    assert stage.shift_group == (None if compact else min(lanes, LANES_PER_COPY))
    assert stage.result.signature == engine.result.signature


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_generator_loop_nest_is_a_window_walk(compact, lanes):
    """The SYN generator's loop nest is one :class:`WindowWalk` (so its bounded proof covers
    the engine's), with the generator's levels and the descriptor's field widths."""
    from spikeforge.hdl.window_walk import WindowWalk

    model = random_model(3, attention="qsd", levels=2, time_steps=2, channels=8, heads=2)
    engine = Engine(compile_model(model, lanes, compact=compact))
    found = instances(engine, WindowWalk)
    assert [name for name, _ in found] == ["syn_walk"]
    nest = found[0][1]
    assert nest.names == ["kx", "ky", "tr", "ox", "oy", "t"]


@pytest.mark.parametrize("memory,lanes", [("spram", 1), ("bram", 4)])
def test_sequencer_is_a_component(memory, lanes):
    """The top-level control is one :class:`Sequencer` with stream ports: it takes the engine's
    pixels (and, with SPRAM, its weights) and sizes its ports from the program (image, passes,
    descriptor words)."""
    model = random_model(3, attention="qsd", levels=2, time_steps=2, channels=8, heads=2)
    prog = compile_model(model, lanes, memory=memory, compact=memory == "spram")
    engine = Engine(prog)
    found = instances(engine, Sequencer)
    assert [name for name, _ in found] == ["sequencer"]
    seq = found[0][1]
    assert ("weights" in seq.signature.members) is (memory == "spram")
    assert (seq.channels, seq.values, seq.passes) == (prog.image.C, prog.image.values, len(engine.desc_rows))
    assert (seq.desc_words, seq.desc_word_bits) == (engine.plan.desc_words, engine.plan.desc_word_width)
    assert seq.pixel_bits == engine.pixel_bits


def test_sequencer_parameter_errors_are_one_line():
    good = dict(pixel_bits=5, channels=1, values=64, img_addr_bits=6, passes=3, desc_words=2, desc_word_bits=16,
                desc_addr_bits=3)
    Sequencer(**good)
    for key, bad, text in (("passes", 0, "Sequencer: passes is 0; allowed: an integer 1..65536"),
                           ("pixel_bits", 2.0, "Sequencer: pixel_bits must be an integer 1..64, not 2.0"),
                           # 64 image words need 6 address bits, 3 x 2 descriptor words 3
                           ("img_addr_bits", 5, "Sequencer: img_addr_bits is 5; allowed: an integer 6..64"),
                           ("desc_addr_bits", 2, "Sequencer: desc_addr_bits is 2; allowed: an integer 3..64"),
                           ("img_addr_bits", None, "Sequencer: img_addr_bits must be an integer 6..64, not None")):
        with pytest.raises((ValueError, TypeError)) as info:
            Sequencer(**{**good, key: bad})
        assert str(info.value) == text
    with pytest.raises(ValueError) as info:
        Sequencer(**{**good, "channels": 2, "values": 63})
    assert str(info.value) == "Sequencer: values is 63; allowed: a multiple of channels (2)"


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_syn_drain_is_the_proven_component(compact, lanes):
    """The SYN pipeline's bank handover and drain is one :class:`SynDrain` (the component
    test_formal_units.py proves) with the plan's widths and the build's drain delay (the
    timing rule ``syn_drain``); the fast build's takes the next values its lane groups'
    address registers copy."""
    _, engine, drain = the_stage(SynDrain, "syn_drain", lanes, compact)
    assert (drain.count_bits, drain.addr_bits) == (engine.plan.count_bits, engine.plan.addr_bits)
    assert drain.delay == engine.build.syn_drain_delay() == engine.build.rules()["syn_drain"]
    assert drain.next_values is (not compact)


def test_syn_drain_parameter_errors_are_one_line():
    good = dict(count_bits=16, addr_bits=24, acc_words_bits=8, delay=2)
    SynDrain(**good)
    for key, bad, text in (("delay", 0, "SynDrain: delay is 0; allowed: an integer 1..64"),
                           ("count_bits", 1.5, "SynDrain: count_bits must be an integer 1..32, not 1.5")):
        with pytest.raises((ValueError, TypeError)) as info:
            SynDrain(**{**good, key: bad})
        assert str(info.value) == text


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_ew_loop_nest_is_the_proven_component(compact, lanes):
    """The EW/RED pipeline's loop nest (stage 0) is one :class:`EwNest` (the component
    test_formal_units.py proves) with the descriptor's field widths."""
    _, engine, nest = the_stage(EwNest, "ew_nest", lanes, compact)
    fields, consts = engine.plan.desc_fields, engine.plan.desc_consts
    width = {k: (fields[k] if k in fields else consts[k]).width for k in ("tiles", "N", "T")}
    assert nest.widths == {"tile": width["tiles"], "n": width["N"], "t": width["T"]}


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_syn_row_fifo_is_the_proven_component(compact, lanes):
    """The SYN pipeline's row FIFO and credits are one :class:`RowFifo` (the component
    test_formal_units.py proves) of the build's rows, its rows the plan's widths (the row
    less its lowest bit only in the fast build)."""
    _, engine, fifo = the_stage(RowFifo, "syn_fifo", lanes, compact)
    assert fifo.depth == engine.build.syn_fifo_rows()
    rest = 0 if compact else engine.row_bits
    assert fifo.layout == row_layout(engine.row_bits, engine.plan.va_w, engine.plan.ww, rest)


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_syn_decode_is_the_proven_component(compact, lanes):
    """The SYN pipeline's decode stages D0..D2 are one :class:`SynDecode` (the component
    test_formal_units.py proves) fed by the row scan, with the plan's widths, the program's
    head-start table, the descriptor's field shapes and the build's queue (the compact build:
    none, a ready chain)."""
    _, engine, dec = the_stage(SynDecode, "syn_decode", lanes, compact)
    _, _, scan = the_stage(RowScan, "syn_scan", lanes, compact)
    pl = engine.plan
    assert dec.i.payload.shape() == scan.o.payload.shape()
    assert (dec.row_bits, dec.va_bits, dec.wb_bits) == (engine.row_bits, pl.va_w, pl.ww)
    assert (dec.plane_bits, dec.channel_bits, dec.count_bits, dec.word_bits) == (
        pl.plane_field_bits, pl.cb, pl.count_bits, pl.aww)
    assert (dec.spike_plane_bits, dec.image_plane_bits, dec.lanes) == (engine.pbs, engine.pbi, lanes)
    assert dec.head_starts == tuple(pl.hstart)
    fields, consts = pl.desc_fields, pl.desc_consts
    assert {k: dec.desc_layout[k].width for k in DESC_FIELDS} == {
        k: (fields[k] if k in fields else consts[k]).width for k in DESC_FIELDS}
    assert dec.queue == engine.build.syn_queue == (0 if compact else 4)


def test_syn_decode_parameter_errors_are_one_line():
    good = dict(row_bits=8, va_bits=1, wb_bits=4, plane_bits=2, channel_bits=2, count_bits=3, word_bits=3,
                spike_plane_bits=1, image_plane_bits=2, lanes=2, head_starts=(0, 2),
                desc_layout=data.StructLayout({k: 2 for k in DESC_FIELDS}))
    SynDecode(**good)
    for key, bad, text in (
            ("head_starts", (0, 8), "SynDecode: head_starts element is 8; allowed: an integer 0..7"),
            ("desc_layout", data.StructLayout({"tiles": 2}),
             "SynDecode: desc_layout is StructLayout({'tiles': 2}); allowed: a StructLayout of the fields "
             "src_img, tiles, heads_on, h_base, hd, accsel_ch")):
        with pytest.raises((ValueError, TypeError)) as info:
            SynDecode(**{**good, key: bad})
        assert str(info.value) == text


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_syn_row_fetch_is_the_proven_component(compact, lanes):
    """The SYN pipeline's row fetch (issue to FIFO push) is one :class:`SynFetch` (the
    component test_formal_units.py proves) with the build's read and fetch registers, so its
    latency is the timing rule the row FIFO's credits are derived from, and its rows are the
    FIFO's."""
    _, engine, fetch = the_stage(SynFetch, "syn_fetch", lanes, compact)
    b = engine.build
    assert (fetch.read_regs, fetch.fetch_regs) == (b.syn_read_regs, b.syn_fetch_regs)
    assert fetch.latency == b.syn_row_latency() == b.syn_fifo_rows() - 2
    assert fetch.layout == row_layout(engine.row_bits, engine.plan.va_w, engine.plan.ww,
                                      0 if compact else engine.row_bits)


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_ew_operand_stages_are_the_proven_component(compact, lanes):
    """The EW/RED pipeline's stages 1..3 are an :class:`EwOperands` per lane (the component
    test_formal_units.py proves) with the build's registers and the plan's widths."""
    model = random_model(3, attention="qsd", levels=2, time_steps=2, channels=8, heads=2)
    prog = compile_model(model, lanes, compact=compact)
    engine = Engine(prog)
    found = instances(engine, EwOperands)
    assert [n for n, _ in found] == [f"ew_ops{ln}" for ln in range(lanes)]
    b = engine.build
    for _, ops in found:
        assert ops.registered == frozenset(b.ew_registered) & {1, 2, 3}
        assert ops.read_regs == b.ew_read_regs
        assert (ops.slots, ops.slot_bits, ops.int_bits) == (prog.spike_slots, engine.slot_bits, engine.ib)
        assert (ops.operand_bits, ops.b_bits, ops.mult_bits, ops.bias_bits, ops.theta_bits) == (
            engine.ow, engine.plan.bw, engine.mb, engine.bb, engine.tb)
        assert ops.rnd_bits == engine.plan.smax


@pytest.mark.parametrize("compact,lanes", [(True, 1), (False, 8)])
def test_syn_issue_is_the_proven_component(compact, lanes):
    """The SYN pipeline's issue stage E is one :class:`SynIssue` (the component
    test_formal_units.py proves) holding the decode's items."""
    _, _, iss = the_stage(SynIssue, "syn_issue", lanes, compact)
    _, _, dec = the_stage(SynDecode, "syn_decode", lanes, compact)
    assert iss.layout == dec.out_layout
