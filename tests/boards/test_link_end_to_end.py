# amaranth: UnusedElaboratable=no
"""The whole byte path through the gateware, at the bit level:

host codec bytes -> UART line (Python line model) -> UARTHostLink (UART rx, frame receiver)
-> a stand-in accelerator written here -> UARTHostLink (frame transmitter, UART tx) -> UART line
-> host codec, compared with the same stand-in function computed in Python.
"""
import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from spikeforge.boards.hostlink import (
    ErrorCode, MsgType, crc32c, decode_error, decode_frames, decode_result, encode_image, logit_bytes, pack_pixels,
)
from spikeforge.boards.link_gateware import UARTHostLink, image_layout, result_layout
from uart_bits import drive_uart, sample_uart

CLASSES = 4
LOGIT_BITS = 16
LATENCY = 7
WEIGHTS = np.random.default_rng(42).integers(-8, 8, (64, CLASSES))
BIAS = np.array([2, -3, 5, 5])  # a tie between classes 2 and 3 for the blank image


def stand_in_logits(image):
    """The golden-style function of the stand-in: bias + pixels @ WEIGHTS."""
    return BIAS + np.asarray(image).reshape(-1).astype(np.int64) @ WEIGHTS


class StandIn(wiring.Component):
    """Accumulates ``bias + sum_i pixel_i * WEIGHTS[i]`` over the pixel stream; the result
    (logits and argmax, ties to the lowest index) is valid ``latency`` cycles after the last
    pixel's transfer and held until taken; the next image's pixels are taken meanwhile (as the
    engine does while its adapter holds a result)."""

    def __init__(self, latency=LATENCY):
        self.latency = latency
        super().__init__({
            "image": In(stream.Signature(image_layout(16))),
            "result": Out(stream.Signature(result_layout(CLASSES, LOGIT_BITS, with_meta=False))),
        })

    def elaborate(self, platform):
        m = Module()
        acc = [Signal(signed(LOGIT_BITS), name=f"acc{j}", init=int(BIAS[j])) for j in range(CLASSES)]
        out = [Signal(signed(LOGIT_BITS), name=f"out{j}") for j in range(CLASSES)]
        out_cls = Signal(range(CLASSES))
        full = Signal()            # a result is held until taken (as the engine's adapter holds it)
        idx = Signal(range(64))
        delay = Signal(range(self.latency + 1))
        pending = Signal()
        rows = [Array(Const(int(WEIGHTS[i, j]), signed(5)) for i in range(64)) for j in range(CLASSES)]
        # the next image is taken as soon as the last one's result moved to the output registers
        m.d.comb += self.image.ready.eq(~pending)
        with m.If(self.image.valid & self.image.ready):
            for j in range(CLASSES):
                m.d.sync += acc[j].eq(acc[j] + self.image.payload.pixel * rows[j][idx])
            m.d.sync += idx.eq(idx + 1)
            with m.If(self.image.payload.last):
                m.d.sync += [idx.eq(0), pending.eq(1), delay.eq(self.latency - 1)]
        with m.If(pending & (delay != 0)):
            m.d.sync += delay.eq(delay - 1)
        best = Const(0, range(CLASSES))
        best_val = acc[0]
        for j in range(1, CLASSES):
            better = acc[j] > best_val
            best = Mux(better, j, best)
            best_val = Mux(better, acc[j], best_val)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += full.eq(0)
        with m.If(pending & (delay == 0) & ~full):     # valid ``latency`` cycles after the last pixel
            m.d.sync += [full.eq(1), pending.eq(0), out_cls.eq(best)]
            m.d.sync += [out[j].eq(acc[j]) for j in range(CLASSES)] + [acc[j].eq(int(BIAS[j])) for j in range(CLASSES)]
        m.d.comb += self.result.valid.eq(full)
        m.d.comb += [self.result.payload.logits[j].eq(out[j]) for j in range(CLASSES)]
        m.d.comb += self.result.payload.cls.eq(out_cls)
        return m


def test_bit_level_round_trip_through_gateware():
    divisor = 4
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 17, (8, 8)) for _ in range(2)]
    images.append(np.full((8, 8), 16))   # large logits, both signs
    images[1][0, 0] = 0
    images[1][0, 1] = 0
    tie = np.zeros((8, 8), np.int64)     # logits = bias: tie, the lowest index (2) wins
    images.append(tie)

    m = Module()
    m.submodules.link = link = UARTHostLink(divisor=divisor, pixels=64, max_value=16, classes=CLASSES,
                                            logit_bits=LOGIT_BITS, cycle_bits=16, timeout_bytes=3,
                                            weight_crc=0xC0FFEE11)   # weights "built in" with this CRC
    m.submodules.dut = dut = StandIn()
    wiring.connect(m, link.image, dut.image)
    wiring.connect(m, dut.result, link.result)

    good = [encode_image(img, seq=20 + k, logits=k != 2) for k, img in enumerate(images)]
    bad = bytearray(encode_image(images[0], seq=99))
    bad[30] ^= 0x02   # pixel flipped: CRC must catch it
    sent = [good[0], bytes(bad), good[1], good[2], good[3]]
    reply_len = 5 + 9 + logit_bytes(LOGIT_BITS) * CLASSES + 4       # image 2: IMAGE, the class only
    expect_bytes = 4 * reply_len + 10 - logit_bytes(LOGIT_BITS) * CLASSES
    received = []

    async def host_tx(ctx):
        for frame in sent:
            await drive_uart(ctx, link.rx, frame, divisor)
            # wait for the reply to go out before the next request (one request in flight)
            await ctx.tick().repeat(reply_len * 10 * divisor + 200)

    async def host_rx(ctx):
        received.append(await sample_uart(ctx, link.tx, expect_bytes, divisor, timeout=20_000))

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx)
    sim.run()

    frames = decode_frames(received[0])
    assert [f.type for f in frames] == [MsgType.RESULT, MsgType.ERROR] + [MsgType.RESULT] * 3
    assert (decode_error(frames[1].payload), frames[1].seq) == (ErrorCode.BAD_CRC, 99)
    results = [f for f in frames if f.type == MsgType.RESULT]
    for k, (f, img) in enumerate(zip(results, images)):
        want = stand_in_logits(img)
        got = decode_result(f.payload, classes=CLASSES, logit_bits=LOGIT_BITS, logits=k != 2)
        assert f.seq == 20 + k
        assert (list(got.logits) if k != 2 else None) == (want.tolist() if k != 2 else None)
        assert got.cls == int(np.argmax(want))
        assert got.cycles == LATENCY
        # the CRC-32C of the weight set (built in) continued over the image received (packed)
        assert got.check == crc32c(pack_pixels(img, 5), 0xC0FFEE11)
    assert decode_result(results[3].payload, logit_bits=LOGIT_BITS).cls == 2


def _run_window(copy_result, images, latency, divisor=4):
    m = Module()
    m.submodules.link = link = UARTHostLink(divisor=divisor, pixels=64, max_value=16, classes=CLASSES,
                                            logit_bits=LOGIT_BITS, cycle_bits=16, timeout_bytes=3,
                                            weight_crc=0xC0FFEE11, window=2, copy_result=copy_result)
    m.submodules.dut = dut = StandIn(latency)
    wiring.connect(m, link.image, dut.image)
    wiring.connect(m, dut.result, link.result)
    frames = [encode_image(img, seq=40 + k, logits=True) for k, img in enumerate(images)]
    reply_len = 5 + 9 + logit_bytes(LOGIT_BITS) * CLASSES + 4
    replies, cycles = [], [0]

    async def host_tx(ctx):
        await drive_uart(ctx, link.rx, frames[0], divisor)
        await drive_uart(ctx, link.rx, frames[1], divisor)
        # too early: image 0 computes, image 1 waits; this one is refused BUSY
        await drive_uart(ctx, link.rx, encode_image(images[2], seq=99), divisor)
        for k in (2, 3):
            while len(replies) < k:     # the BUSY, then one RESULT per slot freed
                await ctx.tick().repeat(50)
            await drive_uart(ctx, link.rx, frames[k], divisor)

    async def host_rx(ctx):
        # BUSY (10 bytes) comes first, then four RESULTs
        replies.append(await sample_uart(ctx, link.tx, 10, divisor, timeout=40_000))
        for _ in range(4):
            replies.append(await sample_uart(ctx, link.tx, reply_len, divisor, timeout=40_000))

    async def count(ctx):
        while len(replies) < 5:
            await ctx.tick()
            cycles[0] += 1

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx)
    sim.add_testbench(count)
    sim.run()
    return replies, cycles[0]


def test_window_of_two_receives_the_next_image_while_one_computes():
    """Window 2: the host sends two images at once and then one per RESULT; each image arrives
    while the one before it is still computed (4,000 cycles; a request takes 1,960 on the line),
    waits in the receive buffer, and its RESULT carries its own seq, check and cycle count. A
    third request sent while one computes and one waits is answered BUSY (the host's window
    must not pass the board's). With ``copy_result`` the next image is handed on as soon as the
    RESULT before it starts (the transmitter holds a copy of it, check included), so it computes
    while that RESULT is on the line: the replies are the same and come sooner."""
    latency = 4000
    rng = np.random.default_rng(8)
    images = [rng.integers(0, 17, (8, 8)) for _ in range(4)]
    took = {}
    for copy_result in (False, True):
        replies, took[copy_result] = _run_window(copy_result, images, latency)
        (busy,) = decode_frames(replies[0])
        assert (busy.type, busy.seq, decode_error(busy.payload)) == (MsgType.ERROR, 99, ErrorCode.BUSY)
        for k, raw in enumerate(replies[1:]):
            (f,) = decode_frames(raw)
            got = decode_result(f.payload, classes=CLASSES, logit_bits=LOGIT_BITS, logits=True)
            assert (f.seq, list(got.logits), got.cycles) == (40 + k, stand_in_logits(images[k]).tolist(), latency)
            assert got.check == crc32c(pack_pixels(images[k], 5), 0xC0FFEE11)
    # three RESULTs overlap the next image's compute: each saves about its line time (22 bytes)
    assert took[False] - took[True] > 3 * 22 * 10 * 4 * 0.9, took
