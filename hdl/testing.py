"""Stream helpers for async Amaranth 0.5 testbenches: put and get with random stalls.

``stream_put`` drives a :class:`amaranth.lib.stream.Interface` (source side in the test),
``stream_get`` consumes one and checks the stream rules on every cycle: once ``valid`` is
asserted it stays asserted, with an unchanged payload, until the transfer (``valid & ready``).
Both count clock cycles from the moment they start, so that handshake times are comparable
when both are started together.
"""

import random

from amaranth.lib import data
from amaranth.sim import Simulator

__all__ = ["to_python", "stream_put", "stream_get", "simulate", "StreamProtocolError", "sdram_bench",
           "sdram_timed_read"]


class StreamProtocolError(AssertionError):
    """A stream dropped ``valid`` or changed its payload before the transfer."""


def to_python(value):
    """Convert a sampled value (``int`` or :class:`amaranth.lib.data.Const`) to ints, lists
    (array layouts) and dicts (struct layouts)."""
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [to_python(value[i]) for i in range(layout.length)]
        return {name: to_python(value[name]) for name, _ in layout}
    return int(value)


def _rng(rng):
    return rng if rng is not None else random.Random(0)


async def stream_put(ctx, stream, payloads, *, rng=None, stall=0.0, times=None):
    """Send ``payloads`` in order; before each, idle while ``rng.random() < stall``.

    ``times`` (a list) receives the cycle index of each transfer.
    """
    rng = _rng(rng)
    cycle = 0
    for payload in payloads:
        while stall and rng.random() < stall:
            ctx.set(stream.valid, 0)
            await ctx.tick()
            cycle += 1
        ctx.set(stream.valid, 1)
        ctx.set(stream.payload, payload)
        while True:
            _, _, ready = await ctx.tick().sample(stream.ready)
            cycle += 1
            if ready:
                break
        if times is not None:
            times.append(cycle - 1)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, count, *, rng=None, stall=0.0, times=None, timeout=100_000):
    """Receive ``count`` payloads (as Python values, see :func:`to_python`).

    Each cycle ``ready`` is low with probability ``stall``. Raises :class:`StreamProtocolError`
    if ``valid`` falls or the payload changes while a transfer is pending, and
    ``TimeoutError`` after ``timeout`` cycles.
    """
    rng = _rng(rng)
    out = []
    cycle = 0
    pending = None
    while len(out) < count:
        ready = not (stall and rng.random() < stall)
        ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        payload = to_python(payload)
        if pending is not None:
            if not valid:
                raise StreamProtocolError(f"cycle {cycle}: valid fell before the transfer of {pending}")
            if payload != pending:
                raise StreamProtocolError(f"cycle {cycle}: payload changed from {pending} to "
                                          f"{payload} while valid")
        if valid and ready:
            out.append(payload)
            if times is not None:
                times.append(cycle)
            pending = None
        elif valid:
            pending = payload
        cycle += 1
        if cycle > timeout:
            raise TimeoutError(f"received {len(out)} of {count} payloads in {timeout} cycles")
    ctx.set(stream.ready, 0)
    return out


def simulate(dut, *testbenches, background=(), vcd=None):
    """Run ``testbenches`` (async functions of ``ctx``) on ``dut`` with a 1 MHz sync clock,
    until they all return. ``background`` testbenches (monitors that loop forever) run
    alongside and are dropped when the others are done."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for tb in background:
        sim.add_testbench(tb, background=True)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


def sdram_bench(model, pins, *, rng=None):
    """A background testbench: the SDRAM ``model`` (:class:`spikeforge.sim.sdram_model.SdramModel`)
    on the controller's ``pins`` (:func:`spikeforge.hdl.sdram.pins_signature`), one
    :meth:`~spikeforge.sim.sdram_model.SdramModel.step` per clock cycle: it takes the command the
    pins hold at the coming edge and sets ``dq_i`` to the word the part drives at that edge (a
    random word when it drives none, so a controller sampling at the wrong cycle reads garbage).
    A broken rule raises :class:`~spikeforge.sim.sdram_model.SdramRuleError` out of the run."""
    rng = _rng(rng)
    names = ("cs_n", "ras_n", "cas_n", "we_n", "ba", "a", "dq_o", "dq_oe", "dqm", "clk_en")

    async def bench(ctx):
        while True:
            v = dict(zip(names, (ctx.get(getattr(pins, n)) for n in names)))
            out = model.step(cs_n=v["cs_n"], ras_n=v["ras_n"], cas_n=v["cas_n"], we_n=v["we_n"],
                             ba=v["ba"], a=v["a"], dq=v["dq_o"], dq_oe=v["dq_oe"], dqm=v["dqm"],
                             cke=v["clk_en"])
            ctx.set(pins.dq_i, rng.getrandbits(len(pins.dq_i)) if out is None else out)
            await ctx.tick()
    return bench


def sdram_timed_read(dut, model, addr, count, delay=0):
    """Run an :class:`~spikeforge.hdl.sdram.SdramController` ``dut`` on ``model`` through its
    init sequence, wait ``delay`` cycles, then read ``count`` words from ``addr`` with the
    consumer always ready.

    Returns ``(cycles, since_ref, words)``: the cycles from the request's transfer to the last
    word's, the cycles since the last AUTO REFRESH when the request was taken (the phase of the
    refresh timer, as :func:`spikeforge.hdl.sdram_timing.read_cycles` takes it), the words."""
    out = {}

    async def main(ctx):
        cycle = 0
        while not ctx.get(dut.init_done):
            await ctx.tick()
            cycle += 1
        if delay:
            await ctx.tick().repeat(delay)
            cycle += delay
        ctx.set(dut.req.payload, {"addr": addr, "count": count, "write": 0})
        ctx.set(dut.req.valid, 1)
        ctx.set(dut.r.ready, 1)
        taken, words = None, []
        while len(words) < count:
            _, _, rq, rv, rp = await ctx.tick().sample(dut.req.ready, dut.r.valid, dut.r.payload)
            if taken is None and rq:
                taken = cycle
                ctx.set(dut.req.valid, 0)
                # the model's cycle c shows the command decided in cycle c - 1
                out["since_ref"] = taken - (max(r for r in model.refreshes if r - 1 < taken) - 1)
            if rv:
                words.append(int(rp.data))
                out["cycles"] = cycle - taken
            cycle += 1
        out["words"] = words

    simulate(dut, main, background=[sdram_bench(model, dut.sdram)])
    return out["cycles"], out["since_ref"], out["words"]
