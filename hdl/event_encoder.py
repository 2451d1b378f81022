"""Spike event encoder (spec §5 bit planes): a spike vector in, one event per set bit out.

Golden function: :func:`spikeforge.sim.golden.spike_event_encoder`.
"""

from amaranth.hdl import Cat, Const, Module, Signal, Shape, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..sim.golden import spike_event_encoder
from .params import check_int, field_bits

__all__ = ["SpikeEventEncoder", "event_layout", "vector_layout", "one_hot_index"]

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


def one_hot_index(one_hot):
    """Index of the set bit of a one-hot (or zero) value, as OR trees: bit k of the index is
    the OR of the input bits whose position has bit k set. Shared by the encoder and the
    accelerator engine."""
    n = len(one_hot)
    out = []
    for k in range(max(1, (n - 1).bit_length())):
        bits = [one_hot[j] for j in range(n) if (j >> k) & 1]
        acc = Const(0, 1)
        for b in bits:
            acc = acc | b
        out.append(acc)
    return Cat(*out)


class SpikeEventEncoder(wiring.Component):
    """Turn spike vectors into a stream of events, one per set bit (bit planes, spec §5).

    Events of a vector come in ascending channel order, and per channel in ascending plane
    order. A vector without a set bit produces one beat with ``empty = 1`` and ``last = 1``.

    Parameters
    ----------
    channels : int
        Spike vector length C (>= 1).
    levels : int
        Largest spike value D (>= 1); values have ``bit_length(D)`` bit planes.
    tag_shape : ShapeLike
        Shape of the opaque per-vector ``tag`` (default zero width).

    Members
    -------
    i : ``In(stream.Signature(vector_layout(...)))``
        Spike vectors. Accepted when the encoder is idle or is emitting the last event of the
        current vector with ``o.ready`` high, so vectors follow each other without a bubble.
    o : ``Out(stream.Signature(event_layout(...)))``
        Events; ``valid`` is a register output (latency 1 cycle from the input transfer).
        Throughput one event per cycle: a vector costs ``max(1, popcount)`` cycles.
    """

    def __init__(self, *, channels, levels=1, tag_shape=NO_TAG):
        name = type(self).__name__
        self.channels = check_int(name, "channels", channels, 1, 4096)
        self.levels = check_int(name, "levels", levels, 1, 65535)
        try:
            Shape.cast(tag_shape)
        except TypeError as e:
            raise TypeError(f"{name}: tag_shape must be a shape or layout, not {tag_shape!r}") from e
        self.tag_shape = tag_shape
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
        """Rough ``{"lut": .., "ff": ..}``: a lowest-set-bit isolator and encoder over the
        ``C * 2^plane_bits`` register bits, plus the register itself."""
        n = self.channels << _plane_bits(self.levels)
        tag = Shape.cast(self.tag_shape).width
        return {"lut": 3 * n + n.bit_length() * (n // 4 + 1), "ff": n + tag + 1}

    # hardware ---------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        pb = _plane_bits(self.levels)
        stride = 1 << pb
        n = self.channels * stride

        pending = Signal(n)
        busy = Signal()
        tag = Signal(self.tag_shape)

        # Pack the incoming spikes channel-major with a power-of-two plane stride.
        packed = Signal(n)
        for c in range(self.channels):
            m.d.comb += packed[c * stride:c * stride + self.planes].eq(self.i.payload.spikes[c])

        low = Signal(n)   # lowest set bit of pending, isolated
        rest = Signal(n)  # pending without it
        index = Signal(max(1, (n - 1).bit_length()))
        m.d.comb += [
            low.eq(pending & (~pending + 1)),
            rest.eq(pending & (pending - 1)),
        ]
        m.d.comb += index.eq(one_hot_index(low))

        is_last = rest == 0
        m.d.comb += [
            self.o.valid.eq(busy),
            self.o.payload.channel.eq(index >> pb),
            self.o.payload.plane.eq(index[:pb] if pb else 0),
            self.o.payload.empty.eq(pending == 0),
            self.o.payload.last.eq(is_last),
            self.o.payload.tag.eq(tag),
            self.i.ready.eq(~busy | (self.o.ready & is_last)),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [pending.eq(packed), tag.eq(self.i.payload.tag), busy.eq(1)]
        with m.Elif(self.o.valid & self.o.ready):
            m.d.sync += pending.eq(rest)
            with m.If(is_last):
                m.d.sync += busy.eq(0)
        return m
