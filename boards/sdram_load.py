"""The host's weight load into the ULX3S SDRAM and its CRC read-back (protocol version 5,
docs/hostlink.md "Weights in SDRAM").

Three stream components around :class:`~spikeforge.hdl.sdram.SdramController`, so that its
request and read streams can be shared with the engine's weight prefetcher in the board top:

- :class:`SdramWeightLoader`: the link receiver's weight words (``weights``: ``{addr, data}``
  beats, :func:`~spikeforge.boards.link_gateware.weight_layout`) as one-word write requests on
  ``req`` and their words on ``w``. One word per request: a WEIGHTS frame that fails (bad CRC,
  timeout) leaves no write request waiting for words that never come, and the link delivers a
  word every two byte times (hundreds of cycles), against a few cycles per one-word write.
- :class:`SdramReadbackCrc`: given a word count on ``start``, reads words ``base ..
  base + count - 1`` back (requests of up to the controller's ``max_count`` words) and gives
  ``{crc, words}`` on ``result``: the CRC-32C of the words, each as two bytes low byte first
  (:func:`~spikeforge.boards.hostlink.words_crc`), from ``amaranth.lib.crc``
  (``CRC32_ISCSI``, 16 data bits a cycle: reflected input takes the low byte first).
- :class:`SdramArbiter`: ``n`` request/read port pairs onto the controller's ``req`` and
  ``r``; the lowest-numbered valid request wins, and a read request holds the grant until its
  ``last`` word has gone to its port (the read words are routed by owner). Writes do not hold
  it: the one writer (the loader) feeds the controller's ``w`` directly.
"""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import crc, stream, wiring
from amaranth.lib.wiring import In, Out

from ..hdl.params import check_int
from ..hdl.sdram import request_layout, word_layout
from ..hdl.sdram_timing import ULX3S_SDRAM
from .link_gateware import readback_layout, weight_layout

__all__ = ["SdramWeightLoader", "SdramReadbackCrc", "SdramArbiter"]


class SdramWeightLoader(wiring.Component):
    """Weight words from the link into the SDRAM, each at ``base + addr``.

    Members
    -------
    weights : ``In(stream.Signature(weight_layout(weight_words)))``
    req : ``Out(stream.Signature(request_layout(part, max_count)))``
    w : ``Out(stream.Signature(unsigned(16)))``
    """

    def __init__(self, *, weight_words, base=0, max_count=1 << 16, part=ULX3S_SDRAM):
        name = type(self).__name__
        self.weight_words = check_int(name, "weight_words", weight_words, 1, part.words)
        self.base = check_int(name, "base", base, 0, part.words - weight_words)
        self.part = part
        super().__init__({
            "weights": In(stream.Signature(weight_layout(weight_words))),
            "req": Out(stream.Signature(request_layout(part, max_count))),
            "w": Out(stream.Signature(unsigned(part.data_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        word = Signal(self.part.data_bits)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.weights.ready.eq(1)
                with m.If(self.weights.valid):
                    m.d.sync += [self.req.payload.addr.eq(self.base + self.weights.payload.addr),
                                 self.req.payload.count.eq(1), self.req.payload.write.eq(1),
                                 word.eq(self.weights.payload.data)]
                    m.next = "REQ"
            with m.State("REQ"):
                m.d.comb += self.req.valid.eq(1)
                with m.If(self.req.ready):
                    m.next = "WORD"
            with m.State("WORD"):
                m.d.comb += [self.w.valid.eq(1), self.w.payload.eq(word)]
                with m.If(self.w.ready):
                    m.next = "IDLE"
        return m


class SdramReadbackCrc(wiring.Component):
    """Read ``count`` words from ``base`` back and give their CRC-32C.

    Members
    -------
    start : ``In(stream.Signature(unsigned(32)))``
        The word count (0: the CRC of nothing, 0); taken when idle.
    req : ``Out(stream.Signature(request_layout(part, max_count)))``
    r : ``In(stream.Signature(word_layout(part)))``
    result : ``Out(stream.Signature(readback_layout()))``
        Held until taken; the next ``start`` is taken after that.
    """

    def __init__(self, *, base=0, max_count=1 << 16, part=ULX3S_SDRAM):
        name = type(self).__name__
        self.base = check_int(name, "base", base, 0, part.words - 1)
        self.max_count = check_int(name, "max_count", max_count, 1, part.words)
        self.part = part
        super().__init__({
            "start": In(stream.Signature(unsigned(32))),
            "req": Out(stream.Signature(request_layout(part, self.max_count))),
            "r": In(stream.Signature(word_layout(part))),
            "result": Out(stream.Signature(readback_layout())),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.crc = gen = crc.catalog.CRC32_ISCSI(data_width=self.part.data_bits).create()
        total = Signal(32)
        addr = Signal(self.part.address_bits)
        to_ask = Signal(32)          # words not yet requested
        to_get = Signal(32)          # words not yet received
        chunk = Signal(range(self.max_count + 1))
        m.d.comb += [chunk.eq(self.max_count)]
        with m.If(to_ask < self.max_count):
            m.d.comb += chunk.eq(to_ask)
        m.d.comb += [gen.data.eq(self.r.payload.data),
                     self.req.payload.addr.eq(addr), self.req.payload.count.eq(chunk),
                     self.req.payload.write.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.start.ready.eq(1)
                with m.If(self.start.valid):
                    count = self.start.payload
                    m.d.sync += [total.eq(count), to_ask.eq(count), to_get.eq(count),
                                 addr.eq(self.base)]
                    m.d.comb += gen.start.eq(1)
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += self.req.valid.eq(to_ask != 0)
                with m.If(self.req.valid & self.req.ready):
                    m.d.sync += [to_ask.eq(to_ask - chunk), addr.eq(addr + chunk)]
                m.d.comb += self.r.ready.eq(to_get != 0)
                with m.If(self.r.valid & self.r.ready):
                    m.d.comb += gen.valid.eq(1)
                    m.d.sync += to_get.eq(to_get - 1)
                with m.If(to_get == 0):
                    m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += [self.result.valid.eq(1), self.result.payload.crc.eq(gen.crc),
                             self.result.payload.words.eq(total)]
                with m.If(self.result.ready):
                    m.next = "IDLE"
        return m


class SdramArbiter(wiring.Component):
    """``ports`` request/read pairs onto one controller (module docstring).

    Members
    -------
    ports : list of ``{req: In(...), r: Out(...)}``
    req : ``Out(stream.Signature(request_layout(part, max_count)))`` (to the controller)
    r : ``In(stream.Signature(word_layout(part)))`` (from the controller)
    """

    def __init__(self, ports=2, *, max_count=1 << 16, part=ULX3S_SDRAM):
        self.n = check_int(type(self).__name__, "ports", ports, 1, 16)
        req = stream.Signature(request_layout(part, max_count))
        r = stream.Signature(word_layout(part))
        port = wiring.Signature({"req": In(req), "r": Out(r)})
        super().__init__({"ports": Out(port).array(self.n), "req": Out(req), "r": In(r)})

    def elaborate(self, platform):
        m = Module()
        owner = Signal(range(max(2, self.n)))
        reading = Signal()
        with m.If(~reading):
            for i in range(self.n):                      # the lowest valid port wins
                p = self.ports[i].req
                with (m.Elif if i else m.If)(p.valid):
                    m.d.comb += [self.req.valid.eq(1), self.req.payload.eq(p.payload),
                                 p.ready.eq(self.req.ready)]
                    with m.If(self.req.ready & ~p.payload.write & (p.payload.count != 0)):
                        m.d.sync += [owner.eq(i), reading.eq(1)]
        for i in range(self.n):
            p = self.ports[i].r
            m.d.comb += p.payload.eq(self.r.payload)
            with m.If(reading & (owner == i)):
                m.d.comb += [p.valid.eq(self.r.valid), self.r.ready.eq(p.ready)]
        with m.If(self.r.valid & self.r.ready & self.r.payload.last):
            m.d.sync += reading.eq(0)
        return m
