"""The engine's sequencer: image load, descriptor load, pass start and done, and the OUT state
that lets the result stage (:class:`.logits.Logits`) send (docs/accelerator.md)."""

from amaranth.hdl import Cat, Mux, Signal

from .plan import Kind

__all__ = ["sequencer"]


def sequencer(eng, m, desc, desc_bits, desc_k, desc_r, dw, img_w, nw, pc, wm_load, logits):
    """The engine's sequencer: loads an image from ``pixels``, runs the passes (descriptor
    load, start, done), and lets the result stage ``logits`` send the logits and the class on
    ``result`` (see :class:`.engine.Engine`). Returns what the pipelines need: the start and
    done strobes and the event counter."""
    img = eng.prog.image
    # Top-level control ------------------------------------------------------------
    cycle_ctr = Signal(32)
    event_ctr = Signal(32)
    counting = Signal()
    with m.If(counting):
        m.d.sync += cycle_ctr.eq(cycle_ctr + 1)

    pix_idx = Signal(range(img.values + 1))     # T frames of N * C for a frames model (§4)
    pix_word = Signal(max(1, img.C * eng.pixel_bits))
    pix_ch = Signal(range(img.C + 1))

    start_syn = Signal()
    start_ew = Signal()
    syn_done = Signal()
    ew_done = Signal()

    with m.FSM(name="top"):
        with m.State("IDLE"):
            m.d.comb += eng.pixels.ready.eq(1)
            if wm_load is not None:
                m.d.comb += [eng.weights.ready.eq(1), wm_load.en.eq(eng.weights.valid),
                             wm_load.addr.eq(eng.weights.payload.addr),
                             wm_load.data.eq(eng.weights.payload.data)]
            with m.If(eng.pixels.valid):
                if img.C == 1:
                    word = eng.pixels.payload
                else:
                    word = Cat(pix_word[eng.pixel_bits:], eng.pixels.payload)
                m.d.sync += pix_word.eq(word)
                last_ch = (pix_ch == img.C - 1)
                m.d.sync += pix_ch.eq(Mux(last_ch, 0, pix_ch + 1))
                with m.If(last_ch):
                    m.d.comb += [img_w.en.eq(1), img_w.addr.eq(pix_idx // img.C), img_w.data.eq(word)]
                m.d.sync += pix_idx.eq(pix_idx + 1)
                with m.If(pix_idx == img.values - 1):
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
            with m.If(desc.kind == Kind.SYN):
                m.d.comb += start_syn.eq(1)
            with m.Else():
                m.d.comb += start_ew.eq(1)
            m.next = "RUN"
        with m.State("RUN"):
            with m.If(syn_done | ew_done):
                with m.If(desc.last_pass):
                    m.d.sync += [counting.eq(0), eng.cycles.eq(cycle_ctr + 1), eng.events.eq(event_ctr)]
                    m.next = "OUT"
                with m.Else():
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "DESC"
        with m.State("OUT"):
            res = logits.result
            m.d.comb += logits.send.eq(1)
            with m.If(res.valid & res.ready & res.payload.last):
                m.next = "IDLE"
    return dict(event_ctr=event_ctr, ew_done=ew_done, start_ew=start_ew, start_syn=start_syn, syn_done=syn_done)
