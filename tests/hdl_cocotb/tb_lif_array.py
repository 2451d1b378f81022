"""Tier 2: LifArray's Verilog against ``golden.lif_array``, two images (the membrane must
restart at t = 0), accumulators over the whole declared input range."""

import cocotb
import numpy as np
from tb_common import exchange, first_mismatch, setup

from spikeforge.sim.golden import lif_array


@cocotb.test()
async def matches_golden(dut):
    unit, p = setup()
    P, tiles, C = unit.lanes, unit.tiles, unit.channels
    T, N = unit.time_steps, unit.tokens
    rng = np.random.default_rng(p["seed"])
    beats, want = [], []
    images = [rng.integers(unit.in_lo, unit.in_hi + 1, (T, N, C)),
              np.where(rng.random((T, N, C)) < 0.5, unit.in_lo, unit.in_hi)]
    for acc in images:
        out = lif_array(acc, mode=unit.mode, mult=unit.mult, bias=unit.bias, shift=unit.shift,
                        out_bits=unit.out_bits, theta=unit.theta, leak=unit.leak, reset=unit.reset,
                        levels=unit.levels, ms_shift=unit.ms_shift)
        pad = np.zeros((T, N, tiles * P), np.int64)
        pad_out = np.zeros_like(pad)
        pad[..., :C], pad_out[..., :C] = acc, out
        for t in range(T):
            for n in range(N):
                for j in range(tiles):
                    last = int(j == tiles - 1)
                    beats.append({"acc": [int(x) for x in pad[t, n, j * P:(j + 1) * P]],
                                  "tile": j, "last": last})
                    want.append((j, last, [int(x) for x in pad_out[t, n, j * P:(j + 1) * P]]))
    got = await exchange(dut, unit, {"i": beats}, len(want), p)
    got = [(g["tile"], g["last"], g["data"]) for g in got]
    assert got == want, first_mismatch(got, want)
