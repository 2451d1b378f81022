# amaranth: UnusedElaboratable=no
"""WindowWalk (the engine's SYN generator loop nest, ConvWindowScan's walk) in amaranth.sim:
the counters visit :func:`walk_order` under random stalls, end flags and ``wrap`` agree."""

import random

import pytest

from spikeforge.hdl.testing import simulate
from spikeforge.hdl.window_walk import WindowWalk, walk_order

LEVELS = [("kx", 2), ("ky", 2), ("tr", 1), ("ox", 2), ("oy", 2), ("t", 1)]


@pytest.mark.parametrize("ns", [(3, 3, 1, 2, 3, 2), (1, 1, 1, 1, 1, 1), (2, 4, 2, 1, 3, 1), (4, 1, 1, 4, 1, 2)])
def test_walk_visits_the_nested_order(ns):
    dut = WindowWalk(LEVELS)
    want = walk_order(ns)
    seen = []

    async def bench(ctx):
        for name, n in zip(dut.names, ns, strict=True):
            ctx.set(dut.bounds[name], {"n1": n - 1, "one": n == 1, "two": n == 2})
        rng = random.Random(sum(ns))
        await ctx.tick().repeat(2)
        for _ in range(2):  # two walks
            ctx.set(dut.run, 1)
            done = False
            while not done:
                step = rng.random() < 0.7
                ctx.set(dut.step, step)
                await ctx.delay(0)
                if step:
                    seen.append(tuple(ctx.get(dut.count[k]) for k in dut.names))
                    lasts = [ctx.get(dut.last[j]) for j in range(len(ns))]
                    assert lasts == [int(c == n - 1) for c, n in zip(seen[-1], ns, strict=True)]
                    done = bool(ctx.get(dut.wrap))
                    assert done == (seen[-1] == tuple(n - 1 for n in ns))
                await ctx.tick()
            ctx.set(dut.step, 0)
            ctx.set(dut.run, 0)
            await ctx.tick()

    simulate(dut, bench)
    assert seen == want * 2


@pytest.mark.parametrize("levels,match", [
    ([], "levels is empty"),
    ([("kx", 0)], "width of level kx is 0"),
    ([("kx", 2), ("kx", 1)], "'kx' repeats"),
    ([("kx",)], "not a \\(name, width\\) pair"),
])
def test_parameter_errors(levels, match):
    with pytest.raises((ValueError, TypeError), match=match):
        WindowWalk(levels)
