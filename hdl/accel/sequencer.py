"""The engine's sequencer: image load, descriptor load, pass start and done, and the OUT state
that lets the result stage (:class:`.logits.Logits`) send (docs/accelerator.md)."""

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..params import ceil_log2, check_int

__all__ = ["Sequencer", "write_signature", "read_signature"]


def write_signature(addr_bits, data_bits):
    """A memory write port as the sequencer drives it: ``en``, ``addr``, ``data``."""
    return wiring.Signature({"en": Out(1), "addr": Out(addr_bits), "data": Out(data_bits)})


def read_signature(addr_bits, data_bits):
    """A synchronous memory read port as the sequencer drives it: ``en``, ``addr`` out, ``data``
    in (the word of the address of the cycle before)."""
    return wiring.Signature({"en": Out(1), "addr": Out(addr_bits), "data": In(data_bits)})


class Sequencer(wiring.Component):
    """Top-level control of the engine: one image in, the passes, the result out.

    In ``IDLE`` it takes ``pixels`` (``C`` beats of ``pixel_bits`` make one image word, written
    to ``img_write``; ``values`` beats one image) and, with ``weight_load``, the ``weights``
    stream (its words go straight to ``weight_write``). After the last pixel, each pass: its
    descriptor, ``desc_words`` words of ``desc_word_bits`` read on ``desc_read`` into the
    shift register ``desc_bits`` (piece 0 lowest when full; ``desc_words + 2`` cycles), then
    one cycle of ``start_syn`` or ``start_ew`` (``syn_pass``: the descriptor's kind, read back
    from ``desc_bits`` by the engine), then ``RUN`` until ``syn_done`` or ``ew_done``; ``pc`` is
    the running pass. After the pass with ``last_pass``, ``cycles`` (from the last pixel to the
    first result beat) and ``events`` (the cycles with ``event`` set meanwhile; ``event_count``
    is the running count) are set and ``send`` is high until ``result_done`` (the class beat
    is taken).

    ``img_addr_bits`` and ``desc_addr_bits`` are the widths of the image memory's and the
    descriptor memory's addresses: wide enough for the ``values / channels`` image words and
    the ``passes * desc_words`` descriptor words. ``weight_load`` (the SPRAM mapping: weights
    loaded at run time) is ``(layout, (addr_bits, data_bits))``: the ``weights`` stream's
    payload layout (with ``addr`` and ``data`` fields) and the widths of the weight memory's
    write port; ``None`` (the default) makes no ``weights`` and ``weight_write`` ports.
    ``weight_gate`` (the sdram mapping): ``image_start`` is high in the cycle the image's last
    pixel moves, and ``START`` holds while ``hold`` is high (the engine raises it while the
    pass is a weighted one whose segment is not yet in the weight window).
    """

    def __init__(self, *, pixel_bits, channels, values, img_addr_bits, passes, desc_words, desc_word_bits,
                 desc_addr_bits, weight_load=None, weight_gate=False):
        name = "Sequencer"
        self.pixel_bits = check_int(name, "pixel_bits", pixel_bits, 1, 64)
        self.channels = check_int(name, "channels", channels, 1, 1 << 16)
        self.values = check_int(name, "values", values, 1, 1 << 24)
        self.passes = check_int(name, "passes", passes, 1, 1 << 16)
        self.desc_words = check_int(name, "desc_words", desc_words, 1, 1 << 10)
        self.desc_word_bits = check_int(name, "desc_word_bits", desc_word_bits, 1, 1 << 12)
        if self.values % self.channels:
            raise ValueError(f"Sequencer: values is {self.values}; allowed: a multiple of channels "
                             f"({self.channels})")
        # the address widths: at least the bits of the last word's address
        self.img_addr_bits = check_int(name, "img_addr_bits", img_addr_bits,
                                       ceil_log2(self.values // self.channels), 64)
        self.desc_addr_bits = check_int(name, "desc_addr_bits", desc_addr_bits,
                                        ceil_log2(self.passes * self.desc_words), 64)
        members = {
            "pixels": In(stream.Signature(unsigned(self.pixel_bits))),
            "img_write": Out(write_signature(self.img_addr_bits, self.channels * self.pixel_bits)),
            "desc_read": Out(read_signature(self.desc_addr_bits, self.desc_word_bits)),
            "desc_bits": Out(self.desc_words * self.desc_word_bits),
            "syn_pass": In(1),
            "last_pass": In(1),
            "pc": Out(range(self.passes + 1)),
            "start_syn": Out(1),
            "start_ew": Out(1),
            "syn_done": In(1),
            "ew_done": In(1),
            "event": In(1),
            "event_count": Out(32),
            "cycles": Out(32),
            "events": Out(32),
            "send": Out(1),
            "result_done": In(1),
        }
        if weight_gate:
            members["image_start"] = Out(1)
            members["hold"] = In(1)
        if weight_load is not None:   # (layout of the stream, (addr_bits, data_bits) of the write)
            layout, (addr_bits, data_bits) = weight_load
            members["weights"] = In(stream.Signature(layout))
            members["weight_write"] = Out(write_signature(addr_bits, data_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        C, pb, nw, dw = self.channels, self.pixel_bits, self.desc_words, self.desc_word_bits
        cycle_ctr = Signal(32)
        event_ctr = self.event_count
        counting = Signal()
        with m.If(counting):
            m.d.sync += cycle_ctr.eq(cycle_ctr + 1)

        pix_idx = Signal(range(self.values + 1))     # T frames of N * C for a frames model (§4)
        pix_word = Signal(C * pb)
        pix_ch = Signal(range(C + 1))
        desc_k = Signal(range(nw + 1))
        desc_bits, desc_r, pc = self.desc_bits, self.desc_read, self.pc
        gate = "hold" in self.signature.members

        with m.FSM(name="top"):
            with m.State("IDLE"):
                m.d.comb += self.pixels.ready.eq(1)
                if "weights" in self.signature.members:
                    w = self.weights
                    m.d.comb += [w.ready.eq(1), self.weight_write.en.eq(w.valid),
                                 self.weight_write.addr.eq(w.payload.addr), self.weight_write.data.eq(w.payload.data)]
                with m.If(self.pixels.valid):
                    word = self.pixels.payload if C == 1 else Cat(pix_word[pb:], self.pixels.payload)
                    m.d.sync += pix_word.eq(word)
                    last_ch = (pix_ch == C - 1)
                    m.d.sync += pix_ch.eq(Mux(last_ch, 0, pix_ch + 1))
                    with m.If(last_ch):
                        m.d.comb += [self.img_write.en.eq(1), self.img_write.addr.eq(pix_idx // C),
                                     self.img_write.data.eq(word)]
                    m.d.sync += pix_idx.eq(pix_idx + 1)
                    with m.If(pix_idx == self.values - 1):
                        if gate:
                            m.d.comb += self.image_start.eq(1)
                        m.d.sync += [pix_idx.eq(0), pc.eq(0), cycle_ctr.eq(0), event_ctr.eq(0),
                                     counting.eq(1), desc_k.eq(0)]
                        m.next = "DESC"
            # The descriptor: nw memory words, read one per cycle (pass setup: nw + 2 cycles).
            with m.State("DESC"):
                m.d.comb += [desc_r.addr.eq(pc * nw + desc_k), desc_r.en.eq(1)]
                m.d.sync += desc_k.eq(desc_k + 1)
                if nw > 1:
                    with m.If(desc_k != 0):
                        m.d.sync += desc_bits.eq(Cat(desc_bits[dw:], desc_r.data))
                with m.If(desc_k == nw - 1):
                    m.next = "DESC2"
            with m.State("DESC2"):
                m.d.sync += desc_k.eq(0)
                m.d.sync += desc_bits.eq(Cat(desc_bits[dw:], desc_r.data) if nw > 1 else desc_r.data)
                m.next = "START"
            with m.State("START"):
                with m.If(~self.hold if gate else 1):
                    with m.If(self.syn_pass):
                        m.d.comb += self.start_syn.eq(1)
                    with m.Else():
                        m.d.comb += self.start_ew.eq(1)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(self.syn_done | self.ew_done):
                    with m.If(self.last_pass):
                        m.d.sync += [counting.eq(0), self.cycles.eq(cycle_ctr + 1), self.events.eq(event_ctr)]
                        m.next = "OUT"
                    with m.Else():
                        m.d.sync += pc.eq(pc + 1)
                        m.next = "DESC"
            with m.State("OUT"):
                m.d.comb += self.send.eq(1)
                with m.If(self.result_done):
                    m.next = "IDLE"
        # After the FSM, as when the scan stage counted into this register itself (the two
        # never meet: no event while an image loads).
        with m.If(self.event):
            m.d.sync += event_ctr.eq(event_ctr + 1)
        return m
