# amaranth: UnusedElaboratable=no
"""Bounded proofs (SymbiYosys BMC via ``spikeforge.sim.formal.prove``) for every unit of
``spikeforge.hdl.generate.UNITS``: output stream rules given input stream rules, exact
full-width results (so no accumulator, membrane or counter overflows) within the §9 bounds.
The engine's stage components (``STAGE_PROOFS``) are proven the same way, in the modes of
both builds. Each proof kind has deliberately broken units that must FAIL with the expected
assertion.

Small parameter sizes keep each proof to seconds; see unit_proofs.py for the harnesses.
"""

import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.lib import data
from broken_units import (AttentionLinearNarrowKV, AttentionMaskIgnoresStall, AttentionMaskNarrowMembrane,
                          ConvWindowRestartsWhileBusy, EncoderIgnoresStall, EncoderScanLateSingle, EwNestLateEnd,
                          EwOperandsMaskOr,
                          LifArrayDropsBeats, LifArrayFiresLate, LifArrayNarrowMembrane, LifLaneFiresLate,
                          LogitsOffersWhileShifting, LogitsTieToLast, SequencerEndsAfterFirstPass,
                          SequencerWritesEveryPixel, SparseAddGivesUp, SparseAddNarrowAcc, SparseAddNoSecondForward,
                          RowFifoCreditOnPush, SynDecodeHeadTooLong, SynDrainHandsOverEarly, SynFetchSingleFromTwo,
                          SynIssueLateLast,
                          WindowWalkLateEnd)
from unit_proofs import (AttentionLinearProof, AttentionMaskProof, ConvWindowProof, EncoderProof, EwNestProof,
                         EwOperandsProof,
                         LifArrayProof, LifLaneProof, LogitsProof, RowFifoProof, SequencerProof, SparseAddProof,
                         SynDecodeProof, SynDrainProof, SynFetchProof, SynIssueProof, WindowWalkProof)

from spikeforge.graph import bits_for_range
from spikeforge.hdl.accel.ew_lanes import lif_lane_registers
from spikeforge.hdl.accel.ew_nest import EwNest
from spikeforge.hdl.accel.ew_operands import EwOperands
from spikeforge.hdl.accel.logits import Logits
from spikeforge.hdl.accel.sequencer import Sequencer
from spikeforge.hdl.accel.syn_decode import DESC_FIELDS, SynDecode, decoded_layout
from spikeforge.hdl.accel.syn_drain import SynDrain
from spikeforge.hdl.accel.syn_fetch import SynFetch
from spikeforge.hdl.accel.syn_issue import SynIssue
from spikeforge.hdl.accel.syn_fifo import RowFifo, row_layout
from spikeforge.hdl.accel.timing import COMPACT, FAST
from spikeforge.hdl.conv_window import ConvWindowScan
from spikeforge.hdl.event_encoder import SpikeEventEncoder
from spikeforge.hdl.generate import UNITS
from spikeforge.hdl.lif_array import LifArray
from spikeforge.hdl.lif_lane import LifLane
from spikeforge.hdl.params import ceil_log2
from spikeforge.hdl.sparse_add import SparseAdd
from spikeforge.hdl.window_walk import WindowWalk
from spikeforge.hdl.spike_attention import SpikeAttentionLinear, SpikeAttentionMask
from spikeforge.sim.formal import prove

W_SMALL = np.array([[7, -8, 3], [5, -3, -8]])  # [Ci=2, Co=3], signed 4-bit
W_2X2 = np.array([[7, -8], [5, -3]]).reshape(2, 2, 1, 1)  # [k=2, k=2, Ci=1, Co=1]


def _lif(cls=LifArray, channels=3, **kw):
    """Small LifArray: 4-bit accumulators, per-channel constants (first ``channels`` of 3)."""
    base = dict(channels=channels, tokens=1, lanes=2, time_steps=3, in_lo=-8, in_hi=7,
                mult=np.array([3, -2, 5][:channels]), bias=np.array([1, 0, -3][:channels]), shift=1,
                out_bits=4, theta=np.array([2, 3, 1][:channels]), leak=1, reset="hard")
    base.update(kw)
    return cls(**base)


def _lif_lane(build, cls=LifLane):
    """A small LifLane registered as ``build``'s EW lanes, its widths derived as the engine's
    plan derives them (hdl/accel/plan.py): operand 4 bits, multiplier 3, bias 3 + rounding,
    saturation up to y_bits = 4, threshold 3 bits, 2-bit spikes; the membrane for |x| <= 8
    with a leak (2 |x| + 1)."""
    registered, product_regs = lif_lane_registers(build)
    ow, mb, bb, yw, tb = 4, 3, 3, 4, 3
    bound = 2 * (1 << (yw - 1)) + 1
    smax = (1 << 2) - 1  # the largest shift of 2 bits
    return cls(a_bits=ow, mult_bits=mb, addend_bits=max(bb, smax + 1) + 1, z_bits=max(ow + mb, bb) + 2, y_bits=yw,
               theta_bits=tb, v_bits=bits_for_range(-bound, bound),
               w_bits=bits_for_range(-bound - (1 << tb) + 1, bound), spike_bits=2, shift_bits=2, leak_bits=2,
               ms_shift_bits=2, levels_bits=2, registered=registered, product_regs=product_regs)


# unit name -> list of (id, harness factory, depth); every UNITS entry must be here
PROOFS = {
    "spike_event_encoder": [
        # the row scan in the engine's fast build's mode (the default case) and in its
        # compact build's (the encoder's default), each with a tag like the engine's row flags
        ("c3_d3_fast", lambda: EncoderProof(SpikeEventEncoder(channels=3, levels=3, tag_shape=2, fast=True)), 12),
        ("c3_d3", lambda: EncoderProof(SpikeEventEncoder(channels=3, levels=3, tag_shape=2)), 12),
        ("c2_d2", lambda: EncoderProof(SpikeEventEncoder(channels=2, levels=2)), 10),
    ],
    "sparse_add": [
        # the accumulate core in the engine's fast build's configuration (registered sums, two
        # banks, a copy of its flags per lane; one tile, so each addition of a group reads the
        # word the ones before it write): depth for a group with a bubble between additions
        # (the second forward) and a next group, in bank 1. (Binary spikes keep it to seconds;
        # the shift by a plane is the same logic in both modes: 1x1_planes2_banks2.)
        ("engine_fast_banks2", lambda: SparseAddProof(SparseAdd(weight=W_SMALL[:, :2], levels=1, lanes=2, fast=True,
                                                                banks=2, lanes_per_copy=1)), 12),
        # depth: one full group of the largest size and the start of the next
        ("1x1_tiles2", lambda: SparseAddProof(SparseAdd(weight=W_SMALL, levels=1, lanes=2)), 14),
        # the core in the compact build's configuration (sums not registered, two banks)
        ("1x1_planes2_banks2", lambda: SparseAddProof(SparseAdd(weight=W_SMALL[:, :2], levels=3, lanes=1,
                                                                banks=2)), 12),
        ("2x2_padded_lane", lambda: SparseAddProof(SparseAdd(weight=W_2X2, levels=1, lanes=2)), 14),
    ],
    "conv_window_scan": [
        ("3x3_k2_s2_p1", lambda: ConvWindowProof(ConvWindowScan(height=3, width=3, kernel=2, stride=2,
                                                                padding=1)), 24),
        ("1x4_k3_s1_p2", lambda: ConvWindowProof(ConvWindowScan(height=1, width=4, kernel=3, stride=1,
                                                                padding=2)), 24),
    ],
    "lif_array": [
        ("lif_hard_leak1_tiles2", lambda: LifArrayProof(_lif()), 10),
        ("lif_soft_leak0_tokens2", lambda: LifArrayProof(_lif(channels=1, lanes=1, tokens=2, leak=0,
                                                             reset="soft")), 10),
        ("multispike", lambda: LifArrayProof(_lif(mode="multispike", tokens=2, levels=4, ms_shift=1,
                                                  theta=None)), 12),
        ("pass", lambda: LifArrayProof(_lif(mode="pass", tokens=2, theta=None)), 12),
    ],
    "spike_attention_mask": [
        ("hard_leak1", lambda: AttentionMaskProof(SpikeAttentionMask(
            channels=2, tokens=2, time_steps=3, theta=np.array([1, 3]))), 20),
        ("soft_leak0", lambda: AttentionMaskProof(SpikeAttentionMask(
            channels=2, tokens=2, time_steps=3, theta=np.array([6, 2]), leak=0, reset="soft")), 20),
    ],
    "spike_attention_linear": [
        ("c2_h1_binary", lambda: AttentionLinearProof(SpikeAttentionLinear(channels=2, heads=1, tokens=2)), 12),
        ("c1_multilevel", lambda: AttentionLinearProof(SpikeAttentionLinear(
            channels=1, heads=1, tokens=2, levels_q=3, levels_k=2, levels_v=2)), 12),
    ],
}


def test_every_unit_has_a_proof():
    assert set(PROOFS) == set(UNITS)


# the first case of each unit runs by default, the others are marked slow
@pytest.mark.parametrize("make,depth", [pytest.param(f, d, id=f"{unit}-{pid}", marks=[pytest.mark.slow] if n else [])
                                        for unit, cases in PROOFS.items()
                                        for n, (pid, f, d) in enumerate(cases)])
def test_unit_proof(make, depth, tmp_path):
    result = prove(make(), depth=depth, workdir=tmp_path)
    assert result.passed, (result.failed_assertions, result.counterexample, result.log[-3000:])


# the SYN generator's levels (hdl/accel/syn_front.py), innermost first, at small widths
_WALK_LEVELS = [("kx", 2), ("ky", 2), ("tr", 1), ("ox", 2), ("oy", 1), ("t", 2)]


def _sequencer(cls=Sequencer, *, weights=True, channels=2, values=4, passes=3, desc_words=2):
    """A small Sequencer: 2-bit pixels, 2-bit descriptor words (the harness reads a pass's kind
    and last flags from its descriptor's bits 0 and 1), address widths of its sizes; with
    ``weights``, the SPRAM mapping's weight load (2-bit addresses and data)."""
    layout = data.StructLayout({"addr": unsigned(2), "data": unsigned(2)})
    return cls(pixel_bits=2, channels=channels, values=values, img_addr_bits=ceil_log2(values // channels),
               passes=passes, desc_words=desc_words, desc_word_bits=2,
               desc_addr_bits=ceil_log2(passes * desc_words), weight_load=(layout, (2, 2)) if weights else None)


def _ew_operands(build, cls=EwOperands):
    """A small EW operand lane (2 slots of 2 bits, 3-bit integer lanes) in ``build``'s registers."""
    return cls(slots=2, slot_bits=2, int_bits=3, operand_bits=4, b_bits=3, mult_bits=2, bias_bits=3, theta_bits=2,
               addend_bits=5, rnd_bits=2, tile_bits=1, registered=build.ew_registered, read_regs=build.ew_read_regs)


def _syn_issue(cls=SynIssue):
    """A small SYN issue stage: 2-bit tiles, 3-bit weight and 2-bit accumulator words."""
    return cls(decoded_layout(plane_bits=1, channel_bits=1, tile_bits=2, va_bits=1, wb_bits=3, word_bits=2))


def _syn_decode(cls=SynDecode, queue=0):
    """A small SYN decode: rows of 8 bits (2 bits a channel in a spike row, 4 in an image
    row), 2 lanes, a head-start table of two 2-channel heads and one 4-channel head."""
    widths = {"src_img": 1, "tiles": 2, "heads_on": 1, "h_base": 3, "hd": 3, "accsel_ch": 1}
    return cls(row_bits=8, va_bits=1, wb_bits=4, plane_bits=2, channel_bits=2, count_bits=3, word_bits=3,
               spike_plane_bits=1, image_plane_bits=2, lanes=2, head_starts=(0, 0, 2, 2, 0, 0, 0, 0),
               desc_layout=data.StructLayout({k: widths[k] for k in DESC_FIELDS}), queue=queue)


# engine stage -> list of (id, harness factory, depth): the stage components hdl/accel/
# instantiates (issue 19), each in the fast build's mode (shift_group: lanes per copy of the
# shift enable) and the compact build's. The scan stage, RowScan, is proven through
# spike_event_encoder above.
STAGE_PROOFS = {
    # the top-level control: the compact build's (weights loaded into SPRAM, several
    # descriptor words); depth: an image of two words, three passes and the result's send;
    # then one descriptor word, one channel, no weight load (the bram mapping): two images
    "sequencer": [
        ("spram_c2_passes3", lambda: SequencerProof(_sequencer()), 26),
        ("bram_c1_desc1", lambda: SequencerProof(_sequencer(weights=False, channels=1, values=2, passes=2,
                                                            desc_words=1)), 20, "slow"),
    ],
    "logits": [
        # depth: two images (the second's tiles and its first beats in the fast build)
        ("k3_p2_fast", lambda: LogitsProof(Logits(3, 2, 3, shift_group=1)), 17),
        ("k3_p2_compact", lambda: LogitsProof(Logits(3, 2, 3)), 12),
        ("k5_p4_fast_two_copies", lambda: LogitsProof(Logits(5, 4, 4, shift_group=2)), 17),
        ("k1_p1_fast", lambda: LogitsProof(Logits(1, 1, 2, shift_group=1)), 10),
    ],
    # the SYN drain: the compact build's delay (2) and the fast build's (4, with the next
    # values its lane groups' address registers copy); 2-bit word counter (up to 4 words);
    # depth: two whole drains of 4 words
    "syn_drain": [
        ("compact", lambda: SynDrainProof(SynDrain(count_bits=2, addr_bits=4, acc_words_bits=3,
                                                   delay=COMPACT.syn_drain_delay())), 20),
        ("fast", lambda: SynDrainProof(SynDrain(count_bits=2, addr_bits=4, acc_words_bits=3,
                                                delay=FAST.syn_drain_delay(), next_values=True)), 20),
    ],
    # the SYN row FIFO and its credits: the compact build's 3 rows (no rest), depth: filled,
    # emptied and wrapped; the fast build's 7 rows with the rest, a costlier proof (about
    # 2 min under load at depth 14: the slow tier)
    "syn_fifo": [
        ("compact", lambda: RowFifoProof(RowFifo(row_layout(4, 1, 2, 0), COMPACT.syn_fifo_rows())), 12),
        ("fast", lambda: RowFifoProof(RowFifo(row_layout(3, 1, 1, 3), FAST.syn_fifo_rows())), 14, "slow"),
    ],
    # the SYN decode stages: the compact build's ready chain (no queue) and the fast build's
    # credits for a queue of 4; depth: items through the three stages with stalls, the
    # queue filled
    "syn_decode": [
        ("compact", lambda: SynDecodeProof(_syn_decode()), 10),
        ("fast", lambda: SynDecodeProof(_syn_decode(queue=FAST.syn_queue)), 10),
    ],
    # the SYN row fetch: each build's registers (rows of 6 bits); depth: the fast build's
    # latency (5) and more
    "syn_fetch": [
        ("compact", lambda: SynFetchProof(SynFetch(row_bits=6, va_bits=2, wb_bits=2, read_regs=COMPACT.syn_read_regs,
                                                   fetch_regs=COMPACT.syn_fetch_regs)), 6),
        ("fast", lambda: SynFetchProof(SynFetch(row_bits=6, va_bits=2, wb_bits=2, read_regs=FAST.syn_read_regs,
                                                fetch_regs=FAST.syn_fetch_regs)), 9),
    ],
    # the EW operand stages 1..3 of a lane in each build's registers; depth: the fast build's
    # latency (4) and a reduction of a few tokens
    "ew_operands": [
        ("compact", lambda: EwOperandsProof(_ew_operands(COMPACT)), 8),
        ("fast", lambda: EwOperandsProof(_ew_operands(FAST)), 9),
    ],
    # the SYN issue stage; depth: items of up to 4 tiles with waits
    "syn_issue": [
        ("small", lambda: SynIssueProof(_syn_issue()), 10),
    ],
    # the EW/RED loop nest (2-bit counters, any bounds that fit, both orders); depth: a whole
    # pass of 2 x 2 x 3 elements and more
    "ew_nest": [
        ("both_orders", lambda: EwNestProof(EwNest(tile_bits=2, n_bits=2, t_bits=2)), 14),
    ],
    # the SYN generator's loop nest: the engine's six levels (small widths; any bounds that
    # fit); depth: a whole walk of 2 x 2 x 1 x 2 x 1 x 2 iterations and more
    "window_walk": [
        ("engine_levels", lambda: WindowWalkProof(WindowWalk(_WALK_LEVELS)), 12),
    ],
    # the EW lanes' LifLane (LifArray's lanes, proven combinational through lif_array above)
    # with the builds' registers; depth: the fast build's pipeline (7 cycles) and 2 more
    "lif_lane": [
        ("fast", lambda: LifLaneProof(_lif_lane(FAST)), 9),
        ("compact", lambda: LifLaneProof(_lif_lane(COMPACT)), 6),
    ],
}


@pytest.mark.parametrize("make,depth", [
    pytest.param(f, d, id=f"{stage}-{pid}", marks=[pytest.mark.slow] if n > 1 or "slow" in opts else [])
    for stage, cases in STAGE_PROOFS.items() for n, (pid, f, d, *opts) in enumerate(cases)])
def test_stage_proof(make, depth, tmp_path):
    result = prove(make(), depth=depth, workdir=tmp_path)
    assert result.passed, (result.failed_assertions, result.counterexample, result.log[-3000:])


# broken units: (id, harness factory, depth, text expected in a failed assertion)
BROKEN = [
    # stream rules
    ("encoder_ignores_stall", lambda: EncoderProof(EncoderIgnoresStall(channels=3, levels=3), shadow=False), 8,
     "o: payload changed while valid and not ready"),
    # exact-value shadow: the engine's row scan (fast mode) ends a row early
    ("row_scan_late_single", lambda: EncoderProof(EncoderScanLateSingle(channels=3, levels=3, fast=True)), 8,
     "o: last flag wrong"),
    # exact-value shadow: the engine's accumulate core (fast build) without its second forward
    ("sparse_add_no_second_forward", lambda: SparseAddProof(SparseAddNoSecondForward(
        weight=W_SMALL[:, :2], levels=1, lanes=2, fast=True, banks=2)), 12, "o: acc differs from the exact sum"),
    ("sparse_add_gives_up", lambda: SparseAddProof(SparseAddGivesUp(
        weight=W_SMALL, levels=1, lanes=2), shadow=False), 10, "o: valid dropped before ready"),
    ("conv_restarts_while_busy", lambda: ConvWindowProof(ConvWindowRestartsWhileBusy(
        height=3, width=3, kernel=2, stride=2, padding=1), shadow=False), 8,
     "o: payload changed while valid and not ready"),
    ("mask_ignores_stall", lambda: AttentionMaskProof(AttentionMaskIgnoresStall(
        channels=2, tokens=2, time_steps=3, theta=np.array([1, 3])), shadow=False), 10,
     "o: payload changed while valid and not ready"),
    # exact-value shadow: lost beats
    ("lif_drops_beats", lambda: LifArrayProof(_lif(LifArrayDropsBeats)), 8, "o: "),
    # exact-value shadow: the neuron lane (LifArray's and the engine's) fires at U > theta
    ("lif_lane_fires_late", lambda: LifArrayProof(_lif(LifArrayFiresLate)), 10, "o: output differs"),
    ("lif_lane_fires_late_fast", lambda: LifLaneProof(_lif_lane(FAST, LifLaneFiresLate)), 9, "fire differs"),
    # overflow: too-narrow accumulator / membrane / KV
    ("sparse_add_narrow_acc", lambda: SparseAddProof(SparseAddNarrowAcc(weight=W_SMALL, levels=1, lanes=2)),
     16, "o: acc differs from the exact sum"),
    ("lif_narrow_membrane", lambda: LifArrayProof(_lif(LifArrayNarrowMembrane, channels=1, lanes=1)), 10,
     "o: output differs from the exact value"),
    ("mask_narrow_membrane", lambda: AttentionMaskProof(AttentionMaskNarrowMembrane(
        channels=2, tokens=2, time_steps=3, theta=np.array([6, 1]), leak=0)), 20,
     "o: output differs from the exact value"),
    ("linear_narrow_kv", lambda: AttentionLinearProof(AttentionLinearNarrowKV(
        channels=1, heads=1, tokens=2, levels_q=3, levels_k=2, levels_v=2)), 12,
     "o: output differs from the exact value"),
    # exact order: the engine's generator loop nest runs a level one iteration too long
    ("window_walk_late_end", lambda: WindowWalkProof(WindowWalkLateEnd(_WALK_LEVELS)), 8, "] wrong"),
    # the sequencer: every pass taken as the last; an image word written at every pixel
    ("sequencer_ends_after_first_pass", lambda: SequencerProof(_sequencer(SequencerEndsAfterFirstPass)), 16,
     "send differs from 'after the last pass, until sent'"),
    ("sequencer_writes_every_pixel", lambda: SequencerProof(_sequencer(SequencerWritesEveryPixel)), 8,
     "img_write: enable differs"),
    # the SYN drain lets a position end a cycle before its last read
    ("syn_drain_hands_over_early", lambda: SynDrainProof(SynDrainHandsOverEarly(
        count_bits=2, addr_bits=4, acc_words_bits=3, delay=COMPACT.syn_drain_delay())), 14, "blk differs"),
    # the SYN row FIFO returns a credit on the push, not the pop
    ("row_fifo_credit_on_push", lambda: RowFifoProof(RowFifoCreditOnPush(row_layout(4, 1, 2, 0), 3)), 10,
     "credits differ"),
    # the SYN decode ends a head's tile range a channel late
    ("syn_decode_head_too_long", lambda: SynDecodeProof(_syn_decode(SynDecodeHeadTooLong)), 6,
     "o: output differs from the exact value"),
    # the SYN row fetch flags a row of two set bits as single
    ("syn_fetch_single_from_two", lambda: SynFetchProof(SynFetchSingleFromTwo(
        row_bits=6, va_bits=2, wb_bits=2, read_regs=0, fetch_regs=0)), 4, "single differs"),
    # the EW operand stage's mask pass ORs its operands
    ("ew_operands_mask_or", lambda: EwOperandsProof(_ew_operands(COMPACT, EwOperandsMaskOr)), 6, "opnd differs"),
    # the SYN issue stage ends an event's tiles one late
    ("syn_issue_late_last", lambda: SynIssueProof(_syn_issue(SynIssueLateLast)), 6, "at_last differs"),
    # the EW loop nest runs a level one iteration too long
    ("ew_nest_late_end", lambda: EwNestProof(EwNestLateEnd(tile_bits=2, n_bits=2, t_bits=2)), 10, "wrong"),
    # engine stages: the result stage's tie rule, and a beat that changes under a stall
    ("logits_tie_to_last", lambda: LogitsProof(LogitsTieToLast(3, 2, 3)), 10,
     "o: class is not the argmax (first index on ties)"),
    ("logits_offers_while_shifting", lambda: LogitsProof(LogitsOffersWhileShifting(3, 2, 3, shift_group=1),
                                                         shadow=False), 10,
     "o: payload changed while valid and not ready"),
]


@pytest.mark.parametrize("make,depth,expected", [pytest.param(f, d, e, id=i) for i, f, d, e in BROKEN])
def test_broken_unit_fails(make, depth, expected, tmp_path):
    result = prove(make(), depth=depth, workdir=tmp_path)
    assert not result.passed and result.status == "FAIL", result.log[-2000:]
    assert result.counterexample is not None and result.counterexample.is_file()
    assert any(expected in a for a in result.failed_assertions), result.failed_assertions


def test_bound_assertion_is_live(tmp_path):
    """Without the premise of the §9 bound (each event once per group) the exact sums leave
    the bound and the proof says so."""
    proof = SparseAddProof(SparseAdd(weight=W_SMALL, levels=1, lanes=2))
    proof.once_per_group = False
    result = prove(proof, depth=12, workdir=tmp_path)
    assert not result.passed
    assert any("the §9 bound" in a for a in result.failed_assertions), result.failed_assertions
