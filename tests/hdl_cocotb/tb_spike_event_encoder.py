"""Tier 2: SpikeEventEncoder's Verilog against ``golden.spike_event_encoder``."""

import cocotb
import numpy as np
from tb_common import exchange, first_mismatch, setup

from spikeforge.sim.golden import spike_event_encoder


@cocotb.test()
async def matches_golden(dut):
    unit, p = setup()
    C, D = unit.channels, unit.levels
    rng = np.random.default_rng(p["seed"])
    vectors = [np.zeros(C, np.int64), np.full(C, D, np.int64)]
    for _ in range(p.get("vectors", 30)):
        density = rng.choice([0.0, 0.1, 0.5, 1.0])
        vectors.append(rng.integers(0, D + 1, C) * (rng.random(C) < density))
    vectors = np.array(vectors)
    want = [(c, b, e, last) for c, b, e, last, _n in spike_event_encoder(vectors, D)]
    got = await exchange(dut, unit, {"i": [{"spikes": [int(x) for x in v]} for v in vectors]},
                         len(want), p)
    got = [(g["channel"], g["plane"], g["empty"], g["last"]) for g in got]
    assert got == want, first_mismatch(got, want)
