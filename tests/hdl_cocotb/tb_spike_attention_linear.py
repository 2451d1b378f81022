"""Tier 2: SpikeAttentionLinear's Verilog against ``golden.spike_attention_linear``; kv and q
sources run concurrently; all-maximum spikes once, to reach the A bound."""

import cocotb
import numpy as np
from tb_common import exchange, first_mismatch, setup

from spikeforge.sim.golden import spike_attention_linear


@cocotb.test()
async def matches_golden(dut):
    unit, p = setup()
    N, C = unit.tokens, unit.channels
    levels = (unit.levels_q, unit.levels_k, unit.levels_v)
    rng = np.random.default_rng(p["seed"])
    steps = p.get("steps", 4)
    qkv = [np.stack([rng.integers(0, lv + 1, (N, C)) * (rng.random((N, C)) < rng.choice([0.2, 0.6]))
                     for _ in range(steps)]) for lv in levels]
    for a, lv in zip(qkv, levels):
        a[-1] = lv  # last step: every spike at its largest value
    q, k, v = qkv
    want = [[int(x) for x in row] for row in spike_attention_linear(q, k, v, unit.heads).reshape(-1, C)]
    assert max(max(r) for r in want) == unit.a_max
    kv = [{"k": [int(x) for x in k[t, n]], "v": [int(x) for x in v[t, n]]} for t in range(steps)
          for n in range(N)]
    qs = [[int(x) for x in q[t, n]] for t in range(steps) for n in range(N)]
    got = await exchange(dut, unit, {"kv": kv, "q": qs}, len(want), p)
    assert got == want, first_mismatch(got, want)
