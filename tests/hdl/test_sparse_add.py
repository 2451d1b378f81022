# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module, signed
from amaranth.lib import wiring

from spikeforge.hdl.accumulate_lanes import AccumulateLanes
from spikeforge.hdl.conv_window import ConvWindowScan
from spikeforge.hdl.event_encoder import SpikeEventEncoder
from spikeforge.hdl.sparse_add import SparseAdd
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from spikeforge.sim.golden import (conv_window_scan, sparse_add, spike_conv2d,
                                   spike_event_encoder)


def _events(rng, groups, k, ci, levels):
    """Random groups of vectors as event dicts and golden beats; each tap at most once per
    group (as in a convolution window), so the accumulator bound holds."""
    hw, beats = [], []
    for _ in range(groups):
        nvec = int(rng.integers(1, min(4, k * k) + 1))
        taps = rng.permutation(k * k)[:nvec]
        for j in range(nvec):
            density = rng.choice([0.0, 0.3, 1.0])
            vec = rng.integers(0, levels + 1, ci) * (rng.random(ci) < density)
            tap, end = int(taps[j]), int(j == nvec - 1)
            for c, b, empty, last, _ in spike_event_encoder(vec, levels):
                hw.append({"channel": c, "plane": b, "empty": empty, "last": last,
                           "tag": {"tap": tap, "end": end}})
                beats.append((tap, c, b, empty, int(last and end)))
    return hw, beats


def _run_add(dut, hw, beats, seed, stall_in, stall_out):
    expected = sparse_add(beats, dut.weight, dut.lanes)
    got, t_out = [], []

    async def put(ctx):
        await stream_put(ctx, dut.i, hw, rng=random.Random(seed), stall=stall_in)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, len(expected), rng=random.Random(seed + 1),
                                    stall=stall_out, times=t_out))

    simulate(dut, put, get)
    assert [(g["tile"], g["last"], g["acc"]) for g in got] == expected
    return t_out


def _weights(rng, shape, wb, kind):
    lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
    if kind == "min":
        return np.full(shape, lo)
    if kind == "max":
        return np.full(shape, hi)
    return rng.integers(lo, hi + 1, shape)


@pytest.mark.parametrize("k,ci,co,lanes,levels,wb,kind", [
    (1, 1, 1, 1, 1, 2, "rand"),
    (1, 8, 8, 8, 1, 4, "rand"),
    (1, 7, 9, 4, 3, 4, "rand"),
    (1, 16, 17, 16, 16, 8, "rand"),
    (3, 3, 5, 2, 4, 4, "rand"),
    (3, 2, 4, 4, 1, 4, "min"),
    (3, 2, 4, 3, 7, 6, "max"),
    (2, 5, 1, 8, 2, 2, "min"),
])
def test_matches_golden_with_stalls(k, ci, co, lanes, levels, wb, kind):
    rng = np.random.default_rng(k * 1000 + ci * 100 + co + lanes)
    w = _weights(rng, (k, k, ci, co), wb, kind)
    dut = SparseAdd(weight=w, levels=levels, lanes=lanes)
    hw, beats = _events(rng, 6, k, ci, levels)
    _run_add(dut, hw, beats, seed=co, stall_in=0.3, stall_out=0.4)


@pytest.mark.parametrize("ci,co,lanes,levels", [(4, 4, 4, 1), (6, 10, 4, 3), (5, 3, 1, 2)])
def test_cycles_model_exact(ci, co, lanes, levels):
    rng = np.random.default_rng(ci + co)
    dut = SparseAdd(weight=rng.integers(-8, 8, (ci, co)), levels=levels, lanes=lanes)
    hw, beats = _events(rng, 8, 1, ci, levels)
    t_out = _run_add(dut, hw, beats, seed=3, stall_in=0.0, stall_out=0.0)
    assert t_out[-1] + 1 == dut.cycles(beats)


@pytest.mark.parametrize("fast,banks,per_copy", [(True, 2, 2), (False, 2, None), (True, 1, None)])
def test_engine_configurations_match_golden(fast, banks, per_copy):
    """SparseAdd on its accumulate core in the engine's configurations (registered sums and
    the second forward, two banks taking turns, flag copies per lane group): the golden
    beats under stalls, and the cycle model exact without them. One tile of 4 lanes, so
    every addition of a group hits the word the one before it wrote."""
    rng = np.random.default_rng(7 + fast + 2 * banks)
    w = rng.integers(-8, 8, (5, 4))
    dut = SparseAdd(weight=w, levels=3, lanes=4, fast=fast, banks=banks, lanes_per_copy=per_copy)
    assert dut.latency == 2 + fast
    hw, beats = _events(rng, 6, 1, 5, 3)
    _run_add(dut, hw, beats, seed=5, stall_in=0.3, stall_out=0.4)
    t_out = _run_add(dut, hw, beats, seed=5, stall_in=0.0, stall_out=0.0)
    assert t_out[-1] + 1 == dut.cycles(beats)


def test_accumulator_width_from_bounds():
    w = np.full((1, 1, 4, 2), -8)
    dut = SparseAdd(weight=w, levels=3, lanes=2)
    assert (dut.acc_lo, dut.acc_hi, dut.acc_bits) == (-96, 0, 8)


class _Chain(Elaboratable):
    def __init__(self, weight, levels, lanes):
        k, _, ci, _ = weight.shape
        self.add = SparseAdd(weight=weight, levels=levels, lanes=lanes)
        self.enc = SpikeEventEncoder(channels=ci, levels=levels, tag_shape=self.add.tag_layout)

    def elaborate(self, platform):
        m = Module()
        m.submodules.enc, m.submodules.add = self.enc, self.add
        wiring.connect(m, self.enc.o, self.add.i)
        return m


@pytest.mark.parametrize("H,W,k,s,p,ci,co,lanes,levels", [
    (4, 4, 3, 1, 1, 2, 3, 2, 1),
    (5, 4, 3, 2, 1, 3, 4, 4, 4),
    (3, 3, 1, 1, 0, 4, 5, 8, 16),
    (4, 5, 2, 2, 0, 1, 2, 1, 1),
])
def test_encoder_sparse_add_chain_equals_conv(H, W, k, s, p, ci, co, lanes, levels):
    rng = np.random.default_rng(H * W + k)
    x = rng.integers(0, levels + 1, (H, W, ci)) * (rng.random((H, W, ci)) < 0.4)
    w = rng.integers(-8, 8, (k, k, ci, co))
    dut = _Chain(w, levels, lanes)
    scan = conv_window_scan(H, W, k, s, p)
    vectors = [{"spikes": [int(v) for v in x.reshape(H * W, ci)[tok]], "tag": {"tap": tap, "end": end}}
               for tok, tap, end in scan]
    ref = spike_conv2d(x[None, None], w, s, p)[0, 0]
    Ho, Wo = ref.shape[:2]
    tiles = dut.add.tiles
    got = []

    async def put(ctx):
        await stream_put(ctx, dut.enc.i, vectors, rng=random.Random(1), stall=0.2)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.add.o, Ho * Wo * tiles, rng=random.Random(2), stall=0.2))

    simulate(dut, put, get)
    acc = np.array([g["acc"] for g in got]).reshape(Ho, Wo, tiles * lanes)[:, :, :co]
    assert (acc == ref).all()


@pytest.mark.parametrize("H,W,k,s,p", [
    (1, 1, 1, 1, 0), (4, 4, 3, 1, 1), (5, 7, 3, 2, 1), (8, 8, 4, 4, 0), (3, 5, 5, 1, 4),
    (6, 6, 2, 3, 1),
])
def test_conv_window_scan_matches_golden(H, W, k, s, p):
    dut = ConvWindowScan(height=H, width=W, kernel=k, stride=s, padding=p)
    expected = conv_window_scan(H, W, k, s, p)
    got, t_in = [], []

    async def put(ctx):
        await stream_put(ctx, dut.i, [0, 0], times=t_in)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, 2 * len(expected), rng=random.Random(H), stall=0.3))

    simulate(dut, put, get)
    want = [(tok, tap, end, int(j == len(expected) - 1)) for j, (tok, tap, end) in enumerate(expected)]
    assert [(g["token"], g["tap"], g["end"], g["last"]) for g in got] == want * 2


def test_conv_window_scan_cycles():
    """A pass takes ``cycles()``: the next start is taken that many cycles after the first (the
    walk visits all Ho * Wo * k * k taps, the out-of-grid ones without a beat, as the engine's
    generator does); the last beat comes before the trailing out-of-grid taps."""
    dut = ConvWindowScan(height=5, width=6, kernel=3, stride=2, padding=1)
    n = len(conv_window_scan(5, 6, 3, 2, 1))
    t_in, t_out = [], []

    async def put(ctx):
        await stream_put(ctx, dut.i, [0, 0], times=t_in)

    async def get(ctx):
        await stream_get(ctx, dut.o, 2 * n, times=t_out)

    simulate(dut, put, get)
    assert dut.cycles() == 1 + 3 * 3 * 3 * 3
    assert t_in[1] - t_in[0] == dut.cycles()
    assert t_out[n - 1] - t_in[0] == dut.cycles() - 1 - 3  # the last position's bottom row: padding


@pytest.mark.parametrize("cls,kwargs,match", [
    (SparseAdd, dict(weight=np.zeros((2, 3, 1, 1), np.int64)), "expected"),
    (SparseAdd, dict(weight=np.zeros((2, 2)), lanes=2), "integer array"),
    (SparseAdd, dict(weight=np.zeros((2, 2), np.int64), lanes=0), "lanes is 0"),
    (SparseAdd, dict(weight=np.zeros((2, 2), np.int64), banks=3), "banks is 3"),
    (SparseAdd, dict(weight=np.zeros((2, 2), np.int64), fast=1), "fast is 1"),
    (AccumulateLanes, dict(lanes=2, weight_shape=signed(8), shift_bits=1, acc_bits=6), "acc_bits is 6"),
    (AccumulateLanes, dict(lanes=2, weight_shape=signed(4), shift_bits=1, acc_bits=6, banks=3), "banks is 3"),
    (ConvWindowScan, dict(height=2, width=2, kernel=3, padding=3), "padding is 3"),
    (ConvWindowScan, dict(height=2, width=2, kernel=3), "leave no output"),
])
def test_parameter_errors(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)
