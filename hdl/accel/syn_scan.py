"""The SYN pipeline's scan, decode (:class:`.syn_decode.SynDecode`), queue and issue
(:class:`.syn_issue.SynIssue`) stages."""

from amaranth.hdl import Array, Mux, Signal
from amaranth.lib import data, wiring

from ..pack import pack
from ..row_scan import RowScan
from .syn_decode import DESC_FIELDS, SynDecode, tag_layout
from .syn_issue import SynIssue

__all__ = ["syn_scan"]


def syn_scan(eng, m, desc, count, event, fifo_bits, fifo_last, fifo_rest, fifo_single, fifo_va, fifo_wb, pop,
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
    # transfer; its output goes to the decode stages.
    scan = RowScan(width=Rw, tag_shape=tag_layout(va_w, ww),
                   fast=bool(b.syn_fetch_regs))
    m.submodules.syn_scan = scan
    row = scan.i.payload
    m.d.comb += [scan.i.valid.eq(scan_active & (count > 0)), pop.eq(scan.i.valid & scan.i.ready),
                 row.bits.eq(Array(fifo_bits)[rd_ptr]), row.single.eq(Array(fifo_single)[rd_ptr]),
                 row.tag.va.eq(Array(fifo_va)[rd_ptr]), row.tag.wb.eq(Array(fifo_wb)[rd_ptr]),
                 row.tag.last.eq(Array(fifo_last)[rd_ptr])]
    if b.syn_fetch_regs:
        m.d.comb += row.rest.eq(Array(fifo_rest)[rd_ptr])
    # Decode stages D0, D1, D2 (a SynDecode): items, each an event (channel, plane) or, for a
    # row without events, an empty item, with its row's flags. The fast build's decode stages
    # never stall: a queue of NQ items feeds the issue stage E, and the decoder takes a scan
    # item only while fewer than NQ items are in D0, D1, D2 and the queue (a registered
    # count: no ready chain from E). The compact build has no queue: its decode stages hold
    # while the next one is full (a ready chain from E).
    NQ = b.syn_queue
    dec = SynDecode(row_bits=Rw, va_bits=va_w, wb_bits=ww, plane_bits=pl.plane_field_bits, channel_bits=pl.cb,
                    count_bits=pl.count_bits, word_bits=aww, spike_plane_bits=eng.pbs, image_plane_bits=eng.pbi,
                    lanes=P, head_starts=eng.hstart,
                    desc_layout=data.StructLayout({k: getattr(desc, k).shape() for k in DESC_FIELDS}), queue=NQ)
    m.submodules.syn_decode = dec
    wiring.connect(m, scan.o, dec.i)
    m.d.comb += dec.desc.eq(pack(dec.desc_layout, {k: getattr(desc, k) for k in DESC_FIELDS}))
    item = dec.out_layout
    d2_item, d2_valid = dec.o.payload, dec.o.valid

    # Issue stage E (a SynIssue): one (event, tile) per cycle.
    m.submodules.syn_issue = iss = SynIssue(item)
    e, e_valid = iss.e, iss.valid
    bank = Signal()            # accumulator bank of the current position
    dr_busy = Signal()
    dr_blk = Signal()          # the drain engine is busy and not in its last read
    m.d.comb += iss.blk.eq(dr_blk)
    ev_issue, pos_end = iss.issue, iss.pos_end
    e_ready = iss.i.ready
    take = Signal()
    decode_empty = dec.empty
    if not NQ:
        wiring.connect(m, dec.o, iss.i)
        m.d.comb += take.eq(dec.o.valid & dec.o.ready)
        next_item = d2_item
    else:
        # Queue between D2 and E (D2 goes straight to E when the queue is empty).
        queue = [Signal(item, name=f"evq{i}") for i in range(NQ)]
        q_n = Signal(range(NQ + 1))
        q_rd = Signal(range(NQ))
        q_wr = Signal(range(NQ))
        q_empty = q_n == 0
        m.d.comb += [iss.i.valid.eq(d2_valid | ~q_empty), take.eq(iss.i.valid & e_ready)]
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
        m.d.sync += q_n.eq(q_n + q_push - q_pop)
        m.d.comb += [dec.o.ready.eq(1), dec.free.eq(take)]   # (the queue takes every item)
        next_item = Mux(q_empty, d2_item, Array(queue)[q_rd])
        m.d.comb += iss.i.payload.eq(next_item)
    e_b, e_lo, e_tile = e.b, e.lo, e.tile
    m.d.comb += event.eq(iss.event)
    return dict(bank=bank, decode_empty=decode_empty, dr_blk=dr_blk, dr_busy=dr_busy, e=e, e1_on=scan.o.valid, e_b=e_b,
                e_lo=e_lo, e_tile=e_tile, e_valid=e_valid, ev_issue=ev_issue, item=item, next_item=next_item,
                pos_end=pos_end, take=take)
