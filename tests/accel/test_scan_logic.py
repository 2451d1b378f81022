"""The SYN front end's bit logic against its definitions: the row less its lowest set bit and
the 'at least two set' flag, computed whole (compact build) or split over two registers (fast
build), and the index of the lowest set bit."""

import random

import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from spikeforge.hdl.accel.lsb import lsb_combine, lsb_groups, lsb_index, lsb_partials, popcount_flags


def _values(width, rng):
    if width <= 12:
        return range(1 << width)
    picks = [0, 1, 1 << (width - 1), (1 << width) - 1]
    picks += [1 << rng.randrange(width) for _ in range(200)]
    picks += [(1 << rng.randrange(width)) | (1 << rng.randrange(width)) for _ in range(400)]
    picks += [rng.getrandbits(width) for _ in range(1000)]
    return picks


@pytest.mark.parametrize("width", [1, 2, 3, 4, 5, 7, 8, 12, 17, 32, 64])
def test_lowest_bit_logic_matches_its_definition(width):
    m = Module()
    bits = Signal(width)
    # The split form (fast build): the partials are registers there; combinational here.
    rest, two = lsb_combine(bits, *lsb_partials(bits))
    whole_two, three = popcount_flags(bits)
    outs = [Signal(width), Signal(), Signal(), Signal(), Signal(max(1, (width - 1).bit_length()))]
    m.d.comb += [o.eq(v) for o, v in zip(outs, (rest, two, whole_two, three, lsb_index(lsb_groups(bits))))]
    sim = Simulator(m)
    values = list(_values(width, random.Random(width)))

    async def bench(ctx):
        for v in values:
            ctx.set(bits, v)
            count = bin(v).count("1")
            got = [ctx.get(o) for o in outs]
            want = [v & (v - 1), count >= 2, count >= 2, count >= 3,
                    (v & -v).bit_length() - 1 if v else got[4]]   # no index without a set bit
            assert got == want, f"width {width}, bits {v:#x}: got {got}, want {want}"

    sim.add_testbench(bench)
    sim.run()
