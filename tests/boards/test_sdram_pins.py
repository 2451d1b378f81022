# amaranth: UnusedElaboratable=no
"""The ULX3S SDRAM pin adapter (spikeforge.boards.sdram_pins): the controller through the
adapter's I/O flip-flops on pins named and inverted like amaranth-boards' ``sdram`` resource,
with the cycle-accurate model (spikeforge.sim.sdram_model) playing the part on those pins."""

import collections
import dataclasses
import random
import json
import subprocess

import pytest
from amaranth.hdl import Module
from amaranth.lib import io, wiring

from spikeforge.boards.sdram_pins import IO_DELAY, SdramPins, sdram_pin_bench, simulation_ports
from sdram_ports import assert_sdram_pins_bound
from spikeforge.hdl.sdram import SdramController
from spikeforge.hdl.sdram_timing import ULX3S_SDRAM
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from spikeforge.sim.sdram_model import SdramModel

QUICK = dataclasses.replace(ULX3S_SDRAM, t_power_up_ns=2_000)


class _Top(wiring.Component):
    def __init__(self, io_delay=IO_DELAY, clk_hz=50_000_000):
        self.ctrl = SdramController(clk_hz=clk_hz, cas_latency=2, part=QUICK, max_count=512,
                                    io_delay=io_delay)
        self.ports = simulation_ports(QUICK)
        self.pins = SdramPins(QUICK, ports=self.ports)
        super().__init__({k: self.ctrl.signature.members[k] for k in ("req", "r", "w")})

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctrl, m.submodules.pins = self.ctrl, self.pins
        wiring.connect(m, self.ctrl.sdram, self.pins.sdram)
        wiring.connect(m, wiring.flipped(self.req), self.ctrl.req)
        wiring.connect(m, wiring.flipped(self.w), self.ctrl.w)
        wiring.connect(m, self.ctrl.r, wiring.flipped(self.r))
        return m


def _run(dut, model, words, base, log=None, probe=None):
    got = []

    async def main(ctx):
        while not ctx.get(dut.ctrl.init_done):
            await ctx.tick()
        await stream_put(ctx, dut.req, [{"addr": base, "count": len(words), "write": 1}])
        await stream_put(ctx, dut.w, words)
        await stream_put(ctx, dut.req, [{"addr": base, "count": len(words), "write": 0}])
        got.extend(w["data"] for w in await stream_get(ctx, dut.r, len(words), timeout=2000))

    bg = [sdram_pin_bench(model, dut.ports, log=log)] + ([probe] if probe else [])
    simulate(dut, main, background=bg)
    return got


def test_write_read_through_the_pins():
    """Words written and read back through the adapter: the model (which checks every command
    rule at the pins) holds them and the read stream returns them; the strobes at the pins are
    the datasheet's active-low levels (the resource's ``PinsN`` inverted by the buffers), and
    the output enable is high exactly in the WRITE cycles, with the word on DQ."""
    rng = random.Random(3)
    dut = _Top()
    model = SdramModel(QUICK.timing(50_000_000, 2))
    base = QUICK.columns - 5                  # across a bank boundary: two ACTIVEs
    words = [rng.getrandbits(16) for _ in range(12)]
    log = []
    oe_cycles = []

    async def probe(ctx):           # counts cycles as the bench does: from the first edge
        await ctx.tick()
        cycle = 0
        while True:
            if ctx.get(dut.ports.dq.oe):
                oe_cycles.append(cycle)
            cycle += 1
            await ctx.tick()

    got = _run(dut, model, words, base, log, probe)
    assert got == words
    assert [model.word(base + k) for k in range(len(words))] == words
    # the pin levels of the commands the model decoded: WRITE is cs=0 ras=1 cas=0 we=0 at the pins
    writes = [(c, v) for c, v in log if (v["ras"], v["cas"], v["we"]) == (1, 0, 0)]
    assert [v["dq"] for _, v in writes] == words
    assert all(v["dq_oe"] for _, v in writes)
    assert oe_cycles == [c for c, _ in writes]
    assert model.commands["WRITE"] == model.commands["READ"] == len(words)


def test_read_capture_needs_the_io_delay():
    """The controller without ``io_delay`` takes ``dq`` one cycle early through the adapter:
    it reads the word before each (the first a random bus value), so the adapter's extra
    cycle is real."""
    rng = random.Random(4)
    dut = _Top(io_delay=0)
    model = SdramModel(QUICK.timing(50_000_000, 2))
    words = [rng.getrandbits(16) for _ in range(8)]
    got = _run(dut, model, words, 64)
    assert got[1:] == words[:-1]
    assert got != words


def test_sdram_clock_is_inverted():
    """In simulation the clock pin is the inverted ``sync`` clock: low just after each rising
    edge (where the adapter's flip-flops launch), high half a cycle later."""
    dut = SdramPins(QUICK, ports=simulation_ports(QUICK))
    seen = []

    async def main(ctx):
        for _ in range(3):
            await ctx.tick()
            seen.append(ctx.get(dut._ports.clk.o))
            await ctx.delay(0.5e-6)
            seen.append(ctx.get(dut._ports.clk.o))
            await ctx.delay(0.25e-6)

    simulate(dut, main)
    assert seen == [0, 1] * 3


@pytest.mark.slow
def test_ulx3s_top_synthesizes_with_the_board_pins(tmp_path):
    """The controller and the adapter in a ULX3S top, through amaranth-boards' platform to
    RTLIL, and ``yosys synth_ecp5`` (no place and route): the SDRAM's ports are the resource's
    pins, DQ is a tristate (``BB`` cells with their output enable from I/O-cell flip-flops),
    the outputs are I/O-cell flip-flops and the clock an ``ODDRX1F``. About 15 s."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from spikeforge.toolchain import find_tool

    class Top(wiring.Component):
        def __init__(self):
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.ctrl = ctrl = SdramController(clk_hz=25_000_000, io_delay=IO_DELAY)
            m.submodules.pins = pins = SdramPins()
            wiring.connect(m, ctrl.sdram, pins.sdram)
            m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
            m.d.comb += [led.o.eq(ctrl.r.payload.data.xor() & ctrl.r.valid), ctrl.r.ready.eq(1)]
            return m

    plan = ULX3S_85F_Platform().prepare(Top(), name="top")
    files = dict(plan.files)
    (tmp_path / "top.il").write_text(files["top.il"])
    yosys = find_tool("yosys")
    out = subprocess.run([yosys, "-q", "-p", "read_rtlil top.il; synth_ecp5 -top top; stat; "
                          "write_json top.json"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    mod = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]
    cells = assert_sdram_pins_bound(mod)
    assert files["top.il"].count("cell \\BB ") == 16
    # the I/O-cell flip-flops (synth_ecp5 marks them for nextpnr's IOLOGIC packing)
    ioff = collections.Counter(c["attributes"].get("ioff_dir") for c in cells if c["type"] == "TRELLIS_FF")
    assert ioff["input"] == 16                     # DQ in
    assert ioff["output"] >= (1 + 4 + 2 + 13 + 2) + 16 + 16   # the outputs, DQ and its enable
    assert sum(c["type"] == "ODDRX1F" for c in cells) == 1     # the SDRAM clock
