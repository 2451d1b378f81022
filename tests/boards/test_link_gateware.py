# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikeforge.boards.hostlink import (
    ErrorCode, MsgType, decode_error, decode_frames, decode_result, encode_frame, encode_image, logit_bytes,
    pack_pixels,
)
from spikeforge.boards.link_gateware import FrameReceiver, FrameTransmitter
from spikeforge.hdl.testing import stream_get, stream_put, to_python

TIMEOUT = 40  # inter-byte timeout of the receivers under test, cycles
SPACING = 9   # cycles between bytes: the bit-serial CRC takes 8 per byte (a UART gives >= 40)


async def put_bytes(ctx, stream, data, spacing=SPACING):
    """Bytes into a receiver as a UART delivers them: one every ``spacing`` cycles."""
    for b in data:
        await stream_put(ctx, stream, [b])
        await ctx.tick().repeat(spacing - 1)


def _image(rng, pixels=64, max_value=16):
    return rng.integers(0, max_value + 1, pixels)


def _run_receiver(rcv, chunks, *, gap=TIMEOUT + 10, out_stall=0.0, seed=0, hold_output=0, wants=None):
    """Feed byte chunks (one frame or junk each) with ``gap`` idle cycles after each; collect
    the images (lists of (pixel, last, seq)) and error reports until all is sent and idle."""
    pixels, errors = [], []
    done = []

    async def feed(ctx):
        for chunk in chunks:
            await put_bytes(ctx, rcv.i, list(chunk))
            await ctx.tick().repeat(gap)
        await ctx.tick().repeat(hold_output + 3 * rcv.pixels + 40)
        done.append(True)

    async def take_pixels(ctx):
        rng = random.Random(seed)
        if hold_output:
            await ctx.tick().repeat(hold_output)
        while not done:
            ready = not (out_stall and rng.random() < out_stall)
            ctx.set(rcv.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(rcv.o.valid, rcv.o.payload)
            if valid and ready:
                pixels.append(to_python(payload))

    async def take_errors(ctx):
        ctx.set(rcv.err.ready, 1)
        while not done:
            _, _, valid, payload = await ctx.tick().sample(rcv.err.valid, rcv.err.payload)
            if valid:
                code = int(payload.code)
                errors.append((ErrorCode(code) if code in ErrorCode._value2member_map_ else code, int(payload.seq)))

    sim = Simulator(rcv)
    sim.add_clock(1e-6)
    sim.add_testbench(feed)
    sim.add_testbench(take_pixels)
    sim.add_testbench(take_errors)
    sim.run()
    images = []
    current = []
    for p in pixels:
        current.append(p)
        if p["last"]:
            images.append(([q["pixel"] for q in current], current[0]["seq"]))
            if wants is not None:
                wants.append(current[0]["want"])
            assert {q["seq"] for q in current} == {current[0]["seq"]}
            current = []
    assert current == [], "image stream ended without last"
    return images, errors


def test_good_frames_give_exact_pixels_with_stalls():
    rng = np.random.default_rng(1)
    imgs = [_image(rng) for _ in range(4)]
    imgs.append(np.full(64, 16))
    imgs.append(np.zeros(64, np.int64))
    chunks = [encode_image(img, seq=10 + k, logits=k % 2 == 1) for k, img in enumerate(imgs)]
    assert len(chunks[0]) == 5 + 40 + 4          # 64 pixels of 5 bits: 40 bytes
    chunks.insert(2, b"\x00\x13\xff noise between frames")
    rcv = FrameReceiver(pixels=64, max_value=16, timeout_cycles=TIMEOUT)
    wants = []
    images, errors = _run_receiver(rcv, chunks, out_stall=0.3, gap=200, wants=wants)
    assert errors == []
    assert images == [([int(v) for v in img], 10 + k) for k, img in enumerate(imgs)]
    assert wants == [k % 2 for k in range(len(imgs))]     # IMAGE_LOGITS asks for the logits


@pytest.mark.parametrize("pixels,max_value", [(64, 1), (37, 3), (20, 255), (9, 100)])
def test_packed_pixels_of_every_width(pixels, max_value):
    """Pixels packed at 1, 2, 8 and 7 bits (a byte count that leaves padding bits) are unpacked
    exactly; a pixel above ``max_value`` in a 7-bit field is BAD_VALUE."""
    rng = np.random.default_rng(pixels)
    imgs = [_image(rng, pixels, max_value) for _ in range(3)]
    chunks = [encode_image(img, seq=k, pixels=pixels, max_value=max_value) for k, img in enumerate(imgs)]
    if max_value == 100:
        chunks.append(encode_frame(MsgType.IMAGE, 9, pack_pixels([0] * 5 + [101] + [0] * 3, 7)))
    rcv = FrameReceiver(pixels=pixels, max_value=max_value, timeout_cycles=TIMEOUT)
    images, errors = _run_receiver(rcv, chunks, gap=100)
    assert images == [([int(v) for v in img], k) for k, img in enumerate(imgs)]
    assert errors == ([(ErrorCode.BAD_VALUE, 9)] if max_value == 100 else [])


def _flip(frame, pos, mask=0x01):
    b = bytearray(frame)
    b[pos] ^= mask
    return bytes(b)


@pytest.mark.parametrize("case", ["payload", "crc", "seq", "truncated", "short_length", "long_length",
                                  "bad_type", "bad_value", "sync"])
def test_corrupted_frame_rejected_then_recovers(case):
    rng = np.random.default_rng(2)
    good1, bad_img, good2 = _image(rng), _image(rng), _image(rng)
    frame = encode_image(bad_img, seq=7)
    expect = {
        "payload": (_flip(frame, 5 + 30, 0x10), [(ErrorCode.BAD_CRC, 7)]),
        "crc": (_flip(frame, len(frame) - 1), [(ErrorCode.BAD_CRC, 7)]),
        "seq": (_flip(frame, 2), [(ErrorCode.BAD_CRC, 6)]),
        "truncated": (frame[:40], [(ErrorCode.TIMEOUT, 7)]),
        "short_length": (encode_frame(MsgType.IMAGE, 7, bytes(39)), [(ErrorCode.BAD_LENGTH, 7)]),
        "long_length": (encode_frame(MsgType.IMAGE, 7, bytes(64)), [(ErrorCode.BAD_LENGTH, 7)]),
        "bad_type": (encode_frame(0x33, 7, bytes(40)), [(ErrorCode.BAD_TYPE, 7)]),
        "bad_value": (encode_frame(MsgType.IMAGE, 7, pack_pixels([3] * 20 + [17] + [0] * 43, 5)),
                      [(ErrorCode.BAD_VALUE, 7)]),
        "sync": (_flip(frame, 0), []),  # never seen as a frame: silently skipped
    }
    bad, errs = expect[case]
    rcv = FrameReceiver(pixels=64, max_value=16, timeout_cycles=TIMEOUT)
    images, errors = _run_receiver(rcv, [encode_image(good1, seq=1), bad, encode_image(good2, seq=2)])
    assert images == [([int(v) for v in good1], 1), ([int(v) for v in good2], 2)]
    assert errors == errs


def test_random_single_byte_corruption_never_passes_an_image():
    rng = np.random.default_rng(3)
    prng = random.Random(3)
    chunks, expected = [], []
    for k in range(24):
        img = _image(rng)
        frame = encode_image(img, seq=k)
        if k % 2:
            # half of the corruptions in the packed pixels
            pos = prng.randrange(5, 5 + 40) if k % 4 == 1 else prng.randrange(len(frame))
            frame = _flip(frame, pos, prng.randrange(1, 256))
        else:
            expected.append(([int(v) for v in img], k))
        chunks.append(frame)
    rcv = FrameReceiver(pixels=64, max_value=16, timeout_cycles=TIMEOUT)
    images, errors = _run_receiver(rcv, chunks, out_stall=0.2, gap=250)
    assert images == expected
    assert 1 <= len(errors) <= 12
    assert all(code != ErrorCode.BUSY for code, _ in errors)


def test_busy_while_previous_image_not_taken():
    rng = np.random.default_rng(4)
    a, b = _image(rng), _image(rng)
    rcv = FrameReceiver(pixels=64, max_value=16, timeout_cycles=TIMEOUT)
    images, errors = _run_receiver(rcv, [encode_image(a, seq=1), encode_image(b, seq=2)],
                                   hold_output=2000)
    assert images == [([int(v) for v in a], 1)]
    assert errors == [(ErrorCode.BUSY, 2)]


def test_small_image_and_max_value():
    rcv = FrameReceiver(pixels=3, max_value=2, timeout_cycles=0)
    images, errors = _run_receiver(rcv, [encode_image([1, 0, 2], seq=9, pixels=3, max_value=2),
                                         encode_frame(MsgType.IMAGE, 4, pack_pixels([1, 3, 0], 2))])
    assert images == [([1, 0, 2], 9)]
    assert errors == [(ErrorCode.BAD_VALUE, 4)]
    binary = FrameReceiver(pixels=3, max_value=1, timeout_cycles=0)
    images, errors = _run_receiver(binary, [encode_image([1, 0, 1], seq=9, pixels=3, max_value=1),
                                            encode_frame(MsgType.IMAGE, 4, bytes([1, 2]))])
    assert images == [([1, 0, 1], 9)] and errors == [(ErrorCode.BAD_LENGTH, 4)]   # 3 bits: one byte


def test_receiver_parameter_checks():
    with pytest.raises(ValueError, match="pixels is 0; allowed: an integer 1..104856"):
        FrameReceiver(pixels=0)
    with pytest.raises(ValueError, match="max_value is 256"):
        FrameReceiver(max_value=256)
    with pytest.raises(TypeError, match="timeout_cycles must be"):
        FrameReceiver(timeout_cycles=1.5)
    with pytest.raises(ValueError, match="classes is 0"):
        FrameTransmitter(classes=0)
    with pytest.raises(ValueError, match="logit_bits is 33"):
        FrameTransmitter(classes=10, logit_bits=33)
    with pytest.raises(TypeError, match="copy_result is 1; allowed: True or False"):
        FrameTransmitter(classes=10, copy_result=1)


@pytest.mark.parametrize("copy_result", [False, True])
@pytest.mark.parametrize("classes,logit_bits,cycle_bits", [(10, 32, 32), (3, 9, 12), (1, 2, 1)])
def test_transmitter_frames_decode_with_host_codec(classes, logit_bits, cycle_bits, copy_result):
    rng = random.Random(classes)
    lo, hi = -(1 << (logit_bits - 1)), (1 << (logit_bits - 1)) - 1
    results = []
    for k in range(5):
        logits = [rng.randint(lo, hi) for _ in range(classes)]
        if k == 0:
            logits[0] = lo
            logits[-1] = hi
        results.append({"logits": logits, "cls": rng.randrange(classes),
                        "cycles": rng.randrange(1 << cycle_bits), "seq": rng.randrange(256),
                        "want": k % 2 == 0})
    errors = [{"code": int(ErrorCode.BAD_CRC), "seq": 200}, {"code": int(ErrorCode.BUSY), "seq": 3}]
    xmt = FrameTransmitter(classes=classes, logit_bits=logit_bits, cycle_bits=cycle_bits, copy_result=copy_result)
    got = bytearray()
    n_bytes = sum(5 + 9 + 4 + (classes * logit_bytes(logit_bits) if r["want"] else 0) for r in results)
    n_bytes += len(errors) * 10

    async def put_results(ctx):
        ctx.set(xmt.check, 0x8BADF00D)
        await stream_put(ctx, xmt.result, results, rng=random.Random(1), stall=0.3)

    async def put_errors(ctx):
        await ctx.tick().repeat(30)
        await stream_put(ctx, xmt.err, errors, rng=random.Random(2), stall=0.3)

    async def get(ctx):
        got.extend(await stream_get(ctx, xmt.o, n_bytes, rng=random.Random(3), stall=0.3))

    sim = Simulator(xmt)
    sim.add_clock(1e-6)
    for tb in (put_results, put_errors, get):
        sim.add_testbench(tb)
    sim.run()
    frames = decode_frames(bytes(got))
    res = [f for f in frames if f.type == MsgType.RESULT]
    err = [f for f in frames if f.type == MsgType.ERROR]
    assert len(res) == len(results) and len(err) == len(errors)
    for f, r in zip(res, results):
        d = decode_result(f.payload, classes=classes, logit_bits=logit_bits, logits=r["want"])
        assert (d.logits and list(d.logits), d.cls, d.cycles, f.seq, d.check) == \
            (r["logits"] if r["want"] else None, r["cls"], r["cycles"], r["seq"], 0x8BADF00D)
        # the logits at their width: K * ceil(logit_bits / 8) bytes, only when asked for
        assert len(f.payload) == 9 + (classes * logit_bytes(logit_bits) if r["want"] else 0)
    assert [(decode_error(f.payload), f.seq) for f in err] == [(ErrorCode.BAD_CRC, 200), (ErrorCode.BUSY, 3)]


def test_crc32_serial_matches_the_host_codec():
    """The bit-serial engine against its golden function (zlib's CRC-32), the check value
    first, then random byte strings, fed at UART-like spacing; after a frame body and its CRC
    it holds the residue the receiver checks."""
    from spikeforge.boards.hostlink import CRC_RESIDUE, crc32
    from spikeforge.boards.link_gateware import CRC32Serial

    rng = random.Random(5)
    cases = [b"123456789", b"", bytes([0]), bytes([0xFF] * 5)]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(12)]
    body = encode_image(np.arange(64) % 17, seq=3)[1:]
    cases.append(body)
    eng = CRC32Serial()
    got = []

    async def bench(ctx):
        for data in cases:
            ctx.set(eng.init, 1)
            await ctx.tick()
            ctx.set(eng.init, 0)
            for b in data:
                ctx.set(eng.byte, b)
                ctx.set(eng.load, 1)
                await ctx.tick()
                ctx.set(eng.load, 0)
                await ctx.tick().repeat(8 + rng.randrange(3))
                assert not ctx.get(eng.busy)
            got.append(ctx.get(eng.crc))

    sim = Simulator(eng)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got[0] == 0xCBF43926
    assert got[:-1] == [crc32(d) for d in cases[:-1]]
    assert got[-1] == CRC_RESIDUE == 0x2144DF1C


def test_image_larger_than_1024_bytes_in_one_frame():
    """A whole image in one IMAGE frame up to 65535 bytes: a 1,700-pixel image (1,063 bytes
    packed) passes, the same with one payload byte changed is BAD_CRC."""
    rng = np.random.default_rng(6)
    img = _image(rng, pixels=1700)
    frame = encode_image(img, seq=4, pixels=1700)
    assert len(frame) == 5 + 1063 + 4
    rcv = FrameReceiver(pixels=1700, max_value=16, timeout_cycles=TIMEOUT)
    images, errors = _run_receiver(rcv, [_flip(frame, 5 + 1050, 0x02), frame])
    assert images == [([int(v) for v in img], 4)]
    assert errors == [(ErrorCode.BAD_CRC, 4)]


def test_hello_is_answered_by_an_info_frame():
    """HELLO goes through the receiver as an INFO report; the transmitter sends the INFO frame
    with the payload it was built with; HELLO with a payload is BAD_LENGTH."""
    from spikeforge.boards.hostlink import VERSION, Info, decode_info, encode_hello, info_payload
    from spikeforge.boards.link_gateware import INFO_REPORT

    rcv = FrameReceiver(pixels=64, max_value=16, timeout_cycles=TIMEOUT)
    _, errors = _run_receiver(rcv, [encode_hello(seq=12), encode_frame(MsgType.HELLO, 13, b"x")])
    assert errors == [(INFO_REPORT, 12), (ErrorCode.BAD_LENGTH, 13)]

    info = Info(VERSION, bytes(range(1, 9)), (28, 28, 1), 255, 10, 4, 24_000_000, 0)
    xmt = FrameTransmitter(classes=10, info=info_payload(info))
    got = bytearray()

    async def put(ctx):
        await stream_put(ctx, xmt.err, [{"code": INFO_REPORT, "seq": 12}])

    async def get(ctx):
        got.extend(await stream_get(ctx, xmt.o, 5 + 28 + 4))

    sim = Simulator(xmt)
    sim.add_clock(1e-6)
    sim.add_testbench(put)
    sim.add_testbench(get)
    sim.run()
    (frame,) = decode_frames(bytes(got))
    assert (frame.type, frame.seq, decode_info(frame.payload)) == (MsgType.INFO, 12, info)
