"""Tier 2: SparseAdd's Verilog against ``golden.sparse_add`` (events from
``golden.spike_event_encoder``)."""

import cocotb
import numpy as np
from tb_common import exchange, first_mismatch, setup

from spikeforge.sim.golden import sparse_add, spike_event_encoder


@cocotb.test()
async def matches_golden(dut):
    unit, p = setup()
    k, ci, D = unit.kernel, unit.in_channels, unit.levels
    rng = np.random.default_rng(p["seed"])
    events, beats = [], []
    for _ in range(p.get("groups", 12)):
        # one vector per kernel tap at most, as in a convolution window: the accumulator
        # bound of the unit (§9) assumes it
        taps = rng.permutation(k * k)[:int(rng.integers(1, k * k + 1))]
        for j, tap in enumerate(taps):
            density = rng.choice([0.0, 0.3, 1.0])
            vec = rng.integers(0, D + 1, ci) * (rng.random(ci) < density)
            end = int(j == len(taps) - 1)
            for c, b, empty, last, _ in spike_event_encoder(vec, D):
                events.append({"channel": c, "plane": b, "empty": empty, "last": last,
                               "tag": {"tap": int(tap), "end": end}})
                beats.append((int(tap), c, b, empty, int(last and end)))
    want = sparse_add(beats, unit.weight, unit.lanes)
    got = await exchange(dut, unit, {"i": events}, len(want), p)
    got = [(g["tile"], g["last"], g["acc"]) for g in got]
    assert got == want, first_mismatch(got, want)
