"""Spike event encoder (spec §5 bit planes): a spike vector in, one event per set bit out.

Golden function: :func:`spikeforge.sim.golden.spike_event_encoder`.
"""

from amaranth.hdl import Module, Mux, Shape, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..sim.golden import spike_event_encoder
from .accel.lsb import lsb_index, popcount_flags
from .params import check_bool, check_int, check_shape, field_bits
from .row_scan import RowScan, group_pairs

__all__ = ["SpikeEventEncoder", "event_layout", "vector_layout"]

NO_TAG = unsigned(0)


def _plane_bits(levels):
    return (int(levels).bit_length() - 1).bit_length()


def vector_layout(channels, levels, tag_shape=NO_TAG):
    """Input payload: ``spikes`` (``channels`` unsigned values ``0..levels``) and an opaque
    ``tag`` that is copied to every event of the vector."""
    return data.StructLayout({
        "spikes": data.ArrayLayout(unsigned(int(levels).bit_length()), channels),
        "tag": tag_shape,
    })


def event_layout(channels, levels, tag_shape=NO_TAG):
    """Event payload: ``channel``, bit ``plane``, ``empty`` (the vector had no set bit: no
    event, only its end), ``last`` (last event of the vector) and the vector's ``tag``."""
    return data.StructLayout({
        "channel": unsigned(field_bits(channels)),
        "plane": unsigned(field_bits(int(levels).bit_length())),
        "empty": 1,
        "last": 1,
        "tag": tag_shape,
    })


class SpikeEventEncoder(wiring.Component):
    """Turn spike vectors into a stream of events, one per set bit (bit planes, spec §5).

    Events of a vector come in ascending channel order, and per channel in ascending plane
    order. A vector without a set bit produces one beat with ``empty = 1`` and ``last = 1``.

    The events come from a :class:`~.row_scan.RowScan` over the vector's bits (channel-major,
    plane stride ``2^plane_bits``), the very component the accelerator engine's SYN scan stage
    instantiates; ``fast`` selects its fast mode, the engine's fast build's.

    Parameters
    ----------
    channels : int
        Spike vector length C (>= 1).
    levels : int
        Largest spike value D (>= 1); values have ``bit_length(D)`` bit planes.
    tag_shape : ShapeLike
        Shape of the opaque per-vector ``tag`` (default zero width).
    fast : bool
        The row scan's fast mode: the vector less its lowest set bit is computed at the input
        and registered with it (:class:`~.row_scan.RowScan`). Same events, same cycles.

    Members
    -------
    i : ``In(stream.Signature(vector_layout(...)))``
        Spike vectors. Accepted when the encoder is idle or is emitting the last event of the
        current vector with ``o.ready`` high, so vectors follow each other without a bubble.
    o : ``Out(stream.Signature(event_layout(...)))``
        Events; ``valid`` is a register output (latency 1 cycle from the input transfer).
        Throughput one event per cycle: a vector costs ``max(1, popcount)`` cycles.
    """

    #: the row scan the encoder is built on (a class attribute: broken variants replace it)
    row_scan = RowScan

    def __init__(self, *, channels, levels=1, tag_shape=NO_TAG, fast=False):
        name = type(self).__name__
        self.channels = check_int(name, "channels", channels, 1, 4096)
        self.levels = check_int(name, "levels", levels, 1, 65535)
        self.tag_shape = check_shape(name, "tag_shape", tag_shape)
        self.fast = check_bool(name, "fast", fast)
        self.planes = self.levels.bit_length()
        super().__init__({
            "i": In(stream.Signature(vector_layout(self.channels, self.levels, tag_shape))),
            "o": Out(stream.Signature(event_layout(self.channels, self.levels, tag_shape))),
        })

    # cost model ---------------------------------------------------------------------------
    def cycles(self, spikes):
        """Cycles from the first input transfer to the last output transfer, without stalls,
        for a sequence of vectors ``spikes [n, C]``: ``1 + sum max(1, popcount)``."""
        return 1 + len(spike_event_encoder(spikes, self.levels))

    def memory_bits(self):
        """No memory; the vector register is counted by :meth:`logic_estimate`."""
        return 0

    def logic_estimate(self):
        """Rough ``{"lut": .., "ff": ..}``: the lowest set bit's index tree, the clearing of
        that bit and the bit counts over the ``C * 2^plane_bits`` register bits, plus the
        registers themselves."""
        n = self.channels << _plane_bits(self.levels)
        tag = Shape.cast(self.tag_shape).width
        regs = n * (2 if self.fast else 1)
        return {"lut": 3 * n + n.bit_length() * (n // 4 + 1), "ff": regs + tag + 2}

    # hardware ---------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        pb = _plane_bits(self.levels)
        stride = 1 << pb
        n = self.channels * stride
        m.submodules.scan = scan = self.row_scan(width=n, tag_shape=self.tag_shape, fast=self.fast)

        # Pack the incoming spikes channel-major with a power-of-two plane stride.
        packed = Signal(n)
        for c in range(self.channels):
            m.d.comb += packed[c * stride:c * stride + self.planes].eq(self.i.payload.spikes[c])
        row = scan.i.payload
        m.d.comb += [row.bits.eq(packed), row.single.eq(~popcount_flags(packed)[0]),
                     row.tag.eq(self.i.payload.tag),
                     scan.i.valid.eq(self.i.valid), self.i.ready.eq(scan.i.ready)]
        if self.fast:
            m.d.comb += row.rest.eq(packed & (packed - 1))

        item = scan.o.payload
        index = Signal(max(1, (n - 1).bit_length()))
        # (the tree's index of an empty row is any value: an empty beat says channel 0, plane 0)
        m.d.comb += index.eq(Mux(item.empty, 0, lsb_index(group_pairs(item.groups))))
        m.d.comb += [
            self.o.valid.eq(scan.o.valid), scan.o.ready.eq(self.o.ready),
            self.o.payload.channel.eq(index >> pb),
            self.o.payload.plane.eq(index[:pb] if pb else 0),
            self.o.payload.empty.eq(item.empty),
            self.o.payload.last.eq(item.last),
            self.o.payload.tag.eq(item.tag),
        ]
        return m
