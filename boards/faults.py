"""Fault injection for the host link: a :class:`~spikeforge.boards.runtime.Transport` wrapper
that damages the byte stream both ways, seeded, at a given rate, and a fuzz loop that counts
what the host made of it.

:class:`FaultyTransport` wraps any transport (a :class:`~spikeforge.boards.runtime.MemoryTransport`
with the board model, a serial port, the simulated board's pins). ``rate`` is the probability,
per byte carried (either way), that a fault event starts at that byte; the event's kind is drawn
from ``faults``, a mix (:data:`MIXES`) or a dict ``kind -> weight``:

========  ===========================================================================
flip      one bit of the byte inverted
drop      the byte lost
dup       the byte delivered twice
insert    a random byte delivered before it
burst     2..16 bytes from this one XORed with random bytes (a burst error)
babble    the line delivers random bytes at the line rate for an exponential time (mean
          ``babble_seconds``), ahead of what the board sends
stall     nothing arrives from the board for an exponential time (mean ``stall_seconds``);
          what it sent meanwhile arrives afterwards
reset     the board is reset (``reset()`` is called): to the board, at that byte of a request
          (the bytes before it are lost with the board's state); from the board, the rest of
          what it was sending is lost
========  ===========================================================================

Event gaps are drawn from a geometric distribution, so the cost is per fault, not per byte.
Babble and stall spend time on the transport's clock: on a virtual clock (``advance``) they
cost nothing real; on a real clock they sleep. ``hang_after`` (a clock time) makes every later
call raise :class:`LinkHung`, so that a host that would wait forever is counted, not waited for.

:func:`fuzz` runs requests through a :class:`~spikeforge.boards.runtime.HostLink` over a
:class:`LinearBoard` (a board model whose logits come from the weights it has loaded, so that a
result computed with partial or foreign weights is wrong) and counts each request as accepted
right, accepted wrong, refused with a one-line error, or hung (over its deadline).
"""

import collections
import math
import time

import numpy as np

from .runtime import (
    HostLink, LinkError, MemoryTransport, ReferenceBoard, ResultMismatchError, Transport, VirtualClock,
)

__all__ = ["FAULT_KINDS", "MIXES", "FaultyTransport", "LinkHung", "LinearBoard", "fuzz", "fuzz_requests",
           "request_bound"]

FAULT_KINDS = ("flip", "drop", "dup", "insert", "burst", "babble", "stall", "reset")

#: Named fault mixes: kind -> relative weight.
MIXES = {
    "mixed": {"flip": 1, "drop": 1, "dup": 1, "insert": 1},
    "flips": {"flip": 1},
    "drops": {"drop": 1},
    "dups": {"dup": 1},
    "inserts": {"insert": 1},
    "bursts": {"burst": 1},
    "babble": {"babble": 1},
    "stalls": {"stall": 1},
    "resets": {"reset": 1},
    "all": {"flip": 4, "drop": 4, "dup": 4, "insert": 4, "burst": 2, "babble": 0.1, "stall": 0.3, "reset": 0.2},
}


_EPS = 1e-6   # seconds: a wait shorter than this is over (no rounding residuals on a virtual clock)


class LinkHung(RuntimeError):
    """The host was still using the transport after ``hang_after``: it would have hung."""


def _mix(faults):
    weights = MIXES.get(faults) if isinstance(faults, str) else faults
    if weights is None:
        raise ValueError(f"fault mix {faults!r} is unknown; allowed: {', '.join(MIXES)} or a dict kind -> weight")
    bad = [k for k in weights if k not in FAULT_KINDS]
    if bad or not weights or any(not (isinstance(w, (int, float)) and 0 <= w < math.inf) for w in weights.values()) \
            or sum(weights.values()) <= 0:
        raise ValueError(f"fault mix {weights!r}: kinds must be among {', '.join(FAULT_KINDS)} with finite "
                         "weights >= 0, not all 0")
    return weights


class FaultyTransport(Transport):
    """``inner`` with faults injected both ways (see the module's docstring).

    Parameters
    ----------
    inner : Transport
    rate : float
        Probability per byte that a fault event starts there (0 <= rate < 1).
    faults : str or dict
        A mix name of :data:`MIXES` or ``{kind: weight}``.
    seed : int or None
    reset : callable or None
        Resets the board (needed when the mix has ``reset``).
    baud : int
        Line rate for babble bytes.
    """

    def __init__(self, inner, *, rate, faults="mixed", seed=None, reset=None, baud=115200, babble_seconds=0.3,
                 stall_seconds=0.5, burst=(2, 16)):
        if not isinstance(inner, Transport):
            raise TypeError(f"FaultyTransport: inner must be a Transport, not {type(inner).__name__}")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"FaultyTransport: rate is {rate!r}; allowed: a number 0 <= rate < 1")
        weights = _mix(faults)
        if weights.get("reset", 0) > 0 and reset is None:
            raise ValueError("FaultyTransport: the fault mix has resets but no reset= callable was given")
        self.inner, self.rate, self.reset_board, self.baud = inner, float(rate), reset, baud
        self.babble_seconds, self.stall_seconds, self.burst = babble_seconds, stall_seconds, burst
        self._kinds = [k for k, w in weights.items() if w > 0]
        p = np.array([weights[k] for k in self._kinds], float)
        self._cum = np.cumsum(p / p.sum())
        self.rng = np.random.default_rng(seed)
        self._gap = {"tx": self._draw_gap(), "rx": self._draw_gap()}
        self._rx = bytearray()
        self._babble_until = -math.inf
        self._stall_until = -math.inf
        self.injected = collections.Counter()
        self.hang_after = None
        #: clock seconds spent in write() (a serial port's or the simulated pins' line time)
        self.write_seconds = 0.0

    @property
    def clock(self):
        return self.inner.clock

    # --- drawing ---
    def _draw_gap(self):
        return int(self.rng.geometric(self.rate)) if self.rate > 0 else math.inf

    def _kind(self):
        return self._kinds[min(int(np.searchsorted(self._cum, self.rng.random(), side="right")),
                               len(self._kinds) - 1)]

    def _spend(self, seconds):
        if seconds <= 0:
            return
        if hasattr(self.inner, "wait"):          # a simulated board: its own time passes
            self.inner.wait(seconds)
        elif hasattr(self.inner.clock, "advance"):
            self.inner.clock.advance(seconds)
        else:
            time.sleep(seconds)

    def _check_hang(self):
        if self.hang_after is not None and self.clock() > self.hang_after:
            raise LinkHung(f"the host still waits {self.clock() - self.hang_after:.1f} s past its deadline")

    def _damage(self, data, direction):
        """``data`` with this direction's fault events applied: a list of segments, a board
        reset between each two."""
        n = len(data)
        pos = self._gap[direction] - 1
        if pos >= n:
            self._gap[direction] -= n
            return [data]
        segments, out, last = [], bytearray(), 0
        while pos < n:
            kind = self._kind()
            if pos >= last:
                self.injected[kind] += 1
                out += data[last:pos]
                byte = data[pos]
                last = pos + 1
                if kind == "flip":
                    out.append(byte ^ (1 << int(self.rng.integers(8))))
                elif kind == "drop":
                    pass
                elif kind == "dup":
                    out += bytes((byte, byte))
                elif kind == "insert":
                    out += bytes((int(self.rng.integers(256)), byte))
                elif kind == "burst":
                    end = min(n, pos + int(self.rng.integers(self.burst[0], self.burst[1] + 1)))
                    noise = self.rng.integers(1, 256, end - pos, dtype=np.uint8).tobytes()
                    out += bytes(a ^ b for a, b in zip(data[pos:end], noise))
                    last = end
                elif kind == "babble":
                    self._babble_until = self.clock() + self.rng.exponential(self.babble_seconds)
                    out.append(byte)
                elif kind == "stall":
                    self._stall_until = max(self._stall_until, self.clock() + self.rng.exponential(self.stall_seconds))
                    out.append(byte)
                else:   # reset
                    if direction == "tx":
                        segments.append(bytes(out))
                        out = bytearray([byte])
                    else:
                        segments.append(bytes(out))
                        out = bytearray()
                        last = n          # the rest of what the board sent is lost
            pos += self._draw_gap()
        self._gap[direction] = pos - n + 1
        out += data[last:]
        segments.append(bytes(out))
        return segments

    # --- Transport ---
    def write(self, data):
        self._check_hang()
        start = self.clock()
        segments = self._damage(bytes(data), "tx")
        for i, seg in enumerate(segments):
            if i:
                self.reset_board()
            if seg:
                self.inner.write(seg)
        self.write_seconds += self.clock() - start

    def _take(self, data):
        segments = self._damage(data, "rx")
        for seg in segments[:-1]:
            self._rx += seg
            self.reset_board()
        self._rx += segments[-1]

    def read(self, size, timeout):
        deadline = self.clock() + timeout
        while True:
            self._check_hang()
            while True:      # what the board has sent by now
                data = self.inner.read(4096, 0)
                if not data:
                    break
                self._take(data)
            now = self.clock()
            if now < self._babble_until:      # random bytes at the line rate, within the timeout
                n = min(size, 64, int(max(0.0, deadline - now) * self.baud / 10))
                if n == 0:
                    self._spend(deadline - now)
                    return b""
                self._spend(n * 10 / self.baud)
                return self.rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            if self._rx and now >= self._stall_until - _EPS:
                out = bytes(self._rx[:size])
                del self._rx[:size]
                return out
            wait = deadline - now
            if wait <= _EPS:
                return b""
            if self._rx:     # stalled
                step = min(wait, self._stall_until - now)
                self._spend(step)
                if step >= wait:
                    return b""
                self._stall_until = -math.inf
                continue
            data = self.inner.read(size, wait)
            if not data:
                return b""
            self._take(data)

    def reset_input(self):
        self.inner.reset_input()
        self._rx.clear()

    def close(self):
        self.inner.close()


# --- the fuzz loop -------------------------------------------------------------------------

def _signed16(words):
    return (np.asarray(words, np.int64) ^ 0x8000) - 0x8000


class LinearBoard(ReferenceBoard):
    """The board model with a loadable weight memory of ``pixels * classes`` words whose
    logits are ``image @ W``, W being the words it has loaded (as int16): a result computed
    with partial or foreign weights is wrong, as on the real board."""

    def __init__(self, *, pixels=64, classes=10, max_value=16, **kwargs):
        super().__init__(self._logits, pixels=pixels, max_value=max_value, weight_words=pixels * classes, **kwargs)
        self.classes = classes

    def _logits(self, image):
        return image @ _signed16(self.weights).reshape(self.pixels, self.classes)


def request_bound(link, words=0):
    """Seconds one request may take: ``(1 + retries) * (timeout + settle)``; with ``words``
    (a reload after NOT_LOADED), plus that attempt and the worst weight load (every frame
    ``1 + retries`` attempts, ``1 + retries`` starts)."""
    attempt = link.timeout + link.settle
    bound = (1 + link.retries) * attempt
    if words:
        chunk = link._weights[1] if link._weights else 256
        frames = 1 + math.ceil(words / chunk)
        bound += attempt + (1 + link.retries) ** 2 * frames * attempt
    return bound


def fuzz_requests(link, line, batches, *, counts, examples, wrong, bounds, progress=None):
    """Send every image of ``batches`` (pairs ``(images, expected logits)``) through ``link``
    (over the :class:`FaultyTransport` ``line``) and count each request in ``counts``:
    ``right``, ``wrong`` (accepted, logits not the expected ones), ``refused`` (a one-line
    :class:`LinkError` / :class:`ResultMismatchError`), ``refused_unclear``, ``hung`` (over
    ``bounds[0]``, or ``bounds[1]`` when it reloaded the weights, not counting the time its
    writes took: HostLink's deadline is that bound "plus its writes", which take line time on a
    serial port or the simulated pins). ``examples`` keeps the first
    message of each kind, ``wrong`` details of the first 20 accepted wrong."""
    plain, with_reload = bounds

    def note(kind, message):
        counts[kind] += 1
        examples.setdefault(kind, message)

    i = 0
    for images, expected in batches:
        for image, want in zip(images, expected):
            start, written = link._clock(), line.write_seconds
            reloads = link.stats.weight_reloads
            attempts, before = link.stats.attempts, dict(line.injected)
            line.hang_after = start + with_reload + 1.0
            hung = False
            try:
                logits, _, _ = link.infer(image)
            except LinkHung as e:
                hung = True
                note("hung", f"request {i}: {e}")
            except (LinkError, ResultMismatchError) as e:
                msg = str(e)
                note("refused" if "\n" not in msg and msg else "refused_unclear", msg)
            except Exception as e:     # noqa: BLE001 (counted and shown, never hidden)
                note("refused_unclear", f"{type(e).__name__}: {e}")
            else:
                if np.array_equal(logits, want):
                    counts["right"] += 1
                else:
                    note("wrong", f"request {i}: got {logits.tolist()}, expected {np.asarray(want).tolist()}")
                    if len(wrong) < 20:
                        wrong.append({"request": i, "attempts": link.stats.attempts - attempts,
                                      "faults": {k: v - before.get(k, 0) for k, v in line.injected.items()
                                                 if v != before.get(k, 0)},
                                      # few: the reply was damaged; most: the request (another image)
                                      "logits_differ": int(np.count_nonzero(logits != want))})
            took = link._clock() - start - (line.write_seconds - written)
            bound = with_reload if link.stats.weight_reloads > reloads else plain
            if not hung and took > bound * (1 + 1e-9):
                note("hung", f"request {i} took {took:.6g} s besides its writes; its bound is {bound:.6g} s")
            i += 1
            if progress is not None and i % 10000 == 0:
                progress(i, dict(counts))
    line.hang_after = None


def fuzz(requests, *, faults="mixed", rate=0.01, seed=0, timeout=1.0, retries=3, settle=0.02, chunk=16,
         babble_seconds=0.3, stall_seconds=0.5, progress=None, pixels=64):
    """Run ``requests`` images through a faulty link to a :class:`LinearBoard`; returns a dict of
    counts: ``right``, ``wrong`` (accepted with wrong logits), ``refused`` (a one-line
    :class:`LinkError` / :class:`ResultMismatchError`), ``refused_unclear`` (another exception or a
    multi-line message), ``hung`` (over :func:`request_bound`), ``reloads``, the injected faults,
    the virtual ``seconds``, the example messages and ``wrong_details`` (the first 20 requests
    accepted wrong: attempts, faults injected during the request, how many logits differ). The
    weights are loaded first, through the same faults, again until it succeeds
    (``load_failed`` counts the failed tries). ``babble_seconds`` and ``stall_seconds`` are the
    mean lengths of a babble and a stall. ``pixels``: the image size (above 1024: an image
    larger than protocol version 2's longest frame)."""
    rng = np.random.default_rng(seed)
    clock = VirtualClock()
    board = LinearBoard(clock=clock, byte_timeout=4 * 10 / 115200, pixels=pixels)   # the gateware's 4 byte times
    true_w = rng.integers(-8, 8, (board.pixels, board.classes))
    words = (true_w.reshape(-1) & 0xFFFF).tolist()
    junk = np.random.default_rng(seed + 1)
    mem = MemoryTransport(board, clock=clock)
    line = FaultyTransport(mem, rate=rate, faults=faults, seed=seed + 2, reset=lambda: board.reset(scramble=junk),
                           babble_seconds=babble_seconds, stall_seconds=stall_seconds)
    notes = []
    link = HostLink(line, timeout=timeout, retries=retries, settle=settle, notify=notes.append, pixels=pixels)
    counts = collections.Counter()
    examples = {}
    wrong = []
    plain, with_reload = request_bound(link), request_bound(link, len(words))

    def note(kind, message):
        counts[kind] += 1
        examples.setdefault(kind, message)

    for _ in range(100):      # the first load, through the faults, until it succeeds
        line.hang_after = link._clock() + with_reload + 1.0
        try:
            link.load_weights(words, chunk=chunk)
            break
        except (LinkError, ResultMismatchError) as e:
            counts["load_failed"] += 1
            examples.setdefault("load_failed", str(e))
        except LinkHung as e:
            note("hung", f"initial load: {e}")
    block = 10000             # images drawn as they are needed (the same stream as all at once)

    def batches():
        for i in range(0, requests, block):
            images = rng.integers(0, board.max_value + 1, (min(block, requests - i), board.pixels))
            yield images, images @ true_w

    fuzz_requests(link, line, batches(), counts=counts, examples=examples, wrong=wrong,
                  bounds=(plain, with_reload), progress=progress)
    return {"requests": requests, "faults": faults, "rate": rate, "seed": seed,
            **{k: counts.get(k, 0) for k in ("right", "wrong", "refused", "refused_unclear", "hung", "load_failed")},
            "reloads": link.stats.weight_reloads, "board_resets": board.resets,
            "injected": dict(line.injected), "seconds": link._clock(), "notes": len(notes),
            "examples": examples, "wrong_details": wrong}

