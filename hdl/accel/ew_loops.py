"""The EW/RED pipeline's loops, addresses and element control (stage 0)."""

from amaranth.hdl import Const, Mux, Signal
from amaranth.lib import data

from .ew_nest import EwNest
from .plan import EwOp, Kind, RedOp
from .program import EW, RED, SYN

__all__ = ["ew_loops"]


def ew_loops(eng, m, lc, desc, banks, cm_r, im_a, im_b, syn):
    """EW/RED stage 0: pass flags, the loops (EW: tile, n, t; RED: tile, t, n), running
    pointers and memory read addresses; the element control carried down the pipeline
    (see :func:`.ew.elaborate_ew`)."""
    prog = eng.prog
    P = prog.lanes
    iw = eng.plan.iw                      # integer memory word index
    rw_ = eng.plan.srow_w                 # spike memory row index
    op = desc.op

    # Pass flags, registered from the descriptor (valid from the pass's first cycle); a flag
    # no pass of the program sets is the constant 0, and the logic it enables is not built.
    present = {(p.kind, p.op) for p in prog.passes if p.kind != SYN}
    is_red = desc.kind == Kind.RED

    def flag(name, expr, used):
        if not used:
            return Const(0, 1)
        sig = Signal(name=f"ew_{name}")
        m.d.sync += sig.eq(expr)
        return sig

    def uses(*ops):
        return any(o in present for o in ops)

    ew_passes = [p for p in prog.passes if p.kind != SYN]
    f_red = flag("red", is_red, uses(*((RED, o.name.lower()) for o in RedOp)))
    f_rq = flag("rq", desc.requant, any(p.requant for p in ew_passes))
    f_soft = flag("soft", desc.soft, any(p.soft for p in ew_passes))
    f_lif = flag("lif", (~is_red & (op == EwOp.LIF)) | (is_red & (op == RedOp.MASK)),
                 uses((EW, "lif"), (RED, "mask")))
    f_ms = flag("ms", ~is_red & (op == EwOp.MULTISPIKE), uses((EW, "multispike")))
    f_add = flag("add", ~is_red & (op == EwOp.ADD), uses((EW, "add")))
    f_and = flag("and", ~is_red & (op == EwOp.AND), uses((EW, "and")))
    f_out = flag("out", ~is_red & (op == EwOp.OUT), uses((EW, "out")))
    f_mask = flag("mask", is_red & (op == RedOp.MASK), uses((RED, "mask")))
    f_spk = flag("spk", (is_red & (op == RedOp.MASK)) | (~is_red & (
        (op == EwOp.LIF) | (op == EwOp.MULTISPIKE) | (op == EwOp.AND))),
        uses((EW, "lif"), (EW, "multispike"), (EW, "and"), (RED, "mask")))
    nt = lc.pass_const("nt")                  # N * tiles

    # Stage 0: loops (EW: tile, n, t; RED: tile, t, n) and running pointers.
    active = Signal()
    active_next = Signal()   # ``start`` sets ``active``, the pass's done clears it
    m.d.sync += active.eq(active_next)
    # ``active`` for the loop state and for the EW/SYN selects of the memory addresses:
    # registers of their own (the fast build), updated like ``active``.
    loop_active = lc.flag_copy("ew_loop_active", active)
    sel_active = lc.flag_copy("ew_sel_active", active)
    run = Signal()
    ii = Signal(iw)    # integer word (t * N + n) * tiles + tile
    ii_n = Signal(iw)  # EW: n * tiles + tile
    si = Signal(rw_)   # spike row t * N + n
    bi = Signal(rw_)   # spike row of operand b: t * b_rows + (n, or 0 when broadcast)
    tbr = Signal(rw_)  # RED: t * b_rows
    ti = Signal(iw)    # RED: t * tiles + tile (pool output word)
    # The loop nest (EW: tile, n, t; RED: tile, t, n), its end flags registered and updated
    # with the counters; the bounds (last index, one and two iterations) are pass constants.
    m.submodules.ew_nest = nest = EwNest(tile_bits=len(desc.tiles), n_bits=len(desc.N), t_bits=len(desc.T))
    for level, n1 in (("tile", "tiles1"), ("n", "n1"), ("t", "t1")):
        bound = nest.bounds[level]
        m.d.comb += [bound.n1.eq(lc.pass_const(n1)), bound.one.eq(lc.pass_const(f"ez_{level}")),
                     bound.two.eq(lc.pass_const(f"eo_{level}"))]
    m.d.comb += [nest.run.eq(loop_active), nest.step.eq(run), nest.red.eq(f_red)]
    tile, n, t, last_n = nest.tile, nest.n, nest.t, nest.last_n
    s_in, s_mid, s_tile, last_el = nest.s_in, nest.s_mid, nest.s_tile, nest.last_el
    issue = loop_active & run
    init = ~loop_active
    with m.If(nest.end):
        m.d.sync += run.eq(0)
    red = f_red

    def sel(reg, cases):
        """The next value of ``reg``: one of ``cases`` (exclusive conditions), 0 while
        inactive, else unchanged; registered, and returned for the address registers."""
        value = Const(0, 1)
        any_ = Const(0, 1)
        for cond, v in cases:
            value = value | Mux(cond, v, 0)
            any_ = any_ | cond
        nxt = Signal.like(reg, name=f"{reg.name}_next")
        m.d.comb += nxt.eq(Mux(init, 0, Mux(any_, value, reg)))
        m.d.sync += reg.eq(nxt)
        return nxt

    ew_in, ew_mid, red_in, red_mid = s_in & ~red, s_mid & ~red, s_in & red, s_mid & red
    ii_next = sel(ii, [(ew_in, ii + nt), (red_in | red_mid, ii + desc.tiles), (ew_mid, ii_n + desc.tiles),
                       (s_tile, tile + 1)])
    sel(ii_n, [(ew_mid, ii_n + desc.tiles), (s_tile, tile + 1)])
    si_next = sel(si, [(ew_in, si + desc.N), (red_in | red_mid, si + 1), (ew_mid, n + 1), (s_tile, 0)])
    bi_next = sel(bi, [(ew_in, bi + desc.b_rows), (red_in, bi + ~desc.b_bcast),
                       (ew_mid, Mux(desc.b_bcast, 0, n + 1)), (red_mid, tbr + desc.b_rows), (s_tile, 0)])
    sel(tbr, [(red_mid, tbr + desc.b_rows), (s_tile, 0)])
    sel(ti, [(red_mid, ti + desc.tiles), (s_tile, tile + 1)])
    tile_next = Mux(init, 0, Mux(s_tile, tile + 1, tile))
    # Memory addresses, registered from the next pointer values.
    # The fast build registers them again (Build.ew_addr_regs) in a copy per lane group (each
    # group's memories see their own), with the select between the EW and SYN addresses
    # of a shared port in front of the copies: the addresses are a cycle later.
    a_int, b_int = Signal(iw, name="ew_a_int"), Signal(iw, name="ew_b_int")
    c_adr = Signal(range(max(2, len(prog.consts))), name="ew_c_adr")
    m.d.sync += [a_int.eq(desc.a_base + ii_next), b_int.eq(desc.b_base + ii_next),
                 c_adr.eq(desc.c_base + tile_next)]
    # The spike banks' read addresses, and whether this engine owns the ports (``active``),
    # a copy per lane group.
    b = eng.build
    if not b.ew_addr_regs:
        a_spk = lc.copies("ew_a_spk", desc.a_base + si_next, rw_)
        b_spk = lc.copies("ew_b_spk", desc.b_base + bi_next, rw_)
        owns = lc.copies("ew_owns", active_next, 1)
        for ln, (wp, ra, rb) in enumerate(banks):
            with m.If(owns[ln]):
                m.d.comb += [ra.addr.eq(a_spk[ln]), rb.addr.eq(b_spk[ln])]
        with m.If(active):
            m.d.comb += [im_a.addr.eq(a_int), im_b.addr.eq(b_int)]
        with m.Else():
            m.d.comb += im_a.addr.eq(syn["im_addr"])
        m.d.comb += cm_r.addr.eq(c_adr)
    else:
        assert b.ew_addr_regs == 1
        lc.addr_regs("ew_c_adr_l", cm_r.addrs, c_adr)
        lc.addr_regs("ew_b_int_l", im_b.addrs, b_int)
        lc.addr_regs("im_ra", im_a.addrs, Mux(sel_active, a_int, syn["im_addr"]))
        # The EW/SYN select sits before the registers, so a bank's address pins see a
        # register alone. Port B holds the SYN V row between issues (it is read only for
        # the event issued last).
        aw = len(banks[0][1].addr)
        ew_ra, ew_rb = Signal(aw, name="ew_spk_ra"), Signal(aw, name="ew_spk_rb")
        m.d.sync += [ew_ra.eq(desc.a_base + si_next), ew_rb.eq(desc.b_base + bi_next)]
        ra_l = lc.copies("bank_ra", Mux(sel_active, ew_ra, syn["ra"]), aw)
        rb_regs, rb_l = lc.copy_regs("bank_rb", aw)
        syn_va, syn_issue = syn["rb"]
        with m.If(sel_active):
            m.d.sync += [r.eq(ew_rb) for r in rb_regs]
        with m.Elif(syn_issue):
            m.d.sync += [r.eq(syn_va) for r in rb_regs]
        for ln, (wp, ra, rb) in enumerate(banks):
            m.d.comb += [ra.addr.eq(ra_l[ln]), rb.addr.eq(rb_l[ln])]

    # Element control, carried down the pipeline with the element: ``ctl_at(k)`` is the
    # control of the element issued k cycles ago; ``ctl_lanes(k)`` the same per lane (a
    # copy per lane group in the fast build).
    ctl = data.StructLayout({
        "valid": 1, "last": 1, "first_n": 1, "first_t": 1, "wr": 1,
        "tile": len(tile), "widx": max(iw, rw_),
    })
    c0 = Signal(ctl, name="ew_c0")
    m.d.comb += [
        c0.valid.eq(issue), c0.last.eq(last_el), c0.first_n.eq(n == 0), c0.first_t.eq(t == 0),
        c0.wr.eq(~f_red | last_n), c0.tile.eq(tile),
        c0.widx.eq(Mux(f_red, Mux(f_spk, t, ti), Mux(f_spk, si, ii))),
    ]
    ctlv = [c0]

    def ctl_at(k):
        while len(ctlv) <= k:
            nxt = Signal(ctl, name=f"ew_c{len(ctlv)}")
            m.d.sync += nxt.eq(ctlv[-1])
            ctlv.append(nxt)
        return ctlv[k]

    ctl_cache = {}

    def ctl_lanes(k):
        if not lc.spread_on:
            return [ctl_at(k)] * P
        if k not in ctl_cache:
            ctl_cache[k] = lc.copies(f"ew_c{k}", ctl_at(k - 1), ctl)
        return ctl_cache[k]

    def spread(name, value):
        return lc.spread(f"ew_{name}", value)
    return dict(active=active, active_next=active_next, ctl_at=ctl_at, ctl_lanes=ctl_lanes, f_add=f_add,
                f_and=f_and, f_lif=f_lif, f_mask=f_mask, f_ms=f_ms, f_out=f_out, f_red=f_red, f_rq=f_rq,
                f_soft=f_soft, f_spk=f_spk, loop_active=loop_active, run=run, sel_active=sel_active,
                spread=spread)
