"""Protocol version 5 on the host side: WEIGHTS offsets and LOADED's next_word as u32 (a model
in the ULX3S's SDRAM has more than 65,535 words), INFO's weight words (u24) and read-back flag
in the 28 bytes of version 4 (so each version refuses the other by its version byte), and
VERIFY / VERIFIED: the board reads the loaded words back and the host compares their CRC-32C
with its own (docs/hostlink.md)."""

import numpy as np
import pytest

from spikeforge.boards.hostlink import (
    INFO_PAYLOAD, MAX_LOAD_WORDS, VERSION, FrameError, Info, MsgType, Verified, decode_frames, decode_info,
    decode_verified, encode_info, encode_verified, encode_verify, words_crc,
)
from spikeforge.boards.runtime import (
    HostLink, LinkError, MemoryTransport, OldBoardError, ReferenceBoard, VirtualClock, WeightVerifyError,
)

INFO = Info(VERSION, bytes(range(8)), (8, 8, 1), 16, 3, 4, 50_000_000, 600_000, 5, 9, 2, 1)


def _logits(image):
    return [int(image.sum()), 1, 2]


def _words(n, seed=0):
    return np.random.default_rng(seed).integers(0, 1 << 16, n).tolist()


def test_info_v5_layout_and_round_trip():
    """Weight words above 65,535 (u24), the read-back flag and the window with the pixel and
    logit bits, in 28 bytes."""
    (f,) = decode_frames(encode_info(INFO, 3))
    assert len(f.payload) == INFO_PAYLOAD == 28 and decode_info(f.payload) == INFO
    assert f.payload[0] == 5 and f.payload[23:26] == (600_000).to_bytes(3, "little")
    assert f.payload[26] == 5 | 2 << 4 and f.payload[27] == 9 | 1 << 7
    big = Info(VERSION, bytes(8), (8, 8, 1), 16, 3, 4, 1, MAX_LOAD_WORDS, 8, 32, 15, 0)
    assert decode_info(decode_frames(encode_info(big))[0].payload) == big
    with pytest.raises(ValueError, match="weight_words is 16777216; allowed: an integer 0..16777215"):
        encode_info(Info(VERSION, bytes(8), (8, 8, 1), 16, 3, 4, 1, 1 << 24))


def test_version_4_board_refused_and_a_version_4_host_reads_the_version():
    """A version 4 board's INFO (weight words u16 in the old layout) is refused in one line
    naming both versions; a version 5 INFO read with the version 4 layout (what a version 4
    host does: same length, version first) still shows version 5, so that host refuses it."""
    old = Info(4, bytes(range(8)), (8, 8, 1), 16, 3, 4, 25_000_000, 3992, 5, 9, 1)
    payload = decode_frames(encode_info(old))[0].payload
    assert len(payload) == 28 and decode_info(payload) == old
    with pytest.raises(OldBoardError, match=r"^the board speaks host-link protocol version 4, this spikeforge "
                                            r"version 5: rebuild and reflash the board with it"):
        HostLink(MemoryTransport(ReferenceBoard(_logits, info=old)), classes=3).hello()
    v5 = decode_frames(encode_info(INFO))[0].payload
    assert len(v5) == 28 and v5[0] == 5


def test_verified_codec():
    (f,) = decode_frames(encode_verified(0xDEADBEEF, 600_000, seq=9))
    assert (f.type, f.seq) == (MsgType.VERIFIED, 9)
    assert f.payload == bytes.fromhex("efbeadde") + (600_000).to_bytes(4, "little")
    assert decode_verified(f.payload) == Verified(0xDEADBEEF, 600_000)
    (g,) = decode_frames(encode_verify(4))
    assert (g.type, g.seq, g.payload) == (MsgType.VERIFY, 4, b"")
    with pytest.raises(FrameError, match="VERIFIED payload is 7 bytes; expected 8"):
        decode_verified(bytes(7))


def _board(n, **kw):
    info = Info(VERSION, bytes(8), (8, 8, 1), 16, 3, 1, 50_000_000, n, 5, 32, 1, int(kw.get("readback", True)))
    return ReferenceBoard(_logits, weight_words=n, info=info, **kw)


def test_load_above_16_bits_then_read_back():
    """70,000 words (past the old u16 offsets) load with u32 offsets; the host, told by INFO
    that the board reads back, sends VERIFY after the last frame and the CRCs match."""
    n = 70_000
    words = _words(n, 1)
    board = _board(n, readback=True)
    link = HostLink(MemoryTransport(board, clock=VirtualClock()), classes=3)
    assert link.hello().readback == 1 and link.readback
    summary = link.load_weights(words, chunk=510)
    assert summary.verified == words_crc(words) and link.stats.weight_verifies == 1
    assert board.weights.tolist() == words and board.loaded


def test_corrupted_word_fails_the_read_back_with_a_clear_error():
    """A word changed in the board's memory after the load (a faulty SDRAM): VERIFY's CRC is
    not the host's; the error names both CRCs and both word counts, in one line."""
    words = _words(300, 2)
    board = _board(300, readback=True)
    link = HostLink(MemoryTransport(board, clock=VirtualClock()), classes=3)
    link.hello()
    link.load_weights(words)
    board.weights[123] ^= 0x0400
    bad = list(words)
    bad[123] ^= 0x0400
    with pytest.raises(WeightVerifyError) as info:
        link.verify_weights()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"weight read-back mismatch: the board read 300 words back with CRC-32C "
                          f"0x{words_crc(bad):08X}; the host sent 300 words with CRC-32C 0x{words_crc(words):08X}")
    assert (info.value.read_crc, info.value.expected_crc) == (words_crc(bad), words_crc(words))


def test_no_read_back_on_a_board_without_it():
    """A board whose INFO has read-back 0 (the iCEBreaker's SPRAM) gets no VERIFY (its LOADED
    CRCs are the check); forcing one gives a LinkError naming BAD_TYPE."""
    words = _words(50, 3)
    board = _board(50, readback=False)
    link = HostLink(MemoryTransport(board, clock=VirtualClock()), classes=3, retries=1)
    assert link.hello().readback == 0
    assert link.load_weights(words).verified is None and link.stats.weight_verifies == 0
    with pytest.raises(LinkError, match="VERIFY failed 2 times: .*BAD_TYPE.*answers VERIFY with BAD_TYPE"):
        link.verify_weights()
    with pytest.raises(TypeError, match="verify is 1; allowed: None, True or False"):
        link.load_weights(words, verify=1)
