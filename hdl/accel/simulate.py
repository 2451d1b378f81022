"""Run the engine in amaranth.sim (tier 1): images in, logits, classes and cycle counts out."""

import dataclasses

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from ...sim.sdram_model import SdramModel
from ..sdram import SdramController
from ..sdram_timing import ULX3S_SDRAM
from ..testing import sdram_bench
from .engine import Engine

__all__ = ["simulate_engine", "SIM_SDRAM"]

#: The ULX3S part with a 2 us power-up instead of 200 us (every other rule the datasheet's), so
#: that a simulation of the sdram mapping does not spend 10,000 cycles waiting.
SIM_SDRAM = dataclasses.replace(ULX3S_SDRAM, t_power_up_ns=2_000)


def simulate_engine(program, images, *, max_cycles=2_000_000, vcd=None, dump=None, poison_collisions=True,
                    stats=None, engine=None):
    """Simulate ``Engine(program)`` on ``images [B, H, W, C]``.

    ``poison_collisions``: memory reads that collided with a write return inverted data (the
    block RAMs' data is undefined then; see :class:`.engine.Engine`). ``stats`` (a dict) gets
    ``collided_reads``: reads that collided (and were poisoned), over all images.

    ``engine``: simulate this :class:`.engine.Engine` of ``program`` instead of a new one.

    Returns ``(logits [B, K], classes [B], cycles [B], events [B])``. With the SPRAM mapping
    the weights are loaded through the ``weights`` stream first (``dump`` needs block RAM).
    With the sdram mapping an :class:`~spikeforge.hdl.sdram.SdramController` at the
    program's clock serves the engine's ``sdram_req`` and ``sdram_r``, its pins driving the
    cycle-accurate model (:class:`~spikeforge.sim.sdram_model.SdramModel` of :data:`SIM_SDRAM`,
    which raises on any broken command rule) holding ``program.sdram_image()``; the first
    pixel waits for the controller's init. ``stats`` then also gets ``refreshes`` (AUTO
    REFRESH cycles) and ``sdram_model``.
    """
    dut = Engine(program, poison_collisions=poison_collisions) if engine is None else engine
    images = np.asarray(images, np.int64)
    K = program.classes
    out = {"logits": [], "classes": [], "cycles": [], "events": []}
    spram = program.memory.kind == "spram"
    if spram and dump is not None:
        raise ValueError("simulate_engine: memory dumps need the block RAM mapping")

    if stats is not None:
        stats["collided_reads"] = 0
    sdram = program.memory.kind == "sdram"
    top, background = dut, []
    if sdram:
        mm = program.memory
        ctrl = SdramController(clk_hz=int(mm.sdram_mhz * 1e6), cas_latency=mm.cas_latency,
                               max_count=dut.sdram_max_count, part=SIM_SDRAM)
        model = SdramModel(ctrl.timing)
        model.mem[:mm.sdram_words] = program.sdram_image()
        top = Module()
        top.submodules.engine = dut
        top.submodules.sdram = ctrl
        wiring.connect(top, dut.sdram_req, ctrl.req)
        wiring.connect(top, ctrl.r, dut.sdram_r)
        background.append(sdram_bench(model, ctrl.sdram))
        if stats is not None:
            stats["sdram_model"] = model

    async def bench(ctx):
        if sdram:
            while not ctx.get(ctrl.init_done):
                await ctx.tick()
        if spram:
            for addr, word in enumerate(program.weight_image()):
                ctx.set(dut.weights.payload, {"addr": addr, "data": int(word)})
                ctx.set(dut.weights.valid, 1)
                await ctx.tick().until(dut.weights.ready)
            ctx.set(dut.weights.valid, 0)
        for image in images:
            for v in image.reshape(-1):
                ctx.set(dut.pixels.payload, int(v))
                ctx.set(dut.pixels.valid, 1)
                await ctx.tick().until(dut.pixels.ready)
            ctx.set(dut.pixels.valid, 0)
            ctx.set(dut.result.ready, 1)
            beats = []
            waited = 0
            pending = []  # [pass, cycles to wait] of snapshots not taken yet
            while len(beats) < K + 1:
                _, _, valid, value, pc, evc = await ctx.tick().sample(
                    dut.result.valid, dut.result.payload.value, dut.debug_pc, dut.debug_events)
                if stats is not None:
                    stats["collided_reads"] += sum(ctx.get(f) for f in dut.debug_collided)
                if dump is not None:
                    trace = dump.setdefault("trace", [])
                    if dump.get("snapshots") is not None:
                        # A pass ends two cycles before its last write (the next descriptor
                        # load overlaps it): snapshot pass i two cycles after the pass counter
                        # leaves it, before pass i + 1 touches memory.
                        if trace and trace[-1][0] != pc:
                            pending.append([trace[-1][0], 2])
                        elif not trace:
                            pending.append([-1, 0])
                        for snap in pending:
                            snap[1] -= 1
                        while pending and pending[0][1] < 0:
                            dump["snapshots"].append((pending.pop(0)[0], {
                                "imem": [ctx.get(dut.debug_imem.data[i]) for i in range(dut.debug_imem.depth)],
                                "smem": [[ctx.get(mem.data[i]) for i in range(mem.depth)]
                                         for mem in dut.debug_smem]}))
                    trace.append((pc, evc))
                waited += 1
                if waited > max_cycles:
                    raise TimeoutError(f"no result after {max_cycles} cycles (pass "
                                       f"{ctx.get(dut.debug_pc)})")
                if valid:
                    beats.append(value)
            ctx.set(dut.result.ready, 0)
            out["logits"].append(beats[:K])
            out["classes"].append(beats[K])
            out["cycles"].append(ctx.get(dut.cycles))
            out["events"].append(ctx.get(dut.events))
            if dump is not None and "imem" not in dump:
                dump["imem"] = [ctx.get(dut.debug_imem.data[i]) for i in range(dut.debug_imem.depth)]
                dump["smem"] = [[ctx.get(mem.data[i]) for i in range(mem.depth)] for mem in dut.debug_smem]

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    for tb in background:
        sim.add_testbench(tb, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return tuple(np.array(out[k], np.int64) for k in ("logits", "classes", "cycles", "events"))
