"""The fault-injection transport (spikeforge.boards.faults) does what each fault says, seeded,
and a short seeded fuzz run of the host link over it ends with no request accepted wrong, none
hung and every refusal one line."""

import numpy as np
import pytest

from spikeforge.boards.faults import MIXES, FaultyTransport, LinearBoard, LinkHung, fuzz
from spikeforge.boards.hostlink import encode_image
from spikeforge.boards.runtime import MemoryTransport, Transport, VirtualClock


class Echo(Transport):
    """Sends back what it was sent; virtual clock."""

    def __init__(self):
        self.clock = VirtualClock()
        self.rx = bytearray()
        self.got = []

    def write(self, data):
        self.got.append(bytes(data))
        self.rx += data

    def read(self, size, timeout):
        if not self.rx:
            self.clock.advance(timeout)
            return b""
        out = bytes(self.rx[:size])
        del self.rx[:size]
        return out


DATA = bytes(range(256)) * 8


def _through(kind, rate=0.02, seed=0, **kw):
    line = FaultyTransport(Echo(), rate=rate, faults={kind: 1}, seed=seed, **kw)
    line.write(DATA)
    sent = b"".join(line.inner.got)
    got = b""
    while True:
        chunk = line.read(4096, 1.0)
        if not chunk:
            return line, sent, got
        got += chunk


def test_rate_zero_is_a_plain_wire_and_a_seed_repeats_itself():
    line, sent, got = _through("flip", rate=0)
    assert sent == got == DATA and not line.injected
    assert _through("flip", seed=5)[2] == _through("flip", seed=5)[2] != _through("flip", seed=6)[2]


def test_each_byte_fault_does_what_it_says():
    line, sent, got = _through("flip")
    assert len(sent) == len(got) == len(DATA)
    flipped = [a ^ b for a, b in zip(DATA, sent)] + [a ^ b for a, b in zip(sent, got)]
    assert all(bin(x).count("1") <= 1 for x in flipped) and sum(x != 0 for x in flipped) == line.injected["flip"]
    line, sent, got = _through("drop")
    assert len(got) == len(DATA) - line.injected["drop"]
    line, sent, got = _through("dup")
    assert len(got) == len(DATA) + line.injected["dup"]
    line, sent, got = _through("insert")
    assert len(got) == len(DATA) + line.injected["insert"]
    line, sent, got = _through("burst", rate=0.005)
    assert len(got) == len(DATA) and line.injected["burst"] > 0
    runs = np.flatnonzero(np.frombuffer(sent, np.uint8) != np.frombuffer(DATA, np.uint8))
    assert runs.size >= 2 * line.injected["burst"] - 4     # bursts of 2..16 bytes (two may overlap)


def test_babble_stall_and_reset_take_line_time_or_call_the_board():
    line, sent, got = _through("babble", rate=0.001, babble_seconds=0.5)
    assert line.injected["babble"] >= 1 and len(got) > len(DATA) + 1000      # random bytes at 115200 baud
    assert line.clock() >= (len(got) - len(DATA)) * 10 / 115200 * 0.99
    line, sent, got = _through("stall", rate=0.001, stall_seconds=0.05)
    assert got == DATA and line.clock() > 0                                   # late, not lost
    resets = []
    line, sent, got = _through("reset", rate=0.002, reset=lambda: resets.append(1))
    assert len(resets) == line.injected["reset"] >= 1 and len(got) < len(DATA)
    with pytest.raises(ValueError, match="has resets but no reset= callable"):
        FaultyTransport(Echo(), rate=0.1, faults="all")
    with pytest.raises(ValueError, match="fault mix 'noise' is unknown; allowed: mixed"):
        FaultyTransport(Echo(), rate=0.1, faults="noise")
    with pytest.raises(ValueError, match="rate is 1.5; allowed"):
        FaultyTransport(Echo(), rate=1.5)


def test_a_host_past_its_deadline_is_stopped_as_hung():
    line = FaultyTransport(Echo(), rate=0)
    line.hang_after = 1.0
    line.read(10, 2.0)
    with pytest.raises(LinkHung, match="past its deadline"):
        line.read(10, 0.1)


def test_linear_board_computes_with_the_weights_it_holds():
    board = LinearBoard()
    board.weights[:] = 1
    board.loaded = True
    reply = MemoryTransport(board)
    reply.write(encode_image(np.full(64, 2), 9, logits=True))
    # logit 0 after the check, class and cycle count (4 + 1 + 4 bytes)
    assert reply.read(100, 0)[14:18] == (128).to_bytes(4, "little")


@pytest.mark.parametrize("faults, rate, requests", [("mixed", 0.01, 1500), ("all", 0.002, 1500)])
def test_short_seeded_fuzz_run_accepts_nothing_wrong_and_never_hangs(faults, rate, requests):
    # seed 12: the "all" run meets every fault kind (with seed 11 and protocol 3's frame sizes
    # no babble started in its 1,500 requests)
    r = fuzz(requests, faults=faults, rate=rate, seed=12)
    assert r["wrong"] == 0, r["examples"].get("wrong")
    assert r["hung"] == 0, r["examples"].get("hung")
    assert r["refused_unclear"] == 0, r["examples"].get("refused_unclear")
    assert r["right"] + r["refused"] == requests and r["right"] > requests // 2
    assert sum(r["injected"].values()) > requests * rate * 100
    if faults == "all":
        assert set(r["injected"]) == set(MIXES["all"]) and r["reloads"] >= 1 and r["board_resets"] >= 1


def test_long_babble_is_refused_in_one_line_not_waited_out():
    """Babble of 20 s on average: the host gives up within each request's deadline, saying the
    link is babbling (before the discard had a deadline, requests waited the babble out: hung)."""
    r = fuzz(40, faults="babble", rate=0.001, seed=0, babble_seconds=20)
    assert r["hung"] == 0, r["examples"].get("hung")
    assert r["wrong"] == 0 and r["refused_unclear"] == 0 and r["refused"] >= 1
    assert r["examples"]["refused"].startswith("the link is babbling: ")


def test_fuzz_link_times_scale_the_line_and_keep_the_compute():
    """At 115200 baud the host's times are the real board's (0.05 s, 1 ms); at 52 times the bit
    rate the line's part of them is 52 times shorter, the engine's compute time stays, and a
    timeout the engine cannot answer within is refused in one line."""
    from spikeforge.boards.simulate import fuzz_link_times
    from spikeforge.cli import default_model_path
    from spikeforge.data import load_digits_split
    from spikeforge.modelfile import load_model

    model = load_model(default_model_path())
    images, _ = load_digits_split("test")
    real = fuzz_link_times(model, "icebreaker", images[:5], 115200)
    assert real["timeout"] == pytest.approx(0.05) and real["settle"] == pytest.approx(1e-3)
    assert real["divisor"] == 208 and 0.001 < real["compute"] < 0.05
    fast = fuzz_link_times(model, "icebreaker", images[:5], 6e6)
    assert fast["divisor"] == 4 and fast["bit_rate"] == 6e6 and fast["compute"] == real["compute"]
    assert fast["timeout"] == pytest.approx(real["compute"] + (0.05 - real["compute"]) * 115200 / 6e6)
    assert fast["settle"] == pytest.approx(1e-3 * 115200 / 6e6)
    assert fast["babble"] == pytest.approx(0.3 * 115200 / 6e6) and fast["stall"] == pytest.approx(0.5 * 115200 / 6e6)
    with pytest.raises(ValueError, match="timeout is 0.001 s; allowed: longer than the engine's compute time"):
        fuzz_link_times(model, "icebreaker", images[:5], 6e6, timeout=0.001)
    with pytest.raises(ValueError, match="baud is inf"):
        fuzz_link_times(model, "icebreaker", images[:5], float("inf"))


def test_the_time_a_request_spends_writing_is_not_counted_against_its_deadline():
    """HostLink's deadline is ``(1 + retries) * (timeout + settle)`` plus its writes; a board
    that never answers, behind a line whose writes take time (a serial port, the simulated
    pins), is refused after its four attempts, not counted as hung (the gateware fuzz counted
    one such request hung in 10,000: four timeouts in a row)."""
    import collections

    from spikeforge.boards.faults import fuzz_requests, request_bound
    from spikeforge.boards.runtime import HostLink

    clock = VirtualClock()
    mem = MemoryTransport(lambda data: b"", latency=0.01, clock=clock)    # 10 ms per write, no answer
    line = FaultyTransport(mem, rate=0)
    link = HostLink(line, timeout=0.05, retries=3, settle=0.02)
    counts, examples = collections.Counter(), {}
    image = np.zeros(64, np.int64)
    fuzz_requests(link, line, [([image], [np.zeros(10, np.int64)])], counts=counts, examples=examples, wrong=[],
                  bounds=(request_bound(link), request_bound(link)))
    assert counts == {"refused": 1}, examples
    assert clock() > request_bound(link)           # the request outlasted the bound by its writes
    assert line.write_seconds == pytest.approx(4 * 0.01)
