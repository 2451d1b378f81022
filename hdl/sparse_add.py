"""Sparse addition unit (spec §5): spike events select weight rows that are added, shifted by
the event's bit plane, into P parallel accumulator lanes.

Golden function: :func:`spikeforge.sim.golden.sparse_add`.
"""

import numpy as np
from amaranth.hdl import Array, Module, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph import bits_for_range
from .accumulate_lanes import AccumulateLanes
from .event_encoder import event_layout
from .params import check_bool, check_int, check_int_array, field_bits

__all__ = ["SparseAdd", "sparse_tag_layout"]


def sparse_tag_layout(kernel):
    """Per-vector tag understood by :class:`SparseAdd`: the kernel ``tap`` (``ky * k + kx``)
    the vector's events use, and ``end``: the vector is the last one of an output position."""
    return data.StructLayout({"tap": unsigned(field_bits(kernel * kernel)), "end": 1})


class SparseAdd(wiring.Component):
    """Event-driven accumulation of weight rows for linear/1x1 layers and k x k convolutions.

    An output position (a "group") is a sequence of events, the events of the input vectors
    that reach it, each tagged with its kernel tap (see :class:`ConvWindowScan` for the
    addressing with stride and zero padding); the group ends with the event that has ``last``
    and ``tag.end`` set. Output channels are split in ``tiles = ceil(Co / P)`` tiles of P lanes
    (lanes past Co carry zero weights). Each event adds ``weight[tap, channel, tile] << plane``
    to the accumulators of every tile, one tile per cycle.

    The additions are an :class:`~.accumulate_lanes.AccumulateLanes`, the very component the
    accelerator engine's SYN accumulate stage instantiates (the accumulators, one word per
    tile, are its memory); ``fast``, ``banks`` and ``lanes_per_copy`` select the engine's
    configurations of it.

    Parameters
    ----------
    weight : int array ``[k, k, Ci, Co]`` or ``[Ci, Co]``
        Signed weights (the weight memory's initial contents).
    levels : int
        Largest input spike value D (bit planes ``bit_length(D)``); sets the accumulator bound
        ``D * sum(min(w, 0)) .. D * sum(max(w, 0))`` (§9) from which ``acc_bits`` derives.
    lanes : int
        P, the accumulator lanes (additions per cycle).
    fast : bool
        The core's registered sums (the engine's fast build): one cycle more per group.
    banks : int
        1, or 2: the groups take turns with two sets of accumulators, as the engine's output
        positions do (each addition carries its bank; the bank swaps as a group ends).
    lanes_per_copy : int or None
        Lanes per copy of the core's stage-A flags (the engine's fast build with many lanes).

    Members
    -------
    i : ``In(stream.Signature(event_layout(Ci, D, sparse_tag_layout(k))))``
        Events, as produced by :class:`SpikeEventEncoder`. A non-empty event is held for
        ``tiles`` cycles (one weight row read per tile) and transferred on the last; an
        ``empty`` event is transferred at once. Not ready while a group is being emitted.
    o : ``Out(stream.Signature(output layout))``
        Per group, ``tiles`` beats: ``acc`` (P signed ``acc_bits`` lanes), ``tile`` and
        ``last`` (last tile of the group). The first beat is valid 3 cycles (``fast``: 4) after
        the group's end event is transferred; accumulators are cleared as their beat is
        transferred.
    """

    #: the accumulate core the unit is built on (a class attribute: broken variants replace it)
    accumulate = AccumulateLanes

    def __init__(self, *, weight, levels=1, lanes=8, fast=False, banks=1, lanes_per_copy=None):
        name = type(self).__name__
        w = np.asarray(weight)
        if w.ndim == 2:
            w = w[None, None]
        if w.ndim != 4 or w.shape[0] != w.shape[1]:
            raise ValueError(f"{name}: weight has shape {np.shape(weight)}; expected "
                             "[k, k, Ci, Co] or [Ci, Co]")
        self.weight = check_int_array(name, "weight", w, None, -(1 << 31), (1 << 31) - 1)
        self.kernel, _, self.in_channels, self.out_channels = self.weight.shape
        if min(self.weight.shape) < 1:
            raise ValueError(f"{name}: weight has an empty axis (shape {self.weight.shape})")
        self.levels = check_int(name, "levels", levels, 1, 65535)
        self.lanes = check_int(name, "lanes", lanes, 1, 1024)
        self.fast = check_bool(name, "fast", fast)
        self.banks = check_int(name, "banks", banks, 1, 2)
        self.lanes_per_copy = None if lanes_per_copy is None else check_int(name, "lanes_per_copy",
                                                                            lanes_per_copy, 1)
        self.tiles = -(-self.out_channels // self.lanes)
        self.weight_bits = bits_for_range(int(min(self.weight.min(), 0)), int(max(self.weight.max(), 0)))
        flat = self.weight.reshape(-1, self.out_channels)
        self.acc_lo = int((self.levels * np.minimum(flat, 0).sum(0)).min())
        self.acc_hi = int((self.levels * np.maximum(flat, 0).sum(0)).max())
        self.acc_bits = bits_for_range(self.acc_lo, self.acc_hi)
        self.tag_layout = sparse_tag_layout(self.kernel)
        self.out_layout = data.StructLayout({
            "acc": data.ArrayLayout(signed(self.acc_bits), self.lanes),
            "tile": unsigned(field_bits(self.tiles)),
            "last": 1,
        })
        super().__init__({
            "i": In(stream.Signature(event_layout(self.in_channels, self.levels, self.tag_layout))),
            "o": Out(stream.Signature(self.out_layout)),
        })

    # cost model ---------------------------------------------------------------------------
    def cycles(self, beats):
        """Cycles without stalls (input always valid, output always ready) from the first
        event presented to the last output transfer, for event beats
        ``(tap, channel, plane, empty, end)``: a non-empty event costs ``tiles``, an empty
        one 1, and each group ``latency + tiles`` more (the last addition's pipeline, and the
        output beats). So ``events * tiles + groups * (latency + tiles)`` when no group is
        empty."""
        n = 0
        for _tap, _ch, _plane, empty, end in beats:
            n += 1 if empty else self.tiles
            if end:
                n += self.latency + self.tiles
        return n

    @property
    def latency(self):
        """Cycles from a group's end event to its first output beat, less one: the weight read
        and the core's stages (2; ``fast``: 3)."""
        return 2 + self.fast

    def memory_bits(self):
        """Weight memory: ``k*k*Ci*tiles`` rows of ``P * weight_bits``."""
        return self.kernel ** 2 * self.in_channels * self.tiles * self.lanes * self.weight_bits

    def logic_estimate(self):
        """Rough LUT/FF: P adders, a tiles-to-1 accumulator multiplexer per bank and the core's
        forward selects; accumulators in FFs, and the core's registers (the shifted weights,
        the words read of every bank, the last sum, and with ``fast`` the one before)."""
        pa = self.lanes * self.acc_bits
        acc_ff = self.banks * self.tiles * pa
        return {"lut": pa * (2 + self.banks * self.tiles + self.fast) + 64,
                "ff": acc_ff + pa * (2 + self.banks + self.fast) + 48}

    # hardware ---------------------------------------------------------------------------
    def _init_rows(self):
        """Weight rows, address ``(tap * Ci + channel) * tiles + tile``, lanes packed LSB first."""
        k, ci, co, p, wb = self.kernel, self.in_channels, self.out_channels, self.lanes, self.weight_bits
        padded = np.zeros((k * k, ci, self.tiles * p), np.int64)
        padded[:, :, :co] = self.weight.reshape(k * k, ci, co)
        rows = []
        mask = (1 << wb) - 1
        for row in padded.reshape(-1, p):
            rows.append(sum((int(v) & mask) << (wb * lane) for lane, v in enumerate(row)))
        return rows

    def elaborate(self, platform):
        m = Module()
        tiles, p, wb, K = self.tiles, self.lanes, self.weight_bits, self.banks
        rows = self._init_rows()
        m.submodules.weights = mem = memory.Memory(shape=unsigned(p * wb), depth=len(rows), init=rows)
        rd = mem.read_port()

        acc = [[[Signal(signed(self.acc_bits), name=f"acc_{k}_{t}_{lane}" if K > 1 else f"acc_{t}_{lane}")
                 for lane in range(p)] for t in range(tiles)] for k in range(K)]
        tile = Signal(range(tiles))
        bank = Signal(range(K))     # the bank of the group being accumulated
        s2_valid = Signal()
        s2_tile = Signal(range(tiles))
        s2_plane = Signal.like(self.i.payload.plane)
        s2_bank = Signal(range(K))
        wait = Signal(range(self.latency + 1))
        draining = Signal()
        # as wide as the payload's field (at least 1 bit): a zero-width index would leave the
        # field a constant, which Verilog writes as an `always @*` that Icarus never runs (X)
        d_tile = Signal(field_bits(tiles))
        d_bank = Signal(range(K))   # the bank being emitted

        ev = self.i.payload
        last_tile = tile == tiles - 1
        addr = (ev.tag.tap * self.in_channels + ev.channel) * tiles + tile
        m.d.comb += rd.addr.eq(addr)
        m.d.sync += s2_valid.eq(0)
        with m.If(self.i.valid & (wait == 0) & ~draining):
            with m.If(ev.empty):
                m.d.comb += self.i.ready.eq(1)
            with m.Else():
                m.d.comb += [rd.en.eq(1), self.i.ready.eq(last_tile)]
                m.d.sync += [s2_valid.eq(1), s2_tile.eq(tile), s2_plane.eq(ev.plane), s2_bank.eq(bank)]
                if tiles > 1:
                    m.d.sync += tile.eq(tile + 1)
                    with m.If(last_tile):
                        m.d.sync += tile.eq(0)
            with m.If(self.i.ready & ev.last & ev.tag.end):
                m.d.sync += [wait.eq(self.latency), d_bank.eq(bank)]
                if K > 1:
                    m.d.sync += bank.eq(~bank)

        # Stage 2 on: the core adds the shifted weight row to the tile's accumulators (the
        # words of every bank read at ``s2_tile``; each addition carries its bank).
        core = self.accumulate(lanes=p, weight_shape=signed(wb), shift_bits=len(s2_plane), acc_bits=self.acc_bits,
                               banks=K, word_bits=len(s2_tile), sum_reg=self.fast,
                               lanes_per_copy=self.lanes_per_copy)
        m.submodules.accumulate = core
        q = core.i.payload
        m.d.comb += [core.i.valid.eq(s2_valid), q.word.eq(s2_tile), q.bank.eq(s2_bank)]
        for lane in range(p):
            m.d.comb += [q.w[lane].eq(rd.data[lane * wb:(lane + 1) * wb].as_signed()), q.shift[lane].eq(s2_plane)]
            for k in range(K):
                m.d.comb += q.acc[k][lane].eq(Array(acc[k][t][lane] for t in range(tiles))[s2_tile])
        with m.If(core.o.valid):
            for k in range(K):
                for t in range(tiles):
                    with m.If((core.o.payload.word == t) & (core.o.payload.bank == k)):
                        m.d.sync += [acc[k][t][lane].eq(core.o.payload.sum[lane]) for lane in range(p)]

        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)
            with m.If(wait == 1):
                m.d.sync += draining.eq(1)

        m.d.comb += [self.o.valid.eq(draining), self.o.payload.tile.eq(d_tile),
                     self.o.payload.last.eq(d_tile == tiles - 1)]
        for k in range(K):
            for t in range(tiles):
                with m.If((d_tile == t) & (d_bank == k)):
                    m.d.comb += [self.o.payload.acc[lane].eq(acc[k][t][lane]) for lane in range(p)]
        with m.If(self.o.valid & self.o.ready):
            for k in range(K):
                for t in range(tiles):
                    with m.If((d_tile == t) & (d_bank == k)):
                        m.d.sync += [acc[k][t][lane].eq(0) for lane in range(p)]
            with m.If(d_tile == tiles - 1):
                m.d.sync += [d_tile.eq(0), draining.eq(0)]
            with m.Else():
                m.d.sync += d_tile.eq(d_tile + 1)
        return m
