"""Protocol v2 weight loading on the host side: the WEIGHTS / LOADED codec, the board model
(:class:`ReferenceBoard` with ``weight_words``) and :meth:`HostLink.load_weights` over a
:class:`MemoryTransport` with injected faults."""

import numpy as np
import pytest

from spikeforge.boards.hostlink import (
    MAX_WEIGHT_WORDS, ErrorCode, FrameError, Loaded, MsgType, decode_error, decode_frames, decode_loaded,
    decode_weights, encode_frame, encode_image, encode_loaded, encode_weights, words_crc,
)
from spikeforge.boards.runtime import HostLink, LinkError, LoadSummary, MemoryTransport, ReferenceBoard

WORDS = 700


def _words(n=WORDS, seed=0):
    return np.random.default_rng(seed).integers(0, 1 << 16, n)


def _logits(image):
    return np.arange(10) + int(np.asarray(image).sum())


class FaultyBoard:
    """Each write consumes the next fault (then "ok"): "corrupt_request" flips a bit of the
    last payload byte, "lose_request" loses the request, "drop" loses the reply,
    "corrupt_reply" flips a bit of the reply, "offset" changes the offset of a WEIGHTS frame
    (with a valid CRC: as if the host had asked for the wrong place)."""

    def __init__(self, board, faults):
        self.board = board
        self.faults = list(faults)
        self.seen = []

    def __call__(self, data):
        fault = self.faults.pop(0) if self.faults else "ok"
        frame = decode_frames(data)[0]
        self.seen.append((fault, frame.type, frame.seq))
        if fault == "lose_request":
            return b""
        if fault == "corrupt_request":
            data = bytearray(data)
            data[-3] ^= 0x10
            data = bytes(data)
        elif fault == "offset":
            offset, words = decode_weights(frame.payload)
            data = encode_weights(offset + 1, words, frame.seq)
        reply = self.board(data)
        if fault == "drop":
            return b""
        if fault == "corrupt_reply":
            reply = bytearray(reply)
            reply[6] ^= 0x01
            return bytes(reply)
        return reply


def _link(faults=(), weight_words=WORDS, **kwargs):
    board = FaultyBoard(ReferenceBoard(_logits, weight_words=weight_words), faults)
    return HostLink(MemoryTransport(board, latency=0.001), timeout=0.5, **kwargs), board


def _sent_weights(link):
    """(offset, n) of every WEIGHTS frame the host sent, in order."""
    frames = decode_frames(bytes(link.transport.written))
    return [(o, len(w)) for o, w in (decode_weights(f.payload) for f in frames if f.type == MsgType.WEIGHTS)]


# --- codec ---------------------------------------------------------------------------------

def test_weights_and_loaded_codec_round_trip():
    frame = encode_weights(0x561234, [0, 1, 0xFFFF, 0xA5A5], seq=9)
    assert frame[1:5] == bytes([MsgType.WEIGHTS, 9, 12, 0])
    assert frame[5:9] == bytes([0x34, 0x12, 0x56, 0])     # offset (u32, version 5), little-endian
    assert frame[9:17] == bytes([0, 0, 1, 0, 0xFF, 0xFF, 0xA5, 0xA5])
    (f,) = decode_frames(frame)
    assert decode_weights(f.payload) == (0x561234, [0, 1, 0xFFFF, 0xA5A5])
    assert decode_frames(encode_weights(0, [], seq=3))[0].payload == b"\0\0\0\0"
    assert len(encode_weights(0, [7] * MAX_WEIGHT_WORDS)) == 5 + 1024 + 4 and MAX_WEIGHT_WORDS == 510
    (g,) = decode_frames(encode_loaded(0x014504, True, seq=200, weight_crc=0x11223344))
    assert (g.type, g.seq, g.payload) == (MsgType.LOADED, 200, bytes([0x44, 0x33, 0x22, 0x11, 0x04, 0x45, 1, 0, 1]))
    assert decode_loaded(g.payload) == Loaded(0x014504, True, 0x11223344)
    assert ErrorCode(7).name == "NOT_LOADED" and ErrorCode(8).name == "BAD_OFFSET"


def test_weights_codec_rejects():
    with pytest.raises(ValueError, match="511 words; allowed: at most 510"):
        encode_weights(0, [0] * 511)
    with pytest.raises(ValueError, match="word 2 is 65536; allowed: an integer 0..65535"):
        encode_weights(0, [1, 2, 65536])
    with pytest.raises(ValueError, match="offset is 5 with no words; allowed: 0"):
        encode_weights(5, [])
    for payload in (b"", b"\0", b"\0\0", b"\0\0\0", b"\0\0\0\0\0"):
        with pytest.raises(FrameError, match=f"WEIGHTS payload is {len(payload)} bytes") as info:
            decode_weights(payload)
        assert info.value.code == ErrorCode.BAD_LENGTH
    with pytest.raises(FrameError, match="LOADED payload is 2 bytes"):
        decode_loaded(b"\0\0")
    with pytest.raises(FrameError, match="LOADED flag is 2"):
        decode_loaded(b"\0\0\0\0\0\0\0\0\2")


# --- board model ---------------------------------------------------------------------------

def _replies(board, data):
    out = []
    for f in decode_frames(board(data)):
        if f.type == MsgType.LOADED:
            d = decode_loaded(f.payload)
            assert d.weight_crc == words_crc(board.weights[:d.next_word])
            out.append((f.seq, Loaded(d.next_word, d.loaded)))
        else:
            out.append((f.seq, decode_error(f.payload)))
    return out


def test_reference_board_checks_in_order():
    board = ReferenceBoard(_logits, weight_words=10)
    assert _replies(board, encode_image(np.zeros(64, np.int64), 1)) == [(1, ErrorCode.NOT_LOADED)]
    assert _replies(board, encode_weights(0, [1, 2, 3], 2)) == [(2, Loaded(3, False))]
    assert _replies(board, encode_weights(0, [9], 3)) == [(3, ErrorCode.BAD_OFFSET)]     # offset != next_word
    assert _replies(board, encode_weights(4, [9], 4)) == [(4, ErrorCode.BAD_OFFSET)]
    assert _replies(board, encode_weights(3, [5] * 8, 5)) == [(5, ErrorCode.BAD_LENGTH)]  # 3 + 8 > 10
    assert _replies(board, encode_frame(MsgType.WEIGHTS, 6, bytes(5))) == [(6, ErrorCode.BAD_LENGTH)]
    assert _replies(board, encode_frame(MsgType.WEIGHTS, 7, b"\1\0\0\0")) == [(7, ErrorCode.BAD_OFFSET)]
    assert board.weights.tolist() == [1, 2, 3] + [0] * 7 and board.next_word == 3
    assert _replies(board, encode_weights(3, list(range(7)), 8)) == [(8, Loaded(10, True))]
    assert board.loaded and board.weights.tolist() == [1, 2, 3, 0, 1, 2, 3, 4, 5, 6]
    (result,) = decode_frames(board(encode_image(np.ones(64, np.int64), 9)))
    assert (result.type, result.seq) == (MsgType.RESULT, 9)
    assert _replies(board, encode_weights(0, [], 10)) == [(10, Loaded(0, False))]          # begin load
    assert not board.loaded and board.next_word == 0
    assert _replies(board, encode_image(np.zeros(64, np.int64), 11)) == [(11, ErrorCode.NOT_LOADED)]


def test_board_without_weights_answers_bad_type():
    board = ReferenceBoard(_logits)
    assert _replies(board, encode_weights(0, [], 1)) == [(1, ErrorCode.BAD_TYPE)]
    with pytest.raises(ValueError, match="weight_words is -1; allowed: an integer 0..16777215"):
        ReferenceBoard(_logits, weight_words=-1)


# --- HostLink.load_weights -----------------------------------------------------------------

def test_clean_load_with_progress():
    link, board = _link()
    words = _words()
    calls = []
    summary = link.load_weights(words, chunk=256, progress=lambda done, total: calls.append((done, total)))
    assert board.board.weights.tolist() == words.tolist() and board.board.loaded
    assert calls == [(0, WORDS), (256, WORDS), (512, WORDS), (WORDS, WORDS)]
    assert _sent_weights(link) == [(0, 0), (0, 256), (256, 256), (512, 188)]
    assert summary == LoadSummary(words=WORDS, frames=4, retries=0, restarts=0, seconds=pytest.approx(0.004))
    assert link.stats.weight_frames == 4 and link.stats.weight_loads == 1
    assert "1 weight loads in 4 WEIGHTS frames" in link.stats.summary()
    logits, _, _ = link.infer(np.ones(64, np.int64))
    assert logits.tolist() == (np.arange(10) + 64).tolist()


def test_load_retries_corrupted_and_dropped_replies():
    faults = ["drop",             # begin load: reply lost; sent again (harmless)
              "ok",               # begin load
              "ok",               # words 0..99
              "corrupt_request",  # words 100..199: BAD_CRC, nothing committed; sent again
              "ok",
              "drop",             # words 200..299 committed, reply lost: the board may be at 300
              "ok",               # so words 300..399 go next: accepted (the board was at 300)
              "lose_request",     # words 400..499 lost on the way: the board may be at 400 or 500
              "ok",               # words 500..599 tried first: BAD_OFFSET (the board is at 400)
              "ok",               # words 400..499 again
              "corrupt_reply",    # words 500..599 committed, reply corrupted
              "ok"]               # words 600..699: accepted, loaded
    link, board = _link(faults)
    words = _words(seed=1)
    summary = link.load_weights(words, chunk=100)
    assert board.board.weights.tolist() == words.tolist() and board.board.loaded
    assert _sent_weights(link) == [(0, 0), (0, 0), (0, 100), (100, 100), (100, 100), (200, 100), (300, 100),
                                   (400, 100), (500, 100), (400, 100), (500, 100), (600, 100)]
    assert board.faults == []
    assert summary.frames == 12 and summary.retries == 6 and summary.restarts == 0
    assert link.stats.nacks == {ErrorCode.BAD_CRC: 1, ErrorCode.BAD_OFFSET: 1}
    assert link.stats.timeouts == 3 and link.stats.bad_replies == 1
    seqs = [seq for _, _, seq in board.seen]
    assert len(set(seqs)) == len(seqs)   # a new seq for every attempt


def test_bad_offset_with_no_other_place_starts_over():
    # BAD_OFFSET where the host knows the board's next_word: a corrupted offset (or a board
    # reset under way); the host cannot tell where the board is and loads again
    link, board = _link(["ok", "offset"])
    words = _words(seed=2)
    calls = []
    summary = link.load_weights(words, chunk=350, progress=lambda d, t: calls.append(d))
    assert _sent_weights(link) == [(0, 0), (0, 350), (0, 0), (0, 350), (350, 350)]
    assert [f for f, _, _ in board.seen] == ["ok", "offset", "ok", "ok", "ok"]
    assert summary == LoadSummary(words=WORDS, frames=5, retries=1, restarts=1,
                                  seconds=pytest.approx(link.transport.clock()))
    assert summary.seconds >= 0.005 + 0.02 - 1e-9   # 5 writes and the settle time after the failed one
    assert calls == [0, 0, 350, WORDS]
    assert board.board.weights.tolist() == words.tolist() and board.board.loaded


def test_lost_reply_of_last_chunk_starts_over():
    # the last chunk is committed but its reply lost: its resend gets BAD_OFFSET and nothing
    # tells the host that the board is loaded, so it loads again from the start
    link, board = _link(["ok", "ok", "drop"])
    words = _words(seed=3)
    calls = []
    summary = link.load_weights(words, chunk=500, progress=lambda d, t: calls.append(d))
    assert summary.restarts == 1 and summary.frames == 4 + 3 and summary.retries == 2
    assert calls == [0, 500, 0, 500, WORDS]
    assert board.board.weights.tolist() == words.tolist() and board.board.loaded


def test_load_fails_clearly_after_retry_limit():
    link, board = _link(["ok", "ok", "corrupt_request", "drop", "corrupt_request", "corrupt_request", "ok"],
                        retries=3)
    with pytest.raises(LinkError, match="weight load: no progress after 4 attempts") as info:
        link.load_weights(_words(seed=4), chunk=300)
    causes = info.value.causes
    assert len(causes) == 4
    assert causes[0].startswith("words 300..599 (seq ") and causes[0].endswith("board answered ERROR BAD_CRC")
    assert causes[1].endswith("no reply within 0.5 s")
    assert causes[2].startswith("words 600..699")      # chunk 1 may have been committed by the lost attempt
    assert causes[3].startswith("words 600..699") and "BAD_CRC" in causes[3]
    assert not board.board.loaded


def test_infer_before_loading_says_load_weights():
    link, board = _link()
    with pytest.raises(LinkError, match="weights are not loaded; call HostLink.load_weights") as info:
        link.infer(np.zeros(64, np.int64))
    assert len(info.value.causes) == 1 and "NOT_LOADED" in info.value.causes[0]
    assert len(board.seen) == 1                       # not retried
    assert link.stats.failed == 1 and link.stats.nacks == {ErrorCode.NOT_LOADED: 1}


def test_mismatched_board_sizes():
    link, _ = _link(weight_words=WORDS + 1)
    with pytest.raises(LinkError, match=f"not loaded after all {WORDS} words: it expects more"):
        link.load_weights(_words())
    link, _ = _link(weight_words=300)
    with pytest.raises(LinkError, match=f"board is loaded after 300 of {WORDS} words"):
        link.load_weights(_words(), chunk=300)
    link, _ = _link(weight_words=0, retries=1)
    with pytest.raises(LinkError, match="BAD_TYPE \\(a board built without loadable weights"):
        link.load_weights(_words())


def test_load_weights_validation():
    link, board = _link()
    with pytest.raises(ValueError, match="word 3 is 65536; allowed: an integer 0..65535"):
        link.load_weights([0, 1, 2, 65536])
    with pytest.raises(ValueError, match="word 1 is -1; allowed: an integer 0..65535 \\(a signed weight"):
        link.load_weights(np.array([5, -1, 3]))
    with pytest.raises(ValueError, match="word 0 is 1.5"):
        link.load_weights([1.5])
    with pytest.raises(ValueError, match="word 2 is True"):
        link.load_weights([1, 2, True])
    with pytest.raises(ValueError, match="0 words; allowed: 1..16777215"):
        link.load_weights([])
    with pytest.raises(ValueError, match="shape \\(2, 2\\); allowed: one dimension"):
        link.load_weights(np.zeros((2, 2), np.int64))
    with pytest.raises(TypeError, match="words must be a sequence or array of integers, not int"):
        link.load_weights(7)
    with pytest.raises(ValueError, match="chunk is 511; allowed: an integer 1..510"):
        link.load_weights([1], chunk=511)
    with pytest.raises(TypeError, match="progress must be callable"):
        link.load_weights([1], progress=3)
    assert board.seen == []                           # nothing was sent
