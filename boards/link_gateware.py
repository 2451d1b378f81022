"""Host link gateware: frame receiver, frame transmitter and the UART bridge around them.

The frame format and message types are those of :mod:`spikeforge.boards.hostlink` (see
``docs/hostlink.md``); the tests check the gateware against that host codec.

- :class:`FrameReceiver`: bytes in, IMAGE frames checked (CRC, type, length, pixel range,
  inter-byte timeout) and buffered; only a frame that passed every check is handed on as a
  pixel stream. A rejected frame is reported on ``err`` (to be answered with an ERROR frame).
  With ``weight_words`` it also takes WEIGHTS frames: their words go out on ``weights`` as they
  arrive and the frame is acknowledged (LOADED) after its CRC passed.
- :class:`FrameTransmitter`: RESULT (check, logits, class, cycle count), ERROR, LOADED and INFO
  frames out as bytes.
- :class:`CRC32Serial`: the frame check, CRC-32/ISO-HDLC one bit per clock (:func:`crc32_bit`;
  the check register follows the same bit stream with CRC-32C).
- :class:`UARTHostLink`: UART rx -> receiver -> ``image`` stream (and ``weights``); ``result``
  stream -> transmitter -> UART tx; rejected frames answered with ERROR; it measures the cycle
  count from the last pixel handed on to the result.
"""

import math
from contextlib import contextmanager

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..hdl.params import check_int, field_bits
from .hostlink import (
    CRC32_POLY, CRC32C_POLY, CRC_RESIDUE, INFO_PAYLOAD, LOADED_PAYLOAD, MAX_IMAGE, MAX_LOAD_WORDS, MAX_PAYLOAD,
    VERIFIED_PAYLOAD,
    MAX_WEIGHT_WORDS, SYNC, VERSION, ErrorCode, Info, MsgType, image_payload_length, info_payload, logit_bytes,
    pixel_bits, result_payload_length,
)
from .uart import UARTRx, UARTTx, _check_divisor

__all__ = [
    "crc32_bit", "CRC32Serial", "INFO_REPORT", "image_layout", "error_layout", "result_layout", "weight_layout",
    "LOADED_REPORT", "VERIFIED_REPORT", "readback_layout",
    "FrameReceiver", "FrameTransmitter", "UARTHostLink",
]

#: ``code`` of an ``err`` report that is not an error but the LOADED acknowledgement of a
#: WEIGHTS frame (no :class:`ErrorCode` is 0).
LOADED_REPORT = 0
#: ``code`` of an ``err`` report that is the INFO answer to a HELLO frame.
INFO_REPORT = 0xFF
#: ``code`` of an ``err`` report that is the VERIFIED answer to a VERIFY frame (``readback``).
VERIFIED_REPORT = 0xFE


def _check_readback(name, readback, weight_words):
    if not isinstance(readback, bool):
        raise TypeError(f"{name}: readback is {readback!r}; allowed: True or False")
    if readback and not weight_words:
        raise ValueError(f"{name}: readback with weight_words 0; allowed: readback only with loadable "
                         "weights (weight_words > 0)")
    return readback


def readback_layout():
    """A read-back's answer: ``crc`` (CRC-32C of the words read back) and ``words`` (how many)."""
    return data.StructLayout({"crc": unsigned(32), "words": unsigned(32)})


def crc32_bit(crc, bit, poly=CRC32_POLY):
    """Amaranth expression: a reflected CRC-32 after one more data bit (bits of a byte go least
    significant first). ``crc`` is held **inverted** (the CRC register XOR 0xFFFFFFFF): it is
    then 0 at the start and the CRC itself, final XOR included, after every byte, and a register
    bit without a polynomial tap needs no logic. ``poly``: the reflected polynomial (its bit 31
    set), CRC-32/ISO-HDLC's by default, :data:`CRC32C_POLY` for CRC-32C."""
    assert poly >> 31 == 1
    fb = ~crc[0] ^ bit                     # the feedback of the true (not inverted) register
    return Cat(*[crc[i + 1] ^ fb if (poly >> i) & 1 else crc[i + 1] for i in range(31)], crc[0] ^ bit)


class CRC32Serial(wiring.Component):
    """CRC-32/ISO-HDLC (zlib's :func:`spikeforge.boards.hostlink.crc32`), one bit per clock.

    A byte given with ``load`` is shifted into the register over the next 8 cycles (``busy``
    high meanwhile; a UART delivers a byte every 10 bit times of at least 4 cycles, so it is
    always done before the next one). ``init`` starts over (it wins over a step in the same
    cycle). ``crc`` is the CRC-32 of the bytes since ``init`` (the register held inverted, see
    :func:`crc32_bit`); after a frame body and its own CRC (least significant byte first) it is
    :data:`~spikeforge.boards.hostlink.CRC_RESIDUE`. ``bit`` and ``step`` are the bit being
    shifted in and whether one is, so that other registers can follow the same stream
    (:func:`crc32_bit`). 32 + 8 flip-flops, a 4-bit counter, a LUT per polynomial tap.

    Members
    -------
    init : ``In(1)``, load : ``In(1)``, byte : ``In(8)``
    crc : ``Out(32)``, busy : ``Out(1)``, bit : ``Out(1)``, step : ``Out(1)``
    """

    def __init__(self):
        super().__init__({"init": In(1), "load": In(1), "byte": In(8), "crc": Out(32),
                          "busy": Out(1), "bit": Out(1), "step": Out(1)})

    def elaborate(self, platform):
        m = Module()
        shift = Signal(8)
        left = Signal(range(9))
        m.d.comb += [self.busy.eq(left != 0), self.step.eq(left != 0), self.bit.eq(shift[0])]
        with m.If(self.load):
            m.d.sync += [shift.eq(self.byte), left.eq(8)]
        with m.Elif(left != 0):
            m.d.sync += [shift.eq(shift >> 1), left.eq(left - 1)]
        with m.If(self.init):
            m.d.sync += self.crc.eq(0)
        with m.Elif(left != 0):
            m.d.sync += self.crc.eq(crc32_bit(self.crc, shift[0]))
        return m


def image_layout(max_value):
    """Pixel stream payload: ``pixel`` (``bit_length(max_value)`` bits), ``last`` (last pixel
    of the image), the ``seq`` byte of the IMAGE frame (to be echoed in the RESULT) and ``want``
    (an IMAGE_LOGITS frame: the RESULT carries the logits)."""
    return data.StructLayout({"pixel": unsigned(int(max_value).bit_length()), "last": 1, "seq": 8, "want": 1})


def error_layout():
    """Reply report: ERROR ``code`` (:class:`ErrorCode`, or :data:`LOADED_REPORT` for the
    LOADED acknowledgement of a WEIGHTS frame) and the frame's ``seq``."""
    return data.StructLayout({"code": 8, "seq": 8})


def weight_layout(weight_words):
    """Weight memory write: word address ``addr`` (``bit_length(weight_words - 1)`` bits, at
    least 1) and the 16-bit word ``data``."""
    return data.StructLayout({"addr": unsigned(max(1, (weight_words - 1).bit_length())), "data": unsigned(16)})


def result_layout(classes, logit_bits, cycle_bits=32, *, with_meta=True):
    """Result payload: ``logits`` (K signed ``logit_bits``), ``cls``; with ``with_meta``
    also ``cycles`` and ``seq`` (the transmitter's input; the bridge fills them in)."""
    fields = {
        "logits": data.ArrayLayout(signed(logit_bits), classes),
        "cls": unsigned(field_bits(classes)),
    }
    if with_meta:
        fields["cycles"] = unsigned(cycle_bits)
        fields["seq"] = 8
        fields["want"] = 1          # the logits go out too (the request was IMAGE_LOGITS)
    return data.StructLayout(fields)


class FrameReceiver(wiring.Component):
    """Receive IMAGE (and WEIGHTS) frames from a byte stream; hand on only images that passed
    all checks, write weight words as they arrive.

    Bytes outside a frame are skipped until SYNC. The header is checked at its end: type
    IMAGE (or WEIGHTS with ``weight_words``) and a length that fits it, else ``BAD_TYPE`` /
    ``BAD_LENGTH`` is reported and the receiver hunts for the next SYNC. An IMAGE payload is
    written to an image buffer; at the frame's end the CRC (run over type through CRC, must be
    0) decides: ``BAD_CRC``, else a pixel above ``max_value`` gives ``BAD_VALUE``, else weights
    not completely loaded give ``NOT_LOADED``, else an image still being handed on gives
    ``BUSY``, else the image is handed on from the buffer. A frame in which no byte arrives for
    ``timeout_cycles`` cycles is dropped with ``TIMEOUT`` (truncated frame).

    WEIGHTS (``docs/hostlink.md``): length even, 4..1024; after the four offset bytes the
    offset must be ``next_word`` (0 when the frame has no words: begin load), else
    ``BAD_OFFSET``; ``offset + n`` must not pass ``weight_words``, else ``BAD_LENGTH``; an image
    in flight (``busy`` or being handed on) or a word not yet taken on ``weights`` gives
    ``BUSY``. Each rejection is made before any word is written. The words go out on
    ``weights`` as they arrive; only when the CRC passed does ``next_word`` become
    ``offset + n`` (begin load: 0), ``loaded`` become ``next_word == weight_words``, and a
    :data:`LOADED_REPORT` go out on ``err``. A frame whose words were not all taken in time
    (one word is held; the next one completes two byte times later) is answered ``BUSY``
    instead and changes nothing.

    VERIFY (with ``readback``; length 0): once its CRC passed, ``verify`` offers ``next_word``
    (the words loaded) to the read-back unit, and its answer on ``verified`` goes out as a
    :data:`VERIFIED_REPORT` with the VERIFY frame's seq (``verified_crc``,
    ``verified_words`` hold it for the transmitter). A WEIGHTS or VERIFY frame while a
    read-back runs is answered ``BUSY``, and so is an IMAGE frame (the engine would share the
    SDRAM with the read-back).

    Parameters
    ----------
    pixels : int
        Pixels of an image; the IMAGE payload holds them packed at ``bit_length(max_value)`` bits
        each, least significant bit first (:func:`~spikeforge.boards.hostlink.pack_pixels`):
        ``ceil(pixels * bits / 8)`` bytes, up to 65,535. The pixels are unpacked from the CRC
        engine's bit stream by a shift register (one bit a cycle), not a barrel shifter.
    max_value : int
        Largest pixel value (1..255); pixels are ``bit_length(max_value)`` bits wide.
    window : int
        1: the check (``check``) is the receiver's register, valid until the next IMAGE frame
        starts (the host sends one request at a time). 2: the check of an accepted image is
        kept with it (``o_check``), so that a next frame can be received while it is computed.
    timeout_cycles : int
        Inter-byte timeout within a frame, in cycles (0: none). Choose a few byte times.
    weight_words : int
        Words of the loadable weight memory (0..``MAX_LOAD_WORDS``); 0: no WEIGHTS frames
        (``BAD_TYPE``) and none of the members below marked "weights".
    readback : bool
        With ``weight_words``: answer VERIFY (members ``verify``, ``verified``,
        ``verified_crc``, ``verified_words``); else VERIFY is ``BAD_TYPE``.
    weight_crc : int
        Without ``weight_words``: the CRC-32C of the weight set built in, where ``check`` starts.

    Frames are checked with CRC-32 (one bit-serial :class:`CRC32Serial`; bytes must come at
    least 9 cycles apart, as a UART delivers them). HELLO (length 0) is answered with an
    :data:`INFO_REPORT`.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes; ``ready`` is always high (a UART cannot wait).
    o : ``Out(stream.Signature(image_layout(max_value)))``
        Pixels of an accepted image, row-major, ``last`` on the final one.
    err : ``Out(stream.Signature(error_layout()))``
        One report per rejected frame (and, with weights, per committed WEIGHTS frame). One
        report is held; while it is not taken, further reports are dropped (the host then
        times out and retries) and no WEIGHTS frame is committed.
    weights : ``Out(stream.Signature(weight_layout(weight_words)))`` (weights)
        One write per received word, held until taken.
    next_word : ``Out(range(weight_words + 1))`` (weights)
        The next word a WEIGHTS frame must start at; constant while a LOADED report is held.
    loaded : ``Out(1)`` (weights)
        All ``weight_words`` words have been loaded (set with the last chunk's LOADED report,
        cleared by begin load).
    busy : ``In(1)`` (weights)
        An image is in flight beyond the receiver (until its RESULT has been sent).
    check : ``Out(32)``
        After an image: the CRC-32C of the weight set continued over its payload (RESULT's
        check); after a committed WEIGHTS frame: the weight CRC-32C of the words loaded so far
        (LOADED's). Not meaningful while a frame is being received.
    """

    def __init__(self, *, pixels=64, max_value=16, timeout_cycles=0, weight_words=0, weight_crc=0, window=1,
                 readback=False):
        name = type(self).__name__
        self.max_value = check_int(name, "max_value", max_value, 1, 255)
        self.pixels = check_int(name, "pixels", pixels, 1, MAX_IMAGE * 8 // pixel_bits(self.max_value))
        self.payload_bytes = image_payload_length(self.pixels, self.max_value)
        self.window = check_int(name, "window", window, 1, 2)
        self.timeout_cycles = check_int(name, "timeout_cycles", timeout_cycles, 0, 1 << 30)
        self.weight_words = check_int(name, "weight_words", weight_words, 0, MAX_LOAD_WORDS)
        self.weight_crc = check_int(name, "weight_crc", weight_crc, 0, (1 << 32) - 1)
        self.readback = _check_readback(name, readback, self.weight_words)
        self.pixel_bits = self.max_value.bit_length()
        members = {
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(image_layout(self.max_value))),
            "err": Out(stream.Signature(error_layout())),
            "check": Out(32),
        }
        if self.window > 1:
            members["o_check"] = Out(32)
        if self.weight_words:
            members.update({
                "weights": Out(stream.Signature(weight_layout(self.weight_words))),
                "next_word": Out(range(self.weight_words + 1)),
                "loaded": Out(1),
                "busy": In(1),
            })
        if self.readback:
            members.update({
                "verify": Out(stream.Signature(unsigned(32))),
                "verified": In(stream.Signature(readback_layout())),
                "verified_crc": Out(32), "verified_words": Out(32),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        n = self.pixels
        ww = self.weight_words
        m.submodules.buf = buf = Memory(shape=unsigned(self.pixel_bits), depth=n, init=[])
        wr = buf.write_port()
        rd = buf.read_port(domain="sync")

        byte = self.i.payload
        got = Signal()
        m.d.comb += [self.i.ready.eq(1), got.eq(self.i.valid)]

        m.submodules.crc = eng = CRC32Serial()
        # ``check``: the CRC-32C of the weight set continued over the image payload (from the
        # weight CRC on, it follows the engine on payload bytes); during a WEIGHTS frame the
        # working copy of the weight CRC (an image and a WEIGHTS frame are never both in
        # progress), after a commit the weight CRC itself (what LOADED reports).
        xcrc = Signal(32)                  # held inverted (crc32_bit): the CRC-32C itself
        x_on = Signal()
        x_load = Signal()                  # payload starts: from the weight CRC
        x_zero = Signal()                  # begin load committed
        x_from = Signal(32)                # the weight CRC (committed words, or the built-in one)
        crc_left = Signal(2)
        m.d.comb += [self.check.eq(xcrc), x_from.eq(self.weight_crc)]
        # written as a reset, a load and a step, so that a bit takes one LUT; the load a cycle
        # after the header decision (no data byte comes that soon), off the critical path
        x_load_d = Signal()
        m.d.sync += x_load_d.eq(x_load)
        with m.If(x_zero):
            m.d.sync += xcrc.eq(0)
        with m.Elif(x_load_d):
            m.d.sync += xcrc.eq(x_from)
        with m.Elif(eng.step & x_on):   # CRC-32C: another polynomial than the frame check's
            m.d.sync += xcrc.eq(crc32_bit(xcrc, eng.bit, CRC32C_POLY))
        mtype = Signal(8)
        seq = Signal(8)
        lo = Signal(8)            # low byte of the 16-bit field being received
        nb = self.payload_bytes
        count = Signal(range(nb))  # payload byte
        bad_value = Signal()
        busy_frame = Signal()

        # hand-on side: reads the buffer while `emitting`
        emitting = Signal()
        idx = Signal(range(n))
        out_seq = Signal(8)
        out_want = Signal()
        next_idx = Signal(range(n))
        out_last = idx == n - 1
        m.d.comb += [
            self.o.valid.eq(emitting),
            self.o.payload.pixel.eq(rd.data),
            self.o.payload.last.eq(out_last),
            self.o.payload.seq.eq(out_seq),
            self.o.payload.want.eq(out_want),
            next_idx.eq(idx),
        ]
        with m.If(self.o.valid & self.o.ready):
            m.d.comb += next_idx.eq(Mux(out_last, 0, idx + 1))
            with m.If(out_last):
                m.d.sync += emitting.eq(0)
        m.d.comb += rd.addr.eq(next_idx)
        m.d.sync += idx.eq(next_idx)

        # error reports
        err_valid = Signal()
        err_code = Signal(8)
        err_seq = Signal(8)
        m.d.comb += [
            self.err.valid.eq(err_valid),
            self.err.payload.code.eq(err_code),
            self.err.payload.seq.eq(err_seq),
        ]
        with m.If(self.err.ready):
            m.d.sync += err_valid.eq(0)
        # only an empty slot takes a report (not one being taken this cycle): no combinational
        # path from the transmitter's ready into the receiver (it was the critical path)
        can_report = ~err_valid
        report_now = Signal()
        report_code = Signal(8)
        with m.If(report_now & can_report):
            m.d.sync += [err_valid.eq(1), err_code.eq(report_code), err_seq.eq(seq)]

        def report(code):
            m.d.comb += [report_now.eq(1), report_code.eq(code)]

        verifying = Const(0)
        if self.readback:
            # VERIFY: the read-back runs from the frame's end until its answer took the report
            # slot (in a cycle without another report); the answer is held for the transmitter
            verifying = Signal()
            v_valid = Signal()
            v_seq = Signal(8)
            m.d.comb += [self.verify.valid.eq(v_valid), self.verify.payload.eq(self.next_word)]
            with m.If(self.verify.ready):
                m.d.sync += v_valid.eq(0)
            m.d.comb += self.verified.ready.eq(verifying & ~v_valid & can_report & ~report_now)
            with m.If(self.verified.valid & self.verified.ready):
                m.d.sync += [err_valid.eq(1), err_code.eq(VERIFIED_REPORT), err_seq.eq(v_seq),
                             verifying.eq(0), self.verified_crc.eq(self.verified.payload.crc),
                             self.verified_words.eq(self.verified.payload.words)]

        # inter-byte timeout
        idle = Signal(range(max(2, self.timeout_cycles + 1)))
        timed_out = Signal()
        in_frame = Signal()
        if self.timeout_cycles:
            with m.If(got | ~in_frame):
                m.d.sync += idle.eq(0)
            with m.Elif(~timed_out):
                m.d.sync += idle.eq(idle + 1)
            m.d.comb += timed_out.eq(in_frame & ~got & (idle == self.timeout_cycles - 1))

        m.d.comb += [
            eng.byte.eq(byte),
            eng.load.eq(got & in_frame),
        ]
        with m.If(got):
            m.d.sync += x_on.eq(0)       # payload states set it

        # Pixels from the payload's bits as the CRC engine shifts them (least significant first):
        # ``pix`` holds a pixel's earlier bits, the last one completes it; no barrel shifter.
        b = self.pixel_bits
        widx = Signal(range(n + 1))       # the next pixel to write; n: the payload's padding bits
        pbit = Signal(range(b))           # bits of the pixel so far
        value = Signal(b)
        if b > 1:
            pix = Signal(b - 1)
            m.d.comb += value.eq(Cat(pix, eng.bit))
        else:
            m.d.comb += value.eq(eng.bit)
        img_bit = Signal()                # a payload bit of an IMAGE frame is shifted in this cycle
        m.d.comb += [wr.addr.eq(widx), wr.data.eq(value)]
        with m.If(img_bit):
            if b > 1:
                m.d.sync += pix.eq(Cat(pix[1:], eng.bit))
            with m.If(pbit == b - 1):
                m.d.sync += pbit.eq(0)
                with m.If(widx != n):
                    m.d.comb += wr.en.eq(~busy_frame & ~emitting)
                    m.d.sync += widx.eq(widx + 1)
                    if self.max_value < (1 << b) - 1:
                        with m.If(value > self.max_value):
                            m.d.sync += bad_value.eq(1)
            with m.Else():
                m.d.sync += pbit.eq(pbit + 1)

        # weight loading state and the one-word holding register of `weights`
        if ww:
            is_weights = Signal()                 # the frame being received is WEIGHTS
            next_word = Signal(range(ww + 1))
            # offset + n > weight_words, registered (the adder and compare in the check's cycle
            # were the iCEBreaker's critical path): both hold still for bytes before the check
            # reads it (words is set by the length field two bytes earlier, next_word only at a
            # frame's end)
            too_long = Signal()
            off_bad = Signal()                    # an offset byte differed (OFFSET)
            off_k = Signal(2)                     # the offset byte being received
            loaded = Signal()
            # n + 2 from the length field on, n after the offset, then words still to come: at
            # the frame's end 1 for begin load (n = 0), else 0
            words = Signal(range(MAX_WEIGHT_WORDS + 3))
            addr = Signal(range(ww + 1))          # address of the held / next word
            w_valid = Signal()
            w_data = Signal(16)
            overrun = Signal()                    # a word came while the previous was still held
            wcrc = Signal(32)                     # weight CRC-32C of the committed words
            m.d.comb += x_from.eq(wcrc)
            m.d.sync += too_long.eq(next_word + words > ww + 2)
            w_commit = Signal()                   # a WEIGHTS frame is committed
            with m.If(w_commit):
                with m.If(words[0]):              # begin load
                    m.d.sync += wcrc.eq(0)
                    m.d.comb += x_zero.eq(1)
                with m.Else():
                    m.d.sync += wcrc.eq(xcrc)
            m.d.comb += [
                self.next_word.eq(next_word),
                self.loaded.eq(loaded),
                self.weights.valid.eq(w_valid),
                self.weights.payload.addr.eq(addr),
                self.weights.payload.data.eq(w_data),
            ]
            with m.If(self.weights.valid & self.weights.ready):
                m.d.sync += [w_valid.eq(0), addr.eq(addr + 1)]
            image_not_loaded = ~loaded
            m.d.comb += img_bit.eq(eng.step & x_on & ~is_weights)
        else:
            image_not_loaded = Const(0)
            m.d.comb += img_bit.eq(eng.step & x_on)

        @contextmanager
        def frame_state(name):
            # Every state after HUNT is inside a frame and gives up on a timeout.
            with m.State(name):
                m.d.comb += in_frame.eq(1)
                with m.If(timed_out):
                    report(ErrorCode.TIMEOUT)
                    m.next = "HUNT"
                yield

        def byte_state(name, reg, next_state):
            with frame_state(name):
                with m.If(got):
                    m.d.sync += reg.eq(byte)
                    m.next = next_state

        with m.FSM():
            with m.State("HUNT"):
                with m.If(got & (byte == SYNC)):
                    m.d.comb += eng.init.eq(1)
                    m.next = "TYPE"
            byte_state("TYPE", mtype, "SEQ")
            byte_state("SEQ", seq, "LEN0")
            byte_state("LEN0", lo, "LEN1")
            with frame_state("LEN1"):
                length = Cat(lo, byte)
                with m.If(got):
                    with m.If((mtype == MsgType.IMAGE) | (mtype == MsgType.IMAGE_LOGITS)):
                        with m.If(length != nb):
                            report(ErrorCode.BAD_LENGTH)
                            m.next = "HUNT"
                        with m.Else():
                            m.d.sync += [count.eq(0), bad_value.eq(0), busy_frame.eq(emitting), widx.eq(0),
                                         pbit.eq(0)]
                            m.d.comb += x_load.eq(1)
                            if ww:
                                m.d.sync += is_weights.eq(0)
                            m.next = "PAYLOAD"
                    with m.Elif(mtype == MsgType.HELLO):
                        with m.If(length != 0):
                            report(ErrorCode.BAD_LENGTH)
                            m.next = "HUNT"
                        with m.Else():
                            m.d.sync += crc_left.eq(3)
                            if ww:
                                m.d.sync += is_weights.eq(0)
                            m.next = "CRC"
                    if self.readback:
                        with m.Elif(mtype == MsgType.VERIFY):
                            with m.If(length != 0):
                                report(ErrorCode.BAD_LENGTH)
                                m.next = "HUNT"
                            with m.Else():
                                m.d.sync += [crc_left.eq(3), is_weights.eq(0)]
                                m.next = "CRC"
                    if ww:
                        with m.Elif(mtype == MsgType.WEIGHTS):
                            # odd, below 4 or above MAX_PAYLOAD (a multiple of 256), bit by bit
                            odd, short = lo[0], (byte == 0) & (lo[2:] == 0)
                            long = (byte > MAX_PAYLOAD >> 8) | ((byte == MAX_PAYLOAD >> 8) & (lo != 0))
                            with m.If(odd | short | long):
                                report(ErrorCode.BAD_LENGTH)
                                m.next = "HUNT"
                            with m.Else():
                                m.d.sync += [words.eq(length[1:]), is_weights.eq(1), off_k.eq(0)]
                                m.next = "OFFSET"
                    with m.Else():
                        report(ErrorCode.BAD_TYPE)
                        m.next = "HUNT"
            with frame_state("PAYLOAD"):
                with m.If(got):
                    m.d.sync += x_on.eq(1)
                    with m.If(emitting):
                        m.d.sync += busy_frame.eq(1)
                    with m.If(count == nb - 1):
                        m.d.sync += crc_left.eq(3)
                        m.next = "CRC"
                    with m.Else():
                        m.d.sync += count.eq(count + 1)
            if ww:
                # the offset (u32) byte by byte against next_word's bytes (begin load: 0), one
                # comparator for the four bytes (off_k: the byte); a mismatch is remembered in
                # off_bad and decided with the last byte
                begin = words == 2                  # n = 0: begin load, offset must be 0
                nw_bytes = [next_word[8 * k:8 * k + 8] for k in range(-(-len(next_word) // 8))]
                expect = Array(nw_bytes + [Const(0, 8)] * (4 - len(nw_bytes)))[off_k]
                mismatch = Mux(begin, byte != 0, byte != expect)
                with frame_state("OFFSET"):
                    with m.If(got):
                        m.d.sync += [off_k.eq(off_k + 1), off_bad.eq((off_bad & (off_k != 0)) | mismatch)]
                        with m.If(off_k == 3):
                            with m.If(off_bad | mismatch):
                                report(ErrorCode.BAD_OFFSET)
                                m.next = "HUNT"
                            with m.Elif(too_long):   # offset + n > weight_words
                                report(ErrorCode.BAD_LENGTH)
                                m.next = "HUNT"
                            with m.Elif(self.busy | emitting | w_valid | verifying):
                                report(ErrorCode.BUSY)
                                m.next = "HUNT"
                            with m.Else():
                                m.d.sync += [addr.eq(next_word), overrun.eq(0)]
                                m.d.comb += x_load.eq(1)
                                with m.If(begin):
                                    m.d.sync += [crc_left.eq(3), words.eq(1)]
                                    m.next = "CRC"
                                with m.Else():
                                    m.d.sync += words.eq(words - 2)
                                    m.next = "WORD0"
                with frame_state("WORD0"):
                    with m.If(got):
                        m.d.sync += [lo.eq(byte), x_on.eq(1)]
                        m.next = "WORD1"
                with frame_state("WORD1"):
                    with m.If(got):
                        m.d.sync += x_on.eq(1)
                        with m.If(w_valid & ~self.weights.ready):
                            m.d.sync += overrun.eq(1)
                        with m.Else():
                            m.d.sync += [w_valid.eq(1), w_data.eq(Cat(lo, byte))]
                        m.d.sync += words.eq(words - 1)
                        with m.If(words == 1):
                            m.d.sync += crc_left.eq(3)
                            m.next = "CRC"
                        with m.Else():
                            m.next = "WORD0"
            with frame_state("CRC"):
                with m.If(got):
                    m.d.sync += crc_left.eq(crc_left - 1)
                    with m.If(crc_left == 0):
                        m.next = "CHECK"
            with m.State("CHECK"):        # the engine takes 8 cycles for the last byte
                with m.If(~eng.busy):
                    m.next = "HUNT"
                    with m.If(eng.crc != CRC_RESIDUE):
                        report(ErrorCode.BAD_CRC)
                    with m.Elif(mtype == MsgType.HELLO):
                        report(INFO_REPORT)
                    if self.readback:
                        with m.Elif(mtype == MsgType.VERIFY):
                            with m.If(verifying | emitting | self.busy):
                                report(ErrorCode.BUSY)
                            with m.Else():
                                m.d.sync += [verifying.eq(1), v_valid.eq(1), v_seq.eq(seq)]
                    if ww:
                        with m.Elif(is_weights):
                            with m.If(overrun | w_valid):
                                report(ErrorCode.BUSY)
                            with m.Else():
                                report(LOADED_REPORT)
                                begin = words[0]    # 1 after begin load, 0 after a chunk
                                with m.If(can_report):
                                    m.d.sync += [next_word.eq(Mux(begin, 0, addr)), loaded.eq(~begin & (addr == ww))]
                                    m.d.comb += w_commit.eq(1)
                    with m.Elif(bad_value):
                        report(ErrorCode.BAD_VALUE)
                    with m.Elif(image_not_loaded):
                        report(ErrorCode.NOT_LOADED)
                    with m.Elif(busy_frame | emitting | verifying):
                        # (verifying: an image would share the SDRAM with the read-back)
                        report(ErrorCode.BUSY)
                    with m.Else():
                        # IMAGE 0x01, IMAGE_LOGITS 0x04: bit 2 asks for the logits
                        m.d.sync += [emitting.eq(1), out_seq.eq(seq), out_want.eq(mtype[2])]
                        if self.window > 1:
                            m.d.sync += self.o_check.eq(xcrc)
        return m


class FrameTransmitter(wiring.Component):
    """Send RESULT, ERROR, INFO and (with ``weight_words``) LOADED frames as bytes, with their
    CRC-32 computed bit-serially (:class:`CRC32Serial`).

    Parameters
    ----------
    classes : int
        Number of logits K (1..255).
    logit_bits : int
        Width of a logit (2..32); sent sign-extended to whole bytes (``logit_bytes``), and only
        when the result's ``want`` is set (an IMAGE_LOGITS request).
    cycle_bits : int
        Width of the cycle count (1..32); sent zero-extended to 32 bits.
    weight_words : int
        Words of the loadable weight memory (0..65535); 0: no LOADED frames and no
        ``next_word`` / ``loaded`` inputs.
    info : bytes
        The INFO payload (:func:`~spikeforge.boards.hostlink.info_payload`), sent for an ``err``
        report with code :data:`INFO_REPORT`.

    Members
    -------
    result : ``In(stream.Signature(result_layout(classes, logit_bits, cycle_bits)))``
        One RESULT frame per transfer (logits, class, cycles, seq; its check from ``check``). The
        transfer (``ready``) happens with the frame's last byte; the payload is read while the
        frame is sent, or once as the frame starts with ``copy_result`` (the check as well,
        without weights).
    started : ``Out(1)``
        One-cycle pulse: a RESULT frame starts (with ``copy_result`` its payload and check are
        copied at the end of this cycle).
    err : ``In(stream.Signature(error_layout()))``
        One ERROR frame per transfer (same rule); a LOADED frame for code
        :data:`LOADED_REPORT` (with ``weight_words``), an INFO frame for :data:`INFO_REPORT`.
        When both are valid and the transmitter is idle, the ``err`` frame goes first.
    check : ``In(32)``
        The first 4 payload bytes of RESULT and LOADED (the receiver's ``check``).
    next_word, loaded (with ``weight_words``)
        The payload of a LOADED frame; read while it is sent, so they must hold while a
        LOADED report is valid.
    o : ``Out(stream.Signature(8))``
        Frame bytes, SYNC first.
    """

    def __init__(self, *, classes, logit_bits=32, cycle_bits=32, weight_words=0, copy_result=False, info=None,
                 readback=False):
        name = type(self).__name__
        if not isinstance(copy_result, bool):
            raise TypeError(f"{name}: copy_result is {copy_result!r}; allowed: True or False")
        self.copy_result = copy_result
        self.classes = check_int(name, "classes", classes, 1, 255)
        self.logit_bits = check_int(name, "logit_bits", logit_bits, 2, 32)
        self.cycle_bits = check_int(name, "cycle_bits", cycle_bits, 1, 32)
        self.weight_words = check_int(name, "weight_words", weight_words, 0, MAX_LOAD_WORDS)
        self.readback = _check_readback(name, readback, self.weight_words)
        info = bytes(INFO_PAYLOAD) if info is None else bytes(info)
        if len(info) != INFO_PAYLOAD:
            raise ValueError(f"{name}: info is {len(info)} bytes; allowed: {INFO_PAYLOAD}")
        self.info = info
        members = {
            "result": In(stream.Signature(result_layout(self.classes, self.logit_bits, self.cycle_bits))),
            "err": In(stream.Signature(error_layout())),
            "check": In(32),
            "o": Out(stream.Signature(8)),
            "started": Out(1),
        }
        if self.weight_words:
            members.update({"next_word": In(range(self.weight_words + 1)), "loaded": In(1)})
        if self.readback:
            members.update({"verified_crc": In(32), "verified_words": In(32)})
        super().__init__(members)

    def _result_bytes(self, m, sending):
        p = self.result.payload
        if self.copy_result:
            # Loaded in every idle cycle, so it holds the payload of the frame's start from
            # the cycle after on: the first body byte is selected then (``ahead``).
            copy = Signal(p.shape(), name="result_copy")
            with m.If(~sending):
                m.d.sync += copy.eq(p)
            p = copy
        short = result_payload_length(self.classes)
        long = result_payload_length(self.classes, True, self.logit_bits)
        self._want = p.want
        out = [Const(MsgType.RESULT, 8), p.seq, Mux(p.want, long & 0xFF, short),
               Const(long >> 8, 8) & p.want.replicate(8)]
        out += self._check_bytes
        cls = Signal(8)
        cycles = Signal(32)
        m.d.comb += [cls.eq(p.cls), cycles.eq(p.cycles)]
        out.append(cls)
        out += [cycles[8 * k:8 * k + 8] for k in range(4)]
        nb = logit_bytes(self.logit_bits)
        for j in range(self.classes):
            ext = Signal(signed(8 * nb), name=f"logit{j}")
            m.d.comb += ext.eq(p.logits[j])
            out += [ext[8 * k:8 * k + 8] for k in range(nb)]
        return out

    def _reply_bytes(self, m, kind):
        """Body of an ERROR or (with weights) LOADED frame (they share their first bytes and
        their logic), and of an INFO frame."""
        p = self.err.payload
        info = [Const(MsgType.INFO, 8), p.seq, Const(INFO_PAYLOAD, 8), Const(0, 8)] + [Const(b, 8) for b in self.info]
        if not self.weight_words:
            reply = [Const(MsgType.ERROR, 8), p.seq, Const(1, 8), Const(0, 8), p.code]
        else:
            is_loaded = kind == _LOADED
            next_word = Signal(32)
            m.d.comb += next_word.eq(self.next_word)
            # LOADED: check (the weight CRC) first, at the place of RESULT's check
            reply = [Mux(is_loaded, MsgType.LOADED, MsgType.ERROR), p.seq, Mux(is_loaded, LOADED_PAYLOAD, 1),
                     Const(0, 8), Mux(is_loaded, self._check_bytes[0], p.code), *self._check_bytes[1:],
                     *[next_word[8 * k:8 * k + 8] for k in range(4)], self.loaded]
            if self.readback:
                # VERIFIED: the read-back's CRC and word count in LOADED's places
                is_ver = kind == _VERIFIED
                vcrc, vwords = self.verified_crc, self.verified_words
                reply[0] = Mux(is_ver, MsgType.VERIFIED, reply[0])
                reply[2] = Mux(is_ver, VERIFIED_PAYLOAD, reply[2])
                for k in range(4):
                    reply[4 + k] = Mux(is_ver, vcrc[8 * k:8 * k + 8], reply[4 + k])
                    reply[8 + k] = Mux(is_ver, vwords[8 * k:8 * k + 8], reply[8 + k])
        return reply, info

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = eng = CRC32Serial()
        kind = Signal(3 if self.readback else 2)   # the frame being sent: _RESULT, _ERROR, _LOADED, _INFO, _VERIFIED
        sending = Signal()
        in_crc = Signal()                 # the body has been sent: the CRC bytes go out
        # the check field's bytes: the same signals in RESULT and LOADED, at the same places;
        # copied with the result (``copy_result`` without weights: no LOADED reads them)
        check = self.check
        if self.copy_result and not self.weight_words:
            check = Signal(32, name="check_copy")
            with m.If(~sending):
                m.d.sync += check.eq(self.check)
        self._check_bytes = [Signal(8, name=f"check{k}") for k in range(4)]
        m.d.comb += [b.eq(check[8 * k:8 * k + 8]) for k, b in enumerate(self._check_bytes)]
        result_body = self._result_bytes(m, sending)
        reply_body, info_body = self._reply_bytes(m, kind)
        lens = {_RESULT: len(result_body), _ERROR: 5, _LOADED: 4 + LOADED_PAYLOAD, _INFO: len(info_body)}
        if self.readback:
            lens[_VERIFIED] = 4 + VERIFIED_PAYLOAD
        longest = max(lens.values()) + 5
        # a RESULT without logits ends after the cycle count (its body's first 13 bytes)
        lens[_RESULT] = Mux(self._want, len(result_body), 4 + result_payload_length(self.classes))
        pos = Signal(range(longest))      # byte index in the frame: 0 SYNC, then body, then CRC
        byte = Signal(8)                  # the body byte at ``pos``, registered (chosen a byte ahead)
        take = self.o.valid & self.o.ready
        m.d.comb += self.o.payload.eq(Mux(in_crc, eng.crc[:8], byte))

        with m.If(~sending):
            with m.If(self.err.valid):
                code = self.err.payload.code
                m.d.sync += [sending.eq(1), pos.eq(0), byte.eq(SYNC), in_crc.eq(0),
                             kind.eq(Mux(code == INFO_REPORT, _INFO, _ERROR))]
                if self.weight_words:
                    with m.If(code == LOADED_REPORT):
                        m.d.sync += kind.eq(_LOADED)
                if self.readback:
                    with m.If(code == VERIFIED_REPORT):
                        m.d.sync += kind.eq(_VERIFIED)
            with m.Elif(self.result.valid):
                m.d.sync += [sending.eq(1), kind.eq(_RESULT), pos.eq(0), byte.eq(SYNC), in_crc.eq(0)]
                m.d.comb += self.started.eq(1)

        def by_kind(values):
            out = Signal(range(longest))
            with m.Switch(kind):
                for k, v in values.items():
                    with m.Case(k):
                        m.d.comb += out.eq(v)
            return out

        body_end = by_kind(lens)                               # position of the last body byte
        at_end = pos == by_kind({k: v + 4 for k, v in lens.items()})

        def body_after(body):
            """The body byte after ``pos`` (body byte k is at position k + 1)."""
            value = Signal(8)
            with m.Switch(pos):
                for k, v in enumerate(body):
                    with m.Case(k):
                        m.d.comb += value.eq(v)
            return value

        # The next body byte is selected from ``pos`` into a register (``ahead``) and taken from
        # there: the selection spans the payload (every logit), so on a large device it is a
        # long path of its own. It is valid a cycle after ``pos`` moves (and after a frame
        # starts), so the transmitter offers no byte in the cycle after a take or a start (a
        # UART takes one per bit times ten). It offers none either while the CRC engine shifts.
        ahead = Signal(8)
        took = Signal()
        starts = ~sending & (self.err.valid | self.result.valid)
        # one body for RESULT, ERROR and LOADED: a byte that is the same signal in RESULT and
        # ERROR/LOADED (the check field) is not muxed by kind
        body = []
        for k in range(max(len(result_body), len(reply_body))):
            r = result_body[k] if k < len(result_body) else None
            q = reply_body[k] if k < len(reply_body) else None
            body.append(r if q is None or q is r else q if r is None else Mux(kind == _RESULT, r, q))
        # INFO's constant bytes from a small ROM (fewer cells than as cases of ``body``), read like ``ahead``:
        # the byte after ``pos``, registered; its variable header bytes from the reply's place
        m.submodules.info = rom = Memory(shape=8, depth=len(info_body), init=[
            int(v.value) if isinstance(v, Const) else 0 for v in info_body])
        rd = rom.read_port(domain="sync")
        m.d.comb += rd.addr.eq(pos)
        info_var = Signal()               # the INFO header's seq: from the reply body
        m.d.sync += [ahead.eq(body_after(body)), took.eq(take | starts), info_var.eq(pos == 1)]
        ahead_byte = Mux((kind == _INFO) & ~info_var, rd.data, ahead)
        # CRC bytes: feed the register its own low byte (as the true register holds it): the
        # feedback is then 0 and it just shifts on to the next byte
        m.d.comb += eng.byte.eq(Mux(in_crc, ~eng.crc[:8], byte))
        with m.If(take):
            m.d.sync += [pos.eq(pos + 1), byte.eq(ahead_byte)]
            with m.If(pos == 0):
                m.d.comb += eng.init.eq(1)
            with m.Else():
                m.d.comb += eng.load.eq(1)
            with m.If(pos == body_end):
                m.d.sync += in_crc.eq(1)
            with m.If(at_end):
                m.d.sync += sending.eq(0)
        m.d.comb += [
            self.o.valid.eq(sending & ~took & ~eng.busy),
            self.err.ready.eq(take & at_end & (kind != _RESULT)),
            self.result.ready.eq(take & at_end & (kind == _RESULT)),
        ]
        return m


_RESULT, _ERROR, _LOADED, _INFO, _VERIFIED = range(5)


class UARTHostLink(wiring.Component):
    """The whole board side of the host link over a UART (no board code: ``rx`` and ``tx``
    are plain signals to be wired to pins).

    Parameters
    ----------
    divisor : int
        Clock cycles per UART bit (see :func:`spikeforge.boards.uart.baud_divisor`).
    pixels, max_value : int
        Image size and largest pixel value (as :class:`FrameReceiver`).
    classes, logit_bits : int
        Result size and logit width (as :class:`FrameTransmitter`).
    cycle_bits : int
        Width of the cycle counter (1..32); it saturates.
    timeout_bytes : int
        Inter-byte timeout within a frame, in byte times (1..1024).
    readback : bool
        With ``weight_words``: the board reads its loaded words back on VERIFY (``verify``: the
        word count to a read-back unit such as
        :class:`~spikeforge.boards.sdram_load.SdramReadbackCrc`; ``verified``: its CRC-32C and
        count, sent as VERIFIED). INFO says so.
    weight_words : int
        Words of a weight memory loaded over the link with WEIGHTS frames (0..MAX_LOAD_WORDS). 0: none;
        the link is then exactly the version 1 link (WEIGHTS answered ``BAD_TYPE``) and has
        neither ``weights`` nor ``loaded``.
    copy_result : bool
        The transmitter keeps a copy of the result payload (:class:`FrameTransmitter`): for a
        large device, where the payload's sources can be far from the link.
    weight_crc : int
        Without ``weight_words``: the CRC-32C of the weights built into the bitstream
        (:func:`~spikeforge.boards.hostlink.weight_set_crc`), where every RESULT's check starts.
        With ``weight_words`` the receiver computes it from the words loaded.
    info : bytes or None
        The INFO payload answering HELLO (:func:`~spikeforge.boards.hostlink.info_payload`);
        default: this version, model hash 0, shape ``(pixels, 1, 1)``, lanes and clock 0.
    window : int
        Requests the board takes in flight (reported in INFO). 1: one at a time, as version 3.
        2: an IMAGE frame is received (and checked, and held in the receive buffer) while the
        previous image is computed; it is handed on once the previous RESULT has been sent
        (with ``copy_result``: once its frame started, the transmitter holding a copy), and its
        check and seq travel with it. Only with weights in the bitstream
        (``weight_words`` 0): LOADED's check is the receiver's live register.

    Members
    -------
    rx : ``In(1)``, tx : ``Out(1)``
        The serial line.
    image : ``Out(stream.Signature(image_layout(max_value)))``
        Checked images, pixel by pixel. With ``weight_words``, only once ``loaded``.
    result : ``In(stream.Signature(result_layout(classes, logit_bits, with_meta=False)))``
        One result (logits, class) per image, in order. The RESULT frame echoes the ``seq`` of
        the image and reports as ``cycles`` the clock cycles from the transfer of the image's
        last pixel to the cycle ``result.valid`` rose.
    weights : ``Out(stream.Signature(weight_layout(weight_words)))`` (with ``weight_words``)
        One write (``addr``, ``data``) per received word, in order, as the words arrive (words
        of a frame that later fails its CRC included; the load rewrites them before ``loaded``
        rises). One word is held until ``ready``; ``ready`` must come within two byte times,
        else the frame is answered BUSY and the host retries it.
    loaded : ``Out(1)`` (with ``weight_words``)
        All ``weight_words`` words are loaded; low from reset and from a "begin load" on.
    """

    def __init__(self, *, divisor, pixels=64, max_value=16, classes=10, logit_bits=32, cycle_bits=32,
                 timeout_bytes=4, weight_words=0, copy_result=False, weight_crc=0, info=None, window=1,
                 readback=False):
        name = type(self).__name__
        if not isinstance(copy_result, bool):
            raise TypeError(f"{name}: copy_result is {copy_result!r}; allowed: True or False")
        self.copy_result = copy_result
        self.divisor = _check_divisor(name, divisor)
        self.timeout_bytes = check_int(name, "timeout_bytes", timeout_bytes, 1, 1024)
        self.max_value = check_int(name, "max_value", max_value, 1, 255)
        self.pixels = check_int(name, "pixels", pixels, 1, MAX_IMAGE * 8 // pixel_bits(self.max_value))
        self.classes = check_int(name, "classes", classes, 1, 255)
        self.weight_crc = check_int(name, "weight_crc", weight_crc, 0, (1 << 32) - 1)
        self.logit_bits = check_int(name, "logit_bits", logit_bits, 2, 32)
        self.cycle_bits = check_int(name, "cycle_bits", cycle_bits, 1, 32)
        self.weight_words = check_int(name, "weight_words", weight_words, 0, MAX_LOAD_WORDS)
        self.readback = _check_readback(name, readback, self.weight_words)
        self.window = check_int(name, "window", window, 1, 2)
        if self.window > 1 and self.weight_words:
            raise ValueError(f"{name}: window {window} with weight_words {weight_words}; allowed: window 1 with "
                             "loadable weights (window 2 needs the weights in the bitstream)")
        if info is None:
            info = info_payload(Info(VERSION, bytes(8), (self.pixels, 1, 1), self.max_value, self.classes, 0, 0,
                                     weight_words, pixel_bits(self.max_value), self.logit_bits, self.window,
                                     int(readback)))
        self.info = bytes(info)
        members = {
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "image": Out(stream.Signature(image_layout(self.max_value))),
            "result": In(stream.Signature(result_layout(self.classes, self.logit_bits, with_meta=False))),
        }
        if self.weight_words:
            members.update({
                "weights": Out(stream.Signature(weight_layout(self.weight_words))),
                "loaded": Out(1),
            })
        if self.readback:
            members.update({
                "verify": Out(stream.Signature(unsigned(32))),
                "verified": In(stream.Signature(readback_layout())),
            })
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(divisor=self.divisor)
        m.submodules.uart_tx = utx = UARTTx(divisor=self.divisor)
        m.submodules.receiver = rcv = FrameReceiver(
            pixels=self.pixels, max_value=self.max_value,
            timeout_cycles=math.ceil(10 * self.divisor * self.timeout_bytes), weight_words=self.weight_words,
            weight_crc=self.weight_crc, window=self.window, readback=self.readback)
        m.submodules.transmitter = xmt = FrameTransmitter(
            classes=self.classes, logit_bits=self.logit_bits, cycle_bits=self.cycle_bits,
            weight_words=self.weight_words, copy_result=self.copy_result, info=self.info,
            readback=self.readback)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o, rcv.i)
        wiring.connect(m, xmt.o, utx.i)
        wiring.connect(m, rcv.err, xmt.err)
        # an image is in flight from its last pixel's transfer until its RESULT was sent (before
        # that the receiver is ``emitting`` it)
        in_flight = Signal()
        # with copy_result (and no weights) the transmitter has all of the RESULT once its frame
        # started: the next image may be handed on while it is sent
        early = self.copy_result and not self.weight_words and self.window > 1
        with m.If(xmt.started if early else xmt.result.valid & xmt.result.ready):
            m.d.sync += in_flight.eq(0)
        with m.If(self.image.valid & self.image.ready & self.image.payload.last):
            m.d.sync += in_flight.eq(1)
        if self.window > 1:
            # the next image waits in the receive buffer until the RESULT before it was sent, so
            # that the seq, check and cycle count the RESULT reads stay those of its own image
            m.d.comb += [self.image.valid.eq(rcv.o.valid & ~in_flight), self.image.payload.eq(rcv.o.payload),
                         rcv.o.ready.eq(self.image.ready & ~in_flight)]
        else:
            wiring.connect(m, rcv.o, wiring.flipped(self.image))

        if self.weight_words:
            wiring.connect(m, rcv.weights, wiring.flipped(self.weights))
            m.d.comb += [
                self.loaded.eq(rcv.loaded),
                xmt.next_word.eq(rcv.next_word),
                xmt.loaded.eq(rcv.loaded),
            ]
            # WEIGHTS frames are refused while an image is in flight
            m.d.comb += rcv.busy.eq(in_flight)
        if self.readback:
            wiring.connect(m, rcv.verify, wiring.flipped(self.verify))
            wiring.connect(m, wiring.flipped(self.verified), rcv.verified)
            m.d.comb += [xmt.verified_crc.eq(rcv.verified_crc), xmt.verified_words.eq(rcv.verified_words)]

        # with the early hand-on, the result of the frame being sent is still valid while the next
        # image computes: only a result that is not that one ("fresh") stops the cycle count
        held = Signal()
        if early:
            with m.If(xmt.started):
                m.d.sync += held.eq(1)
            with m.If(xmt.result.valid & xmt.result.ready):
                m.d.sync += held.eq(0)
        fresh = self.result.valid & ~held
        counter = Signal(self.cycle_bits)
        running = Signal()
        seq = Signal(8)
        want = Signal()
        check = Signal(32)
        with m.If(self.image.valid & self.image.ready & self.image.payload.last):
            m.d.sync += [running.eq(1), counter.eq(0), seq.eq(self.image.payload.seq), want.eq(self.image.payload.want)]
            if self.window > 1:
                m.d.sync += check.eq(rcv.o_check)
        with m.Elif(running & ~fresh & (counter != (1 << self.cycle_bits) - 1)):
            m.d.sync += counter.eq(counter + 1)
        with m.If(fresh):
            m.d.sync += running.eq(0)
        m.d.comb += [
            xmt.result.valid.eq(self.result.valid),
            self.result.ready.eq(xmt.result.ready),
            xmt.result.payload.logits.eq(self.result.payload.logits),
            xmt.result.payload.cls.eq(self.result.payload.cls),
            xmt.result.payload.cycles.eq(counter),
            xmt.result.payload.seq.eq(seq),
            xmt.result.payload.want.eq(want),
            xmt.check.eq(check if self.window > 1 else rcv.check),
        ]
        return m
