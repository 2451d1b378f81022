# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest
from amaranth.hdl import unsigned

from spikeforge.hdl.event_encoder import SpikeEventEncoder
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from spikeforge.sim.golden import spike_event_encoder, spike_linear


def _vectors(rng, n, channels, levels):
    """Random vectors with varied density, plus an empty and a full one."""
    out = [np.zeros(channels, np.int64), np.full(channels, levels, np.int64)]
    for _ in range(n):
        density = rng.choice([0.0, 0.1, 0.5, 1.0])
        v = rng.integers(0, levels + 1, channels) * (rng.random(channels) < density)
        out.append(v)
    rng.shuffle(out)
    return np.array(out)


def _run(enc, vectors, seed, stall_in, stall_out):
    expected = spike_event_encoder(vectors, enc.levels)
    got, t_in, t_out = [], [], []
    rnd = random.Random(seed)

    async def put(ctx):
        await stream_put(ctx, enc.i, [{"spikes": [int(x) for x in v], "tag": n % 256}
                                      for n, v in enumerate(vectors)],
                         rng=rnd, stall=stall_in, times=t_in)

    async def get(ctx):
        got.extend(await stream_get(ctx, enc.o, len(expected), rng=random.Random(seed + 1),
                                    stall=stall_out, times=t_out))

    simulate(enc, put, get)
    got = [(e["channel"], e["plane"], e["empty"], e["last"], e["tag"]) for e in got]
    assert got == [(c, b, e, la, n % 256) for c, b, e, la, n in expected]
    return t_in, t_out


@pytest.mark.parametrize("channels", [1, 2, 3, 7, 8, 9, 16])
@pytest.mark.parametrize("levels", [1, 2, 3, 4, 16])
def test_matches_golden_with_stalls(channels, levels):
    rng = np.random.default_rng(channels * 100 + levels)
    vectors = _vectors(rng, 12, channels, levels)
    enc = SpikeEventEncoder(channels=channels, levels=levels, tag_shape=unsigned(8))
    _run(enc, vectors, seed=channels + levels, stall_in=0.3, stall_out=0.4)


@pytest.mark.parametrize("channels,levels", [(1, 1), (2, 1), (3, 3), (8, 4), (9, 2), (16, 1)])
def test_fast_mode_matches_golden_with_stalls(channels, levels):
    """The row scan's fast mode (the engine's fast build's scan stage): the same events."""
    rng = np.random.default_rng(channels * 100 + levels)
    vectors = _vectors(rng, 12, channels, levels)
    enc = SpikeEventEncoder(channels=channels, levels=levels, tag_shape=unsigned(8), fast=True)
    _run(enc, vectors, seed=channels + levels, stall_in=0.3, stall_out=0.4)


@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("channels,levels", [(1, 1), (5, 1), (8, 4), (13, 3)])
def test_cycles_model_exact(channels, levels, fast):
    rng = np.random.default_rng(7)
    vectors = _vectors(rng, 20, channels, levels)
    enc = SpikeEventEncoder(channels=channels, levels=levels, tag_shape=unsigned(8), fast=fast)
    t_in, t_out = _run(enc, vectors, seed=1, stall_in=0.0, stall_out=0.0)
    assert t_out[-1] - t_in[0] + 1 == enc.cycles(vectors)


def test_empty_vectors_cost_one_cycle_each():
    enc = SpikeEventEncoder(channels=4, levels=1, tag_shape=unsigned(8))
    vectors = np.zeros((10, 4), np.int64)
    t_in, t_out = _run(enc, vectors, seed=2, stall_in=0.0, stall_out=0.0)
    assert t_out[-1] - t_in[0] + 1 == 1 + 10


def test_golden_events_sum_to_linear():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 6, (5, 9))
    w = rng.integers(-8, 8, (9, 4))
    events = spike_event_encoder(x, 5)
    acc = np.zeros((5, 4), np.int64)
    for c, b, empty, _, n in events:
        if not empty:
            acc[n] += w[c] << b
    assert (acc == spike_linear(x, w)).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(channels=0), "channels is 0"),
    (dict(channels=4, levels=0), "levels is 0"),
    (dict(channels=2.5), "channels must be an integer"),
    (dict(channels=4, tag_shape="x"), "tag_shape"),
    (dict(channels=4, fast=1), "fast is 1; allowed: True or False"),
])
def test_parameter_errors(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        SpikeEventEncoder(**kwargs)
