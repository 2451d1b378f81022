"""The SYN pipeline's front end: row generator, row read, fetch (:class:`.syn_fetch.SynFetch`), row FIFO."""

from amaranth.hdl import Cat, Mux, Signal, signed

from ..window_walk import WindowWalk
from .syn_fifo import RowFifo, row_layout
from .syn_fetch import SynFetch

__all__ = ["syn_front"]


def syn_front(eng, m, lc, desc, banks, img_r):
    """SYN generator | row read | fetch | row FIFO: one kernel tap per cycle, the spike (or image)
    row of each in-grid tap into the FIFO (see :func:`.syn.elaborate_syn`)."""
    syn_ra = None  # (not built by every build)
    prog = eng.prog
    P = prog.lanes
    b = eng.build
    S = prog.spike_slots
    sb = eng.slot_bits
    Rw = eng.row_bits
    cmax = S * P
    pl = eng.plan      # widths: EnginePlan._syn_widths
    spw = pl.spw
    cw_ = pl.coord_bits
    rows_w = pl.rows_w
    ww = pl.ww
    va_w = pl.va_w

    active = Signal()
    # ``active`` for the generator's loop state and for the scan stage: registers of their
    # own (the fast build), each next to the logic it holds, updated like ``active`` below.
    gen_active = lc.flag_copy("syn_gen_active", active)
    scan_active = lc.flag_copy("syn_scan_active", active)
    # Row generator ------------------------------------------------------------------
    t = Signal(len(desc.T))
    oy = Signal(len(desc.Ho))
    ox = Signal(len(desc.Wo))
    tr = Signal(len(desc.t_rows))
    ky = Signal(len(desc.kh))
    kx = Signal(len(desc.kw))
    gen_on = Signal()            # the generator runs (implies active)
    y = Signal(signed(cw_))      # oy * stride + ky - pad
    x = Signal(signed(cw_))      # ox * stride + kx - pad
    ys = Signal(signed(cw_))     # oy * stride - pad
    xs = Signal(signed(cw_))     # ox * stride - pad
    sp = Signal(signed(spw))     # y * Wi + x
    sp_k = Signal(signed(spw))   # y * Wi + xs   (start of the kernel row)
    sp_p = Signal(signed(spw))   # ys * Wi + xs  (the position's first tap)
    sp_o = Signal(signed(spw))   # ys * Wi - pad (the first position of the output row)
    tb_t = Signal(rows_w)        # src_base + t * HW          (position time step)
    tb2_t = Signal(rows_w)       # src2_base + t * HW
    wb_t = Signal(ww)            # w_base + t * t_stride
    tb = Signal(rows_w)          # src_base + tt * HW         (row time step)
    tb2 = Signal(rows_w)         # src2_base + tt * HW
    wb_tt = Signal(ww)           # w_base + tt * t_stride
    wptr = Signal(ww)            # w_base + tap * tap_stride + tt * t_stride
    sa2 = Signal(rows_w)         # tb2 + sp: the V row address (the row address: below)
    sw = lc.pass_const("sw")      # stride * Wi
    sp00 = lc.pass_const("sp00")  # -pad * Wi - pad
    kw1, kh1, tr1, wo1, ho1, t1, hi1, wi1 = (lc.pass_const(k) for k in (
        "kw1", "kh1", "tr1", "wo1", "ho1", "t1", "hi1", "wi1"))
    inb = (y >= 0) & (y < desc.Hi) & (x >= 0) & (x < desc.Wi)
    # Loop-end flags, registered: each is updated with its counter (no compare chain in
    # front of the generator's enables).
    last_kx, last_ky, last_tr, last_ox, last_oy, last_t = (
        Signal(name=f"last_{k}") for k in ("kx", "ky", "tr", "ox", "oy", "t"))
    z_kx, z_ky, z_tr, z_ox, z_oy, z_t = (lc.pass_const(k) for k in (
        "z_kx", "z_ky", "z_tr", "z_ox", "z_oy", "z_t"))    # loop of one iteration
    ones = [lc.pass_const(k) for k in ("o_kx", "o_ky", "o_tr", "o_ox", "o_oy", "o_t")]  # of two
    zs = [z_kx, z_ky, z_tr, z_ox, z_oy, z_t]
    names = ("kx", "ky", "tr", "ox", "oy", "t")
    counters = (kx, ky, tr, ox, oy, t)
    lasts = [last_kx, last_ky, last_tr, last_ox, last_oy, last_t]
    cum = [Signal(name=f"cum_last{k}") for k in range(6)]
    # Last in-grid tap of the position (only read for in-grid taps).
    row_last = last_tr & (last_ky | (y == hi1)) & (last_kx | (x == wi1))

    # FIFO of fetched rows and the reads in flight: the credits cover the round trip (issue,
    # read, fetch registers, FIFO, pop seen a cycle later), so the generator never waits
    # for the scan stage's decision of the same cycle. The compact build reads in the
    # tap's cycle and has no fetch register (the row goes from the block RAM output into
    # the FIFO): 3 credits. The fast build reads two cycles after the tap (Build.syn_read_regs:
    # the row address is registered next to the generator before its copies per lane
    # group) and registers the row twice (Build.syn_fetch_regs): 7 credits.
    NF = b.syn_fifo_rows()
    # Each row with the row less its lowest bit (the fast build's scan loop has no carry
    # chain; the compact one computes it in the loop).
    m.submodules.syn_fifo = fifo = RowFifo(row_layout(Rw, va_w, ww, Rw if b.syn_fetch_regs else 0), NF)
    count, credits = fifo.count, fifo.credits   # rows in the FIFO; and in flight
    fifo_bits, fifo_va, fifo_wb, fifo_last, fifo_single, fifo_rest = (
        [getattr(fifo.slots[i], k) for i in range(NF)] for k in ("bits", "va", "wb", "last", "single", "rest"))
    # The row fetch: each issued row into the FIFO Build.syn_row_latency() cycles later.
    m.submodules.syn_fetch = fetch = SynFetch(row_bits=Rw, va_bits=va_w, wb_bits=ww, read_regs=b.syn_read_regs,
                                              fetch_regs=b.syn_fetch_regs)
    pop = Signal()

    can_issue = gen_on & (credits < NF)
    issue = Signal()
    m.d.comb += issue.eq(can_issue & inb)
    # Read addresses (spike banks port A: event rows; port B: V rows).
    # (Assigned below, a copy per lane group: the address reaches every bank's LUTs.)
    # The image is stored once for every t, or (frames, §4) as T frames: then its row is the
    # spike row's tb + sp (the image's base is 0).
    img_row = tb + sp if pl.img_frames else sp
    if not b.syn_read_regs:
        m.d.comb += img_r.addr.eq(img_row)
    else:
        img_ra = Signal.like(img_r.addr, name="img_ra")  # read Build.syn_read_regs cycles after the issue
        img_ra2 = Signal.like(img_r.addr, name="img_ra2")
        m.d.sync += [img_ra.eq(img_row), img_ra2.eq(img_ra)]
        m.d.comb += img_r.addr.eq(img_ra2)

    # Advance the generator (a tap outside the grid costs its cycle here): the loop nest is
    # a WindowWalk (hdl/window_walk.py), whose end flags are registers updated with their
    # counters, so each enable is a short function of registers. Its per-level step flags
    # and enables step the coordinate and address registers below.
    m.submodules.syn_walk = walk = WindowWalk([(k, len(c)) for k, c in zip(names, counters)])
    m.d.comb += [walk.run.eq(gen_active), walk.step.eq(can_issue)]
    for k, n1, z, o in zip(names, (kw1, kh1, tr1, wo1, ho1, t1), zs, ones):
        m.d.comb += [walk.bounds[k].n1.eq(n1), walk.bounds[k].one.eq(z), walk.bounds[k].two.eq(o)]
    m.d.comb += [c.eq(walk.count[k]) for k, c in zip(names, counters)]
    m.d.comb += [Cat(*lasts).eq(walk.last), Cat(*cum).eq(walk.cum)]
    wrap_all = walk.wrap
    # Each register takes one of a few values selected by mutually exclusive conditions on
    # registered flags (an AND-OR, not a priority chain of multiplexers); its enable is
    # "inactive, or a level at or above its own steps". While inactive it holds its start
    # value (descriptor and pass constants are valid from the START cycle on).
    init = ~gen_active
    c0, c1, c2, c3, c4, c5 = (walk.adv[j] for j in range(6))
    en = [walk.en[j] for j in range(6)]
    lo = -desc.pad
    sp_s = sp_p + desc.stride
    sp_r = sp_o + sw

    def sel(reg, level, start_value, cases):
        value = Mux(cases[0][0], cases[0][1], 0)
        for cond, v in cases[1:]:
            value = value | Mux(cond, v, 0)
        nxt = Signal.like(reg, name=f"{reg.name}_next")
        m.d.comb += nxt.eq(Mux(en[level], Mux(init, start_value, value), reg))
        m.d.sync += reg.eq(nxt)
        return nxt

    sel(x, 0, lo, [(c0, x + 1), (c1 | c2, xs), (c3, xs + desc.stride), (c4 | c5, lo)])
    sel(y, 1, lo, [(c1, y + 1), (c2 | c3, ys), (c4, ys + desc.stride), (c5, lo)])
    sel(xs, 3, lo, [(c3, xs + desc.stride), (c4 | c5, lo)])
    sel(ys, 4, lo, [(c4, ys + desc.stride), (c5, lo)])
    sp_next = sel(sp, 0, sp00, [(c0, sp + 1), (c1, sp_k + desc.Wi), (c2, sp_p), (c3, sp_s), (c4, sp_r), (c5, sp00)])
    sel(sp_k, 1, sp00, [(c1, sp_k + desc.Wi), (c2, sp_p), (c3, sp_s), (c4, sp_r), (c5, sp00)])
    sel(sp_p, 3, sp00, [(c3, sp_s), (c4, sp_r), (c5, sp00)])
    sel(sp_o, 4, sp00, [(c4, sp_r), (c5, sp00)])
    sel(tb_t, 5, desc.src_base, [(c5, tb_t + desc.HW)])
    sel(tb2_t, 5, desc.src2_base, [(c5, tb2_t + desc.HW)])
    sel(wb_t, 5, desc.w_base, [(c5, wb_t + desc.t_stride)])
    tb_next = sel(tb, 2, desc.src_base, [(c2, tb + desc.HW), (c3 | c4, tb_t), (c5, tb_t + desc.HW)])
    tb2_next = sel(tb2, 2, desc.src2_base, [(c2, tb2 + desc.HW), (c3 | c4, tb2_t), (c5, tb2_t + desc.HW)])
    sel(wb_tt, 2, desc.w_base, [(c2, wb_tt + desc.t_stride), (c3 | c4, wb_t), (c5, wb_t + desc.t_stride)])
    sel(wptr, 0, desc.w_base, [(c0 | c1, wptr + desc.tap_stride), (c2, wb_tt + desc.t_stride),
                               (c3 | c4, wb_t), (c5, wb_t + desc.t_stride)])
    if b.syn_read_regs:
        # The row addresses of the generator's tap, registered here a cycle after the tap
        # (sums of the generator's registers, not of their next values): the copies per
        # lane group (in ``_elab_ew``, which shares the ports) take them a cycle later, so
        # no generator logic sits in front of a far copy.
        assert b.syn_read_regs == 2
        syn_ra = Signal(rows_w, name="syn_ra")
        m.d.sync += [syn_ra.eq(tb + sp), sa2.eq(tb2 + sp)]
    else:
        m.d.sync += sa2.eq(tb2_next + sp_next)
    if not b.syn_read_regs:
        sa_l = lc.copies("syn_ra", tb_next + sp_next, rows_w)
        for (wp, ra, rb), a in zip(banks, sa_l):
            m.d.comb += ra.addr.eq(a)
    with m.If(wrap_all):
        m.d.sync += gen_on.eq(0)
    m.d.comb += [fetch.issue.eq(issue), fetch.wb.eq(wptr), fetch.last.eq(row_last), fetch.va.eq(sa2[:va_w])]

    # Flatten the fetched row: spikes channel-major with plane stride 2^pbs.
    row_s = Signal(Rw)
    for c in range(cmax):
        bank, slot = c % P, c // P
        word_a = banks[bank][1].data
        m.d.comb += row_s[(c << eng.pbs):(c << eng.pbs) + sb].eq(word_a[slot * sb:(slot + 1) * sb])
    row_i = Signal(Rw)
    for c in range(prog.image.C):
        m.d.comb += row_i[(c << eng.pbi):(c << eng.pbi) + eng.pixel_bits].eq(
            img_r.data[c * eng.pixel_bits:(c + 1) * eng.pixel_bits])
    fetched = Mux(desc.src_img, row_i, row_s)
    # The fetch pushes the row into the FIFO with an 'at most one set bit' flag and (the fast
    # build) the row less its lowest set bit, so that the scan stage never waits on a carry
    # chain or a count tree (SynFetch); the FIFO is emptied while the scan stage is inactive.
    m.d.comb += [fetch.data.eq(fetched), fifo.push.eq(fetch.push), fifo.pop.eq(pop), fifo.issue.eq(issue),
                 fifo.clear.eq(~scan_active), fifo.row.eq(fetch.row)]
    issue_last = Signal()        # the tap issues a position's last in-grid row
    m.d.comb += issue_last.eq(issue & row_last)
    return dict(active=active, issue_last=issue_last,
                count=count, fifo_bits=fifo_bits,
                fifo_last=fifo_last, fifo_rest=fifo_rest, fifo_single=fifo_single, fifo_va=fifo_va, fifo_wb=fifo_wb,
                gen_active=gen_active, gen_on=gen_on, pop=pop, fetch_busy=fetch.busy, rd_ptr=fifo.rd_ptr,
                scan_active=scan_active, syn_ra=syn_ra)
