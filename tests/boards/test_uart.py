# amaranth: UnusedElaboratable=no
import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from spikeforge.boards.uart import UARTRx, UARTTx, baud_divisor
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from uart_bits import drive_uart, sample_uart


@pytest.mark.parametrize("divisor", [4, 5, 8, 13])
def test_loopback_random_bytes(divisor):
    rng = random.Random(divisor)
    data = [rng.randrange(256) for _ in range(40)] + [0x00, 0xFF, 0xA5, 0x5A]
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor=divisor)
    m.submodules.rx = rx = UARTRx(divisor=divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    got = []
    errors = []

    async def put(ctx):
        await stream_put(ctx, tx.i, data, rng=random.Random(1), stall=0.2)

    async def get(ctx):
        got.extend(await stream_get(ctx, rx.o, len(data), timeout=len(data) * 12 * divisor + 200))

    async def watch(ctx):
        async for _, _, fe, ov in ctx.tick().sample(rx.framing_error, rx.overrun):
            if fe or ov:
                errors.append((fe, ov))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(put)
    sim.add_testbench(get)
    sim.add_process(watch)
    sim.run()
    assert got == data
    assert errors == []


@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_tx_matches_line_model_back_to_back(divisor):
    rng = random.Random(divisor + 100)
    data = bytes(rng.randrange(256) for _ in range(12))
    tx = UARTTx(divisor=divisor)
    got = []
    times = []

    async def put(ctx):
        await stream_put(ctx, tx.i, list(data), times=times)

    async def get(ctx):
        got.append(await sample_uart(ctx, tx.tx, len(data), divisor))

    simulate(tx, put, get)
    assert got == [data]
    # back to back: exactly 10 bits per byte
    assert [b - a for a, b in zip(times, times[1:])] == [10 * divisor] * (len(data) - 1)


@pytest.mark.parametrize("divisor", [4, 6, 11])
def test_rx_from_line_model_with_gaps(divisor):
    rng = random.Random(divisor)
    data = bytes(rng.randrange(256) for _ in range(30))
    rx = UARTRx(divisor=divisor)
    got = []

    async def drive(ctx):
        await ctx.tick().repeat(3)
        await drive_uart(ctx, rx.rx, data, divisor, rng=random.Random(2), max_gap=3 * divisor)

    async def get(ctx):
        got.extend(await stream_get(ctx, rx.o, len(data), timeout=len(data) * 14 * divisor + 100))

    simulate(rx, drive, get)
    assert bytes(got) == data


def test_rx_framing_error_and_overrun():
    divisor = 4
    rx = UARTRx(divisor=divisor)
    seen = {"fe": 0, "ov": 0}
    got = []

    async def drive(ctx):
        await ctx.tick().repeat(3)
        # a byte with a 0 stop bit: 0x55 then the line held low for two bit times
        for bit in [0] + [(0x55 >> i) & 1 for i in range(8)] + [0, 0]:
            ctx.set(rx.rx, bit)
            await ctx.tick().repeat(divisor)
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(3 * divisor)
        # three good bytes while nobody reads: the 2nd and 3rd overrun
        await drive_uart(ctx, rx.rx, b"\x11\x22\x33", divisor)
        await ctx.tick().repeat(3 * divisor)
        got.extend(await stream_get(ctx, rx.o, 1))

    async def watch(ctx):
        async for _, _, fe, ov in ctx.tick().sample(rx.framing_error, rx.overrun):
            seen["fe"] += fe
            seen["ov"] += ov

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_process(watch)
    sim.run()
    assert seen == {"fe": 1, "ov": 2}
    assert got == [0x11]


def test_parameter_checks():
    with pytest.raises(ValueError, match="divisor is 3; allowed: an integer 4"):
        UARTTx(divisor=3)
    with pytest.raises(TypeError, match="divisor must be"):
        UARTRx(divisor=4.0)
    assert baud_divisor(12_000_000, 115_200) == 104
    with pytest.raises(ValueError, match="% off"):
        baud_divisor(1_000_000, 115_200)
    with pytest.raises(ValueError, match="allowed: 4"):
        baud_divisor(1_000_000, 500_000)
