"""The EW/RED pipeline's lanes (stages 1..9)."""

from amaranth.hdl import Cat, Const, Mux, Signal, signed, unsigned

from ..lif_lane import STAGES as LIF_STAGES
from ..lif_lane import LifLane
from .ew_operands import EwOperands
from .lanes import lane
from .product import DSP_OPERAND_BITS
from .timing import PRODUCT_LATENCY

__all__ = ["ew_lanes", "lif_lane_registers"]


def lif_lane_registers(build):
    """The :class:`~..lif_lane.LifLane` configuration of ``build``'s EW lanes: ``registered``
    (its stages are EW stages 4..8) and ``product_regs``."""
    return ({name for k, name in zip(range(4, 9), LIF_STAGES) if k in build.ew_registered},
            build.ew_mult_regs)


def ew_lanes(eng, m, lc, desc, active, active_next, banks, rmw, cm_r, ctl_at, ctl_lanes, done, f_add, f_and, f_lif,
             f_mask, f_ms, f_out, f_red, f_rq, f_soft, f_spk, im_a, im_b, im_w, tile, loop_active, run, sel_active,
             spread, start, syn):
    """EW/RED stages 1..9 per lane: operands, requantization, neuron, memory writes, and the
    pass's done (see :func:`.ew.elaborate_ew`)."""
    b = eng.build
    smax = eng.plan.smax
    prog = eng.prog
    P = prog.lanes
    S = prog.spike_slots
    sb = eng.slot_bits
    ib = eng.ib
    mb = eng.mb
    bb = eng.bb
    tb = eng.tb
    ow = eng.ow
    pw = eng.pw
    yw = eng.yw
    mw = eng.mw
    uw = eng.uw
    cw = mb + bb + tb
    bw = eng.plan.bw                      # operand b: an integer lane or a spike value
    # Stages 1..9 each end in a register in the fast build (stage 9: the memory write
    # port inputs); the compact build keeps only those of stages 2, 3 (the RED running
    # sum), 4 (the product), 5 and 7 (Build.ew_registered, which also gives the timing
    # rule).
    registered = {k: k in b.ew_registered for k in range(1, 10)}
    mult_regs, read_regs = b.ew_mult_regs, b.ew_read_regs
    # cyc[k]: the cycle (after issue) in which stage k's outputs are valid (0: the reads)
    cyc = {0: 1 + b.ew_addr_regs}
    for k in range(1, 9):
        cyc[k] = cyc[k - 1] + registered[k] + {4: mult_regs, 1: read_regs}.get(k, 0)
    cyc_in = {k: cyc[k - 1] for k in range(1, 10)}

    def per_lane(name, shape):  # lane data: no reset (the valid bits travel in ``ctl``)
        return [Signal(shape, name=f"{name}{ln}", reset_less=True) for ln in range(P)]

    def put(k, stmts):
        if registered[k]:
            m.d.sync += stmts
        else:
            m.d.comb += stmts

    def carry(name, values, shape, n_stages):
        """Delay per-lane ``values`` by ``n_stages`` registers; returns the last ones."""
        for k in range(n_stages):
            nxt = per_lane(f"{name}_d{k}_", shape)
            m.d.sync += [d.eq(v) for d, v in zip(nxt, values)]
            values = nxt
        return values

    # Stages 1..3 per lane (an EwOperands): the memory words as read (registered in the fast
    # build: nothing between a block RAM output and a register; Build.ew_read_regs registers
    # them once more first), the operand lanes (the tile's spike slot, or the integer lane),
    # the RED running sum (the one-cycle loop of a reduction) and the addend.
    c2, c3 = ctl_lanes(cyc_in[2]), ctl_lanes(cyc_in[3])
    a_int, b_int = spread("a_int", desc.a_int), spread("b_int", desc.b_int)
    l_mask, l_red, l_rq, l_out = (spread(k, v) for k, v in (
        ("mask_l", f_mask), ("red_l", f_red), ("rq_l", f_rq), ("out_l", f_out)))
    # (A register per lane for the addend's selects and rounding term: they reach every bit
    # of the lane's adder.)
    l_rq_a, l_out_a = lc.lane_regs("ew_rq_a", l_rq), lc.lane_regs("ew_out_a", l_out)
    l_rnd = lc.lane_regs("ew_rnd_l", lc.copies(
        "ew_rnd", (Const(1, pw) << desc.shift) >> 1, unsigned(smax)))  # 2^(shift-1)
    adw = max(bb, smax + 1) + 1
    ops = []
    for ln in range(P):
        op = m.submodules[f"ew_ops{ln}"] = EwOperands(
            slots=S, slot_bits=sb, int_bits=ib, operand_bits=ow, b_bits=bw, mult_bits=mb, bias_bits=bb,
            theta_bits=tb, addend_bits=adw, rnd_bits=smax, tile_bits=len(c2[ln].tile), registered=b.ew_registered,
            read_regs=read_regs)
        ops.append(op)
        m.d.comb += [op.rd_sa.eq(banks[ln][1].data), op.rd_sb.eq(banks[ln][2].data),
                     op.rd_ia.eq(lane(im_a.data, ln, ib)), op.rd_ib.eq(lane(im_b.data, ln, ib)),
                     op.word.eq(cm_r.data[ln * cw:(ln + 1) * cw]),
                     op.tile.eq(c2[ln].tile), op.a_int.eq(a_int[ln]), op.b_int.eq(b_int[ln]),
                     op.mask.eq(l_mask[ln]), op.red.eq(l_red[ln]), op.first_n.eq(c3[ln].first_n),
                     op.rq.eq(l_rq_a[ln]), op.out.eq(l_out_a[ln]), op.rnd.eq(l_rnd[ln])]
    theta1, opb = [op.theta for op in ops], [op.opb for op in ops]
    opnd, mult2, addend = [op.opnd for op in ops], [op.mult for op in ops], [op.addend for op in ops]
    # Stages 4..8 (and the neuron of stage 9): a LifLane per lane, the requantization and
    # neuron core LifArray is built on; its registers are the build's (Build.ew_registered;
    # the fast build's multiplier is a RegisteredProduct: Build.ew_mult_regs), its constants
    # the pass's (per lane group copies).
    # The fast build registers the multiplier's operands and its product once more, so the
    # registers can sit next to the DSP column: the route to and from a far lane is a path
    # of its own (the ECP5's DSP block's own registers with ``mult_primitive``).
    assert mult_regs in (0, PRODUCT_LATENCY) and (registered[4] or not mult_regs)
    prim = bool(mult_regs) and eng.mult_primitive and max(ow, mb) <= DSP_OPERAND_BITS
    addend3 = carry("ew_addend3", addend, signed(adw), cyc_in[5] - cyc[3])
    theta7 = carry("ew_theta7", theta1, unsigned(tb), cyc_in[8] - cyc[1])
    l_shift = lc.lane_regs("ew_shift_ln", spread("shift_l", desc.shift))  # the shifter's selects
    sat_lo, sat_hi = spread("sat_lo_l", desc.sat_lo), spread("sat_hi_l", desc.sat_hi)
    sat_mask = lc.lane_regs("ew_sat_mask_l", lc.copies("ew_sat_mask", desc.sat_lo, signed(pw)))
    l_ms_rnd = lc.copies("ew_ms_rnd", (Const(1, yw + 1) << desc.ms_shift) >> 1, unsigned(yw + 1))
    l_leak, l_ms_shift, l_levels = (spread(k, v) for k, v in (
        ("leak_l", desc.leak), ("ms_shift_l", desc.ms_shift), ("levels_l", desc.levels)))
    l_lif, l_soft, l_ms, l_and, l_add, l_spk = (spread(k, v) for k, v in (
        ("lif_l", f_lif), ("soft_l", f_soft), ("ms_l", f_ms), ("and_l", f_and), ("add_l", f_add),
        ("spk_l", f_spk)))
    lane_registered, lane_product_regs = lif_lane_registers(b)
    neuron_cycle = cyc[8]
    c9 = ctl_lanes(neuron_cycle)
    units = []
    for ln in range(P):
        unit = m.submodules[f"ew_lane{ln}"] = LifLane(
            a_bits=ow, mult_bits=mb, addend_bits=adw, z_bits=pw, y_bits=yw, theta_bits=tb, v_bits=mw, w_bits=uw,
            spike_bits=sb, shift_bits=len(l_shift[ln]), leak_bits=len(l_leak[ln]),
            ms_shift_bits=len(l_ms_shift[ln]), levels_bits=len(l_levels[ln]),
            registered=lane_registered, product_regs=lane_product_regs,
            primitive=prim)
        assert unit.latency("pre") == cyc[8] - cyc[3]
        units.append(unit)
        k = unit.k
        m.d.comb += [
            unit.a.eq(opnd[ln]), unit.mult.eq(mult2[ln]), unit.addend.eq(addend3[ln]), unit.theta.eq(theta7[ln]),
            unit.first.eq(c9[ln].first_t),
            k.rq.eq(l_rq[ln]), k.shift.eq(l_shift[ln]), k.sat_mask.eq(sat_mask[ln]),
            k.sat_lo.eq(sat_lo[ln]), k.sat_hi.eq(sat_hi[ln]), k.leak.eq(l_leak[ln]), k.soft.eq(l_soft[ln]),
            k.ms_rnd.eq(l_ms_rnd[ln]), k.ms_shift.eq(l_ms_shift[ln]), k.levels.eq(l_levels[ln]),
        ]
    y = [u.y for u in units]
    # Stage 8: values that feed stage 9 besides the neuron's (the lane's ``pre`` stage).
    b7 = carry("ew_b7", opb, signed(bw), cyc_in[8] - cyc[2])
    y8 = [u.y_pre for u in units]
    yadd = per_lane("ew_yadd", signed(max(yw, bw) + 1))
    yand = per_lane("ew_yand", unsigned(sb))
    for ln in range(P):
        put(8, [yadd[ln].eq(y[ln] + b7[ln]), yand[ln].eq(y[ln][:sb] & b7[ln][:sb])])
    # Stage 9: neuron, and the memory write port inputs (registered in the fast build).
    # The membrane loop (leak, integrate, fire, reset: the lane's neuron) is the only logic
    # between two membrane registers: U - theta comes precomputed.
    write_cycle = neuron_cycle + registered[9]
    add_lo, add_hi = spread("add_lo_l", desc.add_lo), spread("add_hi_l", desc.add_hi)
    add_mask = lc.copies("ew_add_mask", desc.add_lo, signed(len(yadd[0])))
    l_dst, l_C = spread("dst_l", desc.dst_base), spread("C_l", desc.C)
    out_int = []

    def spike_word_write(ln, wp, rc, wr_spk, spike, tile):
        """Write slot ``tile`` of a row as the whole row word: the row is read on ``rc`` three
        cycles before the merge (the neuron cycle), and the writes the read cannot see (the
        three held in the write port's registers since; the oldest of them collides with the
        read, which is then not used) are forwarded, the latest first."""
        assert registered[9], "whole-word spike writes need the registered write (stage 9)"
        aw = len(wp.addr)
        # The row address, from the element control three cycles before the neuron stage;
        # presented to the read port two cycles before it, then carried to the write port.
        a_rd, a_1, a_2 = (Signal(aw, name=f"ew_rmw_{k}{ln}") for k in ("a", "a1_", "a2_"))
        c_rd = ctl_lanes(neuron_cycle - 3)[ln]
        m.d.sync += [a_rd.eq(l_dst[ln] + c_rd.widx), a_1.eq(a_rd), a_2.eq(a_1)]
        m.d.comb += rc.addr.eq(a_rd)
        row = Signal(S * sb, name=f"ew_rmw_row{ln}", reset_less=True)
        m.d.sync += row.eq(rc.data)
        # The writes of the three elements before this one (e-1 is being written in the
        # merge cycle, e-2 and e-3 in the two before): data, enable, address.
        h1_d, h2_d = (Signal(S * sb, name=f"ew_rmw_h{k}d{ln}", reset_less=True) for k in (1, 2))
        h1_en, h2_en = Signal(name=f"ew_rmw_h1en{ln}"), Signal(name=f"ew_rmw_h2en{ln}")
        h1_a = Signal(aw, name=f"ew_rmw_h1a{ln}")
        m.d.sync += [h1_d.eq(wp.data), h1_en.eq(wp.en), h1_a.eq(wp.addr), h2_d.eq(h1_d), h2_en.eq(h1_en)]
        # Which of them wrote this row, compared a cycle ahead (this element's address is
        # a_1 then; e-1's enable is being computed, e-2 is in the write port, e-3 in h1).
        f1, f2, f3 = (Signal(name=f"ew_rmw_f{k}_{ln}") for k in (1, 2, 3))
        m.d.sync += [f1.eq((a_1 == a_2) & wr_spk), f2.eq((a_1 == wp.addr) & wp.en),
                     f3.eq((a_1 == h1_a) & h1_en)]
        base = Mux(f1, wp.data, Mux(f2, h1_d, Mux(f3, h2_d, row)))
        word = Cat(*(Mux(tile == s, spike, base[s * sb:(s + 1) * sb]) for s in range(S)))
        m.d.sync += [wp.addr.eq(a_2), wp.data.eq(word), wp.en.eq(wr_spk)]

    for ln in range(P):
        c = c9[ln]
        unit = units[ln]
        membrane = Signal(signed(mw), name=f"membrane{ln}", reset_less=True)  # first_t ignores it
        m.d.comb += unit.v.eq(membrane)
        with m.If(c.valid & c.wr & l_lif[ln]):
            m.d.sync += membrane.eq(unit.v_next)
        spike = Signal(sb, name=f"spike{ln}")
        m.d.comb += spike.eq(Mux(l_lif[ln], unit.fire, Mux(l_ms[ln], unit.ms, Mux(l_and[ln], yand[ln], 0))))
        # The sum fits when its bits from the destination's sign bit up (``add_mask``) are all
        # equal: no bit there differs from the one above it. One reduction, not two compares.
        fits = ((yadd[ln] ^ (yadd[ln] >> 1)) & add_mask[ln]) == 0
        y_add = Mux(fits, yadd[ln], Mux(yadd[ln][-1], add_lo[ln], add_hi[ln]))
        out_int.append(Mux(l_add[ln], y_add, y8[ln])[:ib])
        # Spike write: bank ``ln``, slot ``tile`` (lanes past the last channel write nothing).
        wp = banks[ln][0]
        if rmw is None:  # a write enable per slot
            en = Cat(*(c.valid & c.wr & l_spk[ln] & (c.tile == s) & (c.tile * P + ln < l_C[ln])
                       for s in range(S)))
            put(9, [wp.addr.eq(l_dst[ln] + c.widx), wp.data.eq(Cat(*([spike] * S))), wp.en.eq(en)])
        else:
            wr_spk = c.valid & c.wr & l_spk[ln] & (c.tile * P + ln < l_C[ln])
            spike_word_write(ln, wp, rmw[ln], wr_spk, spike, c.tile)

    # The logits shift into the result stage (out pass): logit j is lane j % P's, and shifts
    # under that lane's copy of the element control (the enable reaches no other lane group's
    # registers).
    for ln in range(P):
        c = c9[ln]
        m.d.comb += [tile.en[ln].eq(c.valid & c.wr & l_out[ln]), tile.value[ln].eq(y8[ln])]
    # Integer write (one memory port: in the compact build the lanes of lane group 0 give
    # its address; in the fast build each part's address register takes it from its own
    # lane group's copies, which hold the same values).
    def iw_en_of(ln):
        return c9[ln].valid & c9[ln].wr & ~l_out[ln] & ~l_spk[ln]

    def iw_addr_of(ln):
        return l_dst[ln] + c9[ln].widx

    iw_en, iw_addr, iw_data = iw_en_of(0), iw_addr_of(0), Cat(*out_int)
    if registered[9]:
        # Registered, each lane's data 0 unless written, and ORed with the drain's
        # (``_elab_syn``): the two writers of the port are never active together.
        # The address and enable in registers per lane group, from the next values.
        r_data = [Signal(ib, name=f"ew_iw_data{ln}", reset_less=True) for ln in range(P)]
        m.d.sync += [r.eq(Mux(c9[ln].valid & c9[ln].wr & ~l_out[ln] & ~l_spk[ln], out_int[ln], 0))
                     for ln, r in enumerate(r_data)]
        dw_en_next, dw_addr_next, dw_data = syn["drain_write"]
        step = P // len(im_w.addrs)          # lanes per part: part g's first lane is g * step
        firsts = range(0, P, step)
        lc.addr_regs("im_wa", im_w.addrs,
                        [Mux(iw_en_of(ln), iw_addr_of(ln), dw_addr_next) for ln in firsts])
        lc.addr_regs("im_we", im_w.ens, [iw_en_of(ln) | dw_en_next for ln in firsts])
        m.d.comb += im_w.data.eq(Cat(*r_data) | dw_data)
    else:
        with m.If(iw_en):
            m.d.comb += [im_w.en.eq(1), im_w.addr.eq(iw_addr), im_w.data.eq(iw_data)]

    # Done two cycles before the last element's write (stage 9), so that the next
    # descriptor load overlaps the flush (the descriptor changes at the end of the second
    # cycle after done); the last pass waits for its write (the logits are read next).
    done_r = Signal()
    late, early = ctl_at(write_cycle - 1), ctl_at(write_cycle - 3)
    m.d.sync += done_r.eq(Mux(desc.last_pass, late.valid & late.last, early.valid & early.last))
    m.d.comb += [active_next.eq(start | (active & ~done_r)), done.eq(done_r)]
    for copy in (loop_active, sel_active):
        if copy is not active:
            m.d.sync += copy.eq(start | (copy & ~done_r))
    # While inactive the loop state holds its start values: ``start`` only sets ``active``.
    with m.If(~loop_active):
        m.d.sync += run.eq(1)
