"""Tier 2: SpikeAttentionMask's Verilog against ``golden.spike_attention_mask``; the kv and q
sources run concurrently, so the unit's phase handshakes order them."""

import cocotb
import numpy as np
from tb_common import exchange, first_mismatch, setup

from spikeforge.sim.golden import spike_attention_mask


def _bits(row):
    return sum(int(b) << c for c, b in enumerate(row))


@cocotb.test()
async def matches_golden(dut):
    unit, p = setup()
    T, N, C = unit.time_steps, unit.tokens, unit.channels
    rng = np.random.default_rng(p["seed"])
    images = p.get("images", 2)
    q, k, v = (rng.random((images, T, N, C)) < p.get("density", 0.5) for _ in range(3))
    kv_beats, q_beats, want = [], [], []
    for img in range(images):
        out = spike_attention_mask(q[img], k[img], v[img], unit.theta, unit.leak, unit.reset)
        for t in range(T):
            kv_beats += [{"k": _bits(k[img, t, n]), "v": _bits(v[img, t, n])} for n in range(N)]
            q_beats += [_bits(q[img, t, n]) for n in range(N)]
            want += [_bits(out[t, n]) for n in range(N)]
    got = await exchange(dut, unit, {"kv": kv_beats, "q": q_beats}, len(want), p)
    assert got == want, first_mismatch(got, want)
