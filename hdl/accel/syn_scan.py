"""The SYN pipeline's scan, decode and issue stages."""

from amaranth.hdl import Array, Mux, Signal
from amaranth.lib import data

from ..row_scan import RowScan, group_pairs
from .lsb import lsb_index
from .plan import log2 as _log2
from .plan import ubits as _ubits

__all__ = ["syn_scan"]


def syn_scan(eng, m, desc, count, event, fifo_bits, fifo_last, fifo_rest, fifo_single, fifo_va, fifo_wb, hst, pop,
             rd_ptr, scan_active):
    """SYN scan | D0 | D1 | D2 | queue | issue: one event (the row's lowest set bit) per cycle,
    decoded to its tiles, weight and accumulator words; the issue stage sends one (event, tile)
    per cycle (see :func:`.syn.elaborate_syn`)."""
    prog = eng.prog
    P = prog.lanes
    b = eng.build
    Rw = eng.row_bits
    pl = eng.plan      # widths: EnginePlan._syn_widths
    ww = pl.ww
    aww = pl.aww
    va_w = pl.va_w
    # Scan stage: the lowest set bit of the row, one per cycle (the event encoder's row scan:
    # its proof and tests cover this stage). The FIFO's head is its input, a pop its input
    # transfer; its output ready is the emit condition below.
    scan = RowScan(width=Rw, tag_shape=data.StructLayout({"va": va_w, "wb": ww, "last": 1}),
                   fast=bool(b.syn_fetch_regs))
    m.submodules.syn_scan = scan
    row = scan.i.payload
    m.d.comb += [scan.i.valid.eq(scan_active & (count > 0)), pop.eq(scan.i.valid & scan.i.ready),
                 row.bits.eq(Array(fifo_bits)[rd_ptr]), row.single.eq(Array(fifo_single)[rd_ptr]),
                 row.tag.va.eq(Array(fifo_va)[rd_ptr]), row.tag.wb.eq(Array(fifo_wb)[rd_ptr]),
                 row.tag.last.eq(Array(fifo_last)[rd_ptr])]
    if b.syn_fetch_regs:
        m.d.comb += row.rest.eq(Array(fifo_rest)[rd_ptr])
    e1 = scan.o.payload
    groups = group_pairs(e1.groups)   # the index tree's first level, registered in D0

    # Items: an event (channel, plane) or, for a row without events, an empty item; each
    # carries its row's flags. The decode stages D0, D1 and D2 never stall; a queue of NQ
    # items feeds the issue stage E, and the scan stage emits only while fewer than NQ
    # items are in D0, D1, D2 and the queue (a registered count: no ready chain from E).
    emit = Signal()
    # Stage enables: the fast build's decode stages never stall; the compact build has no
    # queue, its decode stages hold while the next one is full (a ready chain from E).
    d0_en, d1_en, d2_en = Signal(), Signal(), Signal()
    if not b.syn_queue:
        m.d.comb += scan.o.ready.eq(d0_en)
    else:
        NQ = b.syn_queue
        held = Signal(range(NQ + 1))
        m.d.comb += [scan.o.ready.eq(held < NQ), d0_en.eq(1), d1_en.eq(1), d2_en.eq(1)]
    m.d.comb += emit.eq(scan.o.valid & scan.o.ready)

    # Stage D1: the head's first channel, channel * tiles.
    d1_valid = Signal()
    d1_ev = Signal()
    d1_idx = Signal(_ubits(Rw))
    d1_row_end = Signal()
    d1_pos_last = Signal()
    d1_wb = Signal(ww)
    d1_va = Signal(va_w)
    # Stage D0: the lowest set bit's index (its first level came registered).
    d0_valid = Signal()
    d0_ev = Signal()
    d0_row_end = Signal()
    d0_pos_last = Signal()
    d0_wb = Signal(ww)
    d0_va = Signal(va_w)
    d0_groups = [(Signal(name=f"d0_any{i}"), Signal(len(g[1]), name=f"d0_low{i}"))
                 for i, g in enumerate(groups)]
    with m.If(d0_en):
        m.d.sync += [d0_valid.eq(emit), d0_ev.eq(~e1.empty), d0_row_end.eq(e1.last),
                     d0_pos_last.eq(e1.tag.last), d0_wb.eq(e1.tag.wb), d0_va.eq(e1.tag.va)]
        for (ra, rl), (ga, gl) in zip(d0_groups, groups):
            m.d.sync += [ra.eq(ga), rl.eq(gl)]
    idx = Signal(_ubits(Rw))
    m.d.comb += idx.eq(lsb_index(d0_groups))
    with m.If(d1_en):
        m.d.sync += [d1_valid.eq(d0_valid), d1_ev.eq(d0_ev), d1_idx.eq(idx), d1_row_end.eq(d0_row_end),
                     d1_pos_last.eq(d0_pos_last), d1_wb.eq(d0_wb), d1_va.eq(d0_va)]
    d1_c = Signal(pl.count_bits)
    m.d.comb += d1_c.eq(Mux(desc.src_img, d1_idx >> eng.pbi, d1_idx >> eng.pbs))
    d1_b = Mux(desc.src_img, d1_idx & ((1 << eng.pbi) - 1), d1_idx & ((1 << eng.pbs) - 1))
    cb = pl.cb                 # channel index bits
    tw = len(desc.tiles)
    item = data.StructLayout({
        "ev": 1, "row_end": 1, "pos_last": 1, "b": pl.plane_field_bits, "lo": cb + 1, "tile": tw, "tile_hi": tw,
        "at_last": 1, "va": va_w,
        "waddr": ww, "word": aww,  # weight word and accumulator word of the current tile
    })
    d2_valid = Signal()
    d2_ev = Signal()
    d2_row_end = Signal()
    d2_pos_last = Signal()
    d2_wb = Signal(ww)
    d2_va = Signal(va_w)
    d2_b = Signal(pl.plane_field_bits)
    d2_lo = Signal(cb + 1)     # first channel of the event's head
    d2_ct = Signal(ww)         # channel * tiles
    with m.If(d2_en):
        m.d.sync += [d2_valid.eq(d1_valid), d2_ev.eq(d1_ev), d2_row_end.eq(d1_row_end),
                     d2_pos_last.eq(d1_pos_last), d2_wb.eq(d1_wb), d2_va.eq(d1_va), d2_b.eq(d1_b),
                     d2_ct.eq(d1_c * desc.tiles), d2_lo.eq(Mux(desc.heads_on, hst[desc.h_base + d1_c], 0))]
    # Stage D2: the tile range, the weight and accumulator words of the first tile.
    d2_item = Signal(item)
    tile_lo = Mux(desc.heads_on, d2_lo >> _log2(P), 0)
    ct_lo = d2_ct + tile_lo
    tile_hi = Mux(desc.heads_on, (d2_lo + desc.hd - 1) >> _log2(P), desc.tiles - 1)
    m.d.comb += [
        d2_item.ev.eq(d2_ev), d2_item.row_end.eq(d2_row_end), d2_item.pos_last.eq(d2_pos_last),
        d2_item.b.eq(d2_b), d2_item.lo.eq(d2_lo), d2_item.waddr.eq(d2_wb + ct_lo),
        d2_item.word.eq(Mux(desc.accsel_ch, ct_lo, tile_lo)),
        d2_item.tile.eq(tile_lo), d2_item.tile_hi.eq(tile_hi),
        d2_item.at_last.eq(~d2_ev | (tile_lo == tile_hi)), d2_item.va.eq(d2_va),
    ]

    # Issue stage E: one (event, tile) per cycle.
    e = Signal(item)
    e_valid = Signal()
    e_first = Signal()
    bank = Signal()            # accumulator bank of the current position
    dr_busy = Signal()
    e_final = e.row_end & e.pos_last & e.at_last   # the position's last cycle
    stall = Signal()           # a position can only end (swap banks) when the drain engine is free
    dr_blk = Signal()      # the drain engine is busy and not in its last read
    m.d.comb += stall.eq(e_valid & e_final & dr_blk)
    e_go = e_valid & ~stall
    ev_issue = Signal()
    m.d.comb += ev_issue.eq(e_go & e.ev)
    pos_end = Signal()
    m.d.comb += pos_end.eq(e_go & e_final)
    e_ready = ~e_valid | (~stall & e.at_last)
    take = Signal()
    if not b.syn_queue:
        m.d.comb += [take.eq(e_ready & d2_valid),
                     d2_en.eq(~d2_valid | take), d1_en.eq(~d1_valid | d2_en), d0_en.eq(~d0_valid | d1_en)]
        next_item = d2_item
        decode_empty = ~d0_valid & ~d1_valid & ~d2_valid
    else:
        # Queue between D2 and E (D2 goes straight to E when the queue is empty).
        queue = [Signal(item, name=f"evq{i}") for i in range(NQ)]
        q_n = Signal(range(NQ + 1))
        q_rd = Signal(range(NQ))
        q_wr = Signal(range(NQ))
        q_empty = q_n == 0
        m.d.comb += take.eq(e_ready & (d2_valid | ~q_empty))
        q_push = d2_valid & ~(take & q_empty)
        q_pop = take & ~q_empty
        # The free slot at q_wr takes every decoded item; only the pointer waits for the
        # push decision (the issue stage's take, a long path), and it never points at a
        # held item while D2 holds one (the decode stages never stall).
        with m.If(d2_valid):
            for i in range(NQ):
                with m.If(q_wr == i):
                    m.d.sync += queue[i].eq(d2_item)
        with m.If(q_push):
            m.d.sync += q_wr.eq(Mux(q_wr == NQ - 1, 0, q_wr + 1))
        with m.If(q_pop):
            m.d.sync += q_rd.eq(Mux(q_rd == NQ - 1, 0, q_rd + 1))
        m.d.sync += [q_n.eq(q_n + q_push - q_pop), held.eq(held + emit - take)]
        next_item = Mux(q_empty, d2_item, Array(queue)[q_rd])
        decode_empty = held == 0
    with m.If(take):
        m.d.sync += [e.eq(next_item), e_valid.eq(1), e_first.eq(1)]
    with m.Elif(ev_issue & ~e.at_last):
        m.d.sync += [e.tile.eq(e.tile + 1), e.at_last.eq(e.tile + 1 == e.tile_hi), e_first.eq(0),
                     e.waddr.eq(e.waddr + 1), e.word.eq(e.word + 1)]
    with m.Elif(e_go & e.at_last):
        m.d.sync += e_valid.eq(0)
    e_b, e_lo, e_tile = e.b, e.lo, e.tile
    # Count events (once per event, at its first tile: the sequencer counts the strobe).
    m.d.comb += event.eq(ev_issue & e_first)
    return dict(bank=bank, decode_empty=decode_empty, dr_blk=dr_blk, dr_busy=dr_busy, e=e, e1_on=scan.o.valid, e_b=e_b,
                e_lo=e_lo, e_tile=e_tile, e_valid=e_valid, ev_issue=ev_issue, item=item, next_item=next_item,
                pos_end=pos_end, take=take)
