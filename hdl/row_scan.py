"""Row scan: a row of bits in, its set bits out one per cycle, lowest first.

The core of :class:`~.event_encoder.SpikeEventEncoder` and the accelerator engine's SYN scan
stage (hdl/accel/syn_scan.py): one piece of hardware, so the encoder's tests and bounded
proof cover the scan stage the engine ships. Golden function: through the encoder,
:func:`spikeforge.sim.golden.spike_event_encoder`.
"""

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accel.lsb import lsb_groups, popcount_flags
from .params import check_bool, check_int, check_shape

__all__ = ["RowScan", "row_layout", "item_layout", "group_pairs"]

NO_TAG = unsigned(0)


def row_layout(width, tag_shape, fast):
    """Input payload: the row's ``bits``; ``rest``, the row less its lowest set bit (the fast
    mode only); ``single``, at most one bit of the row is set; an opaque ``tag`` copied to
    every item of the row."""
    fields = {"bits": unsigned(width)}
    if fast:
        fields["rest"] = unsigned(width)
    fields["single"] = 1
    fields["tag"] = tag_shape
    return data.StructLayout(fields)


def item_layout(width, tag_shape):
    """Output payload: ``groups``, the first level of the lowest set bit's index tree
    (:func:`.accel.lsb.lsb_groups`: per 4 bits of the row left, whether any is set and the
    index of the lowest; :func:`.accel.lsb.lsb_index` finishes it); ``empty`` (the row had no
    set bit: no event, only its end); ``last`` (the row's last item); the row's ``tag``."""
    low = 2 if width > 1 else 0
    group = data.StructLayout({"any": 1, "low": unsigned(low)})
    return data.StructLayout({
        "groups": data.ArrayLayout(group, (width + 3) // 4),
        "empty": 1,
        "last": 1,
        "tag": tag_shape,
    })


def group_pairs(groups):
    """``[(any, low), ...]`` of an item's ``groups``, as :func:`.accel.lsb.lsb_index` takes them."""
    return [(groups[k].any, groups[k].low) for k in range(len(groups))]


class RowScan(wiring.Component):
    """One item per set bit of each row, lowest first; a row without a set bit gives one
    ``empty`` item. Each item carries the row's ``tag``; the row's final item has ``last``.

    The row is held in ``pending``; each transfer on ``o`` clears its lowest set bit. The
    ``last`` flag is a register (``single``: at most one set bit left), loaded from the
    input and updated with ``pending``, so no item waits on a count of the row's bits.

    Parameters
    ----------
    width : int
        Row bits (>= 1).
    tag_shape : ShapeLike
        Shape of the opaque per-row ``tag``.
    fast : bool
        The input also carries ``rest``, the row less its lowest set bit (the engine's fast
        build computes it in its fetch registers, Build.syn_fetch_regs): ``pending`` then takes
        the registered ``rest`` and the subtraction that clears a bit sits on ``rest``'s own
        path, not on ``pending``'s. Otherwise ``pending`` clears its lowest bit itself.

    Members
    -------
    i : ``In(stream.Signature(row_layout(...)))``
        Rows. ``single`` must say whether the row has at most one set bit (and ``rest``
        equal ``bits & (bits - 1)``). Ready while no row is held, or as the held row's last
        item is taken: rows follow each other without a bubble.
    o : ``Out(stream.Signature(item_layout(...)))``
        Items; ``valid`` is a register (an item a cycle after its row's transfer), and each
        item is a function of registers only. ``ready`` is the consumer's take condition
        (the engine: room in its decode stages).
    """

    def __init__(self, *, width, tag_shape=NO_TAG, fast=False):
        name = type(self).__name__
        self.width = check_int(name, "width", width, 1, 1 << 20)
        self.tag_shape = check_shape(name, "tag_shape", tag_shape)
        self.fast = check_bool(name, "fast", fast)
        super().__init__({
            "i": In(stream.Signature(row_layout(self.width, tag_shape, fast))),
            "o": Out(stream.Signature(item_layout(self.width, tag_shape))),
        })

    def _step(self, pending, rest):
        """(``pending``, ``rest``, ``single``) after an item leaves: the row less its lowest
        set bit, its own rest (fast mode), whether at most one bit is left."""
        if self.fast:  # rest has at most one bit iff the row left (rest) has at most one
            return rest, rest & (rest - 1), ~popcount_flags(rest)[0]
        # the row left has at most one bit iff this one has at most two
        return pending & (pending - 1), None, ~popcount_flags(pending)[1]

    def elaborate(self, platform):
        m = Module()
        pending = Signal(self.width)
        rest = Signal(self.width if self.fast else 0)
        single = Signal()          # at most one set bit: the row ends with this item
        busy = Signal()            # a row is held in ``pending``
        tag = Signal(self.tag_shape)

        emit = self.o.valid & self.o.ready
        row_done = emit & single
        with m.If(emit):
            nxt_pending, nxt_rest, nxt_single = self._step(pending, rest)
            m.d.sync += [pending.eq(nxt_pending), single.eq(nxt_single)]
            if self.fast:
                m.d.sync += rest.eq(nxt_rest)
        with m.If(row_done):
            m.d.sync += busy.eq(0)
        m.d.comb += self.i.ready.eq(~busy | row_done)
        with m.If(self.i.valid & self.i.ready):
            row = self.i.payload
            m.d.sync += [single.eq(row.single), pending.eq(row.bits), tag.eq(row.tag), busy.eq(1)]
            if self.fast:
                m.d.sync += rest.eq(row.rest)

        item = self.o.payload
        m.d.comb += [self.o.valid.eq(busy), item.empty.eq(pending == 0), item.last.eq(single),
                     item.tag.eq(tag)]
        for k, (any_, low) in enumerate(lsb_groups(pending)):
            m.d.comb += [item.groups[k].any.eq(any_), item.groups[k].low.eq(low)]
        return m
