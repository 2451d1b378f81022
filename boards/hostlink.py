"""Host link protocol (version 4): framing, CRC-32, message types and the host-side codec.

The protocol is documented in ``docs/hostlink.md``; this module is its reference
implementation. The gateware (:mod:`spikeforge.boards.link_gateware`) is tested against it,
byte for byte, in both directions.

Frame (all multi-byte fields little-endian)::

    SYNC 0xA5 | type (1) | seq (1) | length (2) | payload (length bytes) | CRC-32 (4)

``CRC-32`` is CRC-32/ISO-HDLC (the IEEE 802.3 / zlib CRC: polynomial 0x04C11DB7 reflected,
0xEDB88320, init 0xFFFFFFFF, reflected in and out, final XOR 0xFFFFFFFF; check value
``crc32(b"123456789") == 0xCBF43926``) over ``type | seq | length | payload``, sent least
significant byte first. The CRC run over the whole frame after SYNC, CRC included, then leaves
the constant residue :data:`CRC_RESIDUE` in the register, which is what the gateware checks.
"""

import enum
import hashlib
import json
import zlib
from dataclasses import dataclass

import numpy as np

from ..modelfile import _to_jsonable

__all__ = [
    "VERSION", "SYNC", "HEADER_BYTES", "TRAILER_BYTES", "MAX_PAYLOAD", "MAX_IMAGE", "MsgType", "ErrorCode",
    "Frame", "FrameError", "crc32", "crc32c", "crc16", "encode_frame", "FrameDecoder", "decode_frames", "encode_image",
    "decode_image", "image_payload_length", "image_crc", "image_bytes", "Result", "result_payload_length",
    "result_check", "encode_result",
    "link_bound_images_per_second", "decode_result", "encode_error", "decode_error", "argmax_lowest",
    "MAX_WEIGHT_WORDS", "weights_payload_length", "encode_weights", "decode_weights", "words_crc", "Loaded",
    "LOADED_PAYLOAD", "encode_loaded", "decode_loaded", "encode_hello", "Info", "INFO_PAYLOAD", "encode_info",
    "decode_info", "info_payload", "model_hash", "weight_set_crc", "looks_like_v2_reply", "BAUD_RATES",
    "pixel_bits", "pack_pixels", "unpack_pixels", "logit_bytes", "INFO_PAYLOAD_V3",
    "MAX_LOAD_WORDS", "VERIFIED_PAYLOAD", "Verified", "encode_verify", "encode_verified", "decode_verified",
]

#: the standard serial rates (termios ``B*`` constants): the rates the host opens
#: (:class:`~spikeforge.boards.runtime.SerialTransport`) and a board build takes (``--baud``)
BAUD_RATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000,
              921600, 1000000, 1152000, 1500000, 2000000, 2500000, 3000000, 3500000, 4000000)

SYNC = 0xA5
HEADER_BYTES = 5      # SYNC, type, seq, length lo, length hi
TRAILER_BYTES = 4     # CRC-32, least significant byte first
VERSION = 5
MAX_PAYLOAD = 1024    # no message but IMAGE is longer; longer lengths are rejected
MAX_IMAGE = 0xFFFF    # an IMAGE frame carries a whole image, up to the 16-bit length field
MAX_WEIGHT_WORDS = (MAX_PAYLOAD - 4) // 2  # words in one WEIGHTS frame (510)
MAX_LOAD_WORDS = (1 << 24) - 1   # words a board can load (INFO's u24; the ULX3S SDRAM holds 1 << 24)
LOADED_PAYLOAD = 9    # LOADED: weight CRC-32C of the words so far (u32), next_word (u32), loaded (u8)
VERIFIED_PAYLOAD = 8  # VERIFIED: CRC-32C of the words read back (u32), words read (u32)
INFO_PAYLOAD = 28     # INFO: see encode_info (versions 4 and 5 alike, so each refuses the other by version)
INFO_PAYLOAD_V3 = 25  # a version 3 board's INFO (without pixel bits, logit bits, window)
CRC32_POLY = 0xEDB88320   # reflected 0x04C11DB7
CRC32_INIT = 0xFFFFFFFF
#: the CRC-32 of a frame's body followed by its own CRC (least significant byte first); the
#: register before the final XOR is then 0xDEBB20E3
CRC_RESIDUE = 0x2144DF1C
MODEL_HASH_BYTES = 8


class MsgType(enum.IntEnum):
    """Message types. Host-to-board types are below 0x80, board-to-host types 0x80 and up."""
    IMAGE = 0x01    # host -> board: the pixels packed at their bit width, row-major (spec §2); RESULT: class
    WEIGHTS = 0x02  # host -> board: offset (u32, a word index), then n words (u16 each)
    HELLO = 0x03    # host -> board: no payload; answered with INFO
    IMAGE_LOGITS = 0x04  # host -> board: as IMAGE; its RESULT carries the logits as well
    VERIFY = 0x05   # host -> board: no payload; the board reads its loaded words back: VERIFIED
    RESULT = 0x81   # board -> host: check (u32), class (u8), cycles (u32), [K logits at their width]
    ERROR = 0x82    # board -> host: the request with this seq was rejected (a NACK): code (u8)
    LOADED = 0x83   # board -> host: ACK of a WEIGHTS frame: weight CRC, next_word (u32), loaded (u8)
    INFO = 0x84     # board -> host: what the board is (answer to HELLO)
    VERIFIED = 0x85  # board -> host: answer to VERIFY: CRC-32C of the words read back (u32), words (u32)


class ErrorCode(enum.IntEnum):
    """Code byte of an ERROR message: the request was rejected (a NACK). The host retries all
    but NOT_LOADED (which cannot succeed until the weights are loaded)."""
    BAD_CRC = 1     # the CRC did not match: transmission error
    BAD_LENGTH = 2  # the length field does not fit the message type
    BAD_TYPE = 3    # unknown message type
    BAD_VALUE = 4   # CRC correct but a pixel is above the input's max_value
    TIMEOUT = 5     # the frame stopped before its end (inter-byte timeout): truncated
    BUSY = 6        # an image arrived while the previous one was still being handed on; or a
                    # WEIGHTS frame while an image is in flight; a WEIGHTS or VERIFY frame
                    # while a read-back is running
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


def crc32(data, crc=0):
    """CRC-32/ISO-HDLC of ``data`` (zlib's); ``crc32(b"123456789") == 0xCBF43926``. ``crc``
    continues an earlier value (``crc32(a + b) == crc32(b, crc32(a))``)."""
    return zlib.crc32(bytes(data), crc) & 0xFFFFFFFF


CRC32C_POLY = 0x82F63B78   # reflected 0x1EDC6F41 (Castagnoli)


def _crc32c_table():
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli, iSCSI: polynomial 0x1EDC6F41 reflected, init and final XOR
    0xFFFFFFFF); ``crc32c(b"123456789") == 0xE3069283``. The image and weight CRCs use it: a
    polynomial other than the frame check's, so that the two checks fail independently."""
    crc ^= 0xFFFFFFFF
    table = _CRC32C_TABLE
    for byte in bytes(data):
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc ^ 0xFFFFFFFF


def crc16(data, crc=0xFFFF):
    """CRC-16/CCITT-FALSE (the frame check of protocol version 2); only used to recognize the
    reply of a version 2 board. ``crc16(b"123456789") == 0x29B1``."""
    for byte in bytes(data):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        crc &= 0xFFFF
    return crc


def looks_like_v2_reply(data):
    """Whether ``data`` holds a frame of protocol version 2 (CRC-16, sent MSB first): what a
    version 2 board answers a HELLO with (ERROR BAD_TYPE)."""
    data = bytes(data)
    start = data.find(SYNC)
    while 0 <= start <= len(data) - 7:
        length = int.from_bytes(data[start + 3:start + 5], "little")
        end = start + 5 + length + 2
        if length <= 1024 and end <= len(data) and crc16(data[start + 1:end]) == 0:
            return True
        start = data.find(SYNC, start + 1)
    return False


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
    limit = MAX_IMAGE if type in (MsgType.IMAGE, MsgType.IMAGE_LOGITS) else MAX_PAYLOAD
    if len(payload) > limit:
        raise ValueError(f"payload is {len(payload)} bytes; allowed: at most {limit}")
    body = bytes([type, seq]) + len(payload).to_bytes(2, "little") + payload
    return bytes([SYNC]) + body + crc32(body).to_bytes(4, "little")


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
            want = crc32(frame[1:-TRAILER_BYTES])
            got = int.from_bytes(frame[-TRAILER_BYTES:], "little")
            if got != want:
                out.append(FrameError(f"bad CRC 0x{got:08X}, expected 0x{want:08X} "
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

def pixel_bits(max_value):
    """Bits of a pixel on the wire: ``bit_length(max_value)`` (0..16: 5; binary: 1)."""
    return max(1, int(max_value).bit_length())


def image_payload_length(pixels=64, max_value=16):
    """Bytes of an IMAGE payload: ``pixels`` packed at :func:`pixel_bits` each, rounded up to
    whole bytes (8x8 digits, 0..16: 40 bytes)."""
    return -(-pixels * pixel_bits(max_value) // 8)


def pack_pixels(values, bits):
    """Pixels (integers ``0 .. 2^bits - 1``) packed LSB first: pixel ``i`` is bits ``i * bits ..
    (i + 1) * bits - 1`` of the payload read as one little-endian number (bit ``k`` of byte
    ``j`` is bit ``8 j + k``); the last byte's unused high bits are 0."""
    v = np.asarray(values, np.int64).reshape(-1)
    if bits == 8:
        return v.astype(np.uint8).tobytes()
    planes = ((v[:, None] >> np.arange(bits)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(planes, bitorder="little").tobytes()


def unpack_pixels(payload, pixels, bits):
    """The inverse of :func:`pack_pixels` (padding bits ignored)."""
    raw = np.frombuffer(bytes(payload), np.uint8)
    if bits == 8:
        return raw[:pixels].astype(np.int64)
    planes = np.unpackbits(raw, bitorder="little")[:pixels * bits].reshape(pixels, bits).astype(np.int64)
    return (planes << np.arange(bits)).sum(axis=1)


def _image_bytes(image, pixels, max_value):
    arr = np.asarray(image)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"image must be an integer array, not dtype {arr.dtype}")
    if arr.size != pixels:
        raise ValueError(f"image has {arr.size} pixels (shape {arr.shape}); expected {pixels}")
    flat = arr.reshape(-1).astype(np.int64)
    bad = np.flatnonzero((flat < 0) | (flat > max_value))
    if bad.size:
        raise ValueError(f"pixel {int(bad[0])} is {int(flat[bad[0]])}; allowed: 0..{max_value}")
    return pack_pixels(flat, pixel_bits(max_value))


def image_bytes(image, *, pixels=64, max_value=16):
    """The IMAGE payload of ``image`` (checked as :func:`encode_image` does): its pixels packed
    at their bit width (:func:`pack_pixels`)."""
    return _image_bytes(image, pixels, max_value)


def image_crc(image, *, pixels=64, max_value=16):
    """CRC-32C of an image's IMAGE payload."""
    return crc32c(_image_bytes(image, pixels, max_value))


def encode_image(image, seq=0, *, pixels=64, max_value=16, logits=False):
    """IMAGE frame for ``image`` (any shape with ``pixels`` elements, row-major, spec §2, in one
    frame: its payload at most :data:`MAX_IMAGE` bytes); ``logits``: an IMAGE_LOGITS frame,
    whose RESULT carries the logits."""
    if not 1 <= image_payload_length(pixels, max_value) <= MAX_IMAGE:
        raise ValueError(f"an image of {pixels} pixels of {pixel_bits(max_value)} bits; allowed: up to "
                         f"{MAX_IMAGE} bytes (one IMAGE frame)")
    return encode_frame(MsgType.IMAGE_LOGITS if logits else MsgType.IMAGE, seq,
                        _image_bytes(image, pixels, max_value))


def decode_image(payload, *, pixels=64, max_value=16):
    want = image_payload_length(pixels, max_value)
    if len(payload) != want:
        raise FrameError(f"IMAGE payload is {len(payload)} bytes; expected {want}")
    arr = unpack_pixels(payload, pixels, pixel_bits(max_value))
    if (arr > max_value).any():
        raise FrameError(f"IMAGE pixel {int(np.argmax(arr > max_value))} above max_value {max_value}")
    return arr


@dataclass(frozen=True)
class Result:
    """A RESULT: the logits (None when not asked for), class and cycle count, and ``check``, the
    CRC-32C of the weight set the board computes with continued over the IMAGE payload it
    received (:func:`result_check`)."""
    logits: tuple
    cls: int
    cycles: int
    check: int = 0


def logit_bytes(logit_bits):
    """Bytes of a logit in a RESULT: its width rounded up to whole bytes."""
    return -(-int(logit_bits) // 8)


def result_payload_length(classes, logits=False, logit_bits=32):
    """RESULT payload: check (4), class (1), cycles (4), and with ``logits`` K logits of
    :func:`logit_bytes` each."""
    return 9 + (classes * logit_bytes(logit_bits) if logits else 0)


def result_check(image_bytes, weight_crc):
    """What a RESULT's ``check`` must be: the CRC-32C of the weight set (``weight_crc``, see
    :func:`weight_set_crc`) continued over the image payload, ``crc32c(image, weight_crc)``."""
    return crc32c(image_bytes, weight_crc)


def argmax_lowest(values):
    """Index of the largest value, ties to the lowest index (spec §8.4)."""
    values = list(values)
    return values.index(max(values))


def _check_u32(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < (1 << 32):
        raise ValueError(f"{name} is {value!r}; allowed: an integer 0..2^32-1")
    return int(value)


def encode_result(logits, cls, cycles, seq=0, *, check=0, logit_bits=32, with_logits=True):
    """RESULT frame: check, class, cycles and (``with_logits``) the logits, each two's
    complement in :func:`logit_bytes` ``(logit_bits)`` bytes, little-endian."""
    logits = [int(v) for v in logits]
    nb = logit_bytes(logit_bits)
    for j, v in enumerate(logits):
        if not -(1 << (8 * nb - 1)) <= v < (1 << (8 * nb - 1)):
            raise ValueError(f"logit {j} is {v}; allowed: signed {8 * nb}-bit")
    if not 1 <= len(logits) <= 255:
        raise ValueError(f"{len(logits)} logits; allowed: 1..255")
    cls = _check_byte("cls", cls)
    payload = _check_u32("check", check).to_bytes(4, "little") + bytes([cls])
    payload += _check_u32("cycles", cycles).to_bytes(4, "little")
    if with_logits:
        payload += b"".join(v.to_bytes(nb, "little", signed=True) for v in logits)
    return encode_frame(MsgType.RESULT, seq, payload)


def decode_result(payload, *, classes=None, logit_bits=32, logits=None):
    """A :class:`Result` from a RESULT payload: 9 bytes (no logits) or ``9 + K * logit_bytes``.
    ``classes``: K, checked when the logits are there; ``logits``: True or False to require
    them there or not (None: either)."""
    nb = logit_bytes(logit_bits)
    n = len(payload) - 9
    if n < 0 or n % nb or (n == 0) == bool(logits) and logits is not None:
        want = ("9" if logits is False else f"9 + {nb}*K" if logits else f"9 or 9 + {nb}*K")
        raise FrameError(f"RESULT payload is {len(payload)} bytes; expected {want}")
    k = n // nb
    if k and classes is not None and k != classes:
        raise FrameError(f"RESULT has {k} logits; expected {classes}")
    values = tuple(int.from_bytes(payload[9 + nb * j:9 + nb * (j + 1)], "little", signed=True)
                   for j in range(k)) if k else None
    return Result(values, payload[4], int.from_bytes(payload[5:9], "little"), int.from_bytes(payload[:4], "little"))


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
    """Payload length of a WEIGHTS frame with ``words`` words: ``4 + 2 * words``."""
    return 4 + 2 * words


def words_crc(words, crc=0):
    """CRC-32C of 16-bit words, each sent as two bytes, low byte first (the bytes the WEIGHTS
    frames carry after their offsets): the weight CRC of a loaded weight set."""
    return crc32c(np.asarray(words, np.int64).astype("<u2").tobytes(), crc)


def encode_weights(offset, words, seq=0):
    """WEIGHTS frame: ``words`` (each 0..65535, at most :data:`MAX_WEIGHT_WORDS`) to be written
    from word ``offset`` on. ``encode_weights(0, [])`` is "begin load"."""
    offset = _check_u32("offset", offset)
    words = list(words)
    if len(words) > MAX_WEIGHT_WORDS:
        raise ValueError(f"{len(words)} words; allowed: at most {MAX_WEIGHT_WORDS} per WEIGHTS frame")
    if not words and offset:
        raise ValueError(f"offset is {offset} with no words; allowed: 0 (begin load)")
    payload = offset.to_bytes(4, "little")
    payload += b"".join(_check_u16(f"word {i}", w).to_bytes(2, "little") for i, w in enumerate(words))
    return encode_frame(MsgType.WEIGHTS, seq, payload)


def decode_weights(payload):
    """``(offset, words)`` of a WEIGHTS payload (words a list of ints)."""
    n = len(payload)
    if n < 4 or n % 2 or n > MAX_PAYLOAD:
        raise FrameError(f"WEIGHTS payload is {n} bytes; expected 4 + 2*n, at most {MAX_PAYLOAD}",
                         code=ErrorCode.BAD_LENGTH)
    offset = int.from_bytes(payload[:4], "little")
    words = [int.from_bytes(payload[k:k + 2], "little") for k in range(4, n, 2)]
    return offset, words


@dataclass(frozen=True)
class Loaded:
    """Payload of a LOADED frame: the board's ``next_word``, whether all words are loaded, and
    the CRC-32C of its words ``0 .. next_word - 1`` (:func:`words_crc`)."""
    next_word: int
    loaded: bool
    weight_crc: int = 0


def encode_loaded(next_word, loaded, seq=0, *, weight_crc=0):
    payload = _check_u32("weight_crc", weight_crc).to_bytes(4, "little")
    payload += _check_u32("next_word", next_word).to_bytes(4, "little") + bytes([1 if loaded else 0])
    return encode_frame(MsgType.LOADED, seq, payload)


def decode_loaded(payload):
    if len(payload) != LOADED_PAYLOAD:
        raise FrameError(f"LOADED payload is {len(payload)} bytes; expected {LOADED_PAYLOAD}")
    if payload[8] > 1:
        raise FrameError(f"LOADED flag is {payload[8]}; expected 0 or 1")
    return Loaded(int.from_bytes(payload[4:8], "little"), bool(payload[8]), int.from_bytes(payload[:4], "little"))


@dataclass(frozen=True)
class Verified:
    """Payload of a VERIFIED frame (the answer to VERIFY): the CRC-32C (:func:`words_crc`) of
    the ``words`` the board read back from its weight memory (words ``0 .. words - 1``)."""
    crc: int
    words: int


def encode_verify(seq=0):
    """VERIFY frame (no payload): read the loaded words back and answer VERIFIED."""
    return encode_frame(MsgType.VERIFY, seq, b"")


def encode_verified(crc, words, seq=0):
    payload = _check_u32("crc", crc).to_bytes(4, "little") + _check_u32("words", words).to_bytes(4, "little")
    return encode_frame(MsgType.VERIFIED, seq, payload)


def decode_verified(payload):
    if len(payload) != VERIFIED_PAYLOAD:
        raise FrameError(f"VERIFIED payload is {len(payload)} bytes; expected {VERIFIED_PAYLOAD}")
    return Verified(int.from_bytes(payload[:4], "little"), int.from_bytes(payload[4:8], "little"))


# --- what the board is: HELLO / INFO -------------------------------------------------------

def encode_hello(seq=0):
    """HELLO frame (no payload); a version 3 or 4 board answers INFO."""
    return encode_frame(MsgType.HELLO, seq, b"")


@dataclass(frozen=True)
class Info:
    """Payload of an INFO frame (the answer to HELLO)."""
    version: int
    model_hash: bytes       # MODEL_HASH_BYTES bytes (model_hash)
    shape: tuple            # (H, W, C) of the input
    max_value: int
    classes: int
    lanes: int
    clock_hz: int
    weight_words: int       # words the host loads (0: weights in the bitstream; up to MAX_LOAD_WORDS)
    pixel_bits: int = 5     # bits of a pixel in an IMAGE payload (pixel_bits(max_value))
    logit_bits: int = 32    # width of a logit (a RESULT carries logit_bytes(logit_bits) each)
    window: int = 1         # requests the board takes in flight (the host sends no more unanswered)
    readback: int = 0       # 1: the board answers VERIFY (reads its loaded weights back: SDRAM)

    @property
    def pixels(self):
        return self.shape[0] * self.shape[1] * self.shape[2]


def encode_info(info, seq=0):
    """INFO frame, 28 bytes: version (u8), model hash (8 bytes), H, W, C (u16 each), max value
    (u8), classes (u8), lanes (u16), clock in Hz (u32), then in version 5 weight words (u24),
    pixel bits (low 4 bits) and window (high 4 bits) in one byte, logit bits (low 6 bits) and
    read-back (bit 7) in one byte. Version 4 (still encoded for ``info.version`` 4, as a test's
    old board): weight words (u16), pixel bits, logit bits, window (u8 each). The length is the
    same, so that a version 4 host decodes a version 5 board's INFO and refuses it by version."""
    if len(info.model_hash) != MODEL_HASH_BYTES:
        raise ValueError(f"model_hash is {len(info.model_hash)} bytes; allowed: {MODEL_HASH_BYTES}")
    payload = bytes([_check_byte("version", info.version)]) + bytes(info.model_hash)
    payload += b"".join(_check_u16(n, v).to_bytes(2, "little") for n, v in zip("HWC", info.shape))
    payload += bytes([_check_byte("max_value", info.max_value), _check_byte("classes", info.classes)])
    payload += _check_u16("lanes", info.lanes).to_bytes(2, "little")
    payload += _check_u32("clock_hz", info.clock_hz).to_bytes(4, "little")
    if info.version >= 5:
        for name, value, hi in (("weight_words", info.weight_words, MAX_LOAD_WORDS),
                                ("pixel_bits", info.pixel_bits, 15), ("window", info.window, 15),
                                ("logit_bits", info.logit_bits, 63),
                                ("readback", info.readback, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value <= hi:
                raise ValueError(f"{name} is {value!r}; allowed: an integer 0..{hi}")
        payload += int(info.weight_words).to_bytes(3, "little")
        payload += bytes([info.pixel_bits | info.window << 4, info.logit_bits | info.readback << 7])
    else:
        payload += _check_u16("weight_words", info.weight_words).to_bytes(2, "little")
        payload += bytes([_check_byte("pixel_bits", info.pixel_bits), _check_byte("logit_bits", info.logit_bits),
                          _check_byte("window", info.window)])
    return encode_frame(MsgType.INFO, seq, payload)


def info_payload(info):
    """The payload bytes of :func:`encode_info` (what the gateware holds as constants)."""
    return encode_info(info)[HEADER_BYTES:-TRAILER_BYTES]


def decode_info(payload):
    """An :class:`Info`; a version 3 board's 25-byte INFO and a version 4 board's (the old
    layout) decode too (their ``version``, the fields they lack at their defaults), so that the
    host can say which version it is."""
    version = payload[0] if payload else None
    if len(payload) != INFO_PAYLOAD and not (version == 3 and len(payload) == INFO_PAYLOAD_V3):
        raise FrameError(f"INFO payload is {len(payload)} bytes; expected {INFO_PAYLOAD}")
    u16 = [int.from_bytes(payload[k:k + 2], "little") for k in (9, 11, 13)]
    head = (payload[0], bytes(payload[1:9]), tuple(u16), payload[15], payload[16],
            int.from_bytes(payload[17:19], "little"), int.from_bytes(payload[19:23], "little"))
    if len(payload) == INFO_PAYLOAD_V3:
        return Info(*head, int.from_bytes(payload[23:25], "little"))
    if version >= 5:
        return Info(*head, int.from_bytes(payload[23:26], "little"), payload[26] & 15, payload[27] & 63,
                    payload[26] >> 4, payload[27] >> 7)
    return Info(*head, int.from_bytes(payload[23:25], "little"), *payload[25:28])


def model_hash(model):
    """The first 8 bytes of the SHA-256 of a model's content: the UTF-8 JSON (keys sorted, no
    spaces) of ``{"time_steps", "nodes": [{"name", "op", "inputs", "attrs"}]}``, then for each
    node in order and each of its tensors by name, ``"node.tensor:shape"`` and the values as
    signed 64-bit little-endian integers (metadata excluded: it does not change the network)."""
    doc = {"time_steps": int(model.time_steps),
           "nodes": [{"name": n.name, "op": n.op, "inputs": list(n.inputs), "attrs": _to_jsonable(n.attrs)}
                     for n in model.nodes]}
    h = hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    for n in model.nodes:
        for name in sorted(n.tensors):
            arr = np.ascontiguousarray(np.asarray(n.tensors[name]).astype("<i8"))
            h.update(f"{n.name}.{name}:{list(arr.shape)}".encode())
            h.update(arr.tobytes())
    return h.digest()[:MODEL_HASH_BYTES]


def weight_set_crc(program):
    """CRC-32C of the weight set a board built from ``program`` computes with (RESULT's
    ``weight_crc``). Loaded weights (``memory.kind == "spram"``): :func:`words_crc` of
    ``program.weight_image()``, the words the host loads. Weights in the bitstream: CRC-32C of
    ``program.weights`` (``[words, lanes]``, row-major) with every value a signed 32-bit
    little-endian integer."""
    if program.memory.kind == "spram":
        return words_crc(program.weight_image())
    return crc32c(np.ascontiguousarray(np.asarray(program.weights).astype("<i4")).tobytes())


def link_bound_images_per_second(baud, pixels, classes, *, max_value=16, logits=False, logit_bits=32, window=1):
    """Images per second the UART carries when the board computes in no time: one IMAGE frame
    to the board and one RESULT frame back per image, 10 bit times per byte (8N1). With one
    request in flight (``window`` 1) the two take turns; with more, the line is full duplex and
    the longer of the two bounds."""
    frame = HEADER_BYTES + TRAILER_BYTES
    request = image_payload_length(pixels, max_value) + frame
    reply = result_payload_length(classes, logits, logit_bits) + frame
    return baud / 10 / (request + reply if window <= 1 else max(request, reply))
