"""The SYN pipeline's accumulate stages and drain."""

from amaranth.hdl import Array, Cat, Mux, Signal, signed
from amaranth.lib import data

from ..accumulate_lanes import AccumulateLanes
from ..pack import pack
from .lanes import lane
from .syn_drain import SynDrain

__all__ = ["syn_accumulate"]


def syn_accumulate(eng, m, lc, desc, active, amems, bank, banks, count, decode_empty, done, dr_blk, dr_busy,
                   e, e1_on, e_b, e_lo, e_tile, e_valid, ev_issue, gen_active, gen_on, im_a, im_w,
                   issue_last, item, next_item, pos_end, fetch_busy, scan_active, start, syn_ra, take, wm_r):
    """SYN X | I | R | A | W and the drain: accumulate each issued (event, tile) into the
    accumulator bank of its position; drain a position's accumulators to the integer memory;
    the pass's start and done (see :func:`.syn.elaborate_syn`)."""
    prog = eng.prog
    P = prog.lanes
    b = eng.build
    acc_wregs = b.acc_write_regs
    x_regs = b.syn_issue_regs
    S = prog.spike_slots
    sb = eng.slot_bits
    ib = eng.ib
    wb = eng.wb
    ab = eng.ab
    pl = eng.plan      # widths: EnginePlan._syn_widths
    aww = pl.aww
    va_w = pl.va_w
    # The drain: the banks' handover and the copy of a position's words to the integer memory
    # (its first read waits for the accumulator writes in flight: the timing rule syn_drain).
    m.submodules.syn_drain = drain = SynDrain(count_bits=pl.count_bits, addr_bits=pl.addr_bits,
                                              acc_words_bits=len(desc.acc_words), delay=b.syn_drain_delay(),
                                              next_values=b.lane_copies)
    m.d.comb += [drain.pos_end.eq(pos_end), drain.active.eq(active), drain.acc_words.eq(desc.acc_words),
                 drain.dst_base.eq(desc.dst_base),
                 bank.eq(drain.bank), dr_busy.eq(drain.busy), dr_blk.eq(drain.blk)]
    dr_wr, dr_wr_addr, dr_wr_bank, dr_clr_addr = drain.wr, drain.wr_addr, drain.wr_bank, drain.clr_addr
    rd_now, dr_bank, dr_word = drain.rd, drain.rd_bank, drain.rd_word

    # V-row lanes for K^T V: lane l holds channel tile * P + l, masked to the event's head.
    # The V row is read (spike banks, port B) as the event issues, so only its address
    # travels with the event; the lanes are selected in stage I.
    # (The fast build reads a cycle later, from E's registers: stage X below; the copies are
    # in ``_elab_ew``.)
    syn_rb = (e.va, ev_issue)
    if not x_regs:
        va_l = lc.copies("syn_rb", data.View(item, next_item).va, va_w, en=take)
        for (wp, ra, rb), a in zip(banks, va_l):
            m.d.comb += rb.addr.eq(a)
    in_head = []
    for ln in range(P):
        ch = e_tile * P + ln
        in_head.append((ch >= e_lo) & (ch < e_lo + desc.hd))

    # The weight word is read as the event issues (its address is a register of E). In the
    # fast build (stage X, Build.syn_issue_regs) registers per lane group take E's register, and
    # the reads happen a cycle after the issue: no issue logic (``take``, the queue, the
    # decode adders) in front of a far copy. The integer memory's port A reads the same
    # address (Q/KV weights; its copies are in ``_elab_ew``).
    if not x_regs:
        m.d.comb += wm_r.addr.eq(e.waddr)
    else:
        assert x_regs == 1
        lc.addr_regs("syn_wa", wm_r.addrs, e.waddr)
    syn_im_addr = e.waddr

    # Stage X (the fast build): the issued event's fields, registered.
    if x_regs:
        x_valid = Signal()
        x_b = Signal(pl.plane_field_bits)
        x_word = Signal(aww)
        x_bank = Signal()
        x_tile = Signal(len(e_tile))
        x_inh = [Signal(name=f"x_inh{ln}", reset_less=True) for ln in range(P)]
        m.d.sync += x_valid.eq(ev_issue)
        with m.If(ev_issue):
            m.d.sync += [x_b.eq(e_b), x_bank.eq(bank), x_word.eq(e.word), x_tile.eq(e_tile)]
            m.d.sync += [x_inh[ln].eq(in_head[ln]) for ln in range(P)]
        src_valid, src_b, src_bank, src_word, src_tile, src_inh = x_valid, x_b, x_bank, x_word, x_tile, x_inh
    else:
        src_valid, src_b, src_bank, src_word, src_tile, src_inh = ev_issue, e_b, bank, e.word, e_tile, in_head

    # Stage I: the accumulator word is read; the weight lanes (read in E) are registered
    # as read, valid in stage R.
    i_valid = Signal()
    i_b = Signal(pl.plane_field_bits)
    i_word = Signal(aww)
    i_bank = Signal()
    # Lane data registers have no reset: the reset net would otherwise reach every lane.
    i_inh = [Signal(name=f"i_inh{ln}", reset_less=True) for ln in range(P)]
    i_tile_l = lc.copies("i_tile", src_tile, len(e_tile), en=src_valid)
    i_v = [Signal(sb, name=f"i_v{ln}") for ln in range(P)]
    i_wm = [Signal(signed(wb), name=f"i_wm{ln}", reset_less=True) for ln in range(P)]    # weight lanes (ROM)
    i_im = [Signal(signed(ib), name=f"i_im{ln}", reset_less=True) for ln in range(P)]    # weight lanes (Q KV)
    m.d.sync += i_valid.eq(src_valid)
    with m.If(src_valid):
        m.d.sync += [i_b.eq(src_b), i_bank.eq(src_bank), i_word.eq(src_word)]
        m.d.sync += [i_inh[ln].eq(src_inh[ln]) for ln in range(P)]
    for ln in range(P):
        slots = Array(banks[ln][2].data[s * sb:(s + 1) * sb] for s in range(S))
        m.d.comb += i_v[ln].eq(Mux(i_inh[ln], slots[i_tile_l[ln]], 0))
    if not b.lane_copies:
        for k, (wp, rr, rd) in enumerate(amems):
            m.d.comb += rr.addr.eq(i_word)
    for ln in range(P):
        m.d.sync += [i_wm[ln].eq(lane(wm_r.data, ln, wb)), i_im[ln].eq(lane(im_a.data, ln, ib))]

    # Stage R: the weight lanes are selected (the accumulate core registers them, shifted,
    # and the accumulator words read).
    q_valid = Signal()
    q_word = Signal(aww)
    q_bank = Signal()
    q_v = [Signal(sb, name=f"q_v{ln}", reset_less=True) for ln in range(P)]
    m.d.sync += [q_valid.eq(i_valid), q_word.eq(i_word), q_bank.eq(i_bank)]
    pb = max(eng.pbs, eng.pbi, 1)
    q_b_l = lc.copies("q_b", i_b[:pb], pb)
    kv_l, qkv_l = lc.spread("kv_mode_l", desc.kv_mode), lc.spread("qkv_mode_l", desc.qkv_mode)
    m.d.sync += [q_v[ln].eq(i_v[ln]) for ln in range(P)]
    # Stages R and A (and W in the fast build): SparseAdd's core adds each lane's weight,
    # shifted by the plane, into the accumulator word of its bank; stage A takes the sum of
    # the event one ahead (two ahead in the fast build: stage W) when the read in stage I
    # missed its write (the same word of the same bank). (The write after that lands in the
    # read's own cycle: the read port is transparent.)
    ws = [Mux(kv_l[ln], q_v[ln], Mux(qkv_l[ln], i_im[ln], i_wm[ln])) for ln in range(P)]
    core = AccumulateLanes(lanes=P, weight_shape=ws[0].shape(), shift_bits=pb, acc_bits=ab, banks=2,
                           word_bits=aww, sum_reg=bool(acc_wregs), lanes_per_copy=lc.per_copy)
    m.submodules.syn_acc = core
    # The payload in one assignment, not field by field: Icarus rebuilds a net assembled
    # from part assignments bit by bit on every change of a part (hdl/pack.py).
    m.d.comb += core.i.valid.eq(q_valid)
    m.d.comb += core.i.payload.eq(pack(core.i.payload.shape(), {
        "w": ws, "shift": q_b_l, "acc": [[lane(amems[k][1].data, ln, ab) for ln in range(P)] for k in range(2)],
        "word": q_word, "bank": q_bank}))
    a_valid, a_word, a_bank = core.a.valid, core.a.word, core.a.bank
    a_acc = core.held   # the words read, registered every cycle (the fast build's drain data)
    sums = [core.o.payload.sum[ln] for ln in range(P)]  # stage A's sums (the fast build: stage W's)

    # The drain: after its delay, copy each accumulator word of the bank it drains to the
    # integer memory and clear it.
    fin = Signal()             # the pass's last cycle (``active`` clears)
    if not b.lane_copies:
        for k, (wp, rr, rd) in enumerate(amems):
            with m.If(rd_now & (dr_bank == k)):
                m.d.comb += rd.addr.eq(dr_word)
    dr_left = drain.left
    if b.lane_copies:
        # A bank's read address (the drain's word while the drain reads the bank, else
        # stage I's word) in registers per lane group, from the next values of the drain's
        # read and of ``i_word``.
        i_word_next = Mux(src_valid, src_word, i_word)
        for k, (wp, rr, rd) in enumerate(amems):
            lc.addr_regs(f"acc_ra{k}", rr.addrs,
                         Mux(drain.rd_next & (drain.rd_bank_next == k), drain.rd_word_next, i_word_next))
    if not b.int_write_regs:
        dw_data = Cat(*[Mux(dr_wr_bank, lane(amems[1][2].data, ln, ab),
                            lane(amems[0][2].data, ln, ab))[:ib] for ln in range(P)])
        with m.If(dr_wr & active):
            m.d.comb += [im_w.en.eq(1), im_w.addr.eq(dr_wr_addr), im_w.data.eq(dw_data)]
    else:
        # The fast build writes a drained word a cycle later, from stage R's registers of
        # the accumulator read data (``a_acc``, loaded every cycle from both banks): no
        # logic after a block RAM output (5.8 ns on the ECP5) but the read port's own. The
        # write still lands before the next pass reads (the fourth cycle after done).
        # The data is 0 unless a word is written (a copy of the write flag per lane group),
        # so the EW stage ORs it with its own write data: no select reaches all lanes. The
        # EW stage registers the port's address and enable from the values here (what the
        # drain writes in the next cycle).
        dw_bank = lc.copies("dw_bank", dr_wr_bank, 1)
        dw_on = lc.copies("dw_on", dr_wr & active, 1)
        dw_data = Cat(*[Mux(dw_on[ln], Mux(dw_bank[ln], a_acc[1][ln], a_acc[0][ln]), 0)[:ib]
                        for ln in range(P)])
        drain_write = (dr_wr & active, dr_wr_addr, dw_data)
    # Accumulator writes: stage A's sums, or the drain clearing the word it read (which
    # wins; never the bank being accumulated).
    for k, (wp, rr, rd) in enumerate(amems):
        clear = dr_wr & active & (dr_wr_bank == k)
        if not b.lane_copies:
            wdata = Cat(*sums)
        else:
            # Each lane's data is 0 under a copy of the clear flag: no select reaches all
            # lanes. The copies take the flag's next value: ``dr_wr`` is set when the drain
            # reads (busy, no delay left) and ``active`` by start, cleared by fin (which wins).
            # The enable and address are registered from their next values too (they reach
            # every block RAM of the bank).
            clear_next = (rd_now & ~fin & (start | active)
                          & (Mux(rd_now, dr_bank, dr_wr_bank) == k))
            clear_l = lc.copies(f"acc_clear{k}", clear_next, 1)
            wdata = Cat(*(Mux(clear_l[ln], 0, sums[ln]) for ln in range(P)))
            # (The sums are stage W's: the event now in stage A.)
            lc.addr_regs(f"acc_wa{k}", wp.addrs,
                            Mux(clear_next, Mux(rd_now, dr_word, dr_clr_addr), a_word))
            lc.addr_regs(f"acc_we{k}", wp.ens, (a_valid & (a_bank == k)) | clear_next)
            m.d.comb += wp.data.eq(wdata)
            continue
        m.d.comb += [wp.en.eq((a_valid & (a_bank == k)) | clear),
                     wp.addr.eq(Mux(clear, dr_clr_addr, a_word)), wp.data.eq(wdata)]
        with m.If(clear):
            m.d.comb += wp.data.eq(0)

    # Start / done. While the engine is inactive its loop state holds the start values
    # (descriptor and pass constants are valid from the START cycle), so ``start`` only sets
    # ``active``.
    with m.If(start):
        m.d.sync += [active.eq(1), gen_on.eq(1)]
    # (The scan stage holds no row when the pass ends: done waits for ``~e1_on``; the row
    # FIFO empties while it is inactive.)
    # Done two cycles before the pass's last write (the drain's last word), so that the
    # next descriptor load overlaps it: the descriptor changes at the end of the second
    # cycle after done, and the next pass reads memory from the fourth. Predicted a cycle
    # ahead and registered: the front of the pipeline is empty and the drain (the last
    # one: nothing is left to issue) is one cycle before its last read. ``active`` stays
    # on for that last read's write.
    front_empty = (~gen_on & ~fetch_busy & (count == 0) & ~e1_on
                   & decode_empty & ~e_valid)
    # Usually the front empties before the last drain is two cycles from its end; a large
    # padded kernel's last position may leave padding taps for the generator to walk after
    # its last in-grid row, and the pass then ends once the generator stops: ``ended`` says
    # that every position issued so far has ended (set by a position's end, cleared by the
    # issue of a position's last row, which wins), so with the generator stopped the last
    # position has ended and its drain is past ``dr_left == 2``.
    ended = Signal()
    with m.If(issue_last | ~active):
        m.d.sync += ended.eq(0)
    with m.Elif(pos_end):
        m.d.sync += ended.eq(1)
    done_r = Signal()
    m.d.sync += [done_r.eq(active & ~done_r & ~fin & front_empty & ended & (dr_left <= 2)), fin.eq(done_r)]
    with m.If(fin):
        m.d.sync += active.eq(0)
    for copy in (gen_active, scan_active):
        if copy is not active:
            m.d.sync += copy.eq((copy | start) & ~fin)
    m.d.comb += done.eq(done_r)
    return dict(ra=syn_ra if b.syn_read_regs else None, rb=syn_rb, im_addr=syn_im_addr,
                drain_write=drain_write if b.int_write_regs else None)
