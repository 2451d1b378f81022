"""The engine's result stage (docs/accelerator.md): the logits of an image and its class.

The ``out`` pass (T = N = 1, tiles in order) shifts P logits in per tile at the top of a
shift register; the stage then sends them one per beat from the bottom, followed by the class
(the argmax, ties to the lowest index: docs/spec.md, the head). No K-way multiplexer feeds the
result or the argmax comparison: the logit being sent is always ``logit0``.

Golden function: ``spikeforge.sim.golden.classify`` (the class); the logits are the ``out``
pass's (:func:`spikeforge.hdl.accel.execute.execute_program`).
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .lanes import copy_regs

__all__ = ["Logits", "result_layout", "tile_layout"]


def result_layout(logit_bits):
    """Result payload: ``value`` (a logit, or the class on the last beat) and ``last``."""
    return data.StructLayout({"value": signed(logit_bits), "last": 1})


def tile_layout(lanes, logit_bits):
    """A tile shift (:class:`Logits` ``tile``): lane ``ln``'s logit ``value[ln]`` shifts in
    where ``en[ln]`` is set."""
    return data.StructLayout({"en": unsigned(lanes), "value": data.ArrayLayout(signed(logit_bits), lanes)})


class Logits(wiring.Component):
    """The result stage: ``classes`` logits of ``logit_bits`` bits in, in tiles of ``lanes``,
    out on a stream followed by their class.

    Members
    -------
    tile : ``In(tile_layout(lanes, logit_bits))``
        A strobe, not a stream (the stage always takes a tile): in a cycle where ``en`` is set
        the P values of ``value`` shift in at the top and every logit moves down P places. The
        bits of ``en`` are copies of one strobe, all equal: bit ``ln`` enables lane ``ln``'s
        logits (every P-th register), so that the engine's per-lane-group copies of its control
        each reach their own group's registers only. Exactly ``ceil(classes / lanes)`` tiles,
        in class order, while ``send`` is low.
    send : ``In(1)``
        Offer the beats (the sequencer's OUT state); held until the class beat moves, then
        dropped.
    result : ``Out(stream.Signature(result_layout(logit_bits)))``
        ``classes`` beats of the logits in class order, then the class with ``last`` set.
        After the class beat the stage is ready for the next image's tiles.

    ``shift_group``: the compact build's ``None`` shifts the logits down in the cycle of a
    beat, so a beat can move every cycle. The fast build gives an int: the logits shift in the
    cycle after a beat, under a register copy of the beat per ``shift_group`` lanes (one enable
    would reach every logit register), and no beat is offered in that cycle.
    """

    def __init__(self, classes, lanes, logit_bits, *, shift_group=None):
        for what, v in (("classes", classes), ("lanes", lanes), ("logit_bits", logit_bits)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"Logits: {what} = {v!r}, allowed: an int >= 1")
        if shift_group is not None and (not isinstance(shift_group, int) or shift_group < 1):
            raise ValueError(f"Logits: shift_group = {shift_group!r}, allowed: None or an int >= 1")
        if (classes - 1).bit_length() + 1 > logit_bits:
            raise ValueError(f"Logits: logit_bits = {logit_bits} cannot hold the class index "
                             f"{classes - 1} as a signed value, allowed: >= {(classes - 1).bit_length() + 1}")
        self.classes, self.lanes, self.logit_bits, self.shift_group = classes, lanes, logit_bits, shift_group
        super().__init__({
            "tile": In(tile_layout(lanes, logit_bits)),
            "send": In(1),
            "result": Out(stream.Signature(result_layout(logit_bits))),
        })

    def beats(self, a, b):
        """Logit ``a`` (a later class) beats the best so far ``b``: strictly greater, so a tie
        keeps the lower index (docs/spec.md)."""
        return a > b

    def elaborate(self, platform):
        m = Module()
        K, P, L = self.classes, self.lanes, self.logit_bits
        logits = [Signal(signed(L), name=f"logit{j}") for j in range(-(-K // P) * P)]
        out_idx = Signal(range(K + 1))
        best = Signal(signed(L))
        best_idx = Signal(range(max(2, K)))
        gt = Signal()
        out_beat = Signal()        # a result beat in this cycle
        out_shifting = Signal()    # the fast build shifts the logits after a beat

        res = self.result
        is_class = out_idx == K
        cur = logits[0]
        nxt = logits[1] if len(logits) > 1 else cur   # the logit sent after ``cur``
        m.d.comb += [
            res.valid.eq(self.send & ~out_shifting),
            res.payload.value.eq(Mux(is_class, best_idx, cur)),
            res.payload.last.eq(is_class),
        ]
        # ``gt``: logit0 beats the best so far, decided a beat ahead (both candidates for the
        # next best are compared with logit1), so no comparator sits in front of the update.
        upd = (out_idx == 0) | gt
        with m.If(res.valid & res.ready):
            m.d.comb += out_beat.eq(1)
            m.d.sync += out_idx.eq(Mux(is_class, 0, out_idx + 1))
            if self.shift_group is None:
                m.d.sync += [logits[j].eq(logits[j + 1]) for j in range(len(logits) - 1)]
            m.d.sync += gt.eq(Mux(upd, self.beats(nxt, cur), self.beats(nxt, best)))
            with m.If(~is_class & upd):
                m.d.sync += [best.eq(cur), best_idx.eq(out_idx)]
        if self.shift_group is not None:
            shift_regs, shift_l = copy_regs("out_shift", 1, P, self.shift_group)
            m.d.sync += [r.eq(out_beat) for r in shift_regs] + [out_shifting.eq(out_beat)]
            for j in range(len(logits) - 1):
                with m.If(shift_l[j % P]):
                    m.d.sync += logits[j].eq(logits[j + 1])
        # A tile shifts in at the top (after the shift out: it takes precedence, as the
        # engine never does both in one cycle).
        for j, (dst, src) in enumerate(zip(logits, logits[P:] + [self.tile.value[ln] for ln in range(P)])):
            with m.If(self.tile.en[j % P]):
                m.d.sync += dst.eq(src)
        return m
