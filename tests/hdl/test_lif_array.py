# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest

from spikeforge.hdl.lif_array import LifArray
from spikeforge.hdl.lif_lane import STAGES, LifLane
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from spikeforge.sim.golden import lif_array


def _make(rng, *, channels, tokens, lanes, T, mode, out_bits=8, reset="hard", leak=1,
          levels=4, extreme=False):
    in_lo, in_hi = -300, 500
    mult = rng.integers(-60, 61, channels)
    mult[mult == 0] = 1
    if extreme:
        mult[:] = 127
    bias = rng.integers(-2000, 2000, channels)
    shift = int(rng.integers(4, 9))
    theta = rng.integers(1, 1 << (out_bits - 2), channels)
    params = dict(mult=mult, bias=bias, shift=shift, out_bits=out_bits, theta=theta, leak=leak,
                  reset=reset, levels=levels, ms_shift=int(rng.integers(0, 4)))
    dut = LifArray(channels=channels, tokens=tokens, lanes=lanes, time_steps=T, in_lo=in_lo,
                   in_hi=in_hi, mode=mode, **params)
    return dut, params


def _run(dut, params, acc_images, seed, stall_in, stall_out):
    """acc_images: list of [T, N, C]; returns output transfer times."""
    P, tiles, C = dut.lanes, dut.tiles, dut.channels
    beats, expected = [], []
    for acc in acc_images:
        padded = np.zeros(acc.shape[:2] + (tiles * P,), np.int64)
        padded[..., :C] = acc
        want = np.zeros_like(padded)
        want[..., :C] = lif_array(acc, mode=dut.mode, **params)
        for t in range(acc.shape[0]):
            for n in range(acc.shape[1]):
                for j in range(tiles):
                    beats.append({"acc": [int(v) for v in padded[t, n, j * P:(j + 1) * P]],
                                  "tile": j, "last": int(j == tiles - 1)})
                    expected.append((j, int(j == tiles - 1),
                                     [int(v) for v in want[t, n, j * P:(j + 1) * P]]))
    got, t_out = [], []

    async def put(ctx):
        await stream_put(ctx, dut.i, beats, rng=random.Random(seed), stall=stall_in)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, len(expected), rng=random.Random(seed + 1),
                                    stall=stall_out, times=t_out))

    simulate(dut, put, get)
    assert [(g["tile"], g["last"], g["data"]) for g in got] == expected
    return t_out


def _acc(rng, dut, kind="rand"):
    shape = (dut.time_steps, dut.tokens, dut.channels)
    if kind == "min":
        return np.full(shape, dut.in_lo)
    if kind == "max":
        return np.full(shape, dut.in_hi)
    return rng.integers(dut.in_lo, dut.in_hi + 1, shape)


@pytest.mark.parametrize("mode", ["lif", "multispike", "pass"])
@pytest.mark.parametrize("channels,tokens,lanes,T", [
    (1, 1, 1, 1), (4, 3, 4, 2), (5, 2, 2, 3), (8, 1, 8, 4), (9, 2, 4, 2), (3, 4, 8, 1),
])
def test_matches_golden_with_stalls(mode, channels, tokens, lanes, T):
    rng = np.random.default_rng(channels * 31 + tokens * 7 + lanes + T)
    dut, params = _make(rng, channels=channels, tokens=tokens, lanes=lanes, T=T, mode=mode)
    images = [_acc(rng, dut), _acc(rng, dut)]  # two images: state must restart at t = 0
    _run(dut, params, images, seed=lanes, stall_in=0.3, stall_out=0.4)


@pytest.mark.parametrize("reset,leak", [("soft", 0), ("soft", 2), ("hard", 0), ("hard", 3)])
@pytest.mark.parametrize("kind", ["rand", "min", "max"])
def test_lif_variants_and_extremes(reset, leak, kind):
    rng = np.random.default_rng(leak * 10 + len(kind))
    dut, params = _make(rng, channels=6, tokens=2, lanes=4, T=4, mode="lif", reset=reset,
                        leak=leak, extreme=kind != "rand", out_bits=6)
    _run(dut, params, [_acc(rng, dut, kind)], seed=5, stall_in=0.2, stall_out=0.2)


def test_cycles_model_exact():
    rng = np.random.default_rng(1)
    dut, params = _make(rng, channels=10, tokens=3, lanes=4, T=2, mode="lif")
    t_out = _run(dut, params, [_acc(rng, dut), _acc(rng, dut)], seed=1, stall_in=0, stall_out=0)
    assert t_out[-1] + 1 == dut.cycles(images=2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(mode="relu"), "mode is 'relu'"),
    (dict(theta=None), "needs theta"),
    (dict(mult=np.ones(3, np.int64)), "mult has shape"),
    (dict(theta=np.zeros(4, np.int64)), r"theta\[0\] = 0"),
    (dict(lanes=0), "lanes is 0"),
])
def test_parameter_errors(kwargs, match):
    base = dict(channels=4, tokens=2, lanes=2, time_steps=2, in_lo=-10, in_hi=10,
                mult=np.ones(4, np.int64), bias=np.zeros(4, np.int64), shift=1, out_bits=8,
                theta=np.ones(4, np.int64))
    base.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=match):
        LifArray(**base)


_LANE = dict(a_bits=8, mult_bits=8, addend_bits=8, z_bits=18, y_bits=8, theta_bits=4, v_bits=10, w_bits=11,
             spike_bits=2, shift_bits=3, leak_bits=2, ms_shift_bits=2, levels_bits=2)


@pytest.mark.parametrize("kwargs,match", [
    (dict(registered={"sum", "neuron"}), "registered has 'neuron'; allowed: a subset of product, sum"),
    (dict(product_regs=1), "product_regs is 1; allowed: 0 or 2"),
    (dict(a_bits=0), "a_bits is 0; allowed: an integer 1..64"),
    (dict(primitive=True), "primitive=True needs product_regs=2"),
    (dict(primitive=True, product_regs=2, a_bits=19), "a_bits=19"),
    (dict(primitive=1), "primitive is 1; allowed: True or False"),
])
def test_lane_parameter_errors(kwargs, match):
    """The lane LifArray and the engine's EW lanes are built on checks its parameters."""
    with pytest.raises((ValueError, TypeError), match=match):
        LifLane(**dict(_LANE, **kwargs))


def test_lane_latency_follows_its_registers():
    lane = LifLane(**_LANE, registered={"product", "sum", "sat"})
    assert [lane.latency(s) for s in STAGES] == [1, 2, 2, 3, 3]
    lane = LifLane(**_LANE, registered=set(STAGES), product_regs=2)
    assert [lane.latency(s) for s in STAGES] == [3, 4, 5, 6, 7]
