# amaranth: UnusedElaboratable=no
"""Protocol v2 weight loading in the gateware, checked against the host codec both ways:
:class:`FrameReceiver` fed with host-encoded WEIGHTS / IMAGE frames (byte level),
:class:`FrameTransmitter` LOADED frames decoded by the host codec, and :class:`UARTHostLink`
through the UART line models of ``uart_bits``."""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from spikeforge.boards.hostlink import (
    SYNC, ErrorCode, Frame, FrameDecoder, Loaded, MsgType, argmax_lowest, decode_error, decode_frames,
    crc32c, decode_info, decode_loaded, decode_result, encode_frame, encode_hello, encode_image, encode_weights,
    pack_pixels, words_crc,
)
from spikeforge.boards.link_gateware import LOADED_REPORT, FrameReceiver, FrameTransmitter, UARTHostLink
from spikeforge.hdl.testing import stream_get, stream_put, to_python
from uart_bits import drive_uart, sample_uart

TIMEOUT = 60   # inter-byte timeout of the receivers under test, cycles
GAP = 8        # idle cycles between bytes fed to a receiver (the bit-serial CRC takes 8 per byte)
LOADED = "LOADED"


def _words(n, seed):
    return [int(v) for v in np.random.default_rng(seed).integers(0, 1 << 16, n)]


def _frame(offset, words, seq):
    """A WEIGHTS frame without SYNC after its first byte (a rejected frame's tail is hunted
    through; a SYNC there would start a false frame): the first seq from ``seq`` on that
    gives one. Returns ``(frame, seq)``."""
    for s in range(seq, seq + 256):
        frame = encode_weights(offset, words, s & 0xFF)
        if SYNC not in frame[1:]:
            return frame, s & 0xFF
    raise AssertionError("no seq gives a frame without SYNC")


def _corrupt(frame, pos, mask=0x01):
    b = bytearray(frame)
    b[pos] ^= mask
    return bytes(b)


# --- FrameReceiver, byte level -------------------------------------------------------------

class ReceiverBench:
    """Feeds a :class:`FrameReceiver` with bytes (``GAP`` idle cycles after each) and records
    weight writes, reports (with ``next_word`` / ``loaded`` while the report is valid) and
    images. ``weights.ready`` is low with probability ``stall`` (never more than 4 cycles in a
    row) while ``self.ready`` is true, and always low while it is false. The bench checks the
    stream rule on ``weights``: a beat holds until it is taken."""

    def __init__(self, weight_words, *, stall=0.4, seed=0):
        self.rcv = FrameReceiver(pixels=64, max_value=16, timeout_cycles=TIMEOUT, weight_words=weight_words)
        self.stall, self.seed = stall, seed
        self.ready = True
        self.writes, self.reports, self.images = [], [], []

    def run(self, script):
        """``script``: byte strings (each followed by ``TIMEOUT + 20`` idle cycles) and
        ``async def step(ctx, bench)`` callables."""
        rcv = self.rcv

        async def feed(ctx):
            for item in script:
                if callable(item):
                    await item(ctx, self)
                    continue
                for byte in item:
                    ctx.set(rcv.i.valid, 1)
                    ctx.set(rcv.i.payload, byte)
                    await ctx.tick()
                    ctx.set(rcv.i.valid, 0)
                    await ctx.tick().repeat(GAP)
                await ctx.tick().repeat(TIMEOUT + 20)
            await ctx.tick().repeat(4 * 64)

        async def take_weights(ctx):
            rng = random.Random(self.seed)
            run, pending = 0, None
            while True:
                ready = self.ready and not (run < 4 and rng.random() < self.stall)
                run = 0 if ready else run + 1
                ctx.set(rcv.weights.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(rcv.weights.valid, rcv.weights.payload)
                payload = to_python(payload)
                if pending is not None:
                    assert valid and payload == pending, f"beat {pending} changed to {payload} before its transfer"
                if valid and ready:
                    self.writes.append((payload["addr"], payload["data"]))
                pending = payload if valid and not ready else None

        async def take_reports(ctx):
            ctx.set(rcv.err.ready, 1)
            while True:
                _, _, valid, payload, next_word, loaded = await ctx.tick().sample(
                    rcv.err.valid, rcv.err.payload, rcv.next_word, rcv.loaded)
                if valid:
                    code = LOADED if payload.code == LOADED_REPORT else ErrorCode(payload.code)
                    self.reports.append((code, int(payload.seq)) + ((next_word, loaded) if code == LOADED else ()))

        async def take_pixels(ctx):
            ctx.set(rcv.o.ready, 1)
            current = []
            while True:
                _, _, valid, payload = await ctx.tick().sample(rcv.o.valid, rcv.o.payload)
                if valid:
                    current.append(int(payload.pixel))
                    if payload.last:
                        self.images.append((current, int(payload.seq)))
                        current = []

        sim = Simulator(rcv)
        sim.add_clock(1e-6)
        sim.add_testbench(feed)
        for tb in (take_weights, take_reports, take_pixels):
            sim.add_testbench(tb, background=True)
        sim.run()
        return self


def test_receiver_loads_chunks_then_images_pass():
    ww = 300
    words = _words(ww, seed=1)
    words[5] = 0xA5A5       # SYNC bytes inside a frame are data
    image = [int(v) for v in np.random.default_rng(2).integers(0, 17, 64)]
    script = [encode_image(image, 1),                                   # before loading: NOT_LOADED
              encode_weights(0, [], 2),
              encode_weights(0, words[:128], 3),
              encode_weights(128, words[128:256], 4),
              encode_weights(256, words[256:], 5),
              encode_image(image, 6),                                   # loaded: handed on
              encode_weights(0, [], 7),                                 # begin load clears loaded
              encode_image(image, 8)]
    bench = ReceiverBench(ww).run(script)
    assert bench.reports == [(ErrorCode.NOT_LOADED, 1), (LOADED, 2, 0, 0), (LOADED, 3, 128, 0),
                             (LOADED, 4, 256, 0), (LOADED, 5, 300, 1), (LOADED, 7, 0, 0),
                             (ErrorCode.NOT_LOADED, 8)]
    assert bench.writes == list(enumerate(words))
    assert bench.images == [(image, 6)]


# a weight memory of 20 words, 8 of them loaded; the bad frame, then words 8..11
WW = 20
PREFIX = _words(8, seed=3)
NEXT = _words(4, seed=4)


def _bad_frame(case):
    """(bytes, expected report) of each rejected case, after PREFIX is loaded."""
    header_only = bytes([SYNC, MsgType.WEIGHTS, 7])
    weights = {"past_end": (8, [1] * (WW - 8 + 1), ErrorCode.BAD_LENGTH),
               "offset_behind": (4, [1, 2], ErrorCode.BAD_OFFSET),
               "offset_ahead": (9, [1, 2], ErrorCode.BAD_OFFSET),
               "offset_high_byte": (8 + 256, [1, 2], ErrorCode.BAD_OFFSET),
               "offset_top_byte": (8 + (1 << 24), [1, 2], ErrorCode.BAD_OFFSET)}   # version 5: u32
    if case in weights:
        offset, words, code = weights[case]
        frame, seq = _frame(offset, words, 7)
        return frame, (code, seq)
    return {
        "odd_length": (encode_frame(MsgType.WEIGHTS, 7, bytes(5)), (ErrorCode.BAD_LENGTH, 7)),
        "no_offset": (encode_frame(MsgType.WEIGHTS, 7, b""), (ErrorCode.BAD_LENGTH, 7)),
        "one_byte": (encode_frame(MsgType.WEIGHTS, 7, b"\x08"), (ErrorCode.BAD_LENGTH, 7)),
        "too_long": (header_only + (1026).to_bytes(2, "little") + bytes(12), (ErrorCode.BAD_LENGTH, 7)),
        "short": (encode_frame(MsgType.WEIGHTS, 7, b"\x08\x00"), (ErrorCode.BAD_LENGTH, 7)),   # a v4 offset
        "begin_with_offset": (encode_frame(MsgType.WEIGHTS, 7, b"\x00\x00\x01\x00"), (ErrorCode.BAD_OFFSET, 7)),
        "bad_type": (encode_frame(0x05, 7, b"\x08\x00\x01\x00"), (ErrorCode.BAD_TYPE, 7)),
    }[case]


@pytest.mark.parametrize("case", ["odd_length", "no_offset", "one_byte", "too_long", "past_end",
                                  "offset_behind", "offset_ahead", "offset_high_byte", "offset_top_byte", "short",
                                  "begin_with_offset",
                                  "bad_type", "busy"])
def test_receiver_rejects_weights_header_without_writing(case):
    if case == "busy":
        frame, seq = _frame(8, [1, 2], 7)

        async def set_busy(ctx, bench, value=1):
            ctx.set(bench.rcv.busy, value)

        async def clear_busy(ctx, bench):
            ctx.set(bench.rcv.busy, 0)

        bad = [set_busy, frame, clear_busy]
        report = (ErrorCode.BUSY, seq)
    else:
        frame, report = _bad_frame(case)
        bad = [frame]
    assert SYNC not in frame[1:]
    script = [encode_weights(0, [], 1), encode_weights(0, PREFIX, 2), *bad, encode_weights(8, NEXT, 9)]
    bench = ReceiverBench(WW).run(script)
    assert bench.reports == [(LOADED, 1, 0, 0), (LOADED, 2, 8, 0), report, (LOADED, 9, 12, 0)]
    assert bench.writes == list(enumerate(PREFIX + NEXT))


@pytest.mark.parametrize("case", ["data", "crc", "truncated"])
def test_receiver_failed_chunk_changes_nothing_and_retry_succeeds(case):
    words = _words(WW - 8, seed=5)
    good = encode_weights(8, words, 4)
    bad, report = {
        "data": (_corrupt(good, 5 + 4 + 7, 0x40), (ErrorCode.BAD_CRC, 4)),   # a data byte: written, not committed
        "crc": (_corrupt(good, len(good) - 1), (ErrorCode.BAD_CRC, 4)),
        "truncated": (good[:5 + 4 + 9], (ErrorCode.TIMEOUT, 4)),
    }[case]
    image = [3] * 64
    script = [encode_weights(0, [], 1), encode_weights(0, PREFIX, 2), bad, encode_image(image, 3),
              encode_weights(8, words, 5), encode_image(image, 6)]
    bench = ReceiverBench(WW).run(script)
    assert bench.reports == [(LOADED, 1, 0, 0), (LOADED, 2, 8, 0), report, (ErrorCode.NOT_LOADED, 3),
                             (LOADED, 5, 20, 1)]
    assert bench.images == [(image, 6)]
    sent = bytes(bad[5 + 4:])
    partial = [(8 + k, int.from_bytes(sent[2 * k:2 * k + 2], "little")) for k in range(min(len(words), len(sent) // 2))]
    assert bench.writes == list(enumerate(PREFIX)) + partial + list(enumerate(words, 8))
    if case == "data":
        assert partial[3] != (11, words[3])      # the corrupted word was written, then rewritten


@pytest.mark.parametrize("n", [1, 4])   # 1: the only word still held at the frame's end
def test_receiver_word_not_taken_in_time_gives_busy_and_no_commit(n):
    words = _words(n, seed=6)

    async def hold(ctx, bench):
        bench.ready = False

    async def release(ctx, bench):
        bench.ready = True
        await ctx.tick().repeat(10)

    script = [encode_weights(0, [], 1), hold, encode_weights(0, words, 2), release, encode_weights(0, words, 3)]
    bench = ReceiverBench(8, stall=0.0).run(script)
    assert bench.reports == [(LOADED, 1, 0, 0), (ErrorCode.BUSY, 2), (LOADED, 3, n, 0)]
    # the first word was held (not dropped) until taken; the rest of that frame was refused
    assert bench.writes == [(0, words[0])] + list(enumerate(words))


def test_receiver_without_weights_is_unchanged():
    rcv = FrameReceiver(pixels=64, max_value=16, timeout_cycles=TIMEOUT)
    assert set(rcv.signature.members) == {"i", "o", "err", "check"}
    assert set(FrameReceiver(weight_words=1).signature.members) == {"i", "o", "err", "check", "weights",
                                                                   "next_word", "loaded", "busy"}
    assert FrameReceiver(weight_words=1).weights.payload.addr.shape().width == 1
    assert FrameReceiver(weight_words=4504).weights.payload.addr.shape().width == 13
    assert FrameReceiver(weight_words=4096).weights.payload.addr.shape().width == 12
    with pytest.raises(ValueError, match="weight_words is 16777216; allowed: an integer 0..16777215"):
        FrameReceiver(weight_words=1 << 24)


# --- FrameTransmitter: LOADED frames decode with the host codec ----------------------------

def test_transmitter_loaded_frames_decode_with_host_codec():
    ww = 4504
    reports = [(LOADED_REPORT, 3, 0, 0), (int(ErrorCode.BAD_OFFSET), 4, 17, 0), (LOADED_REPORT, 200, 4096, 0),
               (LOADED_REPORT, 255, 4504, 1)]
    results = [{"logits": [5, -7, 2], "cls": 0, "cycles": 99, "seq": 8, "want": 1}]
    xmt = FrameTransmitter(classes=3, logit_bits=9, cycle_bits=12, weight_words=ww)
    got = bytearray()
    n_bytes = 3 * 18 + 10 + (5 + 9 + 2 * 3 + 4)      # LOADED 5 + 9 + 4 bytes; logits of 9 bits: 2 bytes each

    async def put_reports(ctx):
        rng = random.Random(1)
        for code, seq, next_word, loaded in reports:
            ctx.set(xmt.next_word, next_word)
            ctx.set(xmt.loaded, loaded)
            ctx.set(xmt.check, 0x01020304 * (seq % 7) + next_word)
            await stream_put(ctx, xmt.err, [{"code": code, "seq": seq}], rng=rng, stall=0.3)
            ctx.set(xmt.next_word, 1234)     # may change once the report is taken
            await ctx.tick().repeat(1 + rng.randrange(3))

    async def put_results(ctx):
        await ctx.tick().repeat(15)
        await stream_put(ctx, xmt.result, results)
        ctx.set(xmt.check, 0x12345678)

    async def get(ctx):
        got.extend(await stream_get(ctx, xmt.o, n_bytes, rng=random.Random(3), stall=0.3))

    sim = Simulator(xmt)
    sim.add_clock(1e-6)
    for tb in (put_reports, put_results, get):
        sim.add_testbench(tb)
    sim.run()
    frames = decode_frames(bytes(got))
    replies = [(f.seq, decode_loaded(f.payload) if f.type == MsgType.LOADED else decode_error(f.payload))
               for f in frames if f.type != MsgType.RESULT]
    assert replies == [(3, Loaded(0, False, 0x01020304 * 3)), (4, ErrorCode.BAD_OFFSET),
                       (200, Loaded(4096, False, 0x01020304 * 4 + 4096)),
                       (255, Loaded(4504, True, 0x01020304 * 3 + 4504))]
    (res,) = [f for f in frames if f.type == MsgType.RESULT]
    r = decode_result(res.payload, classes=3, logit_bits=9)
    assert (r.logits, res.seq) == ((5, -7, 2), 8)


# --- UARTHostLink, bit level ---------------------------------------------------------------

DIVISOR = 4
CLASSES = 4
BYTE = 10 * DIVISOR


def _stand_in(pixels, mem):
    """What the testbench accelerator computes: it uses the loaded weights."""
    ww = len(mem)
    return [sum(p * (mem[(i + j) % ww] or 0) for i, p in enumerate(pixels)) for j in range(CLASSES)]


def _run_link(steps, *, weight_words, latency=20, stall=0.3):
    """Send each step's frame over the UART; wait for ``n`` more reply frames (``n`` 0: go on
    at once). Returns the replies (:class:`Frame`), ``(loaded, memory)`` after each step and the
    write log. The testbench accelerator answers ``latency`` cycles after an image."""
    link = UARTHostLink(divisor=DIVISOR, pixels=64, max_value=16, classes=CLASSES, logit_bits=32, cycle_bits=16,
                        timeout_bytes=3, weight_words=weight_words)
    mem = [None] * max(1, weight_words)
    writes, replies, after = [], [], []

    async def host_tx(ctx):
        for frame, n in steps:
            n0 = len(replies)
            await drive_uart(ctx, link.rx, frame, DIVISOR)
            for _ in range(200 * BYTE):
                if len(replies) >= n0 + n:
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"no reply to {frame[:8].hex()}: {replies[n0:]}")
            await ctx.tick().repeat(2 * BYTE)
            after.append((ctx.get(link.loaded) if weight_words else None, list(mem)))

    async def host_rx(ctx):
        decoder = FrameDecoder()
        while True:
            replies.extend(decoder.feed(await sample_uart(ctx, link.tx, 1, DIVISOR, timeout=10 ** 9)))

    async def memory(ctx):
        rng = random.Random(5)
        while True:
            ready = rng.random() >= stall
            ctx.set(link.weights.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(link.weights.valid, link.weights.payload)
            if valid and ready:
                mem[payload.addr] = int(payload.data)
                writes.append((int(payload.addr), int(payload.data)))

    async def accelerator(ctx):
        while True:
            pixels = await stream_get(ctx, link.image, 64, timeout=10 ** 9)
            await ctx.tick().repeat(latency)
            logits = _stand_in([p["pixel"] for p in pixels], mem)
            await stream_put(ctx, link.result, [{"logits": logits, "cls": argmax_lowest(logits)}])

    sim = Simulator(link)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx)
    for tb in (host_rx, accelerator) + ((memory,) if weight_words else ()):
        sim.add_testbench(tb, background=True)
    sim.run()
    return replies, after, writes


def _decoded(replies, words, image=None):
    """(seq, content) of each reply; checks that every LOADED reports the weight CRC of the
    words up to its ``next_word`` and every RESULT the check of all ``words`` and ``image``."""
    out = []
    for f in replies:
        assert isinstance(f, Frame), f
        if f.type == MsgType.LOADED:
            d = decode_loaded(f.payload)
            assert d.weight_crc == words_crc(words[:d.next_word]), (f.seq, d)
            out.append((f.seq, Loaded(d.next_word, d.loaded)))
        elif f.type == MsgType.ERROR:
            out.append((f.seq, decode_error(f.payload)))
        else:
            r = decode_result(f.payload, classes=CLASSES)
            if image is not None:
                assert r.check == crc32c(pack_pixels(image, 5), words_crc(words))
            out.append((f.seq, r.logits))
    return out


def test_link_loads_weights_over_uart():
    ww = 260
    words = _words(ww, seed=7)
    image = np.random.default_rng(8).integers(0, 17, 64)
    chunk1 = encode_weights(100, words[100:200], 13)
    steps = [(encode_image(image, 10, logits=True), 1),                       # NOT_LOADED
             (encode_weights(0, [], 11), 1),
             (encode_weights(0, words[:100], 12), 1),
             (_corrupt(chunk1, 5 + 4 + 2 * 40, 0x08), 1),        # BAD_CRC
             (encode_weights(100, words[100:200], 14), 1),       # the retry
             (encode_weights(200, words[200:], 15), 1),          # the last chunk: loaded
             (encode_image(image, 16, logits=True), 1),                       # RESULT computed with the weights
             (encode_weights(0, [], 17), 1),                     # begin load again: not loaded
             (encode_image(image, 18, logits=True), 1)]                       # NOT_LOADED
    replies, after, writes = _run_link(steps, weight_words=ww)
    assert _decoded(replies, words, image) == [
        (10, ErrorCode.NOT_LOADED), (11, Loaded(0, False)), (12, Loaded(100, False)), (13, ErrorCode.BAD_CRC),
        (14, Loaded(200, False)), (15, Loaded(260, True)), (16, tuple(_stand_in(image.tolist(), words))),
        (17, Loaded(0, False)), (18, ErrorCode.NOT_LOADED)]
    assert [loaded for loaded, _ in after] == [0, 0, 0, 0, 0, 1, 1, 0, 0]
    assert after[5][1] == words                                  # memory == words once loaded
    assert after[3][1][:100] == words[:100] and after[3][1][140] != words[140]   # corrupted word written ...
    assert [a for a, _ in writes] == list(range(200)) + list(range(100, 260))   # ... and rewritten by the retry


def test_link_bad_offset_writes_nothing_and_busy_while_image_in_flight():
    ww = 16
    words = _words(ww, seed=9)
    bad, bad_seq = _frame(8, words[8:12], 3)
    steps = [(encode_weights(0, [], 1), 1),
             (encode_weights(0, words[:4], 2), 1),
             (bad, 1),                                            # BAD_OFFSET: next_word is 4
             (encode_weights(4, words[4:], 4), 1),                # loaded
             (encode_image(np.ones(64, np.int64), 5, logits=True), 0),         # the accelerator takes 1500 cycles
             (encode_weights(0, [], 6), 2),                       # BUSY, then the RESULT of image 5
             (encode_weights(0, [], 7), 1)]                       # begin load once the RESULT is out
    replies, after, writes = _run_link(steps, weight_words=ww, latency=1500)
    assert _decoded(replies, words, np.ones(64)) == [
        (1, Loaded(0, False)), (2, Loaded(4, False)), (bad_seq, ErrorCode.BAD_OFFSET), (4, Loaded(16, True)),
        (6, ErrorCode.BUSY), (5, tuple(_stand_in([1] * 64, words))), (7, Loaded(0, False))]
    assert after[2][1] == words[:4] + [None] * 12               # nothing written by the rejected frame
    assert writes == list(enumerate(words))
    assert [loaded for loaded, _ in after] == [0, 0, 0, 1, 1, 1, 0]


def test_link_without_weights_answers_bad_type():
    link = UARTHostLink(divisor=DIVISOR, classes=CLASSES, logit_bits=32)
    assert set(link.signature.members) == {"rx", "tx", "image", "result"}
    image = np.full(64, 2)
    replies, _, _ = _run_link([(encode_weights(0, [], 1), 1), (encode_weights(0, [1, 2], 2), 1),
                               (encode_image(image, 3, logits=True), 1), (encode_hello(4), 1)], weight_words=0)
    assert _decoded(replies[:3], []) == [(1, ErrorCode.BAD_TYPE), (2, ErrorCode.BAD_TYPE),
                                         (3, tuple(_stand_in(image.tolist(), [None])))]
    # the RESULT carries the CRC-32 of the image as received; HELLO is answered with INFO
    assert decode_result(replies[2].payload).check == crc32c(pack_pixels(image, 5))
    assert (replies[3].type, replies[3].seq) == (MsgType.INFO, 4)
    info = decode_info(replies[3].payload)
    assert (info.version, info.shape, info.max_value, info.classes, info.weight_words) == (5, (64, 1, 1), 16,
                                                                                          CLASSES, 0)
    assert (info.pixel_bits, info.logit_bits, info.window) == (5, 32, 1)


def test_link_with_weights_converts_to_verilog_and_checks_parameters():
    link = UARTHostLink(divisor=104, classes=10, logit_bits=20, weight_words=4504)
    assert set(link.signature.members) == {"rx", "tx", "image", "result", "weights", "loaded"}
    assert link.weights.payload.addr.shape().width == 13 and link.weights.payload.data.shape().width == 16
    assert "module hostlink" in verilog.convert(link, name="hostlink")
    with pytest.raises(ValueError, match="weight_words is -1; allowed: an integer 0..16777215"):
        UARTHostLink(divisor=8, weight_words=-1)
    with pytest.raises(TypeError, match="weight_words must be an integer"):
        FrameTransmitter(classes=3, weight_words=2.0)
