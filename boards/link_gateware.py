"""Host link gateware: frame receiver, frame transmitter and the UART bridge around them.

The frame format and message types are those of :mod:`spikeforge.boards.hostlink` (see
``docs/hostlink.md``); the tests check the gateware against that host codec.

- :class:`FrameReceiver`: bytes in, IMAGE frames checked (CRC, type, length, pixel range,
  inter-byte timeout) and buffered; only a frame that passed every check is handed on as a
  pixel stream. A rejected frame is reported on ``err`` (to be answered with an ERROR frame).
- :class:`FrameTransmitter`: RESULT (logits, class, cycle count) and ERROR frames out as bytes.
- :class:`UARTHostLink`: UART rx -> receiver -> ``image`` stream; ``result`` stream ->
  transmitter -> UART tx; rejected frames answered with ERROR; it measures the cycle count
  from the last pixel handed on to the result.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..hdl.params import check_int, field_bits
from .hostlink import CRC_INIT, CRC_POLY, SYNC, ErrorCode, MsgType, result_payload_length
from .uart import UARTRx, UARTTx, _check_divisor

__all__ = [
    "crc16_step", "image_layout", "error_layout", "result_layout", "FrameReceiver",
    "FrameTransmitter", "UARTHostLink",
]


def crc16_step(crc, byte):
    """Amaranth expression: CRC-16/CCITT-FALSE register ``crc`` (16 bits) after ``byte``
    (8 bits), MSB first; eight shift steps unrolled into an XOR network."""
    bits = [crc[i] for i in range(16)]
    for i in range(8):
        fb = bits[15] ^ byte[7 - i]
        bits = [fb] + [bits[k - 1] ^ fb if (CRC_POLY >> k) & 1 else bits[k - 1] for k in range(1, 16)]
    return Cat(*bits)


def image_layout(max_value):
    """Pixel stream payload: ``pixel`` (``bit_length(max_value)`` bits), ``last`` (last pixel
    of the image) and the ``seq`` byte of the IMAGE frame (to be echoed in the RESULT)."""
    return data.StructLayout({"pixel": unsigned(int(max_value).bit_length()), "last": 1, "seq": 8})


def error_layout():
    """Rejected frame report: ERROR ``code`` (:class:`ErrorCode`) and the frame's ``seq``."""
    return data.StructLayout({"code": 8, "seq": 8})


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
    return data.StructLayout(fields)


class FrameReceiver(wiring.Component):
    """Receive IMAGE frames from a byte stream and hand on only images that passed all checks.

    Bytes outside a frame are skipped until SYNC. The header is checked at its end: type
    IMAGE and length ``pixels``, else ``BAD_TYPE`` / ``BAD_LENGTH`` is reported and the
    receiver hunts for the next SYNC. The payload is written to an image buffer; at the
    frame's end the CRC (run over type through CRC, must be 0) decides: ``BAD_CRC``, else a
    pixel above ``max_value`` gives ``BAD_VALUE``, else an image still being handed on gives
    ``BUSY``, else the image is handed on from the buffer. A frame in which no byte arrives
    for ``timeout_cycles`` cycles is dropped with ``TIMEOUT`` (truncated frame).

    Parameters
    ----------
    pixels : int
        Payload length of an IMAGE frame (1..1024), one byte per pixel.
    max_value : int
        Largest pixel value (1..255); pixels are ``bit_length(max_value)`` bits wide.
    timeout_cycles : int
        Inter-byte timeout within a frame, in cycles (0: none). Choose a few byte times.

    Members
    -------
    i : ``In(stream.Signature(8))``
        Bytes; ``ready`` is always high (a UART cannot wait).
    o : ``Out(stream.Signature(image_layout(max_value)))``
        Pixels of an accepted image, row-major, ``last`` on the final one.
    err : ``Out(stream.Signature(error_layout()))``
        One report per rejected frame. One report is held; while it is not taken, further
        reports are dropped (the host then times out and retries).
    """

    def __init__(self, *, pixels=64, max_value=16, timeout_cycles=0):
        name = type(self).__name__
        self.pixels = check_int(name, "pixels", pixels, 1, 1024)
        self.max_value = check_int(name, "max_value", max_value, 1, 255)
        self.timeout_cycles = check_int(name, "timeout_cycles", timeout_cycles, 0, 1 << 30)
        self.pixel_bits = self.max_value.bit_length()
        super().__init__({
            "i": In(stream.Signature(8)),
            "o": Out(stream.Signature(image_layout(self.max_value))),
            "err": Out(stream.Signature(error_layout())),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.pixels
        m.submodules.buf = buf = Memory(shape=unsigned(self.pixel_bits), depth=n, init=[])
        wr = buf.write_port()
        rd = buf.read_port(domain="sync")

        byte = self.i.payload
        got = Signal()
        m.d.comb += [self.i.ready.eq(1), got.eq(self.i.valid)]

        crc = Signal(16, init=CRC_INIT)
        mtype = Signal(8)
        seq = Signal(8)
        length = Signal(16)
        count = Signal(range(n))
        bad_value = Signal()
        busy_frame = Signal()

        # hand-on side: reads the buffer while `emitting`
        emitting = Signal()
        idx = Signal(range(n))
        out_seq = Signal(8)
        next_idx = Signal(range(n))
        out_last = idx == n - 1
        m.d.comb += [
            self.o.valid.eq(emitting),
            self.o.payload.pixel.eq(rd.data),
            self.o.payload.last.eq(out_last),
            self.o.payload.seq.eq(out_seq),
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
        can_report = ~err_valid | self.err.ready

        def report(code):
            with m.If(can_report):
                m.d.sync += [err_valid.eq(1), err_code.eq(code), err_seq.eq(seq)]

        with m.If(got):
            m.d.sync += crc.eq(crc16_step(crc, byte))

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
            wr.addr.eq(count),
            wr.data.eq(byte[:self.pixel_bits]),
        ]

        def on_timeout():
            with m.If(timed_out):
                report(ErrorCode.TIMEOUT)
                m.next = "HUNT"

        with m.FSM():
            with m.State("HUNT"):
                with m.If(got & (byte == SYNC)):
                    m.d.sync += crc.eq(CRC_INIT)
                    m.next = "TYPE"
            with m.State("TYPE"):
                m.d.comb += in_frame.eq(1)
                on_timeout()
                with m.If(got):
                    m.d.sync += mtype.eq(byte)
                    m.next = "SEQ"
            with m.State("SEQ"):
                m.d.comb += in_frame.eq(1)
                on_timeout()
                with m.If(got):
                    m.d.sync += seq.eq(byte)
                    m.next = "LEN0"
            with m.State("LEN0"):
                m.d.comb += in_frame.eq(1)
                on_timeout()
                with m.If(got):
                    m.d.sync += length[:8].eq(byte)
                    m.next = "LEN1"
            with m.State("LEN1"):
                m.d.comb += in_frame.eq(1)
                on_timeout()
                with m.If(got):
                    with m.If(mtype != MsgType.IMAGE):
                        report(ErrorCode.BAD_TYPE)
                        m.next = "HUNT"
                    with m.Elif(Cat(length[:8], byte) != n):
                        report(ErrorCode.BAD_LENGTH)
                        m.next = "HUNT"
                    with m.Else():
                        m.d.sync += [count.eq(0), bad_value.eq(0), busy_frame.eq(emitting)]
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += in_frame.eq(1)
                on_timeout()
                with m.If(got):
                    m.d.comb += wr.en.eq(~busy_frame & ~emitting)
                    with m.If(emitting):
                        m.d.sync += busy_frame.eq(1)
                    with m.If(byte > self.max_value):
                        m.d.sync += bad_value.eq(1)
                    with m.If(count == n - 1):
                        m.next = "CRC0"
                    with m.Else():
                        m.d.sync += count.eq(count + 1)
            with m.State("CRC0"):
                m.d.comb += in_frame.eq(1)
                on_timeout()
                with m.If(got):
                    m.next = "CRC1"
            with m.State("CRC1"):
                m.d.comb += in_frame.eq(1)
                on_timeout()
                with m.If(got):
                    with m.If(crc16_step(crc, byte) != 0):
                        report(ErrorCode.BAD_CRC)
                    with m.Elif(bad_value):
                        report(ErrorCode.BAD_VALUE)
                    with m.Elif(busy_frame | emitting):
                        report(ErrorCode.BUSY)
                    with m.Else():
                        m.d.sync += [emitting.eq(1), out_seq.eq(seq)]
                    m.next = "HUNT"
        return m


class FrameTransmitter(wiring.Component):
    """Send RESULT and ERROR frames as bytes.

    Parameters
    ----------
    classes : int
        Number of logits K (1..255).
    logit_bits : int
        Width of a logit (2..32); sent sign-extended to 32 bits.
    cycle_bits : int
        Width of the cycle count (1..32); sent zero-extended to 32 bits.

    Members
    -------
    result : ``In(stream.Signature(result_layout(classes, logit_bits, cycle_bits)))``
        One RESULT frame per transfer. The payload is not copied: it is read while the frame
        is sent and the transfer (``ready``) happens with the frame's last byte.
    err : ``In(stream.Signature(error_layout()))``
        One ERROR frame per transfer (same rule). When both are valid and the transmitter is
        idle, the ERROR frame goes first.
    o : ``Out(stream.Signature(8))``
        Frame bytes, SYNC first.
    """

    def __init__(self, *, classes, logit_bits=32, cycle_bits=32):
        name = type(self).__name__
        self.classes = check_int(name, "classes", classes, 1, 255)
        self.logit_bits = check_int(name, "logit_bits", logit_bits, 2, 32)
        self.cycle_bits = check_int(name, "cycle_bits", cycle_bits, 1, 32)
        super().__init__({
            "result": In(stream.Signature(result_layout(self.classes, self.logit_bits, self.cycle_bits))),
            "err": In(stream.Signature(error_layout())),
            "o": Out(stream.Signature(8)),
        })

    def _result_bytes(self, m):
        p = self.result.payload
        length = result_payload_length(self.classes)
        out = [Const(MsgType.RESULT, 8), p.seq, Const(length & 0xFF, 8), Const(length >> 8, 8)]
        for j in range(self.classes):
            ext = Signal(signed(32), name=f"logit{j}")
            m.d.comb += ext.eq(p.logits[j])
            out += [ext[8 * k:8 * k + 8] for k in range(4)]
        cls = Signal(8)
        cycles = Signal(32)
        m.d.comb += [cls.eq(p.cls), cycles.eq(p.cycles)]
        out.append(cls)
        out += [cycles[8 * k:8 * k + 8] for k in range(4)]
        return out

    def _error_bytes(self):
        p = self.err.payload
        return [Const(MsgType.ERROR, 8), p.seq, Const(1, 8), Const(0, 8), p.code]

    def elaborate(self, platform):
        m = Module()
        bodies = {"RESULT": self._result_bytes(m), "ERROR": self._error_bytes()}
        longest = max(len(b) for b in bodies.values()) + 3
        pos = Signal(range(longest))      # byte index in the frame: 0 SYNC, then body, then CRC
        crc = Signal(16, init=CRC_INIT)
        is_err = Signal()
        sending = Signal()
        byte = Signal(8)
        take = self.o.valid & self.o.ready
        m.d.comb += [self.o.valid.eq(sending), self.o.payload.eq(byte)]

        with m.If(~sending):
            with m.If(self.err.valid):
                m.d.sync += [sending.eq(1), is_err.eq(1), pos.eq(0)]
            with m.Elif(self.result.valid):
                m.d.sync += [sending.eq(1), is_err.eq(0), pos.eq(0)]

        for kind, body in bodies.items():
            total = len(body) + 3
            with m.If(sending & (is_err == (kind == "ERROR"))):
                with m.Switch(pos):
                    with m.Case(0):
                        m.d.comb += byte.eq(SYNC)
                    for k, value in enumerate(body):
                        with m.Case(k + 1):
                            m.d.comb += byte.eq(value)
                    with m.Case(total - 2):
                        m.d.comb += byte.eq(crc[8:])
                    with m.Case(total - 1):
                        m.d.comb += byte.eq(crc[:8])
                with m.If(take):
                    m.d.sync += pos.eq(pos + 1)
                    with m.If(pos == 0):
                        m.d.sync += crc.eq(CRC_INIT)
                    with m.Elif(pos <= len(body)):
                        m.d.sync += crc.eq(crc16_step(crc, byte))
                    with m.If(pos == total - 1):
                        m.d.sync += sending.eq(0)
                        if kind == "ERROR":
                            m.d.comb += self.err.ready.eq(1)
                        else:
                            m.d.comb += self.result.ready.eq(1)
        return m


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

    Members
    -------
    rx : ``In(1)``, tx : ``Out(1)``
        The serial line.
    image : ``Out(stream.Signature(image_layout(max_value)))``
        Checked images, pixel by pixel.
    result : ``In(stream.Signature(result_layout(classes, logit_bits, with_meta=False)))``
        One result (logits, class) per image, in order. The RESULT frame echoes the ``seq`` of
        the image and reports as ``cycles`` the clock cycles from the transfer of the image's
        last pixel to the cycle ``result.valid`` rose.
    """

    def __init__(self, *, divisor, pixels=64, max_value=16, classes=10, logit_bits=32, cycle_bits=32,
                 timeout_bytes=4):
        name = type(self).__name__
        self.divisor = _check_divisor(name, divisor)
        self.timeout_bytes = check_int(name, "timeout_bytes", timeout_bytes, 1, 1024)
        self.pixels = check_int(name, "pixels", pixels, 1, 1024)
        self.max_value = check_int(name, "max_value", max_value, 1, 255)
        self.classes = check_int(name, "classes", classes, 1, 255)
        self.logit_bits = check_int(name, "logit_bits", logit_bits, 2, 32)
        self.cycle_bits = check_int(name, "cycle_bits", cycle_bits, 1, 32)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "image": Out(stream.Signature(image_layout(self.max_value))),
            "result": In(stream.Signature(result_layout(self.classes, self.logit_bits, with_meta=False))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(divisor=self.divisor)
        m.submodules.uart_tx = utx = UARTTx(divisor=self.divisor)
        m.submodules.receiver = rcv = FrameReceiver(
            pixels=self.pixels, max_value=self.max_value,
            timeout_cycles=10 * self.divisor * self.timeout_bytes)
        m.submodules.transmitter = xmt = FrameTransmitter(
            classes=self.classes, logit_bits=self.logit_bits, cycle_bits=self.cycle_bits)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o, rcv.i)
        wiring.connect(m, xmt.o, utx.i)
        wiring.connect(m, rcv.err, xmt.err)
        wiring.connect(m, rcv.o, wiring.flipped(self.image))

        counter = Signal(self.cycle_bits)
        running = Signal()
        seq = Signal(8)
        with m.If(self.image.valid & self.image.ready & self.image.payload.last):
            m.d.sync += [running.eq(1), counter.eq(0), seq.eq(self.image.payload.seq)]
        with m.Elif(running & ~self.result.valid & (counter != (1 << self.cycle_bits) - 1)):
            m.d.sync += counter.eq(counter + 1)
        with m.If(self.result.valid):
            m.d.sync += running.eq(0)
        m.d.comb += [
            xmt.result.valid.eq(self.result.valid),
            self.result.ready.eq(xmt.result.ready),
            xmt.result.payload.logits.eq(self.result.payload.logits),
            xmt.result.payload.cls.eq(self.result.payload.cls),
            xmt.result.payload.cycles.eq(counter),
            xmt.result.payload.seq.eq(seq),
        ]
        return m
