"""Host runtime: load a board's weights, send images to it, get logits, class and cycle count
back.

:class:`HostLink` speaks the protocol of :mod:`spikeforge.boards.hostlink` over any
:class:`Transport`: :class:`SerialTransport` (a POSIX serial port, opened with ``os.open`` and
configured with ``termios``; no pyserial), or :class:`MemoryTransport` (in memory, with a board
model such as :class:`ReferenceBoard` or a simulated accelerator behind it).

Retries: a request is re-sent (with a new ``seq``) after a timeout, an ERROR (NACK) reply, or
a reply that fails its CRC; after ``retries`` re-sends :class:`LinkError` lists what happened
on every attempt. ``NOT_LOADED`` is not retried: :meth:`HostLink.load_weights` must run first.
"""

import abc
import collections
import os
import select
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from .hostlink import (
    MAX_PAYLOAD, MAX_WEIGHT_WORDS, ErrorCode, Frame, FrameDecoder, FrameError, MsgType, argmax_lowest,
    decode_error, decode_image, decode_loaded, decode_result, decode_weights, encode_error, encode_image,
    encode_loaded, encode_result, encode_weights,
)

__all__ = [
    "Transport", "SerialTransport", "MemoryTransport", "VirtualClock", "ReferenceBoard", "HostLink",
    "LinkStats", "LinkError", "ResultMismatchError", "LoadSummary",
]


# --- transports ---------------------------------------------------------------------------

class Transport(abc.ABC):
    """A byte pipe to a board.

    ``clock`` is the time source (seconds) that :class:`HostLink` measures timeouts and
    latencies with; a simulated transport may provide a virtual one.
    """

    clock = staticmethod(time.monotonic)

    @abc.abstractmethod
    def write(self, data):
        """Send all of ``data``."""

    @abc.abstractmethod
    def read(self, size, timeout):
        """Return 1..``size`` bytes as soon as some are there, or ``b""`` after ``timeout``
        seconds without any."""

    def reset_input(self):  # noqa: B027 (optional: a transport without an input buffer)
        """Discard bytes received and not read yet."""

    def close(self):  # noqa: B027 (optional)
        """Release the underlying device."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000,
               921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000)


class SerialTransport(Transport):
    """A serial port (POSIX: Linux, macOS), raw 8N1, no flow control, without pyserial.

    Parameters
    ----------
    port : str
        Device path, e.g. ``/dev/ttyUSB1``.
    baud : int
        Baud rate; one of the standard rates that ``termios`` defines on this system.
    """

    def __init__(self, port, baud=115200):
        import termios  # POSIX only; imported here so that the module loads everywhere
        self._termios = termios
        if isinstance(baud, bool) or not isinstance(baud, int):
            raise TypeError(f"SerialTransport: baud must be an integer, not {baud!r}")
        speed = getattr(termios, f"B{baud}", None)
        if speed is None:
            allowed = [b for b in _BAUD_RATES if hasattr(termios, f"B{b}")]
            raise ValueError(f"SerialTransport: baud {baud} is not supported here; allowed: "
                             f"{', '.join(map(str, allowed))}")
        self.port, self.baud = port, baud
        try:
            self._fd = os.open(port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as e:
            raise OSError(e.errno, f"SerialTransport: cannot open {port}: {e.strerror}") from e
        try:
            attrs = termios.tcgetattr(self._fd)
            iflag, oflag, cflag, lflag, _, _, cc = attrs
            iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR
                       | termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF | termios.IXANY
                       | termios.INPCK)
            oflag &= ~termios.OPOST
            lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
            cflag &= ~(termios.CSIZE | termios.PARENB | termios.CSTOPB | getattr(termios, "CRTSCTS", 0))
            cflag |= termios.CS8 | termios.CLOCAL | termios.CREAD
            cc = list(cc)
            cc[termios.VMIN] = 0
            cc[termios.VTIME] = 0
            termios.tcsetattr(self._fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, speed, speed, cc])
            termios.tcflush(self._fd, termios.TCIOFLUSH)
        except termios.error as e:
            os.close(self._fd)
            raise OSError(f"SerialTransport: {port} is not a serial port or cannot be configured: {e}") from e

    def write(self, data):
        view = memoryview(bytes(data))
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                n = 0
            if n == 0:
                select.select([], [self._fd], [], 1.0)
            view = view[n:]

    def read(self, size, timeout):
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            return os.read(self._fd, size)
        except BlockingIOError:
            return b""

    def reset_input(self):
        self._termios.tcflush(self._fd, self._termios.TCIFLUSH)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class VirtualClock:
    """A clock that only moves when told to (for simulated transports)."""

    def __init__(self, start=0.0):
        self.now = float(start)

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += max(0.0, seconds)


class MemoryTransport(Transport):
    """In-memory transport with a board model behind it.

    ``board(data) -> bytes`` is called with every chunk written and returns the bytes the board
    sends back (possibly ``b""``, possibly a part of a frame). ``latency`` (seconds of the
    virtual ``clock``) is added per write; a read with nothing pending advances the clock by
    its whole timeout, so that timeouts cost no real time.
    """

    def __init__(self, board, *, latency=0.0, clock=None):
        self.board = board
        self.latency = latency
        self.clock = clock if clock is not None else VirtualClock()
        self._rx = bytearray()
        self.written = bytearray()

    def write(self, data):
        data = bytes(data)
        self.written += data
        self.clock.advance(self.latency)
        self._rx += bytes(self.board(data) or b"")

    def read(self, size, timeout):
        if not self._rx:
            self.clock.advance(timeout)
            return b""
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    def reset_input(self):
        self._rx.clear()


class ReferenceBoard:
    """Python model of the board side of the protocol (what the gateware does), for a
    :class:`MemoryTransport`.

    ``logits_fn(image)`` gets the pixels as an int64 vector and returns K integer logits; the
    class is their argmax (ties to the lowest index) and ``cycles_fn(image)`` (default 0)
    gives the reported cycle count. Bad frames are answered like the gateware answers them:
    ERROR with BAD_CRC, BAD_LENGTH, BAD_TYPE, BAD_VALUE, NOT_LOADED or BAD_OFFSET and the
    frame's seq byte (TIMEOUT and BUSY do not occur here; a frame that fails its CRC is
    answered BAD_CRC even where the gateware rejects its header first).

    With ``weight_words`` > 0 the board has a loadable weight memory, ``weights`` (an int64
    array of ``weight_words``, zero at first): WEIGHTS frames are checked and committed as in
    ``docs/hostlink.md`` (state ``next_word`` and ``loaded``) and an IMAGE before ``loaded``
    is answered NOT_LOADED. Unlike the gateware, the model writes the words of a frame only
    once it passed its CRC (the gateware's earlier writes are all rewritten before ``loaded``).
    """

    def __init__(self, logits_fn, *, pixels=64, max_value=16, cycles_fn=None, weight_words=0):
        if isinstance(weight_words, bool) or not isinstance(weight_words, int) or not 0 <= weight_words <= 0xFFFF:
            raise ValueError(f"ReferenceBoard: weight_words is {weight_words!r}; allowed: an integer 0..65535")
        self.logits_fn = logits_fn
        self.pixels, self.max_value = pixels, max_value
        self.cycles_fn = cycles_fn or (lambda image: 0)
        self._decoder = FrameDecoder(max_payload=max(pixels, MAX_PAYLOAD))
        self.images = []
        self.weight_words = weight_words
        self.weights = np.zeros(weight_words, np.int64)
        self.next_word = 0
        self.loaded = False

    def _weights_frame(self, item):
        """Answer one WEIGHTS frame (CRC already checked)."""
        try:
            offset, words = decode_weights(item.payload)
        except FrameError:
            return encode_error(ErrorCode.BAD_LENGTH, item.seq)
        n = len(words)
        if offset != (self.next_word if n else 0):
            return encode_error(ErrorCode.BAD_OFFSET, item.seq)
        if offset + n > self.weight_words:
            return encode_error(ErrorCode.BAD_LENGTH, item.seq)
        self.weights[offset:offset + n] = words
        self.next_word = offset + n
        self.loaded = self.next_word == self.weight_words
        return encode_loaded(self.next_word, self.loaded, item.seq)

    def __call__(self, data):
        out = b""
        for item in self._decoder.feed(data):
            if isinstance(item, FrameError):
                if item.code is not None:
                    out += encode_error(item.code, item.seq or 0)
                continue
            if item.type == MsgType.WEIGHTS and self.weight_words:
                out += self._weights_frame(item)
            elif item.type != MsgType.IMAGE:
                out += encode_error(ErrorCode.BAD_TYPE, item.seq)
            elif len(item.payload) != self.pixels:
                out += encode_error(ErrorCode.BAD_LENGTH, item.seq)
            elif max(item.payload) > self.max_value:
                out += encode_error(ErrorCode.BAD_VALUE, item.seq)
            elif self.weight_words and not self.loaded:
                out += encode_error(ErrorCode.NOT_LOADED, item.seq)
            else:
                image = decode_image(item.payload, pixels=self.pixels, max_value=self.max_value)
                self.images.append(image)
                logits = [int(v) for v in self.logits_fn(image)]
                out += encode_result(logits, argmax_lowest(logits), int(self.cycles_fn(image)), item.seq)
        return out


# --- host link -----------------------------------------------------------------------------

class LinkError(RuntimeError):
    """No valid reply after all attempts (or a board that cannot serve the request, such as
    one whose weights are not loaded); ``causes`` says what went wrong on each attempt."""

    def __init__(self, message, causes=()):
        super().__init__(message)
        self.causes = list(causes)


class ResultMismatchError(RuntimeError):
    """A RESULT arrived intact but its class is not the argmax of its logits (board bug)."""


@dataclass
class LinkStats:
    """Counters and timings of a :class:`HostLink` (seconds of the transport's clock)."""
    requests: int = 0
    succeeded: int = 0
    failed: int = 0
    attempts: int = 0
    timeouts: int = 0
    nacks: collections.Counter = field(default_factory=collections.Counter)
    bad_replies: int = 0
    stale_replies: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    latencies: list = field(default_factory=list)
    board_cycles: list = field(default_factory=list)
    busy_time: float = 0.0
    weight_frames: int = 0   # WEIGHTS frames sent (every attempt, begin load included)
    weight_loads: int = 0    # completed HostLink.load_weights calls

    @property
    def retries(self):
        return self.attempts - self.requests

    def latency(self):
        """``{"mean", "p50", "p95", "max"}`` of the successful requests (seconds), or ``{}``."""
        if not self.latencies:
            return {}
        lat = sorted(self.latencies)
        return {"mean": statistics.fmean(lat), "p50": lat[len(lat) // 2],
                "p95": lat[min(len(lat) - 1, int(0.95 * len(lat)))], "max": lat[-1]}

    def throughput(self):
        """Successful images per second of time spent in :meth:`HostLink.infer`."""
        return self.succeeded / self.busy_time if self.busy_time > 0 else float("nan")

    def summary(self):
        lat = self.latency()
        parts = [f"{self.succeeded}/{self.requests} ok", f"{self.retries} retries",
                 f"{self.timeouts} timeouts", f"{sum(self.nacks.values())} NACKs",
                 f"{self.bad_replies} bad replies"]
        if self.weight_frames:
            parts.append(f"{self.weight_loads} weight loads in {self.weight_frames} WEIGHTS frames")
        if lat:
            parts.append(f"latency mean {1e3 * lat['mean']:.2f} ms, p95 {1e3 * lat['p95']:.2f} ms")
            parts.append(f"{self.throughput():.1f} images/s")
        return ", ".join(parts)


class HostLink:
    """Run inferences on a board over ``transport``.

    Parameters
    ----------
    transport : Transport
    classes : int
        Number of logits K the board returns.
    pixels, max_value : int
        Image size and largest pixel value (8x8 digits: 64 and 16).
    timeout : float
        Seconds to wait for the reply of one attempt.
    retries : int
        Re-sends after a failed attempt (timeout, ERROR reply, corrupt reply).
    settle : float
        After a failed attempt, input is read and discarded until it has been quiet this long.
    check_class : bool
        Raise :class:`ResultMismatchError` when the class is not the argmax of the logits.
    """

    def __init__(self, transport, *, classes=10, pixels=64, max_value=16, timeout=1.0, retries=3,
                 settle=0.02, check_class=True):
        if not isinstance(transport, Transport):
            raise TypeError(f"HostLink: transport must be a Transport, not {type(transport).__name__}")
        for name, value, lo, hi in (("classes", classes, 1, 255), ("pixels", pixels, 1, 1024),
                                    ("max_value", max_value, 1, 255), ("retries", retries, 0, 1000)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"HostLink: {name} is {value!r}; allowed: an integer {lo}..{hi}")
        for name, value in (("timeout", timeout), ("settle", settle)):
            if not isinstance(value, (int, float)) or not value >= 0 or (name == "timeout" and value == 0):
                raise ValueError(f"HostLink: {name} is {value!r}; allowed: a number of seconds > 0"
                                 if name == "timeout" else
                                 f"HostLink: {name} is {value!r}; allowed: a number of seconds >= 0")
        self.transport = transport
        self.classes, self.pixels, self.max_value = classes, pixels, max_value
        self.timeout, self.retries, self.settle = float(timeout), retries, float(settle)
        self.check_class = check_class
        self.stats = LinkStats()
        self._seq = 0
        self._clock = transport.clock

    def _next_seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    def _drain(self):
        quiet_since = self._clock()
        while self._clock() - quiet_since < self.settle:
            data = self.transport.read(4096, self.settle)
            if data:
                self.stats.bytes_received += len(data)
                quiet_since = self._clock()

    def _exchange(self, frame, seq, reply_type, decode):
        """Send ``frame`` once and wait for the reply with ``seq``. Returns ``(outcome, value,
        cause)``: ``("ok", decode(payload), None)`` for a ``reply_type`` frame; ``("nack", code,
        cause)`` for an ERROR (nothing was done); ``("lost", None, cause)`` when no valid reply
        came (the request may or may not have been carried out)."""
        self.transport.reset_input()
        self.transport.write(frame)
        self.stats.bytes_sent += len(frame)
        decoder = FrameDecoder(max_payload=max(MAX_PAYLOAD, 4 * self.classes + 5))
        deadline = self._clock() + self.timeout
        while True:
            remaining = deadline - self._clock()
            if remaining <= 0:
                self.stats.timeouts += 1
                return "lost", None, f"no reply within {self.timeout:g} s"
            data = self.transport.read(4096, remaining)
            self.stats.bytes_received += len(data)
            for item in decoder.feed(data):
                if isinstance(item, FrameError):
                    self.stats.bad_replies += 1
                    return "lost", None, f"corrupt reply: {item}"
                assert isinstance(item, Frame)
                if item.seq != seq or item.type not in (reply_type, MsgType.ERROR):
                    self.stats.stale_replies += 1
                    continue
                if item.type == MsgType.ERROR:
                    try:
                        code = decode_error(item.payload)
                    except FrameError as e:
                        self.stats.bad_replies += 1
                        return "lost", None, f"corrupt reply: {e}"
                    self.stats.nacks[code] += 1
                    name = code.name if isinstance(code, ErrorCode) else f"code {code}"
                    return "nack", code, f"board answered ERROR {name}"
                try:
                    value = decode(item.payload)
                except FrameError as e:
                    self.stats.bad_replies += 1
                    return "lost", None, f"corrupt reply: {e}"
                return "ok", value, None

    def infer(self, image):
        """Send one image; return ``(logits, cls, cycles)``: logits an int64 array of K,
        the class index and the board's cycle count. Raises :class:`LinkError` after
        ``1 + retries`` failed attempts, ``ValueError`` for an image the protocol cannot carry.
        """
        image = np.asarray(image)
        encode_image(image, 0, pixels=self.pixels, max_value=self.max_value)  # check it first
        self.stats.requests += 1
        start = self._clock()
        causes = []
        try:
            for attempt in range(1 + self.retries):
                self.stats.attempts += 1
                seq = self._next_seq()
                outcome, result, cause = self._exchange(
                    encode_image(image, seq, pixels=self.pixels, max_value=self.max_value), seq, MsgType.RESULT,
                    lambda payload: decode_result(payload, classes=self.classes))
                if outcome == "ok":
                    break
                causes.append(f"attempt {attempt + 1} (seq {seq}): {cause}")
                if outcome == "nack" and result == ErrorCode.NOT_LOADED:
                    self.stats.failed += 1
                    raise LinkError("board answered ERROR NOT_LOADED: its weights are not loaded; "
                                    "call HostLink.load_weights() first", causes)
                self._drain()
            else:
                self.stats.failed += 1
                raise LinkError(f"no valid result after {1 + self.retries} attempts: " + "; ".join(causes),
                                causes)
        finally:
            self.stats.busy_time += self._clock() - start
        logits = np.array(result.logits, dtype=np.int64)
        if self.check_class and result.cls != argmax_lowest(result.logits):
            self.stats.failed += 1
            raise ResultMismatchError(f"board class {result.cls} is not the argmax "
                                      f"{argmax_lowest(result.logits)} of its logits {list(result.logits)}")
        self.stats.succeeded += 1
        self.stats.latencies.append(self._clock() - start)
        self.stats.board_cycles.append(result.cycles)
        return logits, int(result.cls), int(result.cycles)

    def infer_many(self, images):
        """:meth:`infer` each image; returns ``(logits [n, K], classes [n], cycles [n])``."""
        out = [self.infer(img) for img in images]
        if not out:
            return np.zeros((0, self.classes), np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        logits, cls, cycles = zip(*out)
        return np.stack(logits), np.array(cls, np.int64), np.array(cycles, np.int64)

    # --- weights ---------------------------------------------------------------------------

    def _weights_attempt(self, offset, data):
        """One WEIGHTS frame; returns ``(outcome, loaded or code, cause)`` as :meth:`_exchange`,
        the cause prefixed with the frame's offset, length and seq."""
        seq = self._next_seq()
        self.stats.weight_frames += 1
        outcome, value, cause = self._exchange(encode_weights(offset, data, seq), seq, MsgType.LOADED,
                                               decode_loaded)
        what = "begin load" if not len(data) else f"words {offset}..{offset + len(data) - 1}"
        return outcome, value, f"{what} (seq {seq}): {cause}"

    def load_weights(self, words, *, chunk=256, progress=None):
        """Load ``words`` (ints 0..65535; a signed weight as its 16-bit two's complement) into
        the board's weight memory with WEIGHTS frames: begin load, then chunks of ``chunk``
        words in order (``docs/hostlink.md``). Every frame is retried as in :meth:`infer`;
        ``progress(done_words, total_words)`` is called after begin load and after each chunk.

        A chunk whose reply was lost may have been committed; the board then rejects its
        re-send with BAD_OFFSET. The host keeps the set of chunk boundaries the board can be
        at and sends the furthest one; when none is left it starts over with begin load (at
        most ``retries`` times). ``len(words)`` must equal the board's ``weight_words``: the last
        LOADED must report ``loaded``.

        Returns a :class:`LoadSummary`. Raises ``ValueError`` for bad ``words`` or ``chunk``
        and :class:`LinkError` when a frame fails ``1 + retries`` times in a row or the
        board's replies do not fit the load.
        """
        words = _check_weight_words(words)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= MAX_WEIGHT_WORDS:
            raise ValueError(f"HostLink.load_weights: chunk is {chunk!r}; allowed: an integer 1..{MAX_WEIGHT_WORDS}")
        if progress is not None and not callable(progress):
            raise TypeError(f"HostLink.load_weights: progress must be callable, not {progress!r}")
        total = len(words)
        offsets = list(range(0, total, chunk))
        start = self._clock()
        frames0 = self.stats.weight_frames
        accepted = 0
        restarts = 0

        def fail(message, causes):
            hint = ""
            if causes and causes[-1].endswith("ERROR BAD_TYPE"):
                hint = " (a board built without loadable weights answers WEIGHTS with BAD_TYPE)"
            raise LinkError(f"{message}: " + "; ".join(causes) + hint, causes)

        while True:
            causes = []
            while True:   # begin load
                outcome, value, cause = self._weights_attempt(0, [])
                if outcome == "ok":
                    if value.next_word != 0 or value.loaded:
                        raise LinkError(f"board answered begin load with next_word {value.next_word}, "
                                        f"loaded {int(value.loaded)}; expected 0, 0")
                    accepted += 1
                    break
                causes.append(cause)
                if len(causes) > self.retries:
                    fail(f"weight load: begin load failed {len(causes)} times", causes)
                self._drain()
            if progress is not None:
                progress(0, total)
            # chunk indices the board's next_word may be at (len(offsets): all loaded)
            candidates = {0}
            causes = []
            while True:
                live = [j for j in candidates if j < len(offsets)]
                if not live:
                    break     # nowhere left to send: start over
                j = max(live)
                offset = offsets[j]
                data = words[offset:offset + chunk]
                outcome, value, cause = self._weights_attempt(offset, data)
                if outcome == "ok":
                    end = offset + len(data)
                    if value.next_word != end:
                        raise LinkError(f"board answered words {offset}..{end - 1} with next_word "
                                        f"{value.next_word}; expected {end}")
                    accepted += 1
                    causes = []
                    candidates = {j + 1}
                    if progress is not None:
                        progress(end, total)
                    if end == total:
                        if not value.loaded:
                            raise LinkError(f"board is not loaded after all {total} words: it expects more "
                                            f"(its weight_words is above {total})")
                        seconds = self._clock() - start
                        self.stats.weight_loads += 1
                        frames = self.stats.weight_frames - frames0
                        return LoadSummary(total, frames, frames - accepted, restarts, seconds)
                    if value.loaded:
                        raise LinkError(f"board is loaded after {end} of {total} words: its weight_words "
                                        f"is {end}, not {total}")
                    continue
                causes.append(cause)
                if outcome == "nack" and value == ErrorCode.BAD_OFFSET:
                    candidates.discard(j)          # the board is not at this offset
                elif outcome == "lost":
                    candidates.add(j + 1)          # the chunk may have been committed
                if len(causes) > self.retries:
                    fail(f"weight load: no progress after {len(causes)} attempts", causes)
                self._drain()
            restarts += 1
            if restarts > self.retries:
                fail(f"weight load: started over {restarts - 1} times and still cannot tell where "
                     f"the board is", causes)


def _check_weight_words(words):
    if isinstance(words, (str, bytes, bytearray)) or not hasattr(words, "__len__"):
        raise TypeError(f"HostLink.load_weights: words must be a sequence or array of integers, "
                        f"not {type(words).__name__}")
    if isinstance(words, np.ndarray) and words.ndim != 1:
        raise ValueError(f"HostLink.load_weights: words has shape {words.shape}; allowed: one dimension")
    if not 1 <= len(words) <= 0xFFFF:
        raise ValueError(f"HostLink.load_weights: {len(words)} words; allowed: 1..65535")
    out = []
    for i, w in enumerate(words):
        if isinstance(w, np.generic):
            w = w.item()
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 0xFFFF:
            raise ValueError(f"HostLink.load_weights: word {i} is {w!r}; allowed: an integer 0..65535 "
                             f"(a signed weight as its 16-bit two's complement, w & 0xFFFF)")
        out.append(int(w))
    return out


@dataclass(frozen=True)
class LoadSummary:
    """What :meth:`HostLink.load_weights` did: ``words`` loaded, WEIGHTS ``frames`` sent (every
    attempt, begin loads included), ``retries`` (frames not accepted), ``restarts`` (loads
    started over), ``seconds`` of the transport's clock."""
    words: int
    frames: int
    retries: int
    restarts: int
    seconds: float
