# amaranth: UnusedElaboratable=no
import random

import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from fractions import Fraction

from spikeforge.boards.uart import (LINK_TOLERANCE, UARTRx, UARTTx, baud_divisor, check_receiver, rx_limits,
                                   rx_tolerance)
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from uart_bits import drive_uart, drive_uart_at, sample_uart


@pytest.mark.parametrize("divisor", [4, 5, 8, 13, Fraction(25, 3), Fraction(9, 2), Fraction(100, 3)])
def test_loopback_random_bytes(divisor):
    rng = random.Random(str(divisor))
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
        got.extend(await stream_get(ctx, rx.o, len(data), timeout=int(len(data) * 12 * divisor) + 200))

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
        baud_divisor(1_000_000, 115_200, tolerance=0.0001)
    with pytest.raises(ValueError, match="allowed: 4"):
        baud_divisor(1_000_000, 500_000)


@pytest.mark.parametrize("divisor", [Fraction(25, 3), Fraction(9, 2)])
def test_fractional_tx_bit_edges_within_a_cycle(divisor):
    """A fractional divisor: every bit edge within one cycle of the ideal ``k * divisor``, and
    back-to-back bytes at exactly the mean rate (no drift)."""
    tx = UARTTx(divisor=divisor)
    data = [0x55, 0x55, 0x55]          # 0x55: the line toggles at every bit
    edges = []

    async def put(ctx):
        await stream_put(ctx, tx.i, data)

    async def watch(ctx):
        prev, t = 1, 0
        async for _, _, line in ctx.tick().sample(tx.tx):
            if line != prev:
                edges.append(t)
                prev = line
            t += 1
            if t > 40 * divisor:
                return

    simulate(tx, put, watch)
    assert len(edges) == 30
    first = edges[0]
    assert all(abs((e - first) - k * divisor) < 1 for k, e in enumerate(edges)), edges


def _receive_at(divisor, period, offset, data):
    rx = UARTRx(divisor=divisor)
    got, errors = [], []

    async def drive(ctx):
        await ctx.tick().repeat(5)
        await drive_uart_at(ctx, rx.rx, data, period, offset=offset)
        await ctx.tick().repeat(int(4 * period))

    async def get(ctx):
        got.extend(await stream_get(ctx, rx.o, len(data), timeout=int(len(data) * 12 * period) + 100))

    async def watch(ctx):
        async for _, _, fe in ctx.tick().sample(rx.framing_error):
            if fe:
                errors.append(fe)

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(drive)
    sim.add_testbench(get, background=True)
    sim.add_process(watch)
    try:
        sim.run()
    except Exception:   # a byte lost: stream_get timed out
        pass
    return bytes(got), errors


# 0x00 and 0x7F: the stop bit sits next to a 0 (data bit 7, or the next start bit) on both sides
TOLERANCE_DATA = bytes([0x00, 0x7F, 0x00, 0x7F, 0x3C])


@pytest.mark.parametrize("divisor", [4, 8, Fraction(25, 3), 13])
@pytest.mark.parametrize("sign", [1, -1])
def test_rx_takes_the_rate_error_at_its_limit(divisor, sign):
    """The sender off by :func:`rx_tolerance` (just inside it), slower and faster, its edges
    anywhere within a cycle: every byte arrives. Beyond that side's own limit (:func:`rx_limits`,
    1.3 times) bytes are lost or wrong at some phase, so the limits are not vacuous."""
    tol = rx_tolerance(divisor)
    assert tol >= LINK_TOLERANCE
    inside = float(divisor) * (1 + sign * 0.97 * tol)
    for offset in (0.0, 0.5, 0.999):
        got, errors = _receive_at(divisor, inside, offset, TOLERANCE_DATA)
        assert got == TOLERANCE_DATA and not errors, (offset, got.hex(), errors)
    outside = float(divisor) * (1 + sign * 1.3 * rx_limits(divisor)[0 if sign > 0 else 1])
    results = [_receive_at(divisor, outside, offset, TOLERANCE_DATA) for offset in (0.0, 0.5, 0.999)]
    assert any(got != TOLERANCE_DATA or errors for got, errors in results)


def test_receiver_refuses_divisors_that_cannot_work():
    assert check_receiver(4) == 4 and check_receiver(Fraction(25, 3)) == Fraction(25, 3)
    with pytest.raises(ValueError, match=r"UART divisor 65/16 cannot work: its receiver takes only 1.38% .*"
                                         r"allowed: a divisor whose receiver takes at least 2.00%"):
        check_receiver(Fraction(65, 16))


def test_baud_divisor_integer_or_fraction_within_one_percent():
    assert baud_divisor(24_000_000, 3_000_000) == 8            # iCEBreaker: exact
    assert baud_divisor(25_000_000, 3_000_000) == Fraction(25, 3)   # ULX3S: no integer within 1 %
    assert baud_divisor(25_000_000, 1_000_000) == 25
    assert isinstance(baud_divisor(25_000_000, 115_200), int)   # 217: 0.01 % off
    with pytest.raises(ValueError, match="divisor"):
        UARTRx(divisor=Fraction(65, 17))
