"""Protocol version 4 on the host side: pixels packed at their bit width, RESULTs as large as
needed (the class; the logits at their width only when asked), INFO's pixel bits, logit bits
and window, version 3 boards refused, several requests in flight (docs/hostlink.md)."""

import numpy as np
import pytest

from spikeforge.boards.faults import FaultyTransport, LinearBoard, LinkHung, request_bound
from spikeforge.boards.hostlink import (
    VERSION, ErrorCode, FrameError, Info, MsgType, decode_frames, decode_image, decode_info, decode_result,
    encode_error, encode_frame, encode_image, encode_info, encode_result, image_payload_length,
    link_bound_images_per_second, pack_pixels, pixel_bits, result_check, unpack_pixels,
)
from spikeforge.boards.runtime import (
    HostLink, LinkError, MemoryTransport, OldBoardError, ReferenceBoard, ResultMismatchError, VirtualClock,
)

INFO = Info(VERSION, bytes(range(8)), (8, 8, 1), 16, 3, 4, 25_000_000, 0, 5, 9, 2)


def _logits(image):
    return [int(image.sum()), int(image[:8].sum()), 5]


@pytest.mark.parametrize("max_value,bits", [(1, 1), (3, 2), (16, 5), (100, 7), (255, 8)])
def test_pixels_packed_least_significant_bit_first(max_value, bits):
    assert pixel_bits(max_value) == bits
    rng = np.random.default_rng(bits)
    for n in (1, 7, 64, 101):
        v = rng.integers(0, max_value + 1, n)
        payload = pack_pixels(v, bits)
        assert len(payload) == image_payload_length(n, max_value) == -(-n * bits // 8)
        assert unpack_pixels(payload, n, bits).tolist() == v.tolist()
        # pixel i is bits i*b .. i*b + b - 1 of the payload as one little-endian number
        whole = int.from_bytes(payload, "little")
        assert [(whole >> (i * bits)) & ((1 << bits) - 1) for i in range(n)] == v.tolist()
        assert whole >> (n * bits) == 0                      # padding bits 0
    assert len(encode_image(np.full(64, 16), 1)) == 5 + 40 + 4   # 8x8 digits: 40 bytes, not 64
    with pytest.raises(FrameError, match="above max_value 16"):
        decode_image(pack_pixels([17] + [0] * 63, 5))


def test_result_carries_the_logits_only_when_asked_at_their_width():
    short = decode_frames(encode_result([3, -300, 7], 2, 99, 4, check=7, logit_bits=9, with_logits=False))[0]
    long = decode_frames(encode_result([3, -300, 7], 2, 99, 4, check=7, logit_bits=9))[0]
    assert len(short.payload) == 9 and len(long.payload) == 9 + 3 * 2
    r = decode_result(long.payload, classes=3, logit_bits=9, logits=True)
    assert (r.logits, r.cls, r.cycles, r.check) == ((3, -300, 7), 2, 99, 7)
    assert decode_result(short.payload, classes=3, logit_bits=9).logits is None
    with pytest.raises(FrameError, match="expected 9 \\+ 2\\*K"):
        decode_result(short.payload, classes=3, logit_bits=9, logits=True)
    with pytest.raises(FrameError, match="expected 9$"):
        decode_result(long.payload, classes=3, logit_bits=9, logits=False)
    with pytest.raises(ValueError, match="logit 1 is -300; allowed: signed 8-bit"):
        encode_result([3, -300, 7], 2, 99, logit_bits=8)
    # a 10-class request and reply at 3 Mbaud: 49 and 18 bytes (version 3: 73 and 58)
    assert link_bound_images_per_second(3e6, 64, 10) == pytest.approx(3e5 / (49 + 18))
    assert link_bound_images_per_second(3e6, 64, 10, window=2) == pytest.approx(3e5 / 49)


def test_host_asks_for_the_logits_or_not_and_checks_the_class():
    board = ReferenceBoard(_logits, logit_bits=16)
    link = HostLink(MemoryTransport(board), classes=3, logits=False, logit_bits=16)
    image = np.arange(64) % 17
    logits, cls, _ = link.infer(image)
    assert logits is None and cls == 0
    assert decode_frames(bytes(link.transport.written))[0].type == MsgType.IMAGE
    link.logits = True
    assert link.infer(image)[0].tolist() == _logits(image)

    def out_of_range(data):       # an intact RESULT for this image whose class is no class
        (f,) = decode_frames(data)
        return encode_result([0, 0, 0], 7, 0, f.seq, check=result_check(f.payload, 0), with_logits=False)
    with pytest.raises(ResultMismatchError, match="board class 7 is not one of the 3 classes"):
        HostLink(MemoryTransport(out_of_range), classes=3, logits=False).infer(image)


def test_info_v4_round_trip_and_a_version_3_board_refused_in_one_line():
    (f,) = decode_frames(encode_info(INFO, 4))
    assert len(f.payload) == 28 and decode_info(f.payload) == INFO
    link = HostLink(MemoryTransport(ReferenceBoard(_logits, info=INFO)), classes=3, window=4)
    assert link.hello() == INFO and (link.logit_bits, link.window) == (9, 2)   # the board's window caps it

    def v3_board(data):           # a version 3 board answers HELLO with a 25-byte INFO
        return encode_frame(MsgType.INFO, data[2], encode_info(Info(3, *list(INFO.__dict__.values())[1:8]))[5:30])
    with pytest.raises(OldBoardError, match=r"^the board speaks host-link protocol version 3, this spikeforge "
                                            r"version 5: rebuild and reflash the board with it \(spikeforge build, "
                                            r"then spikeforge flash\)$"):
        HostLink(MemoryTransport(v3_board), classes=3).hello()


class _Nack:
    """Answers the ``at``-th IMAGE frame (counted from 1) with ERROR ``code``, all others as the
    board does."""

    def __init__(self, board, at, code=ErrorCode.BUSY):
        self.board, self.at, self.code, self.n = board, set(at), code, 0

    def __call__(self, data):
        out = b""
        for f in decode_frames(data):
            raw = encode_frame(f.type, f.seq, f.payload)
            if f.type in (MsgType.IMAGE, MsgType.IMAGE_LOGITS):
                self.n += 1
                if self.n in self.at:
                    out += encode_error(self.code, f.seq)
                    continue
            out += self.board(raw)
        return out


def test_window_keeps_requests_in_flight_and_recovers_from_a_nack():
    images = [np.full(64, k % 17) for k in range(10)]
    board = ReferenceBoard(_logits)
    link = HostLink(MemoryTransport(_Nack(board, at=[3])), classes=3, window=4)
    writes = []
    inner = link.transport.write
    link.transport.write = lambda data: (writes.append(len(decode_frames(data))), inner(data))
    logits, cls, _ = link.infer_many(images)
    assert logits.tolist() == [_logits(im) for im in images]
    # the third request's NACK stops the window: it and the one behind it go one at a time
    assert link.stats.requests == 10 and link.stats.succeeded == 10
    assert link.stats.nacks == {ErrorCode.BUSY: 1} and link.stats.attempts == 12
    assert len(board.images) == 11              # the NACKed one never reached the accelerator
    # without a window: one request, one reply
    one = HostLink(MemoryTransport(ReferenceBoard(_logits)), classes=3)
    assert one.infer_many(images)[0].tolist() == logits.tolist() and one.stats.attempts == 10


def test_window_under_line_faults_accepts_nothing_wrong():
    """Several requests in flight over a line with 1 % faulty bytes (flips, drops, duplicates,
    inserts) to the board model whose logits come from its weights: every answer accepted is
    the true one; a refused request is a one-line LinkError; nothing waits past its bound."""
    rng = np.random.default_rng(5)
    clock = VirtualClock()
    board = LinearBoard(clock=clock, byte_timeout=4 * 10 / 115200)
    true_w = rng.integers(-8, 8, (64, 10))
    mem = MemoryTransport(board, clock=clock)
    line = FaultyTransport(mem, rate=0.01, faults="mixed", seed=6)
    link = HostLink(mem, timeout=1.0, settle=0.02, window=4, notify=lambda line: None)
    link.load_weights((true_w.reshape(-1) & 0xFFFF).tolist(), chunk=64)    # over a clean line
    link.transport = line
    right = wrong = refused = 0
    for _ in range(40):
        images = rng.integers(0, 17, (8, 64))
        want = images @ true_w
        got = {}
        line.hang_after = link._clock() + 8 * request_bound(link, 640) + 1
        try:
            link.infer_many(images, progress=lambda i, answer, got=got: got.__setitem__(i, answer[0]))
        except LinkError as e:
            assert "\n" not in str(e)
            refused += 1
        except LinkHung:
            pytest.fail("a windowed batch waited past its bound")
        for i, logits in got.items():
            if np.array_equal(logits, want[i]):
                right += 1
            else:
                wrong += 1
    # a refused request ends its batch of 8 (infer_many raises): about a third are never sent
    assert wrong == 0 and right >= 100 and refused >= 5 and sum(line.injected.values()) > 100


class _Computing(MemoryTransport):
    """The board's replies as a board that computes sends them: an ERROR (the frame is NACKed
    as it ends) at once, a RESULT only when the host reads (one per read), so that a NACK of a
    younger request comes before the RESULTs of the images ahead of it."""

    def __init__(self, board):
        super().__init__(board)
        self.held = []

    def write(self, data):
        before = len(self._rx)
        super().write(data)
        replies = decode_frames(bytes(self._rx[before:]))
        del self._rx[before:]
        for f in replies:
            raw = encode_frame(f.type, f.seq, f.payload)
            if f.type == MsgType.ERROR:
                self._rx += raw
            else:
                self.held.append(raw)

    def read(self, size, timeout):
        if not self._rx and self.held:
            self._rx += self.held.pop(0)
        return super().read(size, timeout)


def test_window_takes_a_nack_that_overtakes_the_results_ahead_of_it():
    images = [np.full(64, k % 17) for k in range(10)]
    board = ReferenceBoard(_logits)
    link = HostLink(_Computing(_Nack(board, at=[3])), classes=3, window=4)
    logits, _, _ = link.infer_many(images)
    assert logits.tolist() == [_logits(im) for im in images]
    assert link.stats.nacks == {ErrorCode.BUSY: 1} and link.stats.succeeded == 10
    # the two images ahead of the NACKed one were accepted from the window, not sent again
    sent = [int(im[0]) for im in board.images]
    assert sent.count(0) == 1 and sent.count(1) == 1 and sent.count(2) == 1
