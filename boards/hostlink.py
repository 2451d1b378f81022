"""Host link protocol: framing, CRC, message types and the host-side codec.

The protocol is documented in ``docs/hostlink.md``; this module is its reference
implementation. The gateware (:mod:`spikeforge.boards.link_gateware`) is tested against it,
byte for byte, in both directions.

Frame (all multi-byte fields little-endian, except the CRC, see below)::

    SYNC 0xA5 | type (1) | seq (1) | length (2, LE) | payload (length bytes) | CRC (2, BE)

``CRC`` is CRC-16/CCITT-FALSE (polynomial 0x1021, init 0xFFFF, no reflection, no final XOR)
over ``type | seq | length | payload``. It is sent most significant byte first, so that the CRC
run over the whole frame after SYNC, CRC included, is zero (the receiver checks that).
"""

import enum
from dataclasses import dataclass

import numpy as np

__all__ = [
    "VERSION", "SYNC", "HEADER_BYTES", "TRAILER_BYTES", "MAX_PAYLOAD", "MsgType", "ErrorCode", "Frame",
    "FrameError", "crc16", "crc16_update", "encode_frame", "FrameDecoder", "decode_frames", "encode_image",
    "decode_image", "image_payload_length", "Result", "result_payload_length", "encode_result",
    "link_bound_images_per_second",
    "decode_result", "encode_error", "decode_error", "argmax_lowest", "MAX_WEIGHT_WORDS",
    "weights_payload_length", "encode_weights", "decode_weights", "Loaded", "LOADED_PAYLOAD", "encode_loaded",
    "decode_loaded", "BAUD_RATES",
]

#: the standard serial rates (termios ``B*`` constants): the rates the host opens
#: (:class:`~spikeforge.boards.runtime.SerialTransport`) and a board build takes (``--baud``)
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000,
              921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000)

SYNC = 0xA5
HEADER_BYTES = 5      # SYNC, type, seq, length lo, length hi
TRAILER_BYTES = 2     # CRC hi, CRC lo
VERSION = 2
MAX_PAYLOAD = 1024    # no message is longer; longer lengths are rejected
MAX_WEIGHT_WORDS = (MAX_PAYLOAD - 2) // 2  # words in one WEIGHTS frame (511)
LOADED_PAYLOAD = 3    # LOADED: next_word (u16 LE), loaded (u8)
CRC_INIT = 0xFFFF
CRC_POLY = 0x1021


class MsgType(enum.IntEnum):
    """Message types. Host-to-board types are below 0x80, board-to-host types 0x80 and up."""
    IMAGE = 0x01    # host -> board: pixels, one byte each, row-major (spec §2)
    WEIGHTS = 0x02  # host -> board: offset (u16 LE, a word index), then n words (u16 LE each)
    RESULT = 0x81   # board -> host: K logits (int32 LE), class (u8), cycles (u32 LE)
    ERROR = 0x82    # board -> host: the request with this seq was rejected (a NACK): code (u8)
    LOADED = 0x83   # board -> host: ACK of a WEIGHTS frame: next_word (u16 LE), loaded (u8)


class ErrorCode(enum.IntEnum):
    """Code byte of an ERROR message: the request was rejected (a NACK). The host retries all
    but NOT_LOADED (which cannot succeed until the weights are loaded)."""
    BAD_CRC = 1     # the CRC did not match: transmission error
    BAD_LENGTH = 2  # the length field does not fit the message type
    BAD_TYPE = 3    # unknown message type
    BAD_VALUE = 4   # CRC correct but a pixel is above the input's max_value
    TIMEOUT = 5     # the frame stopped before its end (inter-byte timeout): truncated
    BUSY = 6        # an image arrived while the previous one was still being handed on; or a
                    # WEIGHTS frame while an image is in flight
    NOT_LOADED = 7  # an IMAGE arrived while the weights are not completely loaded
    BAD_OFFSET = 8  # a WEIGHTS frame whose offset is not the board's next_word (0 for begin load)


class FrameError(ValueError):
    """A frame or payload that does not decode (the message says why). ``code`` is the
    :class:`ErrorCode` a board answers it with and ``seq`` the frame's (maybe corrupted) seq
    byte, where known."""

    def __init__(self, message, *, code=None, seq=None):
        super().__init__(message)
        self.code = code
        self.seq = seq


def _crc_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_update(crc, byte):
    """One byte of CRC-16/CCITT-FALSE (MSB first)."""
    return ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data``; ``crc16(b"123456789") == 0x29B1``."""
    for byte in bytes(data):
        crc = crc16_update(crc, byte)
    return crc


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes


def _check_byte(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 255:
        raise ValueError(f"{name} must be an integer 0..255, not {value!r}")
    return int(value)


def encode_frame(type, seq, payload):
    """Bytes of one frame (SYNC through CRC)."""
    type = _check_byte("type", type)
    seq = _check_byte("seq", seq)
    payload = bytes(payload)
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload is {len(payload)} bytes; allowed: at most {MAX_PAYLOAD}")
    body = bytes([type, seq]) + len(payload).to_bytes(2, "little") + payload
    crc = crc16(body)
    return bytes([SYNC]) + body + crc.to_bytes(2, "big")


class FrameDecoder:
    """Streaming decoder: :meth:`feed` bytes, get back decoded frames and errors.

    Between frames, bytes other than SYNC are skipped (``skipped`` counts them). A header
    with a length above ``max_payload`` is rejected at once and the decoder hunts for the
    next SYNC from the byte after the rejected SYNC; so is a frame whose CRC does not match.
    :meth:`feed` returns a list whose items are :class:`Frame` or :class:`FrameError`.
    """

    def __init__(self, *, max_payload=MAX_PAYLOAD):
        if isinstance(max_payload, bool) or not isinstance(max_payload, int) or not 0 <= max_payload <= 65535:
            raise ValueError(f"FrameDecoder: max_payload must be an integer 0..65535, not {max_payload!r}")
        self.max_payload = max_payload
        self._buf = bytearray()
        self.skipped = 0

    def reset(self):
        self._buf.clear()

    @property
    def pending(self):
        """Bytes held of a frame not yet complete."""
        return len(self._buf)

    def feed(self, data):
        self._buf += bytes(data)
        out = []
        while True:
            start = self._buf.find(SYNC)
            if start < 0:
                self.skipped += len(self._buf)
                self._buf.clear()
                return out
            self.skipped += start
            del self._buf[:start]
            if len(self._buf) < HEADER_BYTES:
                return out
            length = int.from_bytes(self._buf[3:5], "little")
            if length > self.max_payload:
                out.append(FrameError(f"length {length} above the limit {self.max_payload}",
                                      code=ErrorCode.BAD_LENGTH, seq=self._buf[2]))
                del self._buf[:1]
                continue
            total = HEADER_BYTES + length + TRAILER_BYTES
            if len(self._buf) < total:
                return out
            frame = bytes(self._buf[:total])
            if crc16(frame[1:]) != 0:
                got = int.from_bytes(frame[-2:], "big")
                want = crc16(frame[1:-2])
                out.append(FrameError(f"bad CRC 0x{got:04X}, expected 0x{want:04X} "
                                      f"(type 0x{frame[1]:02X}, seq {frame[2]}, length {length})",
                                      code=ErrorCode.BAD_CRC, seq=frame[2]))
                del self._buf[:1]
                continue
            del self._buf[:total]
            out.append(Frame(frame[1], frame[2], frame[HEADER_BYTES:HEADER_BYTES + length]))


def decode_frames(data, **kwargs):
    """Decode a complete byte string; raises :class:`FrameError` on the first bad frame or on
    trailing bytes of an incomplete frame."""
    dec = FrameDecoder(**kwargs)
    frames = []
    for item in dec.feed(data):
        if isinstance(item, FrameError):
            raise item
        frames.append(item)
    if dec.pending:
        raise FrameError(f"{dec.pending} bytes of an incomplete frame at the end")
    return frames


# --- messages ----------------------------------------------------------------------------

def image_payload_length(pixels=64):
    return pixels


def encode_image(image, seq=0, *, pixels=64, max_value=16):
    """IMAGE frame for ``image`` (any shape with ``pixels`` elements, row-major, spec §2)."""
    arr = np.asarray(image)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"image must be an integer array, not dtype {arr.dtype}")
    if arr.size != pixels:
        raise ValueError(f"image has {arr.size} pixels (shape {arr.shape}); expected {pixels}")
    flat = arr.reshape(-1).astype(np.int64)
    bad = np.flatnonzero((flat < 0) | (flat > max_value))
    if bad.size:
        raise ValueError(f"pixel {int(bad[0])} is {int(flat[bad[0]])}; allowed: 0..{max_value}")
    return encode_frame(MsgType.IMAGE, seq, bytes(int(v) for v in flat))


def decode_image(payload, *, pixels=64, max_value=16):
    if len(payload) != pixels:
        raise FrameError(f"IMAGE payload is {len(payload)} bytes; expected {pixels}")
    arr = np.frombuffer(bytes(payload), np.uint8).astype(np.int64)
    if (arr > max_value).any():
        raise FrameError(f"IMAGE pixel {int(np.argmax(arr > max_value))} above max_value {max_value}")
    return arr


@dataclass(frozen=True)
class Result:
    logits: tuple
    cls: int
    cycles: int


def result_payload_length(classes):
    return 4 * classes + 1 + 4


def argmax_lowest(values):
    """Index of the largest value, ties to the lowest index (spec §8.4)."""
    values = list(values)
    return values.index(max(values))


def encode_result(logits, cls, cycles, seq=0):
    logits = [int(v) for v in logits]
    for j, v in enumerate(logits):
        if not -(1 << 31) <= v < (1 << 31):
            raise ValueError(f"logit {j} is {v}; allowed: signed 32-bit")
    if not 1 <= len(logits) <= 255:
        raise ValueError(f"{len(logits)} logits; allowed: 1..255")
    cls = _check_byte("cls", cls)
    if not 0 <= cycles < (1 << 32):
        raise ValueError(f"cycles is {cycles}; allowed: 0..2^32-1")
    payload = b"".join(v.to_bytes(4, "little", signed=True) for v in logits)
    payload += bytes([cls]) + int(cycles).to_bytes(4, "little")
    return encode_frame(MsgType.RESULT, seq, payload)


def decode_result(payload, *, classes=None):
    n = len(payload) - 5
    if n < 4 or n % 4:
        raise FrameError(f"RESULT payload is {len(payload)} bytes; expected 4*K + 5")
    k = n // 4
    if classes is not None and k != classes:
        raise FrameError(f"RESULT has {k} logits; expected {classes}")
    logits = tuple(int.from_bytes(payload[4 * j:4 * j + 4], "little", signed=True) for j in range(k))
    return Result(logits, payload[n], int.from_bytes(payload[n + 1:n + 5], "little"))


def encode_error(code, seq=0):
    return encode_frame(MsgType.ERROR, seq, bytes([_check_byte("code", code)]))


def decode_error(payload):
    """The error code, as :class:`ErrorCode` when known, else the raw int."""
    if len(payload) != 1:
        raise FrameError(f"ERROR payload is {len(payload)} bytes; expected 1")
    try:
        return ErrorCode(payload[0])
    except ValueError:
        return payload[0]


def _check_u16(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= 0xFFFF:
        raise ValueError(f"{name} is {value!r}; allowed: an integer 0..65535")
    return int(value)


def weights_payload_length(words):
    """Payload length of a WEIGHTS frame with ``words`` words: ``2 + 2 * words``."""
    return 2 + 2 * words


def encode_weights(offset, words, seq=0):
    """WEIGHTS frame: ``words`` (each 0..65535, at most :data:`MAX_WEIGHT_WORDS`) to be written
    from word ``offset`` on. ``encode_weights(0, [])`` is "begin load"."""
    offset = _check_u16("offset", offset)
    words = list(words)
    if len(words) > MAX_WEIGHT_WORDS:
        raise ValueError(f"{len(words)} words; allowed: at most {MAX_WEIGHT_WORDS} per WEIGHTS frame")
    if not words and offset:
        raise ValueError(f"offset is {offset} with no words; allowed: 0 (begin load)")
    payload = offset.to_bytes(2, "little")
    payload += b"".join(_check_u16(f"word {i}", w).to_bytes(2, "little") for i, w in enumerate(words))
    return encode_frame(MsgType.WEIGHTS, seq, payload)


def decode_weights(payload):
    """``(offset, words)`` of a WEIGHTS payload (words a list of ints)."""
    n = len(payload)
    if n < 2 or n % 2 or n > MAX_PAYLOAD:
        raise FrameError(f"WEIGHTS payload is {n} bytes; expected 2 + 2*n, at most {MAX_PAYLOAD}",
                         code=ErrorCode.BAD_LENGTH)
    offset = int.from_bytes(payload[:2], "little")
    words = [int.from_bytes(payload[k:k + 2], "little") for k in range(2, n, 2)]
    return offset, words


@dataclass(frozen=True)
class Loaded:
    """Payload of a LOADED frame: the board's ``next_word`` and whether all words are loaded."""
    next_word: int
    loaded: bool


def encode_loaded(next_word, loaded, seq=0):
    payload = _check_u16("next_word", next_word).to_bytes(2, "little") + bytes([1 if loaded else 0])
    return encode_frame(MsgType.LOADED, seq, payload)


def decode_loaded(payload):
    if len(payload) != LOADED_PAYLOAD:
        raise FrameError(f"LOADED payload is {len(payload)} bytes; expected {LOADED_PAYLOAD}")
    if payload[2] > 1:
        raise FrameError(f"LOADED flag is {payload[2]}; expected 0 or 1")
    return Loaded(int.from_bytes(payload[:2], "little"), bool(payload[2]))


def link_bound_images_per_second(baud, pixels, classes):
    """Images per second the UART carries when the board computes in no time: one IMAGE frame
    to the board and one RESULT frame back per image, 10 bit times per byte (8N1)."""
    request = pixels + 7
    reply = result_payload_length(classes) + 7
    return baud / 10 / (request + reply)
