# amaranth: UnusedElaboratable=no
"""The weight load into the SDRAM and its CRC read-back (spikeforge.boards.sdram_load): the
loader, the read-back CRC unit and the arbiter on one controller, through the ULX3S pin adapter,
with the cycle-accurate SDRAM model (which checks every command rule) on the pins."""

import dataclasses
import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring

from spikeforge.boards.hostlink import words_crc
from spikeforge.boards.sdram_load import SdramArbiter, SdramReadbackCrc, SdramWeightLoader
from spikeforge.boards.sdram_pins import IO_DELAY, SdramPins, sdram_pin_bench, simulation_ports
from spikeforge.hdl.sdram import SdramController
from spikeforge.hdl.sdram_timing import ULX3S_SDRAM
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from spikeforge.sim.sdram_model import SdramModel

QUICK = dataclasses.replace(ULX3S_SDRAM, t_power_up_ns=2_000)


class SdramLoadSystem(wiring.Component):
    """The loader (arbiter port 0), the read-back (port 1), the controller and the pins."""

    def __init__(self, weight_words, *, base=0, max_count=64):
        self.ctrl = SdramController(clk_hz=50_000_000, part=QUICK, max_count=max_count,
                                    io_delay=IO_DELAY)
        self.loader = SdramWeightLoader(weight_words=weight_words, base=base, max_count=max_count,
                                        part=QUICK)
        self.readback = SdramReadbackCrc(base=base, max_count=max_count, part=QUICK)
        self.arb = SdramArbiter(2, max_count=max_count, part=QUICK)
        self.ports = simulation_ports(QUICK)
        self.pins = SdramPins(QUICK, ports=self.ports)
        super().__init__({"weights": self.loader.signature.members["weights"],
                          "start": self.readback.signature.members["start"],
                          "result": self.readback.signature.members["result"]})

    def elaborate(self, platform):
        m = Module()
        for name in ("ctrl", "loader", "readback", "arb", "pins"):
            m.submodules[name] = getattr(self, name)
        wiring.connect(m, self.ctrl.sdram, self.pins.sdram)
        wiring.connect(m, self.arb.req, self.ctrl.req)
        wiring.connect(m, self.ctrl.r, self.arb.r)
        wiring.connect(m, self.loader.req, self.arb.ports[0].req)
        wiring.connect(m, self.loader.w, self.ctrl.w)
        wiring.connect(m, self.readback.req, self.arb.ports[1].req)
        wiring.connect(m, self.arb.ports[1].r, self.readback.r)
        wiring.connect(m, wiring.flipped(self.weights), self.loader.weights)
        wiring.connect(m, wiring.flipped(self.start), self.readback.start)
        wiring.connect(m, self.readback.result, wiring.flipped(self.result))
        return m


def _load_and_read_back(words, *, base=0, corrupt=None, stall=0.5, seed=1):
    dut = SdramLoadSystem(len(words), base=base)
    model = SdramModel(QUICK.timing(50_000_000, 2))
    rng = random.Random(seed)
    out = {}

    async def main(ctx):
        while not ctx.get(dut.ctrl.init_done):
            await ctx.tick()
        await stream_put(ctx, dut.weights, [{"addr": a, "data": w} for a, w in enumerate(words)],
                         rng=rng, stall=stall)
        await ctx.tick().repeat(20)                  # the last write reaches the part
        if corrupt is not None:
            corrupt(model)
        await stream_put(ctx, dut.start, [len(words)])
        (res,) = await stream_get(ctx, dut.result, 1, timeout=20 * len(words) + 2000)
        out["crc"], out["words"] = int(res["crc"]), int(res["words"])

    simulate(dut, main, background=[sdram_pin_bench(model, dut.ports, rng=random.Random(seed))])
    return out, model


@pytest.mark.parametrize("n,base", [(700, 0), (300, QUICK.columns * QUICK.banks - 100)])
def test_load_then_read_back_crc_equal(n, base):
    """``n`` random words through the loader (with stalls between them, as from the link),
    across a row end (and at the second base across a bank's row into the next row), read back
    in requests of the controller's ``max_count``: the part holds the words at ``base``, and the
    read-back CRC equals :func:`words_crc` of the words (the host's CRC of what it sent)."""
    rng = random.Random(n)
    words = [rng.getrandbits(16) for _ in range(n)]
    out, model = _load_and_read_back(words, base=base)
    assert [model.word(base + k) for k in range(n)] == words
    assert out == {"crc": words_crc(words), "words": n}
    assert model.commands["WRITE"] == model.commands["READ"] == n


def test_corrupt_word_changes_the_crc():
    """One word flipped in the part's memory after the load: the read-back CRC is not the
    CRC of the words sent (the host's check fails)."""
    rng = random.Random(9)
    words = [rng.getrandbits(16) for _ in range(200)]

    def corrupt(model):
        model.mem[123] ^= 0x0100

    out, _ = _load_and_read_back(words, corrupt=corrupt, stall=0.0)
    assert out["words"] == 200 and out["crc"] != words_crc(words)
    bad = list(words)
    bad[123] ^= 0x0100
    assert out["crc"] == words_crc(bad)


def test_read_back_of_nothing():
    """A count of 0 gives the CRC of nothing (0) without a request."""
    out, model = _load_and_read_back([5])
    assert out["crc"] == words_crc([5])
    dut = SdramReadbackCrc(part=QUICK)
    got = {}

    async def main(ctx):
        await stream_put(ctx, dut.start, [0])
        (res,) = await stream_get(ctx, dut.result, 1, timeout=10)
        got["res"] = (int(res["crc"]), int(res["words"]))
        got["req"] = ctx.get(dut.req.valid)

    simulate(dut, main)
    assert got == {"res": (0, 0), "req": 0}
