import os

from pty_board import serve_pty
import threading

import numpy as np
import pytest

from spikeforge.boards.hostlink import (
    ErrorCode, MsgType, argmax_lowest, crc32c, decode_frames, encode_error, encode_frame, encode_result, pack_pixels,
)
from spikeforge.boards.runtime import (
    HostLink, LinkError, MemoryTransport, ReferenceBoard, ResultMismatchError, SerialTransport, Transport,
)

WEIGHTS = np.random.default_rng(0).integers(-8, 8, (64, 10))


def golden_logits(image):
    return np.asarray(image).reshape(-1).astype(np.int64) @ WEIGHTS


def _images(n, seed=1):
    return np.random.default_rng(seed).integers(0, 17, (n, 8, 8))


class FaultyBoard:
    """Wraps a board model; each write consumes the next fault of ``faults`` (then "ok")."""

    def __init__(self, board, faults):
        self.board = board
        self.faults = list(faults)
        self.seen = []

    def __call__(self, data):
        fault = self.faults.pop(0) if self.faults else "ok"
        self.seen.append(fault)
        if fault == "corrupt_request":
            data = bytearray(data)
            data[20] ^= 0x04
            return self.board(bytes(data))
        reply = self.board(data)
        if fault == "drop":
            return b""
        if fault == "corrupt_reply":
            reply = bytearray(reply)
            reply[9] ^= 0x80
            return bytes(reply)
        if fault == "truncate":
            return reply[:10]
        if fault == "stale":
            return encode_result([99] * 10, 0, 1, seq=(reply[2] + 100) & 0xFF) + reply
        if fault == "busy":
            return encode_error(ErrorCode.BUSY, reply[2])
        return reply


def _link(faults=(), **kwargs):
    board = FaultyBoard(ReferenceBoard(golden_logits, cycles_fn=lambda img: int(img.sum())), faults)
    transport = MemoryTransport(board, latency=0.001)
    return HostLink(transport, timeout=0.5, **kwargs), board


def test_clean_inference_matches_python():
    link, _ = _link()
    for img in _images(5):
        logits, cls, cycles = link.infer(img)
        want = golden_logits(img)
        assert logits.tolist() == want.tolist()
        assert cls == int(np.argmax(want))
        assert cycles == int(img.sum())
    assert link.stats.succeeded == 5 and link.stats.retries == 0
    assert link.stats.latency()["max"] == pytest.approx(0.001)
    assert link.stats.throughput() == pytest.approx(1000.0)
    assert "5/5 ok" in link.stats.summary()


@pytest.mark.parametrize("fault,counter", [
    ("corrupt_request", lambda s: s.nacks[ErrorCode.BAD_CRC]),
    ("drop", lambda s: s.timeouts),
    ("corrupt_reply", lambda s: s.bad_replies),
    ("truncate", lambda s: s.timeouts),
    ("busy", lambda s: s.nacks[ErrorCode.BUSY]),
])
def test_retry_after_one_fault_succeeds(fault, counter):
    link, board = _link([fault])
    img = _images(1)[0]
    logits, cls, _ = link.infer(img)
    assert logits.tolist() == golden_logits(img).tolist()
    assert board.seen == [fault, "ok"]
    assert link.stats.retries == 1
    assert counter(link.stats) == 1


def test_corrupt_then_timeout_then_success():
    link, board = _link(["corrupt_request", "drop"], retries=2)
    img = _images(1, seed=5)[0]
    logits, _, _ = link.infer(img)
    assert logits.tolist() == golden_logits(img).tolist()
    assert board.seen == ["corrupt_request", "drop", "ok"]
    assert link.stats.timeouts == 1 and link.stats.nacks[ErrorCode.BAD_CRC] == 1
    assert link.stats.latencies[0] >= 0.5  # the timeout was waited for (virtual clock)


def test_stale_reply_with_other_seq_is_ignored():
    link, _ = _link(["stale"])
    img = _images(1, seed=2)[0]
    logits, _, _ = link.infer(img)
    assert logits.tolist() == golden_logits(img).tolist()
    assert link.stats.stale_replies == 1 and link.stats.retries == 0


def test_fails_clearly_after_retry_limit():
    link, board = _link(["corrupt_request", "drop", "corrupt_reply", "drop", "ok"], retries=3)
    with pytest.raises(LinkError, match="no valid result after 4 attempts") as info:
        link.infer(_images(1)[0])
    causes = info.value.causes
    assert len(causes) == 4
    assert "ERROR BAD_CRC" in causes[0]
    assert "no reply within 0.5 s" in causes[1]
    assert "corrupt reply: bad CRC" in causes[2]
    assert link.stats.failed == 1 and link.stats.succeeded == 0
    # the link still works afterwards
    img = _images(1, seed=9)[0]
    assert link.infer(img)[0].tolist() == golden_logits(img).tolist()


def test_each_attempt_uses_a_new_seq():
    link, board = _link(["drop", "drop"])
    link.infer(_images(1)[0])
    frames = decode_frames(bytes(link.transport.written))
    assert [f.type for f in frames] == [MsgType.IMAGE_LOGITS] * 3    # HostLink asks for the logits by default
    assert len({f.seq for f in frames}) == 3


def test_class_mismatch_is_reported():
    def bad_board(data):
        seq = decode_frames(data)[0].seq
        return encode_result([1, 5, 2], 0, 0, seq, check=crc32c(bytes(40)))   # 64 pixels 0: 40 bytes
    link = HostLink(MemoryTransport(bad_board), classes=3)
    with pytest.raises(ResultMismatchError, match="class 0 is not the argmax 1"):
        link.infer(np.zeros(64, np.int64))


def test_ties_go_to_lowest_index():
    link = HostLink(MemoryTransport(ReferenceBoard(lambda img: [3, 7, 7, 1])), classes=4)
    assert link.infer(np.zeros((8, 8), np.int64))[1] == 1
    assert argmax_lowest([-1, -1]) == 0


def test_board_rejects_bad_requests():
    board = ReferenceBoard(golden_logits)
    replies = decode_frames(board(encode_frame(MsgType.IMAGE, 4, bytes(39)) + encode_frame(0x77, 5, b"")
                                  + encode_frame(MsgType.IMAGE, 6, pack_pixels([17] * 64, 5))))
    assert [(f.type, f.seq, f.payload[0]) for f in replies] == [
        (MsgType.ERROR, 4, ErrorCode.BAD_LENGTH), (MsgType.ERROR, 5, ErrorCode.BAD_TYPE),
        (MsgType.ERROR, 6, ErrorCode.BAD_VALUE)]


def test_parameter_and_image_checks():
    link, _ = _link()
    with pytest.raises(ValueError, match="pixel 3 is 17; allowed: 0..16"):
        link.infer(np.array([0, 0, 0, 17] + [0] * 60))
    with pytest.raises(ValueError, match="image has 63 pixels"):
        link.infer(np.zeros(63, np.int64))
    with pytest.raises(ValueError, match="retries is -1; allowed: an integer 0..1000"):
        HostLink(link.transport, retries=-1)
    with pytest.raises(ValueError, match="timeout is 0; allowed"):
        HostLink(link.transport, timeout=0)
    with pytest.raises(TypeError, match="transport must be a Transport"):
        HostLink(object())


# --- serial transport over a pseudo terminal ------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX pty")
def test_serial_transport_over_pty():
    master, slave = os.openpty()
    path = os.ttyname(slave)
    board = ReferenceBoard(golden_logits, cycles_fn=lambda img: 1234)
    stop = threading.Event()

    thread = threading.Thread(target=serve_pty, args=(master, board, stop), daemon=True)
    thread.start()
    try:
        with SerialTransport(path, 115200) as transport:
            assert isinstance(transport, Transport)
            link = HostLink(transport, timeout=2.0)
            for img in _images(3, seed=4):
                logits, cls, cycles = link.infer(img)
                assert logits.tolist() == golden_logits(img).tolist()
                assert (cls, cycles) == (int(np.argmax(golden_logits(img))), 1234)
            assert transport.read(10, 0.01) == b""
    finally:
        stop.set()
        thread.join()
        os.close(master)
        os.close(slave)


def test_serial_transport_errors():
    with pytest.raises(ValueError, match="baud 12345 is not supported here; allowed: .*115200"):
        SerialTransport("/dev/null", 12345)
    with pytest.raises(OSError, match="cannot open /nonexistent/tty"):
        SerialTransport("/nonexistent/tty", 115200)
    with pytest.raises(OSError, match="not a serial port"):
        SerialTransport("/dev/null", 115200)
