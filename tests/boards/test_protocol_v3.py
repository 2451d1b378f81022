"""What protocol version 3 brought, kept in version 4, on the host side: CRC-32 frames, RESULTs
bound to their image and weight set, HELLO/INFO, old boards refused, images larger than 1024
bytes (docs/hostlink.md). Version 4's own: test_protocol_v4.py."""

import numpy as np
import pytest

from spikeforge.boards.faults import fuzz
from spikeforge.boards.hostlink import (
    MAX_IMAGE, VERSION, Info, MsgType, crc16, crc32, crc32c, decode_frames, decode_info, decode_result, encode_frame,
    encode_hello, encode_image, encode_info, encode_weights, model_hash, pack_pixels, result_check, words_crc,
)
from spikeforge.boards.runtime import HostLink, LinkError, MemoryTransport, OldBoardError, ReferenceBoard

INFO = Info(VERSION, bytes(range(8)), (8, 8, 1), 16, 3, 4, 24_000_000, 0)


def _logits(image):
    return [int(image.sum()), int(image[:8].sum()), 5]


def test_crc32_is_iso_hdlc_and_frames_carry_it_little_endian():
    assert crc32(b"123456789") == 0xCBF43926
    assert crc32c(b"123456789") == 0xE3069283          # the image and weight CRCs: Castagnoli
    assert crc32c(b"56789", crc32c(b"1234")) == 0xE3069283
    frame = encode_frame(MsgType.IMAGE, 7, b"\x01\x02")
    assert frame[:5] == bytes([0xA5, 0x01, 7, 2, 0]) and len(frame) == 5 + 2 + 4
    assert frame[-4:] == crc32(frame[1:-4]).to_bytes(4, "little")
    assert crc32(frame[1:]) == 0x2144DF1C      # the residue: the register is 0xDEBB20E3 before the XOR


def test_crc32_catches_what_broke_crc16():
    """A dropped and a duplicated byte in one frame keep its length; CRC-32 catches each such
    damage of this frame (CRC-16 misses about one in 65,536)."""
    frame = encode_image(np.arange(64) % 17, seq=3)
    body = frame[1:]
    rng = np.random.default_rng(0)
    for _ in range(2000):
        i, j = sorted(rng.choice(np.arange(4, len(body) - 4), 2, replace=False))
        damaged = body[:i] + body[i + 1:j + 1] + body[j:j + 1] + body[j + 1:]   # drop i, dup j
        if damaged != body:
            assert crc32(damaged[:-4]) != int.from_bytes(damaged[-4:], "little")
    assert crc16(b"123456789") == 0x29B1


def test_result_check_binds_image_and_weights():
    """RESULT's check is the CRC-32C of the weight set continued over the image received."""
    board = ReferenceBoard(lambda img: _logits(img), weight_crc=0xABCD1234)
    image = np.arange(64) % 17
    (f,) = decode_frames(board(encode_image(image, 9, logits=True)))
    r = decode_result(f.payload, classes=3)
    raw = pack_pixels(image, 5)          # the payload as sent: the pixels packed at 5 bits
    assert r.check == result_check(raw, 0xABCD1234) == crc32c(raw, 0xABCD1234)
    assert r.check != crc32c(raw) and r.check != result_check(raw, 0xABCD1235)
    assert len(f.payload) == 4 + 1 + 4 + 4 * 3 and f.payload[:4] == r.check.to_bytes(4, "little")


class _Swap:
    """A board that answers the first ``n`` IMAGE frames with the RESULT of another image (as
    a request damaged on its way would), then truthfully."""

    def __init__(self, board, n):
        self.board, self.n = board, n

    def __call__(self, data):
        (f,) = decode_frames(data)
        if self.n and f.type in (MsgType.IMAGE, MsgType.IMAGE_LOGITS):
            self.n -= 1
            return self.board(encode_image(np.zeros(64, np.int64), f.seq, logits=f.type == MsgType.IMAGE_LOGITS))
        return self.board(data)


def test_result_for_another_image_is_a_failed_attempt_never_a_result():
    board = ReferenceBoard(_logits)
    link = HostLink(MemoryTransport(_Swap(board, 2)), classes=3)
    image = np.full(64, 3)
    logits, _, _ = link.infer(image)
    assert logits.tolist() == _logits(image)
    assert link.stats.foreign_results == 2 and link.stats.attempts == 3
    link2 = HostLink(MemoryTransport(_Swap(ReferenceBoard(_logits), 3)), classes=3)
    assert link2.infer(image)[0].tolist() == _logits(image)        # the 4th attempt gets it right
    # every attempt answered with another check: the board is taken to hold other weights
    link3 = HostLink(MemoryTransport(_Swap(ReferenceBoard(_logits), 4)), classes=3)
    with pytest.raises(LinkError, match=r"^the board computes with other weights") as e:
        link3.infer(image)
    assert "RESULT for another image or weight set (check 0x" in e.value.causes[0]


def test_result_with_other_weights_is_refused_in_one_line():
    link = HostLink(MemoryTransport(ReferenceBoard(_logits, weight_crc=5)), classes=3, weight_crc=6)
    with pytest.raises(LinkError, match=r"^the board computes with other weights: 4 intact RESULTs, none with the "
                                        r"check of this image and weight set \(0x[0-9A-F]{8}\); is it built from "
                                        r"this model\?$"):
        link.infer(np.ones(64, np.int64))


def test_foreign_weight_crc_after_a_load_reloads_once():
    """A board loaded with other words behind the host's back (its RESULT's weight CRC
    differs): the host reloads its words once, says so, and the result is accepted."""
    words = list(range(100, 110))
    board = ReferenceBoard(_logits, weight_words=10)
    notes = []
    link = HostLink(MemoryTransport(board), classes=3, notify=notes.append)
    link.load_weights(words, chunk=4)
    assert link.weight_crc == words_crc(words)
    # another host loads other words: the board is loaded, but not with ours
    board(encode_weights(0, [], 50))
    board(encode_weights(0, [7] * 10, 51))
    assert board.loaded and board.weights.tolist() == [7] * 10
    logits, _, _ = link.infer(np.ones(64, np.int64))
    assert logits.tolist() == _logits(np.ones(64, np.int64)) and board.weights.tolist() == words
    assert link.stats.weight_reloads == 1 and len(notes) == 1 and "holds other words" in notes[0]


def test_hello_info_round_trip_and_old_boards_refused():
    (f,) = decode_frames(encode_info(INFO, 4))
    assert (f.type, len(f.payload), decode_info(f.payload)) == (MsgType.INFO, 28, INFO)
    link = HostLink(MemoryTransport(ReferenceBoard(_logits, info=INFO)), classes=3)
    assert link.hello() == INFO
    # version 3 framing but no HELLO: BAD_TYPE
    with pytest.raises(OldBoardError, match=r"^the board does not know HELLO: it runs host-link protocol version 2 "
                                            r"or older; rebuild and reflash it"):
        HostLink(MemoryTransport(ReferenceBoard(_logits)), classes=3).hello()

    def v2_board(data):    # ERROR BAD_TYPE in version 2 framing (CRC-16, MSB first)
        body = bytes([0x82, data[2], 1, 0, 3])
        return bytes([0xA5]) + body + crc16(body).to_bytes(2, "big")
    link = HostLink(MemoryTransport(v2_board), classes=3)
    with pytest.raises(OldBoardError, match="version 2 or older; rebuild and reflash"):
        link.hello()
    assert link.stats.attempts == 0 and link.transport.written == encode_hello(1)   # one HELLO: no retries
    with pytest.raises(OldBoardError, match=r"^the board did not answer HELLO in 4 attempts: .* rebuild and "
                                            r"reflash it"):
        HostLink(MemoryTransport(lambda data: b""), classes=3).hello()
    newer = Info(6, *[getattr(INFO, k) for k in ("model_hash", "shape", "max_value", "classes", "lanes",
                                                 "clock_hz", "weight_words")])
    with pytest.raises(OldBoardError, match="protocol version 6, this spikeforge version 5"):
        HostLink(MemoryTransport(ReferenceBoard(_logits, info=newer)), classes=3).hello()


def test_model_hash_depends_on_the_weights_not_the_metadata():
    from spikeforge.cli import default_model_path
    from spikeforge.modelfile import load_model

    model = load_model(default_model_path())
    h = model_hash(model)
    assert len(h) == 8 and model_hash(model) == h
    model.metadata["note"] = "renamed"
    assert model_hash(model) == h
    node = next(n for n in model.nodes if n.tensors)
    name = sorted(node.tensors)[0]
    node.tensors[name] = np.asarray(node.tensors[name]).copy()
    node.tensors[name].flat[0] += 1
    assert model_hash(model) != h


def test_image_larger_than_1024_bytes():
    """32x32x3 = 3072 bytes in one IMAGE frame, through the codec and the board model; the
    image CRC covers all of it."""
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3))
    frame = encode_image(image, 5, pixels=3072, max_value=255)
    assert len(frame) == 5 + 3072 + 4 and frame[3:5] == (3072).to_bytes(2, "little")
    board = ReferenceBoard(lambda img: [int(img[:1024].sum()), int(img[2048:].sum())], pixels=3072, max_value=255)
    link = HostLink(MemoryTransport(board), classes=2, pixels=3072, max_value=255)
    logits, _, _ = link.infer(image)
    assert logits.tolist() == [int(image.reshape(-1)[:1024].sum()), int(image.reshape(-1)[2048:].sum())]
    with pytest.raises(ValueError, match=f"allowed: up to {MAX_IMAGE} bytes"):
        encode_image(np.zeros(MAX_IMAGE + 1, np.int64), pixels=MAX_IMAGE + 1, max_value=255)


def test_fuzz_with_images_larger_than_one_v2_frame():
    """The seeded fault run with 1,100-byte images (a model input above protocol version 2's
    1024-byte frames): nothing accepted wrong, nothing hung, every refusal one line."""
    r = fuzz(60, faults="mixed", rate=0.001, seed=3, pixels=1100)
    assert r["wrong"] == 0 and r["hung"] == 0 and r["refused_unclear"] == 0
    assert r["right"] + r["refused"] == 60 and r["right"] >= 30
