"""Issue 24 on the host side: every wait of the host runtime has a deadline (a babbling line
ends in one line, a serial port that takes nothing ends in TimeoutError), and a board that
loses its weights mid-run gets them back once, by the host, with every result right."""

import os
import time

import numpy as np
import pytest

from spikeforge.boards.hostlink import encode_result
from spikeforge.boards.runtime import (
    HostLink, LinkError, MemoryTransport, ReferenceBoard, SerialTransport, Transport, VirtualClock,
)

CLASSES, PIXELS = 10, 64
TRUE_WEIGHTS = np.random.default_rng(3).integers(-8, 8, (PIXELS, CLASSES))


def _images(n, seed=1):
    return np.random.default_rng(seed).integers(0, 17, (n, PIXELS))


class BabbleTransport(Transport):
    """A line that never goes quiet: every read returns random bytes at about 115200 baud
    (real time). A read after ``give_up`` seconds fails the test instead of hanging it."""

    def __init__(self, give_up):
        self.rng = np.random.default_rng(0)
        self.give_up = time.monotonic() + give_up

    def write(self, data):
        pass

    def read(self, size, timeout):
        if time.monotonic() > self.give_up:
            raise AssertionError("HostLink still reads a babbling line long after its deadline")
        n = min(size, 32)
        time.sleep(n * 10 / 115200)
        return self.rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def test_babbling_line_gives_one_line_link_error_within_the_bound():
    timeout, settle, retries = 0.2, 0.05, 2
    bound = (retries + 1) * (timeout + settle) + 1.0
    link = HostLink(BabbleTransport(give_up=bound + 2), timeout=timeout, settle=settle, retries=retries)
    t0 = time.monotonic()
    with pytest.raises(LinkError) as info:
        link.infer(_images(1)[0])
    elapsed = time.monotonic() - t0
    message = str(info.value)
    assert elapsed <= bound, f"{elapsed:.2f} s > {bound:.2f} s"
    assert "\n" not in message
    assert message.startswith("the link is babbling: ") and " bytes in " in message
    assert "without a valid frame; is the transport's other end the board?" in message
    assert len(info.value.causes) == retries + 1
    assert link.stats.drain_cutoffs >= 1


class StaleRepeater(Transport):
    """A board stuck sending the same (valid) RESULT of another seq, on a virtual clock."""

    def __init__(self):
        self.clock = VirtualClock()
        self.frame = encode_result([0] * CLASSES, 0, 0, seq=200)

    def write(self, data):
        pass

    def read(self, size, timeout):
        self.clock.advance(len(self.frame) * 10 / 115200)
        return self.frame


def test_line_full_of_stale_frames_is_babbling_too():
    link = HostLink(StaleRepeater(), timeout=1.0, settle=0.02, retries=3)
    with pytest.raises(LinkError, match=r"^the link is babbling: [\d,]+ bytes in [\d.]+ s with \d+ valid "
                                        r"frames but no answer to the request") as info:
        link.infer(_images(1)[0])
    # this transport's read spends a whole frame time whatever its timeout: each of the 4
    # attempts may end one frame late
    frame_time = len(link.transport.frame) * 10 / 115200
    assert link.transport.clock() <= 4 * (1.0 + 0.02 + frame_time)
    assert link.stats.stale_replies > 0 and len(info.value.causes) == 4


def test_a_line_that_goes_quiet_is_not_babbling():
    """One corrupted reply: the discard ends after ``settle`` of quiet and the retry succeeds."""
    sent = []

    def board(data):
        sent.append(data)
        reply = bytearray(ReferenceBoard(lambda img: np.arange(CLASSES))(data))
        if len(sent) == 1:
            reply[9] ^= 0x80          # the first reply fails its CRC
        return bytes(reply)
    link = HostLink(MemoryTransport(board), timeout=0.5, settle=0.02)
    link.infer(_images(1)[0])
    assert link.stats.drain_cutoffs == 0 and link.stats.retries == 1


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a POSIX pty")
def test_serial_write_to_a_port_that_takes_nothing_times_out():
    master, slave = os.openpty()
    try:
        with SerialTransport(os.ttyname(slave), 4000000, write_timeout=0.2) as port:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError, match=r"did not take 65536 bytes within 0.364 s \(their line time "
                                                   r"and write_timeout 0.2 s\); \d+ bytes not sent"):
                port.write(bytes(1 << 16))     # nobody reads the other end: the pty fills up
            assert time.monotonic() - t0 < 0.2 + 10 * (1 << 16) / 4000000 + 0.5
    finally:
        os.close(master)
        os.close(slave)
    with pytest.raises(ValueError, match="write_timeout is inf; allowed: a finite number of seconds > 0"):
        SerialTransport("/dev/null", 115200, write_timeout=float("inf"))


# --- a board reset mid-run -------------------------------------------------------------------

def _signed(words):
    return (np.asarray(words, np.int64) ^ 0x8000) - 0x8000


def _weight_board():
    """A board model whose logits come from the weights it has loaded (int16 words)."""
    board = ReferenceBoard(None, weight_words=PIXELS * CLASSES)
    board.logits_fn = lambda img: img @ _signed(board.weights).reshape(PIXELS, CLASSES)
    return board


class ResettingBoard:
    """Resets the board (weights scrambled) before the request number in ``at``."""

    def __init__(self, board, at):
        self.board, self.at, self.requests = board, set(at), 0
        self.rng = np.random.default_rng(7)

    def __call__(self, data):
        if data[1] in (0x01, 0x04):        # an IMAGE or IMAGE_LOGITS frame
            self.requests += 1
            if self.requests in self.at:
                self.board.reset(scramble=self.rng)
        return self.board(data)


def test_board_reset_mid_run_reloads_once_and_every_result_is_right():
    board = _weight_board()
    lines = []
    link = HostLink(MemoryTransport(ResettingBoard(board, at=[4])), timeout=0.5, notify=lines.append)
    link.load_weights(TRUE_WEIGHTS.reshape(-1) & 0xFFFF, chunk=100)
    images = _images(8)
    for img in images:
        logits, _, _ = link.infer(img)
        assert logits.tolist() == (img @ TRUE_WEIGHTS).tolist()
    assert board.resets == 1 and link.stats.weight_reloads == 1 and link.stats.weight_loads == 2
    assert len(lines) == 1 and "NOT_LOADED" in lines[0] and "reloading its 640 weight words" in lines[0]
    assert link.stats.succeeded == 8 and link.stats.failed == 0
    assert "1 weight reloads after NOT_LOADED" in link.stats.summary()


def test_reload_is_said_on_stderr_by_default(capsys):
    board = _weight_board()
    link = HostLink(MemoryTransport(ResettingBoard(board, at=[1])), timeout=0.5)
    link.load_weights(TRUE_WEIGHTS.reshape(-1) & 0xFFFF, chunk=200)
    img = _images(1)[0]
    assert link.infer(img)[0].tolist() == (img @ TRUE_WEIGHTS).tolist()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "lost its weights" in err[0]


def test_board_that_loses_its_weights_again_is_refused_not_reloaded_forever():
    board = _weight_board()
    lines = []
    link = HostLink(MemoryTransport(ResettingBoard(board, at=range(1, 100))), timeout=0.5, notify=lines.append)
    link.load_weights(TRUE_WEIGHTS.reshape(-1) & 0xFFFF, chunk=320)
    with pytest.raises(LinkError, match="NOT_LOADED again right after its weights were reloaded"):
        link.infer(_images(1)[0])
    assert len(lines) == 1 and link.stats.weight_reloads == 1 and link.stats.succeeded == 0
