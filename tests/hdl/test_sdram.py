# amaranth: UnusedElaboratable=no
"""The SDRAM controller driving the cycle-accurate model (spikeforge.sim.sdram_model) cycle by
cycle: the model checks every command rule on every cycle, so a violation fails the test."""

import dataclasses
import random

import pytest

from spikeforge.hdl.sdram import SdramController
from spikeforge.hdl.sdram_timing import ULX3S_SDRAM, read_cycles, read_schedule, sequential_bandwidth
from spikeforge.hdl.testing import sdram_bench, sdram_timed_read, simulate, stream_get, stream_put
from spikeforge.sim.sdram_model import SdramModel, SdramRuleError

#: the ULX3S part with a 2 us power-up (instead of 200 us) so short tests do not spend most of
#: their cycles waiting; the controller and the model share it. test_long_read_* use the real one.
QUICK = dataclasses.replace(ULX3S_SDRAM, t_power_up_ns=2_000)
ROW = ULX3S_SDRAM.columns                     # words per row
ROW_SPAN = ULX3S_SDRAM.columns * ULX3S_SDRAM.banks   # next row of the same bank


async def _until_init(ctx, dut):
    cycle = 0
    while not ctx.get(dut.init_done):
        await ctx.tick()
        cycle += 1
    return cycle


def _setup(clk_hz=50_000_000, cl=2, part=QUICK, timing=None, **kw):
    dut = SdramController(clk_hz=clk_hz, cas_latency=cl, part=part, **kw)
    model = SdramModel(part.timing(clk_hz, cl))
    if timing is not None:                   # a mutant: the controller schedules by these
        dut.timing = dataclasses.replace(dut.timing, **timing)
    return dut, model


@pytest.mark.parametrize("clk_hz,cl,seed", [(50_000_000, 2, 1), (100_000_000, 3, 2)])
def test_write_read_back_across_rows_and_banks(clk_hz, cl, seed):
    """A random pattern written across a row and bank boundary (bank 3's row to bank 0's next
    row), read back in bursts of random lengths with random stalls on both streams."""
    rng = random.Random(seed)
    dut, model = _setup(clk_hz, cl, max_count=2048)
    base = ROW_SPAN - ROW - 300              # bank 2, 300 words before bank 3, then row + 1
    n = 2 * ROW + 100
    words = [rng.getrandbits(16) for _ in range(n)]
    bursts, a = [], 0
    while a < n:
        k = min(n - a, rng.choice([1, 2, 7, 64, 300, 700]))
        bursts.append((a, k))
        a += k
    got = []

    async def main(ctx):
        await _until_init(ctx, dut)
        await stream_put(ctx, dut.req, [{"addr": base, "count": n, "write": 1}])
        await stream_put(ctx, dut.w, words, rng=rng, stall=0.2)
        for a, k in bursts:
            await stream_put(ctx, dut.req, [{"addr": base + a, "count": k, "write": 0}])
            part = await stream_get(ctx, dut.r, k, rng=rng, stall=0.3)
            assert [w["last"] for w in part] == [0] * (k - 1) + [1]
            got.extend(w["data"] for w in part)

    simulate(dut, main, background=[sdram_bench(model, dut.sdram, rng=random.Random(seed))])
    assert [model.word(base + k) for k in range(n)] == words    # the writes, in the part
    assert got == words                                          # the reads, on the stream
    assert {model.commands[c] for c in ("READ", "WRITE")} == {n}
    assert model.commands["ACT"] >= 2 * 3                       # 3 rows, written and read
    assert len(model.refreshes) > 2 + 3                          # the timer ran meanwhile


def test_row_stays_open_across_requests():
    """Three requests in one row, back to back: one ACTIVE, no PRECHARGE but the init's, and
    the 15 READs in 15 consecutive cycles."""
    dut, model = _setup(max_count=64)
    model.mem[100:115] = range(15)
    got = []

    async def put(ctx):
        await _until_init(ctx, dut)
        await stream_put(ctx, dut.req, [{"addr": 100 + 5 * k, "count": 5, "write": 0}
                                        for k in range(3)])

    async def get(ctx):
        got.extend(w["data"] for w in await stream_get(ctx, dut.r, 15, timeout=20_000))

    simulate(dut, put, get, background=[sdram_bench(model, dut.sdram)])
    assert got == list(range(15))
    assert (model.commands["ACT"], model.commands.get("PRE", 0)) == (1, 1)   # PRE: the init's
    reads = model.issued["READ"]
    assert reads == list(range(reads[0], reads[0] + 15))


@pytest.mark.parametrize("clk_hz,cl", [(50_000_000, 2), (100_000_000, 3)])
def test_long_read_cycles_match_model_and_refresh(clk_hz, cl):
    """A long sequential read (the real 200 us power-up, 7 rows, several refreshes) takes
    exactly the cycles of the analytic schedule; every refresh is within the interval (the model
    raises otherwise) and the gaps are the controller's timer."""
    dut, model = _setup(clk_hz, cl, part=ULX3S_SDRAM, max_count=4096)
    t = dut.timing
    addr, n = 3 * ROW_SPAN + ROW - 5, 3000
    model.mem[addr:addr + n] = range(n)
    cycles, since_ref, data = sdram_timed_read(dut, model, addr, n)
    assert data == list(range(n))
    assert cycles == read_cycles(t, addr, n, since_ref)          # exact
    sched = read_schedule(t, addr, n, since_ref)
    refs = [c for c, cmd in sched if cmd == "REF"]
    assert len(refs) >= n // t.refi
    assert len(model.refreshes) >= 2 + len(refs)                 # init's two, then the timer
    gaps = [b - a for a, b in zip(model.refreshes[2:], model.refreshes[3:])]
    assert gaps and max(gaps) <= t.refi


@pytest.mark.parametrize("clk_hz,cl", [(50_000_000, 2), (100_000_000, 3)])
def test_read_cycles_at_every_refresh_phase(clk_hz, cl):
    """Short reads across a row end, requested at each of the 24 cycles before the refresh
    request rises, so that it rises before, during and after the ACTIVE, tRCD, the READs, the
    row change (or just after a refresh): the cycles equal the analytic schedule's."""
    dut0 = SdramController(clk_hz=clk_hz, cas_latency=cl, part=QUICK)
    every = dut0.timing.refresh_every
    for k, delay in enumerate(range(every - 24, every)):
        dut, model = _setup(clk_hz, cl, max_count=64)
        addr, n = ROW - 3 - k % 3, 6 + k
        model.mem[addr:addr + n] = range(100, 100 + n)
        cycles, since_ref, data = sdram_timed_read(dut, model, addr, n, delay=delay)
        assert data == list(range(100, 100 + n))
        assert cycles == read_cycles(dut.timing, addr, n, since_ref), (delay, since_ref)


def test_bandwidth_figures():
    """The analytic bandwidth of a long read at 50 MHz / CL2: above 0.97 words per cycle, the
    refresh costing under 2%; printed for the report."""
    t = ULX3S_SDRAM.timing(50e6, 2)
    bw, ref = sequential_bandwidth(t)
    print(f"50 MHz CL2: {bw:.4f} words/cycle, refresh overhead {ref:.2%}")
    assert 0.97 < bw < 1 and 0 < ref < 0.02


# a mutant controller schedules by a timing one cycle short; the model (the real timing) raises
MUTANTS = [
    ("rcd", -1, "tRCD", "read"),
    ("rp", -1, "tRP", "bank"),
    ("ras", -1, "tRAS", "read"),
    ("wr", -1, "tWR", "write"),
    ("rfc", -1, "tRFC", "long"),
    ("refi", "margin", "refresh interval", "long"),   # the timer without its margin, + 1
    ("power_up", -1, "power-up wait", "read"),
]


@pytest.mark.parametrize("field,delta,rule,kind", MUTANTS)
def test_mutant_controller_breaks_a_rule(field, delta, rule, kind):
    real = QUICK.timing(100e6, 3)
    if delta == "margin":
        delta = real.refresh_margin + 1
    dut, model = _setup(100_000_000, 3, timing={field: getattr(real, field) + delta})
    # a short read across a row end (PRE as soon as tRAS allows), two reads of one bank's two
    # rows (ACT tRP after PRE of the same bank, tRC long met; a sequential read changes bank at
    # a row end, where tRP does not apply), a write across a row end (PRE tWR after the last
    # WRITE), or a read long enough for the refresh timer
    addr, n = {"read": (ROW - 1, 2), "bank": (0, 10), "write": (ROW - 3, 6),
               "long": (0, 1000)}[kind]

    async def main(ctx):
        await _until_init(ctx, dut)
        await stream_put(ctx, dut.req, [{"addr": addr, "count": n, "write": int(kind == "write")}])
        if kind == "write":
            await stream_put(ctx, dut.w, list(range(n)))
            await stream_put(ctx, dut.req, [{"addr": addr, "count": 1, "write": 0}])
            n_read = 1
        elif kind == "bank":
            await stream_put(ctx, dut.req, [{"addr": ROW_SPAN, "count": 2, "write": 0}])
            n_read = n + 2
        else:
            n_read = n
        await stream_get(ctx, dut.r, n_read)

    with pytest.raises(SdramRuleError, match=rule):
        simulate(dut, main, background=[sdram_bench(model, dut.sdram)])


def test_parameter_errors():
    with pytest.raises(ValueError, match=r"^SdramController: cas_latency is 4; allowed: 2, 3$"):
        SdramController(clk_hz=50_000_000, cas_latency=4)
    with pytest.raises(ValueError, match=r"CAS latency 2; allowed: <= 1e\+08 Hz$"):
        SdramController(clk_hz=120_000_000, cas_latency=2)
    with pytest.raises(ValueError, match=r"^SdramController: fifo_depth is 4; allowed: an integer 5\.\.256$"):
        SdramController(clk_hz=50_000_000, cas_latency=2, fifo_depth=4)
    with pytest.raises(TypeError, match="part must be an SdramPart"):
        SdramController(clk_hz=50_000_000, part="IS42S16160")
