"""Bit-level UART line models for async Amaranth testbenches (the host side of the wire).

Independent of the gateware in ``spikeforge.boards.uart``: they drive and sample a line
signal cycle by cycle, so the gateware is checked against a separate model.
"""


async def drive_uart(ctx, line, data, divisor, *, gap=0, rng=None, max_gap=0):
    """Send ``data`` (bytes) on ``line``, 8N1, ``divisor`` cycles per bit; ``gap`` idle cycles
    after each byte, plus a random 0..``max_gap`` when ``rng`` is given."""
    for byte in bytes(data):
        bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1]
        for bit in bits:
            ctx.set(line, bit)
            await ctx.tick().repeat(divisor)
        extra = gap + (rng.randint(0, max_gap) if rng is not None else 0)
        if extra:
            await ctx.tick().repeat(extra)
    ctx.set(line, 1)


async def sample_uart(ctx, line, count, divisor, *, timeout=1_000_000):
    """Receive ``count`` bytes from ``line`` (sampling at bit middles); checks stop bits.
    Returns the bytes; raises ``TimeoutError`` after ``timeout`` idle cycles."""
    out = bytearray()
    idle = 0
    while len(out) < count:
        _, _, value = await ctx.tick().sample(line)
        if value:
            idle += 1
            if idle > timeout:
                raise TimeoutError(f"got {len(out)} of {count} bytes: {bytes(out).hex()}")
            continue
        idle = 0
        # falling edge seen at this cycle: the start bit began here; go to its middle
        await ctx.tick().repeat(divisor // 2)
        assert not ctx.get(line), "start bit too short"
        byte = 0
        for i in range(8):
            await ctx.tick().repeat(divisor)
            byte |= ctx.get(line) << i
        await ctx.tick().repeat(divisor)
        assert ctx.get(line), f"stop bit is 0 after byte 0x{byte:02X}"
        out.append(byte)
    return bytes(out)


async def drive_uart_at(ctx, line, data, period, *, offset=0.0):
    """Send ``data`` back to back at ``period`` cycles per bit (any real number: a sender whose
    rate is off the receiver's), the first edge ``offset`` (0..1) cycles after the current
    clock edge: the line takes each level at the first clock edge at or after its bit's start,
    as a line that changes between clock edges is seen by the flip-flop that samples it."""
    import math

    levels = []
    for byte in bytes(data):
        levels += [0] + [(byte >> i) & 1 for i in range(8)] + [1]
    cycle = 0
    for k, level in enumerate(levels):
        start = math.ceil(offset + k * period - 1e-9)
        if start > cycle:
            await ctx.tick().repeat(start - cycle)
            cycle = start
        ctx.set(line, level)
    end = math.ceil(offset + len(levels) * period - 1e-9)
    if end > cycle:
        await ctx.tick().repeat(end - cycle)
    ctx.set(line, 1)
