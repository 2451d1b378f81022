"""The SYN cycle model (``execute.syn_walk_cycles``) without a simulator.

The RTL tests (test_engine.py, test_engine_streams.py, test_memory_map.py, tests/accel_verilog)
check it against the engine exactly, padded passes included. These pin what it means: on a
walk without padding taps it is the per-position rule of docs/accelerator.md (``max(event
work, tap walk, previous drain)`` plus the last drain and the pipeline's fill and flush);
padding taps cost cycles where the generator walks them, not where a position ends.
"""

import numpy as np
import pytest

from spikeforge.builder import random_model
from spikeforge.hdl.accel.execute import execute_program, syn_walk_cycles
from spikeforge.hdl.accel.program import compile_model
from spikeforge.hdl.accel.simulate import simulate_engine
from spikeforge.hdl.accel.timing import COMPACT, FAST, TIMING, TIMING_COMPACT
from spikeforge.sim.model import run_model


def _walk(positions, lead=0, trail=0):
    """A walk of positions of in-grid rows (lists of item cycles), each with ``lead`` padding
    taps before its rows and ``trail`` after."""
    walk = []
    for rows in positions:
        walk += [None] * lead
        walk += [[items, k == len(rows) - 1] for k, items in enumerate(rows)]
        walk += [None] * trail
    return walk


def _per_position_rule(positions, acc_words, compact, taps=None):
    tm = TIMING_COMPACT if compact else TIMING
    b = COMPACT if compact else FAST
    fill = 7 + b.syn_read_regs + b.syn_fetch_regs
    c, prev = 0, 0
    for rows in positions:
        work = sum(sum(items) for items in rows)
        c += max(work, taps or len(rows), prev)
        prev = acc_words + tm["syn_drain"]
    return c + prev + fill


@pytest.mark.parametrize("compact", [False, True])
def test_unpadded_walk_is_the_per_position_rule(compact):
    rng = np.random.default_rng(int(compact))
    for _ in range(300):
        dens = rng.random()
        positions = [[[int(rng.integers(1, 4)) for _ in range(rng.binomial(6, dens))] or [1]
                      for _ in range(int(rng.integers(1, 10)))] for _ in range(int(rng.integers(1, 6)))]
        acc_words = int(rng.integers(1, 6))
        assert syn_walk_cycles(_walk(positions), acc_words, compact) == _per_position_rule(
            positions, acc_words, compact)


@pytest.mark.parametrize("compact", [False, True])
def test_padding_taps_cost_where_the_generator_walks_them(compact):
    # One position of 5 empty rows and 4 padding taps (a 3 x 3 kernel at a corner). The
    # per-position rule gives both orders the same 9 cycles; in the engine the taps in
    # front delay every row, the taps after the last row overlap with the pipeline's flush.
    rows = [[[1]] * 5]
    front = syn_walk_cycles(_walk(rows, lead=4), 2, compact)
    back = syn_walk_cycles(_walk(rows, trail=4), 2, compact)
    assert back == _per_position_rule(rows, 2, compact)  # the rows follow without a gap
    assert front == back + 4
    assert _per_position_rule(rows, 2, compact, taps=9) == back + 4  # the rule: 4 more either way
    # Busy rows: the generator runs ahead of the event stage (by its credits: rows issued and
    # not yet taken by the scan stage), so the padding taps in front of the later positions
    # are walked while the event stage works on the position before; only the first
    # position's delay the pass.
    busy = [[[3, 3, 3]] * 4] * 3
    hidden = syn_walk_cycles(_walk(busy, lead=2), 1, compact)
    assert hidden == syn_walk_cycles(_walk(busy), 1, compact) + 2  # only the first position's


def test_row_latency_and_credits_follow_the_registers():
    # tap -> FIFO push: the issue register, the fast build's two read and two fetch registers
    assert COMPACT.syn_row_latency() == 1
    assert FAST.syn_row_latency() == 1 + 2 + 2
    assert FAST.syn_fifo_rows() == FAST.syn_row_latency() + 2
    assert COMPACT.syn_fifo_rows() == COMPACT.syn_row_latency() + 2
    # a single row without events: tap 0, push, pop, emit, three decode stages, issue
    tm = TIMING_COMPACT
    assert syn_walk_cycles([[[1], True]], 1, True) == (COMPACT.syn_row_latency() + 1 + 1 + 3 + 1 + 1
                                                       + tm["syn_drain"] + 1)


@pytest.mark.parametrize("kernel,lanes,compact", [(5, 4, True), (7, 4, True), (5, 4, False), (7, 1, True)])
def test_a_pass_ends_after_trailing_padding_taps(kernel, lanes, compact):
    """A large padded kernel's last position has many padding taps after its last in-grid
    row. The engine used to end a SYN pass only in the cycle its last drain was two cycles
    from its end, and only with the generator stopped: in the first two cases the generator
    was still walking then and the pass never ended (amaranth.sim timed out in the embedding
    pass). Now it ends in the cycle after the generator's last tap: amaranth.sim on the
    4 x 4 image below ends in exactly the cycles predicted, with the golden model's logits."""
    model = random_model(3, attention="linear", time_steps=1, channels=4, heads=1, blocks=1, patch=1,
                         embed_kernel=kernel, image=(4, 4, 1), classes=2)
    prog = compile_model(model, lanes, compact=compact)
    image = np.random.default_rng(0).integers(0, 17, (4, 4, 1))
    ref = execute_program(prog, image)
    logits, classes, cycles, events = simulate_engine(prog, image[None], max_cycles=20 * ref.total_cycles)
    np.testing.assert_array_equal(logits[0], run_model(model, image[None]).logits[0])
    assert int(cycles[0]) == ref.total_cycles and int(events[0]) == ref.events


def test_trailing_padding_taps_end_the_pass_after_the_last_tap():
    # One position of one row followed by many padding taps: the generator's walk, not the
    # drain, decides when the pass ends (one cycle per tap), in both builds.
    for compact in (False, True):
        short = syn_walk_cycles(_walk([[[1]]], trail=2), 1, compact)
        long = syn_walk_cycles(_walk([[[1]]], trail=40), 1, compact)
        longer = syn_walk_cycles(_walk([[[1]]], trail=41), 1, compact)
        assert longer == long + 1 and long > short
