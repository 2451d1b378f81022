"""The SYN pipeline's decode stages D0, D1 and D2 (docs/accelerator.md, "Pipelines"): from the
row scan's item (the lowest set bit's index tree) to the decoded event: its plane, its head's
tile range and the weight and accumulator words of its first tile."""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..pack import pack
from ..params import check_int, check_shape
from ..row_scan import group_pairs
from ..row_scan import item_layout as scan_item_layout
from .lsb import lsb_index
from .plan import log2, ubits

__all__ = ["SynDecode", "DESC_FIELDS", "tag_layout", "decoded_layout"]

#: The descriptor fields the decode reads.
DESC_FIELDS = ("src_img", "tiles", "heads_on", "h_base", "hd", "accsel_ch")


def tag_layout(va_bits, wb_bits):
    """A scanned row's tag: its V row address ``va``, weight pointer ``wb`` and ``last`` (the
    position's last row)."""
    return data.StructLayout({"va": va_bits, "wb": wb_bits, "last": 1})


def decoded_layout(*, plane_bits, channel_bits, tile_bits, va_bits, wb_bits, word_bits):
    """A decoded item: ``ev`` (an event, else a row without one), ``row_end``, ``pos_last``
    (the row's flags), the event's plane ``b``, ``lo`` (its head's first channel), the tile
    range ``tile .. tile_hi`` with ``at_last`` (``tile == tile_hi`` or no event), ``va``, and
    the weight word ``waddr`` and accumulator word ``word`` of the first tile."""
    return data.StructLayout({
        "ev": 1, "row_end": 1, "pos_last": 1, "b": plane_bits, "lo": channel_bits + 1, "tile": tile_bits,
        "tile_hi": tile_bits, "at_last": 1, "va": va_bits, "waddr": wb_bits, "word": word_bits,
    })


def _fit(value, width):
    """``value`` as ``width`` bits, as ``.eq`` would assign it (truncated, or extended by its sign)."""
    value = Value.cast(value)
    if len(value) >= width:
        return value[:width]
    fill = value[-1] if value.shape().signed and len(value) else Const(0, 1)
    return Cat(value, fill.replicate(width - len(value)))


class SynDecode(wiring.Component):
    """Three registered stages: D0 finishes the lowest set bit's index (its first level comes
    registered from the scan), D1 splits it into channel and plane and multiplies the channel
    by the pass's tiles, D2's output is the decoded item (:func:`decoded_layout`).

    Parameters
    ----------
    row_bits, va_bits, wb_bits : int
        The scanned row's width and its tag's fields (:func:`tag_layout`).
    plane_bits, channel_bits, count_bits, word_bits : int
        The plane field, channel index, channel count and accumulator word widths (the plan's).
    spike_plane_bits, image_plane_bits : int
        ``log2`` of a channel's bits in a spike row and in an image row (the row is channel-major).
    lanes : int
        Channels per tile.
    head_starts : sequence of int
        The head-start table (channel -> first channel of its head), indexed by ``h_base + channel``.
    desc_layout : StructLayout
        The shapes of :data:`DESC_FIELDS` (the running pass's descriptor).
    queue : int
        0: D0..D2 hold while the next stage is full (the compact build: a ready chain from
        ``o.ready``). ``NQ > 0``: the stages never stall and ``o.ready`` must be high while
        ``o.valid`` (the fast build: a queue of ``NQ`` items takes every item); an input is
        taken only while fewer than ``NQ`` items are in D0..D2 and downstream (``held``, a
        registered count: no ready chain from the consumer), ``free`` telling that one left.

    Members
    -------
    i : ``In(stream.Signature(row_scan.item_layout(row_bits, tag_layout)))``
        The row scan's items.
    o : ``Out(stream.Signature(decoded_layout))``
        One decoded item per input item, in order, three cycles later when nothing stalls.
    desc : ``In(StructLayout)``
        :data:`DESC_FIELDS`, held while items are in flight.
    free : ``In(1)``
        (``queue``) the consumer took an item (from its queue or ``o``).
    held : ``Out(range(queue + 1))``
        (``queue``) items in D0..D2 and downstream.
    empty : ``Out(1)``
        No item in D0..D2 (and, with ``queue``, none downstream).
    """

    def __init__(self, *, row_bits, va_bits, wb_bits, plane_bits, channel_bits, count_bits, word_bits,
                 spike_plane_bits, image_plane_bits, lanes, head_starts, desc_layout, queue=0):
        name = type(self).__name__
        self.count_bits = check_int(name, "count_bits", count_bits, 1, 32)
        self.row_bits = check_int(name, "row_bits", row_bits, 1, 4096)
        self.va_bits = check_int(name, "va_bits", va_bits, 0, 64)
        self.wb_bits = check_int(name, "wb_bits", wb_bits, 1, 64)
        self.plane_bits = check_int(name, "plane_bits", plane_bits, 0, 16)
        self.channel_bits = check_int(name, "channel_bits", channel_bits, 1, 32)
        self.word_bits = check_int(name, "word_bits", word_bits, 1, 32)
        self.spike_plane_bits = check_int(name, "spike_plane_bits", spike_plane_bits, 0, 16)
        self.image_plane_bits = check_int(name, "image_plane_bits", image_plane_bits, 0, 16)
        self.lanes = check_int(name, "lanes", lanes, 1, 1024)
        self.queue = check_int(name, "queue", queue, 0, 64)
        self.head_starts = tuple(check_int(name, "head_starts element", v, 0, (1 << (self.channel_bits + 1)) - 1)
                                 for v in head_starts)
        if not self.head_starts:
            raise ValueError(f"{name}: head_starts is empty; allowed: at least one entry")
        check_shape(name, "desc_layout", desc_layout)
        if not isinstance(desc_layout, data.StructLayout) or set(desc_layout.members) != set(DESC_FIELDS):
            raise ValueError(f"{name}: desc_layout is {desc_layout!r}; allowed: a StructLayout of the fields "
                             f"{', '.join(DESC_FIELDS)}")
        self.desc_layout = desc_layout
        self.tile_bits = desc_layout["tiles"].width
        self.in_layout = scan_item_layout(self.row_bits, tag_layout(self.va_bits, self.wb_bits))
        self.out_layout = decoded_layout(plane_bits=self.plane_bits, channel_bits=self.channel_bits,
                                         tile_bits=self.tile_bits, va_bits=self.va_bits, wb_bits=self.wb_bits,
                                         word_bits=self.word_bits)
        members = {"i": In(stream.Signature(self.in_layout)), "o": Out(stream.Signature(self.out_layout)),
                   "desc": In(desc_layout), "empty": Out(1)}
        if self.queue:
            members.update({"free": In(1), "held": Out(range(self.queue + 1))})
        super().__init__(members)

    def _first_tile(self, lo):
        """The tile of the head's first channel ``lo``."""
        return lo >> log2(self.lanes)

    def _last_tile(self, lo, hd):
        """The tile of the last channel of a head of ``hd`` channels from ``lo``."""
        return self._first_tile(lo + hd - 1)

    def elaborate(self, platform):
        m = Module()
        desc, e1 = self.desc, self.i.payload
        Rw, va_w, ww = self.row_bits, self.va_bits, self.wb_bits
        pbi, pbs = self.image_plane_bits, self.spike_plane_bits
        groups = group_pairs(e1.groups)   # the index tree's first level, registered in D0
        emit = Signal()
        d0_en, d1_en, d2_en = Signal(), Signal(), Signal()
        if self.queue:
            NQ = self.queue
            m.d.comb += [self.i.ready.eq(self.held < NQ), d0_en.eq(1), d1_en.eq(1), d2_en.eq(1)]
        else:
            m.d.comb += self.i.ready.eq(d0_en)
        m.d.comb += emit.eq(self.i.valid & self.i.ready)

        # Stage D1: the head's first channel, channel * tiles.
        d1_valid = Signal()
        d1_ev = Signal()
        d1_idx = Signal(ubits(Rw))
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
        idx = Signal(ubits(Rw))
        m.d.comb += idx.eq(lsb_index(d0_groups))
        with m.If(d1_en):
            m.d.sync += [d1_valid.eq(d0_valid), d1_ev.eq(d0_ev), d1_idx.eq(idx), d1_row_end.eq(d0_row_end),
                         d1_pos_last.eq(d0_pos_last), d1_wb.eq(d0_wb), d1_va.eq(d0_va)]
        d1_c = Signal(self.count_bits)
        m.d.comb += d1_c.eq(Mux(desc.src_img, d1_idx >> pbi, d1_idx >> pbs))
        d1_b = Mux(desc.src_img, d1_idx & ((1 << pbi) - 1), d1_idx & ((1 << pbs) - 1))
        hst = Array(Const(v, ubits(max(self.head_starts))) for v in self.head_starts)
        d2_valid = Signal()
        d2_ev = Signal()
        d2_row_end = Signal()
        d2_pos_last = Signal()
        d2_wb = Signal(ww)
        d2_va = Signal(va_w)
        d2_b = Signal(self.plane_bits)
        d2_lo = Signal(self.channel_bits + 1)     # first channel of the event's head
        d2_ct = Signal(ww)                        # channel * tiles
        with m.If(d2_en):
            m.d.sync += [d2_valid.eq(d1_valid), d2_ev.eq(d1_ev), d2_row_end.eq(d1_row_end),
                         d2_pos_last.eq(d1_pos_last), d2_wb.eq(d1_wb), d2_va.eq(d1_va), d2_b.eq(d1_b),
                         d2_ct.eq(d1_c * desc.tiles), d2_lo.eq(Mux(desc.heads_on, hst[desc.h_base + d1_c], 0))]
        # Stage D2: the tile range, the weight and accumulator words of the first tile.
        tile_lo = Mux(desc.heads_on, self._first_tile(d2_lo), 0)
        ct_lo = d2_ct + tile_lo
        tile_hi = Mux(desc.heads_on, self._last_tile(d2_lo, desc.hd), desc.tiles - 1)
        m.d.comb += self.o.payload.eq(pack(self.out_layout, {k: _fit(v, self.out_layout[k].width) for k, v in {
            "ev": d2_ev, "row_end": d2_row_end, "pos_last": d2_pos_last, "b": d2_b, "lo": d2_lo,
            "tile": tile_lo, "tile_hi": tile_hi, "at_last": ~d2_ev | (tile_lo == tile_hi), "va": d2_va,
            "waddr": d2_wb + ct_lo, "word": Mux(desc.accsel_ch, ct_lo, tile_lo)}.items()}))
        m.d.comb += self.o.valid.eq(d2_valid)
        if self.queue:
            take = self.free
            m.d.sync += self.held.eq(self.held + emit - take)
            m.d.comb += self.empty.eq(self.held == 0)
        else:
            take = self.o.valid & self.o.ready
            m.d.comb += [d2_en.eq(~d2_valid | take), d1_en.eq(~d1_valid | d2_en), d0_en.eq(~d0_valid | d1_en),
                         self.empty.eq(~d0_valid & ~d1_valid & ~d2_valid)]
        return m
