"""The engine's sequencer: image load, descriptor load, pass start and done, and the result
stage (the logits shift register and the argmax) of docs/accelerator.md."""

from amaranth.hdl import Cat, Mux, Signal, signed

from .plan import Kind

__all__ = ["sequencer"]


def sequencer(eng, m, lc, desc, desc_bits, desc_k, desc_r, dw, img_w, nw, pc, wm_load):
    """The engine's sequencer: loads an image from ``pixels``, runs the passes (descriptor
    load, start, done), and sends the logits and the class on ``result`` (see
    :class:`.engine.Engine`). Returns what the pipelines need: the start and done strobes, the
    event counter and the logit registers the out pass shifts into."""
    prog = eng.prog
    P = prog.lanes
    img = prog.image
    K = prog.classes
    # Top-level control ------------------------------------------------------------
    cycle_ctr = Signal(32)
    event_ctr = Signal(32)
    counting = Signal()
    with m.If(counting):
        m.d.sync += cycle_ctr.eq(cycle_ctr + 1)

    pix_idx = Signal(range(img.values + 1))     # T frames of N * C for a frames model (§4)
    pix_word = Signal(max(1, img.C * eng.pixel_bits))
    pix_ch = Signal(range(img.C + 1))

    # A shift register: the out pass (T = N = 1, tiles in order) shifts P logits in at the
    # top per tile, the OUT state shifts one out at the bottom per beat (no K-way decode).
    n_logits = -(-K // prog.lanes) * prog.lanes
    logits = [Signal(signed(eng.logit_bits), name=f"logit{j}") for j in range(n_logits)]
    out_idx = Signal(range(K + 1))
    best = Signal(signed(eng.logit_bits))
    best_idx = Signal(range(max(2, K)))
    gt = Signal()
    out_beat = Signal()        # a result beat in this cycle
    out_shifting = Signal()    # the fast build shifts the logits after a beat

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
                    m.d.sync += [out_idx.eq(0), counting.eq(0), eng.cycles.eq(cycle_ctr + 1),
                                 eng.events.eq(event_ctr)]
                    m.next = "OUT"
                with m.Else():
                    m.d.sync += pc.eq(pc + 1)
                    m.next = "DESC"
        with m.State("OUT"):
            # The logits shift down one place per beat: the current one is always logit0
            # (no K-way multiplexer in front of the argmax comparison). The fast build
            # shifts a cycle after the beat, under each lane group's copy of the beat (one
            # enable would reach every logit register), and offers no beat meanwhile.
            is_class = out_idx == K
            cur = logits[0]
            m.d.comb += [
                eng.result.valid.eq(~out_shifting),
                eng.result.payload.value.eq(Mux(is_class, best_idx, cur)),
                eng.result.payload.last.eq(is_class),
            ]
            # ``gt``: logit0 beats the best so far, decided a beat ahead (both candidates
            # for the next best are compared with logit1), so no comparator sits in front of
            # the update.
            upd = (out_idx == 0) | gt
            with m.If(eng.result.valid & eng.result.ready):
                m.d.comb += out_beat.eq(1)
                m.d.sync += out_idx.eq(out_idx + 1)
                if not eng.build.logit_shift_regs:
                    m.d.sync += [logits[j].eq(logits[j + 1]) for j in range(len(logits) - 1)]
                m.d.sync += gt.eq(Mux(upd, logits[1] > cur, logits[1] > best))
                with m.If(~is_class & upd):
                    m.d.sync += [best.eq(cur), best_idx.eq(out_idx)]
                with m.If(is_class):
                    m.next = "IDLE"

    if eng.build.logit_shift_regs:
        shift_regs, shift_l = lc.copy_regs("out_shift", 1)
        m.d.sync += [r.eq(out_beat) for r in shift_regs] + [out_shifting.eq(out_beat)]
        for j in range(len(logits) - 1):
            with m.If(shift_l[j % P]):
                m.d.sync += logits[j].eq(logits[j + 1])
    return dict(event_ctr=event_ctr, ew_done=ew_done, logits=logits, start_ew=start_ew, start_syn=start_syn,
                syn_done=syn_done)
