# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest

from spikeforge.hdl.spike_attention import SpikeAttentionLinear, SpikeAttentionMask
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from spikeforge.sim.golden import spike_attention_linear, spike_attention_mask


def _bits(row):
    return sum(int(b) << c for c, b in enumerate(row))


def _spikes(rng, shape, levels, density):
    return rng.integers(0, levels + 1, shape) * (rng.random(shape) < density)


def _run_mask(dut, q, k, v, seed, stall):
    T, N, C = q.shape
    want = spike_attention_mask(q, k, v, dut.theta, dut.leak, dut.reset)
    got, t_out = [], []

    async def put(ctx):
        rnd = random.Random(seed)
        for t in range(T):  # kv beats then q beats, per time step
            await stream_put(ctx, dut.kv, [{"k": _bits(k[t, n]), "v": _bits(v[t, n])} for n in range(N)],
                             rng=rnd, stall=stall)
            await stream_put(ctx, dut.q, [_bits(q[t, n]) for n in range(N)], rng=rnd, stall=stall)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, T * N, rng=random.Random(seed + 1), stall=stall,
                                    times=t_out))

    simulate(dut, put, get)
    assert got == [_bits(want[t, n]) for t in range(T) for n in range(N)]
    return t_out


@pytest.mark.parametrize("C,N,T,leak,reset,density", [
    (1, 1, 1, 1, "hard", 0.5), (4, 5, 3, 1, "hard", 0.6), (8, 4, 4, 0, "soft", 0.5),
    (3, 8, 2, 2, "soft", 1.0), (5, 3, 3, 1, "hard", 0.0), (7, 16, 4, 1, "soft", 0.3),
])
def test_mask_matches_golden_with_stalls(C, N, T, leak, reset, density):
    rng = np.random.default_rng(C * N * T)
    q, k, v = (_spikes(rng, (T, N, C), 1, density) for _ in range(3))
    theta = rng.integers(1, N + 1, C)
    dut = SpikeAttentionMask(channels=C, tokens=N, time_steps=T, theta=theta, leak=leak, reset=reset)
    _run_mask(dut, q, k, v, seed=C, stall=0.3)


def test_mask_cycles_model_exact():
    rng = np.random.default_rng(0)
    T, N, C = 3, 6, 5
    q, k, v = (_spikes(rng, (T, N, C), 1, 0.5) for _ in range(3))
    dut = SpikeAttentionMask(channels=C, tokens=N, time_steps=T, theta=np.ones(C, np.int64))
    t_out = _run_mask(dut, q, k, v, seed=0, stall=0.0)
    assert t_out[-1] + 1 == dut.cycles()


def _run_linear(dut, q, k, v, seed, stall):
    T, N, C = q.shape
    want = spike_attention_linear(q, k, v, dut.heads)
    got, t_out = [], []

    async def put(ctx):
        rnd = random.Random(seed)
        for t in range(T):
            await stream_put(ctx, dut.kv, [{"k": [int(x) for x in k[t, n]], "v": [int(x) for x in v[t, n]]}
                                           for n in range(N)], rng=rnd, stall=stall)
            await stream_put(ctx, dut.q, [[int(x) for x in q[t, n]] for n in range(N)], rng=rnd,
                             stall=stall)

    async def get(ctx):
        got.extend(await stream_get(ctx, dut.o, T * N, rng=random.Random(seed + 1), stall=stall,
                                    times=t_out))

    simulate(dut, put, get)
    assert got == [[int(x) for x in want[t, n]] for t in range(T) for n in range(N)]
    return t_out


@pytest.mark.parametrize("C,h,N,T,dq,dk,dv,density", [
    (1, 1, 1, 1, 1, 1, 1, 1.0), (4, 2, 4, 2, 1, 1, 1, 0.5), (6, 3, 3, 2, 4, 4, 4, 0.6),
    (8, 1, 5, 1, 2, 3, 1, 0.4), (4, 4, 2, 2, 4, 1, 2, 0.0), (4, 2, 3, 1, 7, 7, 7, 1.0),
])
def test_linear_matches_golden_with_stalls(C, h, N, T, dq, dk, dv, density):
    rng = np.random.default_rng(C * N + dq * dk)
    q = _spikes(rng, (T, N, C), dq, density)
    k = _spikes(rng, (T, N, C), dk, density)
    v = _spikes(rng, (T, N, C), dv, density)
    dut = SpikeAttentionLinear(channels=C, heads=h, tokens=N, levels_q=dq, levels_k=dk, levels_v=dv)
    _run_linear(dut, q, k, v, seed=C + h, stall=0.3)


def test_linear_all_max_reaches_bound():
    C, h, N = 4, 2, 3
    full = np.full((1, N, C), 3)
    dut = SpikeAttentionLinear(channels=C, heads=h, tokens=N, levels_q=3, levels_k=3, levels_v=3)
    _run_linear(dut, full, full, full, seed=1, stall=0.2)
    assert dut.a_max == spike_attention_linear(full, full, full, h).max()


def test_linear_cycles_model_exact():
    rng = np.random.default_rng(4)
    N, C = 5, 6
    q, k, v = (_spikes(rng, (1, N, C), 3, 0.4) for _ in range(3))
    dut = SpikeAttentionLinear(channels=C, heads=2, tokens=N, levels_q=3, levels_k=3, levels_v=3)
    t_out = _run_linear(dut, q, k, v, seed=0, stall=0.0)
    assert t_out[-1] + 1 == dut.cycles(q[0])


@pytest.mark.parametrize("cls,kwargs,match", [
    (SpikeAttentionLinear, dict(channels=6, heads=4, tokens=2), "does not divide"),
    (SpikeAttentionLinear, dict(channels=6, heads=2, tokens=0), "tokens is 0"),
    (SpikeAttentionMask, dict(channels=2, tokens=2, time_steps=1, theta=np.zeros(2, np.int64)),
     r"theta\[0\] = 0"),
    (SpikeAttentionMask, dict(channels=2, tokens=2, time_steps=1, theta=np.ones(2, np.int64),
                              reset="x"), "reset is 'x'"),
])
def test_parameter_errors(cls, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        cls(**kwargs)
