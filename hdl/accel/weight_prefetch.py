"""The sdram mapping's weight prefetcher: SDRAM segments into the on-chip weight window.

A :class:`WeightPrefetch` reads each weighted pass's segment (:mod:`.weight_stream`) from an
:class:`~spikeforge.hdl.sdram.SdramController`'s request and read streams, assembles the 16-bit
SDRAM words into weight words (the lowest first) and writes them into the segment's window
half. Per image (``start``, the cycle the last pixel moves) it requests segment 0 in the next
cycle, and segment ``j`` once segment ``j - 1`` is written and the pass of segment ``j - 2``
has ended (``release``), so a half is never overwritten while its pass reads it. ``ready``
says the segment of the next weighted pass to run is complete: the sequencer starts that pass
only then (:class:`.sequencer.Sequencer`'s ``hold``) and pulses ``release`` when it ends.

Timing: the last word of a segment moves on ``rd`` in cycle ``X`` and is written at the end
of it; ``ready`` is high from ``X + 1``, when the next request is also offered
(:data:`.weight_stream.PREFETCH_LATENCY` and the executor's load-time rules).
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int
from ..sdram import request_layout, word_layout
from ..sdram_timing import ULX3S_SDRAM
from .sequencer import write_signature

__all__ = ["WeightPrefetch"]


class WeightPrefetch(wiring.Component):
    """Load the segments ``segments`` (:class:`.weight_stream.Segment`, in pass order) into a
    window of two halves of ``window_words`` words of ``weight_bits`` bits, ``per`` SDRAM words
    each.

    Members
    -------
    req : ``Out(stream.Signature(request_layout(part, max_count)))``
        Read requests, one per segment (to the controller's ``req``).
    rd : ``In(stream.Signature(word_layout(part)))``
        The words read (from the controller's ``r``); always ready.
    write : ``Out(write_signature(addr_bits, weight_bits))``
        The window's write port.
    start : ``In(1)``
        A new image: the loads begin with segment 0.
    ready : ``Out(1)``
        The segment of the next weighted pass is in its half.
    release : ``In(1)``
        The weighted pass of the oldest loaded segment has ended.
    """

    def __init__(self, *, segments, window_words, weight_bits, per, part=ULX3S_SDRAM, max_count=1 << 16):
        name = type(self).__name__
        self.segments = list(segments)
        if not self.segments:
            raise ValueError(f"{name}: segments is empty; allowed: one or more weighted passes")
        self.window_words = check_int(name, "window_words", window_words, 1, 1 << 24)
        self.weight_bits = check_int(name, "weight_bits", weight_bits, 1, 4096)
        self.per = check_int(name, "per", per, 1, 256)
        self.part = part
        self.max_count = max_count
        for s in self.segments:
            if s.words > max_count or s.weight_words > window_words or s.words != s.weight_words * per:
                raise ValueError(f"{name}: segment of pass {s.node!r} has {s.words} SDRAM words for "
                                 f"{s.weight_words} weight words; allowed: {per} per weight word, at most "
                                 f"{max_count} per request and {window_words} weight words per half")
        self.addr_bits = max(1, (2 * window_words - 1).bit_length())
        super().__init__({
            "req": Out(stream.Signature(request_layout(part, max_count))),
            "rd": In(stream.Signature(word_layout(part))),
            "write": Out(write_signature(self.addr_bits, weight_bits)),
            "start": In(1),
            "ready": Out(1),
            "release": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n = len(self.segments)
        per, ww = self.per, self.window_words
        sb = self.part.data_bits
        bases = Array(Const(s.base, self.part.address_bits) for s in self.segments)
        counts = Array(Const(s.words, self.max_count.bit_length()) for s in self.segments)

        req_j = Signal(range(n + 1))      # the next segment to request
        loaded = Signal(range(n + 1))     # segments written in this image
        used = Signal(range(n + 1))       # segments whose pass has ended
        busy = Signal()                   # a request taken, its words not all written
        running = Signal()                # the image's loads are under way

        with m.If(self.release & (used != loaded)):
            m.d.sync += used.eq(used + 1)
        m.d.comb += self.ready.eq(loaded != used)

        # Requests: one segment at a time, into a free half (at most two segments loaded and
        # not released: a request for j needs j - used < 2, counting the release of this cycle).
        used_next = Signal.like(used)
        m.d.comb += used_next.eq(used + (self.release & (used != loaded)))
        can = running & ~busy & (req_j != n) & (req_j - used < 2)
        m.d.comb += [self.req.valid.eq(can), self.req.payload.addr.eq(bases[req_j]),
                     self.req.payload.count.eq(counts[req_j]), self.req.payload.write.eq(0)]
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [busy.eq(1), req_j.eq(req_j + 1)]

        # Words: assembled lowest first, written at the half's next address.
        m.d.comb += self.rd.ready.eq(1)
        sub = Signal(range(per))
        acc = Signal(max(1, (per - 1) * sb))
        waddr = Signal(self.addr_bits)
        word = Cat(acc, self.rd.payload.data) if per > 1 else self.rd.payload.data
        with m.If(self.rd.valid):
            if per > 1:
                m.d.sync += acc.eq(word[sb:])
            with m.If(sub == per - 1):
                m.d.sync += [sub.eq(0), waddr.eq(waddr + 1)]
                m.d.comb += [self.write.en.eq(1), self.write.addr.eq(waddr),
                             self.write.data.eq(word[:self.weight_bits])]
            with m.Else():
                m.d.sync += sub.eq(sub + 1)
            with m.If(self.rd.payload.last):
                m.d.sync += [busy.eq(0), loaded.eq(loaded + 1),
                             waddr.eq(Mux(req_j[0], ww, 0))]   # the next segment's half
        with m.If(self.start):
            m.d.sync += [running.eq(1), req_j.eq(0), loaded.eq(0), used.eq(0), busy.eq(0), sub.eq(0),
                         waddr.eq(0)]
        with m.Elif(running & (used_next == n)):
            m.d.sync += running.eq(0)
        return m

