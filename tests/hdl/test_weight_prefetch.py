"""WeightPrefetch alone on the SDRAM controller and the cycle-accurate model: segments of three
SDRAM words per weight word arrive whole and in order in their halves, a half is written only
after the pass of the segment before last released it, and ``ready`` follows the loads."""

import random

import numpy as np

from spikeforge.hdl.accel.weight_prefetch import WeightPrefetch
from spikeforge.hdl.accel.weight_stream import Segment
from spikeforge.hdl.accel.simulate import SIM_SDRAM
from spikeforge.hdl.sdram import SdramController
from spikeforge.hdl.testing import sdram_bench, simulate
from spikeforge.sim.sdram_model import SdramModel
from amaranth.hdl import Module
from amaranth.lib import wiring


def test_segments_land_in_their_halves_in_order_and_wait_for_release():
    per, ww = 3, 8
    sizes = [5, 8, 1, 7, 8, 3]                   # weight words per segment
    segs, base = [], 0
    for j, n in enumerate(sizes):
        segs.append(Segment(j, f"p{j}", base, n * per, n, 0, j % 2))
        base += n * per + 100 * (j == 2)         # a gap: segments need not be adjacent
    ctrl = SdramController(clk_hz=50_000_000, part=SIM_SDRAM, max_count=1 << 16)
    pf = WeightPrefetch(segments=segs, window_words=ww, weight_bits=40, per=per)
    model = SdramModel(ctrl.timing)
    rng = np.random.default_rng(1)
    model.mem[:base + 100] = rng.integers(0, 1 << 16, base + 100)
    top = Module()
    top.submodules.ctrl, top.submodules.pf = ctrl, pf
    wiring.connect(top, pf.req, ctrl.req)
    wiring.connect(top, ctrl.r, pf.rd)
    log = {"writes": [], "released": 0, "readies": []}
    pick = random.Random(2)

    async def monitor(ctx):
        while True:
            _, _, en, addr, data, rel = await ctx.tick().sample(pf.write.en, pf.write.addr, pf.write.data,
                                                                 pf.release)
            if en:
                log["writes"].append((addr, data, log["released"]))
            log["released"] += rel

    async def passes(ctx):
        while not ctx.get(ctrl.init_done):
            await ctx.tick()
        for image in range(2):
            ctx.set(pf.start, 1)
            await ctx.tick()
            ctx.set(pf.start, 0)
            for j in range(len(segs)):
                waited = 0
                while not ctx.get(pf.ready):
                    await ctx.tick()
                    waited += 1
                    assert waited < 2000
                log["readies"].append(j)
                # the pass computes: long passes (the next loads wait for their release) and
                # short ones (the passes wait for their loads)
                await ctx.tick().repeat([80, 60, 1, 80, 2, 30][j] if image == 0 else pick.choice([1, 2, 30, 80]))
                ctx.set(pf.release, 1)
                await ctx.tick()
                ctx.set(pf.release, 0)
            await ctx.tick().repeat(5)
            assert not ctx.get(pf.ready) and not ctx.get(pf.req.valid)

    simulate(top, passes, background=[sdram_bench(model, ctrl.sdram), monitor])
    expect = []
    for s in segs:
        for i in range(s.weight_words):
            w = sum(int(model.mem[s.base + i * per + k]) << (16 * k) for k in range(per)) & ((1 << 40) - 1)
            expect.append((s.half * ww + i, w, s))
    writes = log["writes"]
    assert len(writes) == 2 * len(expect)
    for image in range(2):
        for (addr, data, released), (want_addr, want, s) in zip(writes[image * len(expect):], expect):
            assert (addr, data) == (want_addr, want)
            # segment j's half is written only after segment j - 2's pass released it
            assert released - image * len(segs) >= s.pass_index - 1
    assert log["readies"] == list(range(len(segs))) * 2
