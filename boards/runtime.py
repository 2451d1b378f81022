"""Host runtime: load a board's weights, send images to it, get logits, class and cycle count
back.

:class:`HostLink` speaks the protocol of :mod:`spikeforge.boards.hostlink` over any
:class:`Transport`: :class:`SerialTransport` (a POSIX serial port, opened with ``os.open`` and
configured with ``termios``; no pyserial), or :class:`MemoryTransport` (in memory, with a board
model such as :class:`ReferenceBoard` or a simulated accelerator behind it).

Retries: a request is re-sent (with a new ``seq``) after a timeout, an ERROR (NACK) reply, or
a reply that fails its CRC; after ``retries`` re-sends :class:`LinkError` lists what happened
on every attempt. Every wait has a deadline: an attempt ``timeout``, the discarding of input
after it at most ``timeout`` more (a line that never goes quiet ends in "the link is
babbling"), a write to a serial port ``write_timeout``. ``NOT_LOADED`` (the board lost its
weights) makes the host reload the weights of its last :meth:`HostLink.load_weights` once, by
itself, and say so; without weights loaded before it is a :class:`LinkError`.
"""

import abc
import collections
import os
import select
import statistics
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .hostlink import (
    BAUD_RATES, MAX_IMAGE, MAX_LOAD_WORDS, MAX_PAYLOAD, MAX_WEIGHT_WORDS, VERSION, ErrorCode, Frame, FrameDecoder,
    FrameError, MsgType,
    argmax_lowest, decode_error, decode_image, decode_info, decode_loaded, decode_result, decode_weights,
    decode_verified, encode_verified, encode_verify,
    encode_error, encode_hello, encode_image, encode_info, encode_loaded, encode_result, encode_weights, image_bytes,
    image_payload_length, looks_like_v2_reply, pixel_bits, result_check, result_payload_length, words_crc,
)

__all__ = [
    "Transport", "SerialTransport", "MemoryTransport", "VirtualClock", "ReferenceBoard", "HostLink",
    "LinkStats", "LinkError", "ResultMismatchError", "LoadSummary", "OldBoardError", "WeightVerifyError",
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


class SerialTransport(Transport):
    """A serial port (POSIX: Linux, macOS), raw 8N1, no flow control, without pyserial.

    Parameters
    ----------
    port : str
        Device path, e.g. ``/dev/ttyUSB1``.
    baud : int
        Baud rate; one of the standard rates that ``termios`` defines on this system.
    write_timeout : float
        Seconds a :meth:`write` may wait for the port to take its bytes, beyond their time on
        the line at ``baud``; then it raises :class:`TimeoutError` (a port that takes nothing:
        a stuck driver or adapter).
    """

    def __init__(self, port, baud=115200, *, write_timeout=1.0):
        import termios  # POSIX only; imported here so that the module loads everywhere
        self._termios = termios
        if isinstance(baud, bool) or not isinstance(baud, int):
            raise TypeError(f"SerialTransport: baud must be an integer, not {baud!r}")
        speed = getattr(termios, f"B{baud}", None)
        if speed is None:
            allowed = [b for b in BAUD_RATES if hasattr(termios, f"B{b}")]
            raise ValueError(f"SerialTransport: baud {baud} is not supported here; allowed: "
                             f"{', '.join(map(str, allowed))}")
        if isinstance(write_timeout, bool) or not isinstance(write_timeout, (int, float)) \
                or not 0 < write_timeout < float("inf"):
            raise ValueError(f"SerialTransport: write_timeout is {write_timeout!r}; allowed: a finite "
                             "number of seconds > 0")
        self.port, self.baud, self.write_timeout = port, baud, float(write_timeout)
        self._fd = None
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
            self._fd = None
            raise OSError(f"SerialTransport: {port} is not a serial port or cannot be configured: {e}") from e

    def write(self, data):
        view = memoryview(bytes(data))
        allowed = self.write_timeout + 10 * len(view) / self.baud
        deadline = time.monotonic() + allowed
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                n = 0
            if n == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"SerialTransport: {self.port} did not take {len(data)} bytes within "
                                       f"{allowed:.3g} s (their line time and write_timeout "
                                       f"{self.write_timeout:g} s); {len(view)} bytes not sent")
                select.select([], [self._fd], [], min(left, 1.0))
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
            try:   # unsent output is discarded: close() on a tty otherwise waits for it to drain
                self._termios.tcflush(self._fd, self._termios.TCOFLUSH)
            except self._termios.error:
                pass
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
    frame's seq byte (BUSY does not occur here, TIMEOUT only with a ``clock``; a frame that
    fails its CRC is answered BAD_CRC even where the gateware rejects its header first).

    With ``clock`` (the transport's) and ``byte_timeout`` (seconds; the gateware's is
    ``timeout_bytes`` byte times), a frame left unfinished for longer than ``byte_timeout``
    before more bytes come is dropped and answered TIMEOUT, as the gateware does (it only sees
    time when bytes arrive: a :class:`MemoryTransport` calls it per write).

    With ``weight_words`` > 0 the board has a loadable weight memory, ``weights`` (an int64
    array of ``weight_words``, zero at first): WEIGHTS frames are checked and committed as in
    ``docs/hostlink.md`` (state ``next_word`` and ``loaded``) and an IMAGE before ``loaded``
    is answered NOT_LOADED. Unlike the gateware, the model writes the words of a frame only
    once it passed its CRC (the gateware's earlier writes are all rewritten before ``loaded``).
    With ``readback`` (the ULX3S's SDRAM) it answers VERIFY with VERIFIED: the CRC-32C of its
    words ``0 .. next_word - 1`` as they are in ``weights`` now (a test may change one).
    """

    def __init__(self, logits_fn, *, pixels=64, max_value=16, cycles_fn=None, weight_words=0, clock=None,
                 byte_timeout=None, weight_crc=0, info=None, logit_bits=32, readback=False):
        if isinstance(weight_words, bool) or not isinstance(weight_words, int) or \
                not 0 <= weight_words <= MAX_LOAD_WORDS:
            raise ValueError(f"ReferenceBoard: weight_words is {weight_words!r}; allowed: an integer "
                             f"0..{MAX_LOAD_WORDS}")
        self.readback = bool(readback) and weight_words > 0
        self.logits_fn = logits_fn
        self.pixels, self.max_value = pixels, max_value
        self.cycles_fn = cycles_fn or (lambda image: 0)
        self.logit_bits = logit_bits
        self._decoder = FrameDecoder(max_payload=max(image_payload_length(pixels, max_value), MAX_PAYLOAD))
        self.images = []
        self.weight_words = weight_words
        self.weights = np.zeros(weight_words, np.int64)
        self.next_word = 0
        self.loaded = False
        self.resets = 0
        self.clock, self.byte_timeout = clock, byte_timeout
        self._last_byte = None
        self.fixed_weight_crc = weight_crc   # the weight CRC of a board without loadable weights
        self._wcrc = 0                       # CRC-32C of the committed words 0 .. next_word - 1
        self.info = info                     # an Info to answer HELLO with (None: BAD_TYPE, as version 2)

    def _too_large(self, payload):
        try:
            decode_image(payload, pixels=self.pixels, max_value=self.max_value)
        except FrameError:
            return True
        return False

    @property
    def weight_crc(self):
        """What a RESULT reports as the weight CRC: of the words loaded (``0 .. next_word - 1``),
        or the built-in constant."""
        if not self.weight_words:
            return self.fixed_weight_crc
        return self._wcrc

    def reset(self, *, scramble=None):
        """What a reconfiguration or power cycle does: the frame being received is lost,
        ``next_word`` and ``loaded`` go back to 0. ``scramble`` (a ``numpy.random.Generator``)
        fills the weight memory with junk (SPRAM content is undefined after power-up); without
        it the memory keeps its words, as SPRAM does through a reconfiguration."""
        self._decoder.reset()
        self.next_word = 0
        self.loaded = False
        self._wcrc = 0
        self.resets += 1
        if scramble is not None and self.weight_words:
            self.weights[:] = scramble.integers(0, 1 << 16, self.weight_words)

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
        self._wcrc = words_crc(words, self._wcrc) if n else 0
        self.next_word = offset + n
        self.loaded = self.next_word == self.weight_words
        return encode_loaded(self.next_word, self.loaded, item.seq, weight_crc=self.weight_crc)

    def __call__(self, data):
        out = b""
        if self.clock is not None and self.byte_timeout is not None:
            now = self.clock()
            dec = self._decoder
            if dec.pending and self._last_byte is not None and now - self._last_byte > self.byte_timeout:
                out += encode_error(ErrorCode.TIMEOUT, dec._buf[2] if dec.pending >= 3 else 0)
                dec.reset()
            self._last_byte = now
        for item in self._decoder.feed(data):
            if isinstance(item, FrameError):
                if item.code is not None:
                    out += encode_error(item.code, item.seq or 0)
                continue
            if item.type == MsgType.WEIGHTS and self.weight_words:
                out += self._weights_frame(item)
            elif item.type == MsgType.VERIFY and self.readback:
                out += (encode_error(ErrorCode.BAD_LENGTH, item.seq) if item.payload else
                        encode_verified(words_crc(self.weights[:self.next_word]), self.next_word, item.seq))
            elif item.type == MsgType.HELLO and self.info is not None:
                out += (encode_error(ErrorCode.BAD_LENGTH, item.seq) if item.payload else
                        encode_info(self.info, item.seq))
            elif item.type not in (MsgType.IMAGE, MsgType.IMAGE_LOGITS):
                out += encode_error(ErrorCode.BAD_TYPE, item.seq)
            elif len(item.payload) != image_payload_length(self.pixels, self.max_value):
                out += encode_error(ErrorCode.BAD_LENGTH, item.seq)
            elif self._too_large(item.payload):
                out += encode_error(ErrorCode.BAD_VALUE, item.seq)
            elif self.weight_words and not self.loaded:
                out += encode_error(ErrorCode.NOT_LOADED, item.seq)
            else:
                image = decode_image(item.payload, pixels=self.pixels, max_value=self.max_value)
                self.images.append(image)
                logits = [int(v) for v in self.logits_fn(image)]
                out += encode_result(logits, argmax_lowest(logits), int(self.cycles_fn(image)), item.seq,
                                     check=result_check(item.payload, self.weight_crc), logit_bits=self.logit_bits,
                                     with_logits=item.type == MsgType.IMAGE_LOGITS)
        return out


#: Seconds below which a wait counts as over (a virtual clock cannot add a rounding residual).
_EPS = 1e-6


# --- host link -----------------------------------------------------------------------------

class LinkError(RuntimeError):
    """No valid reply after all attempts (or a board that cannot serve the request, such as
    one whose weights are not loaded); ``causes`` says what went wrong on each attempt."""

    def __init__(self, message, causes=()):
        super().__init__(message)
        self.causes = list(causes)


class ResultMismatchError(RuntimeError):
    """A RESULT arrived intact but its class is not the argmax of its logits (board bug)."""


class WeightVerifyError(LinkError):
    """The words a board read back from its weight memory are not the words loaded: the
    message names the CRC-32C read and expected and both word counts (also as attributes)."""

    def __init__(self, message, read_crc, expected_crc, read_words, expected_words):
        super().__init__(message)
        self.read_crc, self.expected_crc = read_crc, expected_crc
        self.read_words, self.expected_words = read_words, expected_words


class OldBoardError(LinkError):
    """The board does not answer HELLO with INFO: it speaks an older protocol (or is not a
    spikeforge board); it must be rebuilt and reflashed."""


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
    weight_verifies: int = 0  # read-backs whose CRC matched (HostLink.verify_weights)
    weight_reloads: int = 0  # loads the host started by itself after a NOT_LOADED
    drain_cutoffs: int = 0   # discards after a failed attempt that hit their deadline (line never quiet)
    foreign_results: int = 0  # intact RESULTs whose image or weight CRC was not the expected one

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
        if self.weight_reloads:
            parts.append(f"{self.weight_reloads} weight reloads after NOT_LOADED")
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
        Seconds from sending a request (the end of the transport's write) to the end of its
        attempt without a reply.
    retries : int
        Re-sends after a failed attempt (timeout, ERROR reply, corrupt reply).
    settle : float
        After a failed attempt, input is read and discarded until it has been quiet this long,
        but for at most ``timeout`` and never past ``timeout + settle`` after the attempt began;
        one attempt therefore takes at most ``timeout + settle`` after its write, a request at
        most ``(1 + retries) * (timeout + settle)`` plus its writes (plus one weight reload).
    check_class : bool
        Raise :class:`ResultMismatchError` when the class is not the argmax of the logits.
    notify : callable or None
        Called with one line when the host acts on its own (a weight reload); default: print it
        to stderr.
    weight_crc : int
        CRC-32C of the weight set built into the bitstream
        (:func:`~spikeforge.boards.hostlink.weight_set_crc`; default 0, the CRC of none). After
        :meth:`load_weights` it is that of the words loaded instead.
    logits : bool
        Ask for the logits (IMAGE_LOGITS); False: IMAGE, the RESULT carries the class only and
        :meth:`infer` returns None as the logits (shorter replies: ``spikeforge run`` without
        ``--logits``).
    logit_bits : int
        Width of the board's logits (a RESULT carries ``ceil(logit_bits / 8)`` bytes each);
        :meth:`hello` sets it from the board's INFO.
    window : int
        Requests :meth:`infer_many` keeps in flight (1..255); :meth:`hello` lowers it to the
        board's.

    A RESULT is accepted only when its ``check`` is the CRC-32C of the weight set continued over
    the image sent (:func:`~spikeforge.boards.hostlink.result_check`); anything else is a failed
    attempt (``stats.foreign_results``). When every attempt of a request is answered so, the
    board holds other weights: the host reloads its words once (as after NOT_LOADED), or,
    without words to load, raises :class:`LinkError`.
    """

    def __init__(self, transport, *, classes=10, pixels=64, max_value=16, timeout=1.0, retries=3,
                 settle=0.02, check_class=True, notify=None, weight_crc=0, logits=True, logit_bits=32, window=1):
        if not isinstance(transport, Transport):
            raise TypeError(f"HostLink: transport must be a Transport, not {type(transport).__name__}")
        for name, value, lo, hi in (("classes", classes, 1, 255), ("pixels", pixels, 1, 8 * MAX_IMAGE),
                                    ("max_value", max_value, 1, 255), ("retries", retries, 0, 1000),
                                    ("logit_bits", logit_bits, 2, 32), ("window", window, 1, 255)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"HostLink: {name} is {value!r}; allowed: an integer {lo}..{hi}")
        for name, value in (("timeout", timeout), ("settle", settle)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf") \
                    or (name == "timeout" and value == 0):
                raise ValueError(f"HostLink: {name} is {value!r}; allowed: a finite number of seconds > 0"
                                 if name == "timeout" else
                                 f"HostLink: {name} is {value!r}; allowed: a finite number of seconds >= 0")
        if notify is not None and not callable(notify):
            raise TypeError(f"HostLink: notify must be callable, not {notify!r}")
        self.transport = transport
        self.classes, self.pixels, self.max_value = classes, pixels, max_value
        self.timeout, self.retries, self.settle = float(timeout), retries, float(settle)
        self.check_class = check_class
        if not isinstance(logits, bool):
            raise TypeError(f"HostLink: logits is {logits!r}; allowed: True or False")
        self.logits, self.logit_bits, self.window = logits, logit_bits, window
        if image_payload_length(pixels, max_value) > MAX_IMAGE:
            raise ValueError(f"HostLink: an image of {pixels} pixels of {pixel_bits(max_value)} bits is "
                             f"{image_payload_length(pixels, max_value)} bytes; allowed: up to {MAX_IMAGE}")
        self.notify = notify if notify is not None else _to_stderr
        self.stats = LinkStats()
        self._seq = 0
        self._clock = transport.clock
        self._weights = None     # (words, chunk) of the last load_weights, for a reload
        self.readback = False    # the board answers VERIFY (its INFO says so: hello())
        if isinstance(weight_crc, bool) or not isinstance(weight_crc, int) or not 0 <= weight_crc < (1 << 32):
            raise ValueError(f"HostLink: weight_crc is {weight_crc!r}; allowed: an integer 0..2^32-1")
        self.weight_crc = weight_crc   # expected weight CRC (load_weights sets it to the words' CRC)
        self._raw = bytearray()        # bytes received in the current exchange (to recognize an old board)
        self._attempt_start = self._clock()
        self._begin_request()

    def _next_seq(self):
        self._seq = (self._seq + 1) & 0xFF
        return self._seq

    # --- what the line did during one request (for the "babbling" diagnosis) ---

    def _begin_request(self):
        self._req_start = self._clock()
        self._req_bytes = 0       # bytes received
        self._req_frames = 0      # valid frames among them (any seq, any type)
        self._req_drains = 0      # discards after failed attempts
        self._req_busy = 0        # ... of which ended at their deadline, the line never quiet
        self._watch = FrameDecoder(max_payload=0xFFFF)

    def _received(self, data):
        n = len(data)
        self.stats.bytes_received += n
        self._req_bytes += n
        return n

    def _failure(self, message, causes):
        """The :class:`LinkError` after a request's last failed attempt: "the link is babbling"
        when the line never went quiet after any failed attempt, else ``message``."""
        if self._req_drains and self._req_busy == self._req_drains:
            seconds = self._clock() - self._req_start
            port = getattr(self.transport, "port", None)
            where = f"--port {port}" if port else "the transport's other end"
            frames = ("without a valid frame" if not self._req_frames else
                      f"with {self._req_frames} valid frames but no answer to the request")
            return LinkError(f"the link is babbling: {self._req_bytes:,} bytes in {seconds:.1f} s {frames}; "
                             f"is {where} the board?", causes)
        return LinkError(message, causes)

    def _drain(self):
        """After a failed attempt: read and discard input until the line has been quiet for
        ``settle`` seconds; give up (the line still busy) ``timeout`` seconds after starting
        or ``timeout + settle`` after the failed attempt began, whichever comes first."""
        now = self._clock()
        deadline = min(now + self.timeout, self._attempt_start + self.timeout + self.settle)
        quiet_since = now
        self._req_drains += 1
        while True:
            quiet_at = quiet_since + self.settle
            if now >= quiet_at - _EPS:
                return
            if now >= deadline - _EPS:
                self._req_busy += 1
                self.stats.drain_cutoffs += 1
                return
            data = self.transport.read(4096, min(quiet_at, deadline) - now)
            if data:
                self._received(data)
                self._req_frames += sum(isinstance(f, Frame) for f in self._watch.feed(data))
                now = quiet_since = self._clock()
            else:
                now = self._clock()

    def _exchange(self, frame, seq, reply_type, decode):
        """Send ``frame`` once and wait for the reply with ``seq``. Returns ``(outcome, value,
        cause)``: ``("ok", decode(payload), None)`` for a ``reply_type`` frame; ``("nack", code,
        cause)`` for an ERROR (nothing was done); ``("lost", None, cause)`` when no valid reply
        came (the request may or may not have been carried out). The attempt ends
        ``timeout`` seconds after the write returned (a serial port's write returns once the
        kernel has the bytes; it has its own ``write_timeout``)."""
        self.transport.reset_input()
        try:
            self.transport.write(frame)
        except TimeoutError as e:
            self._attempt_start = self._clock()
            self.stats.timeouts += 1
            return "lost", None, f"write failed: {e}"
        self._attempt_start = self._clock()
        deadline = self._attempt_start + self.timeout
        self.stats.bytes_sent += len(frame)
        decoder = FrameDecoder(max_payload=max(MAX_PAYLOAD, result_payload_length(self.classes)))
        self._raw.clear()
        while True:
            remaining = deadline - self._clock()
            if remaining <= _EPS:
                self.stats.timeouts += 1
                return "lost", None, f"no reply within {self.timeout:g} s"
            data = self.transport.read(4096, remaining)
            self._received(data)
            if len(self._raw) < 4096:
                self._raw += data
            for item in decoder.feed(data):
                self._req_frames += isinstance(item, Frame)
                outcome, value, cause = self._classify(item, (seq,), reply_type, decode)
                if outcome != "stale":
                    return outcome, value, cause

    def _classify(self, item, seqs, reply_type, decode):
        """Sort one item from the frame decoder, counting it in :attr:`stats`; one rule for the
        one-request path and the window. Returns ``(outcome, value, cause)``: ``("lost", None,
        cause)`` for a corrupt frame or payload; ``("stale", None, None)`` for a frame whose seq
        is not in ``seqs`` or whose type is neither ``reply_type`` nor ERROR; ``("nack", code,
        cause)`` for an ERROR; ``("ok", decode(payload), None)`` otherwise."""
        if isinstance(item, FrameError):
            self.stats.bad_replies += 1
            return "lost", None, f"corrupt reply: {item}"
        if item.seq not in seqs or item.type not in (reply_type, MsgType.ERROR):
            self.stats.stale_replies += 1
            return "stale", None, None
        try:
            value = decode_error(item.payload) if item.type == MsgType.ERROR else decode(item.payload)
        except FrameError as e:
            self.stats.bad_replies += 1
            return "lost", None, f"corrupt reply: {e}"
        if item.type == MsgType.ERROR:
            self.stats.nacks[value] += 1
            name = value.name if isinstance(value, ErrorCode) else f"code {value}"
            return "nack", value, f"board answered ERROR {name}"
        return "ok", value, None

    def infer(self, image):
        """Send one image; return ``(logits, cls, cycles)``: logits an int64 array of K (None
        unless ``logits``), the class index and the board's cycle count. Raises :class:`LinkError` after
        ``1 + retries`` failed attempts, ``ValueError`` for an image the protocol cannot carry.

        A NOT_LOADED answer (the board lost its weights: reset, reconfigured, power) makes the
        host reload the words of its last :meth:`load_weights` once, by itself (``notify``
        says so; ``stats.weight_reloads`` counts it), and send the image again with the full
        number of attempts. Without an earlier :meth:`load_weights`, or when the board still
        answers NOT_LOADED after the reload, it is a :class:`LinkError` at once.
        """
        return self._infer(image)

    def _infer(self, image, *, used=0, causes=None, start=None, foreign=0):
        """:meth:`infer`; ``used`` attempts (with their ``causes``, ``foreign`` of them answered by
        another check) were made already, since ``start``, by :meth:`infer_many`'s window."""
        image = np.asarray(image)
        # checks the image first
        want = result_check(image_bytes(image, pixels=self.pixels, max_value=self.max_value), self.weight_crc)
        t0 = self._clock()
        if start is None:
            self.stats.requests += 1
            start = t0
        self._begin_request()
        causes = [] if causes is None else list(causes)
        reloaded = False
        try:
            attempt = used
            while attempt <= self.retries:
                attempt += 1
                self.stats.attempts += 1
                seq = self._next_seq()
                outcome, result, cause = self._exchange(
                    encode_image(image, seq, pixels=self.pixels, max_value=self.max_value, logits=self.logits), seq,
                    MsgType.RESULT, self._decode_result)
                if outcome == "ok":
                    if result.check == want:
                        break
                    # a damaged request, a stale result, or a board with other weights
                    self.stats.foreign_results += 1
                    foreign += 1
                    outcome, cause = "lost", (f"RESULT for another image or weight set (check "
                                              f"0x{result.check:08X}, expected 0x{want:08X})")
                causes.append(f"attempt {len(causes) + 1} (seq {seq}): {cause}")
                if foreign == attempt > self.retries:
                    # every attempt answered, never with our check: the weights differ
                    if self._weights is None or reloaded:
                        self.stats.failed += 1
                        raise LinkError(f"the board computes with other weights: {attempt} intact RESULTs, none "
                                        f"with the check of this image and weight set (0x{want:08X})"
                                        + (" even after reloading them" if reloaded else
                                           "; is it built from this model?"), causes)
                    reloaded = True
                    self._reload(causes)
                    attempt = foreign = 0
                    self._begin_request()
                    continue
                if outcome == "nack" and result == ErrorCode.NOT_LOADED:
                    if self._weights is None or reloaded:
                        self.stats.failed += 1
                        raise LinkError("board answered ERROR NOT_LOADED: its weights are not loaded; "
                                        "call HostLink.load_weights() first" if self._weights is None else
                                        "board answered ERROR NOT_LOADED again right after its weights were "
                                        "reloaded", causes)
                    reloaded = True
                    self._reload(causes)
                    attempt = foreign = 0          # the image again, with every attempt
                    self._begin_request()
                    continue
                self._drain()
            else:
                self.stats.failed += 1
                raise self._failure(f"no valid result after {len(causes)} attempts: " + "; ".join(causes),
                                    causes)
        finally:
            self.stats.busy_time += self._clock() - t0
        return self._accept(result, start)

    def _decode_result(self, payload):
        return decode_result(payload, classes=self.classes, logit_bits=self.logit_bits, logits=self.logits)

    def _accept(self, result, start):
        """The class check and the counters of a request whose RESULT was accepted."""
        if result.logits is not None:
            logits = np.array(result.logits, dtype=np.int64)
            if self.check_class and result.cls != argmax_lowest(result.logits):
                self.stats.failed += 1
                raise ResultMismatchError(f"board class {result.cls} is not the argmax "
                                          f"{argmax_lowest(result.logits)} of its logits {list(result.logits)}")
        else:
            logits = None
            if self.check_class and not 0 <= result.cls < self.classes:
                self.stats.failed += 1
                raise ResultMismatchError(f"board class {result.cls} is not one of the {self.classes} classes")
        self.stats.succeeded += 1
        self.stats.latencies.append(self._clock() - start)
        self.stats.board_cycles.append(result.cycles)
        return logits, int(result.cls), int(result.cycles)

    def _reload(self, causes):
        words, chunk = self._weights
        why = causes[-1].split(": ", 1)[-1] if causes else ""
        what = ("the board answered NOT_LOADED: it lost its weights (reset or reconfigured)" if "NOT_LOADED" in why
                else "the board's RESULTs never had the check of these weights: it holds other words")
        self.notify(f"{what}; reloading its {len(words)} weight words")
        self.stats.weight_reloads += 1
        try:
            self.load_weights(words, chunk=chunk)
        except LinkError as e:
            self.stats.failed += 1
            raise LinkError(f"the board lost its weights and reloading them failed: {e}", causes + e.causes) from None

    def hello(self):
        """Ask the board what it is: HELLO, answered with INFO. Returns the
        :class:`~spikeforge.boards.hostlink.Info`. Retried like an image; a board that answers
        BAD_TYPE, a version 2 reply, or nothing valid in ``1 + retries`` attempts raises
        :class:`OldBoardError` (rebuild and reflash it), a babbling line :class:`LinkError`."""
        self._begin_request()
        causes, old = [], False
        for _ in range(1 + self.retries):
            seq = self._next_seq()
            outcome, value, cause = self._exchange(encode_hello(seq), seq, MsgType.INFO, decode_info)
            if outcome == "ok":
                if value.version != VERSION:
                    raise OldBoardError(f"the board speaks host-link protocol version {value.version}, this "
                                        f"spikeforge version {VERSION}: rebuild and reflash the board with it "
                                        "(spikeforge build, then spikeforge flash)")
                self.logit_bits = value.logit_bits
                self.window = max(1, min(self.window, value.window))
                self.readback = bool(value.readback)
                return value
            old = old or looks_like_v2_reply(self._raw) or (outcome == "nack" and value == ErrorCode.BAD_TYPE)
            causes.append(f"HELLO (seq {seq}): {cause}")
            if old:
                break
            self._drain()
        if old:
            raise OldBoardError("the board does not know HELLO: it runs host-link protocol version 2 or older; "
                                "rebuild and reflash it with this spikeforge (spikeforge build, then spikeforge "
                                "flash)", causes)
        if self._req_drains and self._req_busy == self._req_drains:
            raise self._failure("", causes)
        raise OldBoardError(f"the board did not answer HELLO in {len(causes)} attempts: it runs host-link protocol "
                            "version 2 or older, or is not a spikeforge board; rebuild and reflash it with this "
                            "spikeforge (spikeforge build, then spikeforge flash)", causes)

    def infer_many(self, images, *, progress=None):
        """:meth:`infer` each image; returns ``(logits [n, K] or None, classes [n], cycles [n])``.

        With ``window`` > 1 (after :meth:`hello`: at most the board's) up to ``window`` requests
        are in flight: the next IMAGE goes out while the board computes, and the replies come
        back in order. Each request has its own seq; a RESULT is accepted only for the oldest
        request in flight, with its seq and its check; a reply with a seq of no request in flight
        is stale and ignored. An ERROR fails its request's attempt (it may overtake the RESULTs
        ahead of it, which still count); the window stops when that request is the oldest.
        Anything else - no reply from the oldest within ``timeout`` of its send, a corrupt reply,
        a RESULT with another check, a RESULT out of order, a write that fails - stops it at
        once. Then the input is drained as after a failed attempt, and every request still in
        flight continues one at a time as :meth:`infer` does, its send in the window counted as
        its first attempt (so ``1 + retries`` attempts in all), before the
        window opens again. ``progress(i, (logits, cls, cycles))`` is called as image ``i``'s answer
        is accepted (in order)."""
        images = list(images)
        if self.window > 1 and len(images) > 1:
            out = self._pipelined(images, progress)
        else:
            out = []
            for i, im in enumerate(images):
                out.append(self.infer(im))
                if progress is not None:
                    progress(i, out[-1])
        if not out:
            return (np.zeros((0, self.classes), np.int64) if self.logits else None), np.zeros(0, np.int64), \
                np.zeros(0, np.int64)
        logits, cls, cycles = zip(*out)
        return (np.stack(logits) if logits[0] is not None else None), np.array(cls, np.int64), \
            np.array(cycles, np.int64)

    def _pipelined(self, images, progress=None):
        checked = [image_bytes(np.asarray(im), pixels=self.pixels, max_value=self.max_value) for im in images]
        results = [None] * len(images)
        flight = collections.deque()     # [index, seq, check, start, sent_at, cause of a failed attempt]
        nxt = 0
        decoder = FrameDecoder(max_payload=max(MAX_PAYLOAD, result_payload_length(self.classes, True, self.logit_bits)))
        self.transport.reset_input()
        t0, busy0 = self._clock(), self.stats.busy_time

        def stop(cause, foreign=0):
            """The window stops: drain, then the requests in flight one at a time."""
            self._attempt_start = self._clock()
            self._begin_request()
            self._drain()
            first = True
            while flight:
                index, seq, _, start, _, own = flight.popleft()
                why = own or (cause if first else f"in flight when the window stopped ({cause})")
                results[index] = self._infer(images[index], used=1, causes=[f"attempt 1 (seq {seq}): {why}"],
                                             start=start, foreign=foreign if first else 0)
                if progress is not None:
                    progress(index, results[index])
                first = False
            decoder.reset()

        try:
            while nxt < len(images) or flight:
                while nxt < len(images) and len(flight) < self.window:
                    seq = self._next_seq()
                    frame = encode_image(images[nxt], seq, pixels=self.pixels, max_value=self.max_value,
                                         logits=self.logits)
                    self.stats.requests += 1
                    self.stats.attempts += 1
                    start = self._clock()
                    flight.append([nxt, seq, result_check(checked[nxt], self.weight_crc), start, start, None])
                    nxt += 1
                    try:
                        self.transport.write(frame)
                    except TimeoutError as e:
                        self.stats.timeouts += 1
                        stop(f"write failed: {e}")
                        break
                    self.stats.bytes_sent += len(frame)
                    flight[-1][4] = self._clock()
                if not flight:
                    continue
                index, seq, want, start, sent_at, failed = flight[0]
                if failed:
                    stop(failed)
                    continue
                remaining = sent_at + self.timeout - self._clock()
                if remaining <= _EPS:
                    self.stats.timeouts += 1
                    stop(f"no reply within {self.timeout:g} s")
                    continue
                data = self.transport.read(4096, remaining)
                self._received(data)
                for item in decoder.feed(data):
                    if not flight:
                        break
                    index, seq, want, start, _, _ = flight[0]
                    outcome, result, cause = self._classify(item, {f[1] for f in flight}, MsgType.RESULT,
                                                            self._decode_result)
                    if outcome == "stale":
                        continue
                    if outcome == "lost":
                        stop(cause)
                        break
                    if outcome == "nack":
                        # the board NACKs a frame as it ends, maybe before the RESULTs of the
                        # images ahead of it: that request failed; the ones ahead still count
                        entry = next(f for f in flight if f[1] == item.seq)
                        entry[5] = cause
                        if entry is flight[0]:
                            stop(cause)
                            break
                        continue
                    if item.seq != seq:
                        stop(f"RESULT for seq {item.seq} before the one for seq {seq}")
                        break
                    if result.check != want:
                        self.stats.foreign_results += 1
                        stop(f"RESULT for another image or weight set (check 0x{result.check:08X}, expected "
                             f"0x{want:08X})", foreign=1)
                        break
                    flight.popleft()
                    results[index] = self._accept(result, start)
                    if progress is not None:
                        progress(index, results[index])
        finally:
            # the requests stop() ran one at a time added their own time: count the window's once
            self.stats.busy_time = busy0 + (self._clock() - t0)
        return results

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

    def verify_weights(self, words=None):
        """Ask the board to read its loaded weight words back (VERIFY, retried like an image)
        and compare the CRC-32C of what it read (VERIFIED) with that of ``words`` (default: the
        words of the last :meth:`load_weights`). Returns the :class:`~spikeforge.boards.hostlink.Verified`.
        Raises :class:`WeightVerifyError` naming both CRCs and the word counts when they differ,
        :class:`LinkError` when no VERIFIED comes in ``1 + retries`` attempts."""
        if words is None:
            if self._weights is None:
                raise LinkError("verify_weights: no words to compare with: call load_weights first or pass words")
            words = self._weights[0]
        else:
            words = _check_weight_words(words)
        want = words_crc(words)
        self._begin_request()
        causes = []
        while True:
            seq = self._next_seq()
            outcome, value, cause = self._exchange(encode_verify(seq), seq, MsgType.VERIFIED, decode_verified)
            if outcome == "ok":
                break
            causes.append(f"VERIFY (seq {seq}): {cause}")
            if len(causes) > self.retries:
                hint = ""
                if causes[-1].endswith("ERROR BAD_TYPE"):
                    hint = " (a board without a read-back, INFO read-back 0, answers VERIFY with BAD_TYPE)"
                raise self._failure(f"weight read-back: VERIFY failed {len(causes)} times: "
                                    + "; ".join(causes) + hint, causes)
            self._drain()
        self._begin_request()
        if value.words != len(words) or value.crc != want:
            raise WeightVerifyError(
                f"weight read-back mismatch: the board read {value.words} words back with CRC-32C "
                f"0x{value.crc:08X}; the host sent {len(words)} words with CRC-32C 0x{want:08X}: "
                "the weight memory does not hold the words loaded (load again; if it persists, "
                "the board's SDRAM or its timing is faulty)", value.crc, want, value.words, len(words))
        self.stats.weight_verifies += 1
        return value

    def load_weights(self, words, *, chunk=256, progress=None, verify=None):
        """Load ``words`` (ints 0..65535; a signed weight as its 16-bit two's complement) into
        the board's weight memory with WEIGHTS frames: begin load, then chunks of ``chunk``
        words in order (``docs/hostlink.md``). Every frame is retried as in :meth:`infer`;
        ``progress(done_words, total_words)`` is called after begin load and after each chunk.

        A chunk whose reply was lost may have been committed; the board then rejects its
        re-send with BAD_OFFSET. The host keeps the set of chunk boundaries the board can be
        at and sends the furthest one; when none is left it starts over with begin load (at
        most ``retries`` times). ``len(words)`` must equal the board's ``weight_words``: the last
        LOADED must report ``loaded``.

        ``verify``: after the last frame, read the words back (:meth:`verify_weights`);
        ``None`` (the default): when the board's INFO says it can (``hello()`` read it: the
        ULX3S's SDRAM), ``True``: always, ``False``: never.

        Returns a :class:`LoadSummary`. Raises ``ValueError`` for bad ``words`` or ``chunk``,
        :class:`LinkError` when a frame fails ``1 + retries`` times in a row or the
        board's replies do not fit the load, and :class:`WeightVerifyError` when the words
        read back are not the words sent.
        """
        if verify is not None and not isinstance(verify, bool):
            raise TypeError(f"HostLink.load_weights: verify is {verify!r}; allowed: None, True or False")
        words = _check_weight_words(words)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 1 <= chunk <= MAX_WEIGHT_WORDS:
            raise ValueError(f"HostLink.load_weights: chunk is {chunk!r}; allowed: an integer 1..{MAX_WEIGHT_WORDS}")
        if progress is not None and not callable(progress):
            raise TypeError(f"HostLink.load_weights: progress must be callable, not {progress!r}")
        self._weights = (words, chunk)   # what a reload after NOT_LOADED sends
        self.weight_crc = words_crc(words)
        total = len(words)
        offsets = list(range(0, total, chunk))
        prefix_crc = {0: 0}               # CRC-32C of words 0 .. end - 1 at every chunk end
        for offset in offsets:
            end = min(total, offset + chunk)
            prefix_crc[end] = words_crc(words[offset:end], prefix_crc[offset])
        start = self._clock()
        frames0 = self.stats.weight_frames
        accepted = 0
        restarts = 0

        self._begin_request()

        def fail(message, causes):
            hint = ""
            if causes and causes[-1].endswith("ERROR BAD_TYPE"):
                hint = " (a board built without loadable weights answers WEIGHTS with BAD_TYPE)"
            raise self._failure(f"{message}: " + "; ".join(causes) + hint, causes)

        while True:
            causes = []
            while True:   # begin load
                outcome, value, cause = self._weights_attempt(0, [])
                if outcome == "ok":
                    if value.next_word != 0 or value.loaded or value.weight_crc != 0:
                        raise LinkError(f"board answered begin load with next_word {value.next_word}, "
                                        f"loaded {int(value.loaded)}, weight CRC 0x{value.weight_crc:08X}; "
                                        "expected 0, 0, 0")
                    accepted += 1
                    self._begin_request()
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
                    want = prefix_crc[end]
                    if value.weight_crc != want:
                        # a damaged WEIGHTS frame got through: the words held are not ours
                        causes.append(f"words {offset}..{end - 1}: LOADED with weight CRC "
                                      f"0x{value.weight_crc:08X}, expected 0x{want:08X}")
                        self.stats.foreign_results += 1
                        break     # start over

                    accepted += 1
                    causes = []
                    self._begin_request()
                    candidates = {j + 1}
                    if progress is not None:
                        progress(end, total)
                    if end == total:
                        if not value.loaded:
                            raise LinkError(f"board is not loaded after all {total} words: it expects more "
                                            f"(its weight_words is above {total})")
                        verified = None
                        if verify or (verify is None and self.readback):
                            verified = self.verify_weights(words).crc
                        seconds = self._clock() - start
                        self.stats.weight_loads += 1
                        frames = self.stats.weight_frames - frames0
                        return LoadSummary(total, frames, frames - accepted, restarts, seconds, verified)
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


def _to_stderr(line):
    print(f"spikeforge: {line}", file=sys.stderr, flush=True)


def _check_weight_words(words):
    if isinstance(words, (str, bytes, bytearray)) or not hasattr(words, "__len__"):
        raise TypeError(f"HostLink.load_weights: words must be a sequence or array of integers, "
                        f"not {type(words).__name__}")
    if isinstance(words, np.ndarray) and words.ndim != 1:
        raise ValueError(f"HostLink.load_weights: words has shape {words.shape}; allowed: one dimension")
    if not 1 <= len(words) <= MAX_LOAD_WORDS:
        raise ValueError(f"HostLink.load_weights: {len(words)} words; allowed: 1..{MAX_LOAD_WORDS}")
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
    started over), ``seconds`` of the transport's clock, ``verified``: the read-back's CRC-32C
    when the words were read back and matched (None: not read back)."""
    words: int
    frames: int
    retries: int
    restarts: int
    seconds: float
    verified: int = None
