"""Accumulate lanes: P weights, each shifted by its bit plane, added into P accumulators read
from a memory, with the sums forwarded to the reads they would otherwise miss.

The core of :class:`~.sparse_add.SparseAdd` and the accelerator engine's SYN accumulate
stages R, A (and W in the fast build) (hdl/accel/syn_accumulate.py): one piece of hardware,
so SparseAdd's tests and bounded proof cover the additions the engine ships. Golden function:
through SparseAdd, :func:`spikeforge.sim.golden.sparse_add`.
"""

from amaranth.hdl import Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .accel.lanes import copy_regs
from .pack import pack
from .params import check_bool, check_int, check_shape, field_bits

__all__ = ["AccumulateLanes", "add_layout", "sum_layout"]


def _bank_bits(banks):
    return field_bits(banks) if banks > 1 else 0


def add_layout(lanes, weight_shape, shift_bits, acc_bits, banks, word_bits):
    """Input payload (one addition of every lane): ``w``, the lanes' weights; ``shift``, each
    lane's bit plane (a lane may take its own copy of it); ``acc``, the accumulator word of
    every bank at ``word`` as read from the memory (the read's data, in the beat's cycle);
    ``word`` and ``bank``, where the sums are written."""
    acc = data.ArrayLayout(signed(acc_bits), lanes)
    return data.StructLayout({
        "w": data.ArrayLayout(weight_shape, lanes),
        "shift": data.ArrayLayout(unsigned(shift_bits), lanes),
        "acc": data.ArrayLayout(acc, banks),
        "word": unsigned(word_bits),
        "bank": unsigned(_bank_bits(banks)),
    })


def sum_layout(lanes, acc_bits, banks, word_bits):
    """Output payload: ``sum``, the lanes' new accumulator values, to be written at ``word``
    of ``bank``."""
    return data.StructLayout({
        "sum": data.ArrayLayout(signed(acc_bits), lanes),
        "word": unsigned(word_bits),
        "bank": unsigned(_bank_bits(banks)),
    })


class AccumulateLanes(wiring.Component):
    """``sum = acc + (w << shift)`` per lane, modulo ``2^acc_bits``, as a two-stage pipeline
    without stalls (a beat every cycle, or a bubble):

    - stage R (the input beat's cycle): the accumulator words of every bank are registered as
      read (``held``), and each lane's ``w << shift`` (modulo ``2^acc_bits``);
    - stage A: the bank's word is selected and the sum formed. A beat for the same ``word``
      and ``bank`` as the one a cycle ahead read the memory before that one's sum was
      written: it takes that sum instead (forwarding), as it does, with ``sum_reg``, the sum
      of the one two ahead.

    ``acc_bits`` is the caller's bound on every accumulator value (from the plan, or the
    weights): the weights must fit in it, and a proof of the caller's sums (SparseAdd's)
    shows that no sum leaves it.

    Parameters
    ----------
    lanes : int
        P, the additions per beat.
    weight_shape : ShapeLike
        Shape of a lane's weight (signed, or unsigned: spike values).
    shift_bits : int
        Width of a lane's shift amount (0: no shift).
    acc_bits : int
        Width of an accumulator (signed); at least the weight's width.
    banks : int
        Accumulator banks (1 or 2: the engine accumulates one while draining the other).
    word_bits : int
        Width of the accumulator word address.
    sum_reg : bool
        The sums are registered (stage W, the engine's fast build, Build.acc_write_regs): the
        output is a cycle later and the memory write misses one more read (a second forward).
    lanes_per_copy : int
        The lanes that share one copy of the stage-A bank and forward flags (the engine's fast
        build: a register per lane group, kept apart by synthesis, :func:`.accel.lanes.copy_regs`).
        ``>= lanes``: one register.

    Members
    -------
    i : ``In(stream.Signature(add_layout(...), always_ready=True))``
        Additions; a beat is taken in every cycle it is valid.
    o : ``Out(stream.Signature(sum_layout(...), always_ready=True))``
        Sums, 1 cycle (``sum_reg``: 2 cycles) after their input; the consumer writes each to
        the memory the input's ``acc`` is read from (a read port transparent to the write, or
        registers), and must take it at once.
    a : ``Out(StructLayout({"valid": 1, "word", "bank"}))``
        The beat in stage A (``o``'s next beat with ``sum_reg``: for a consumer that registers
        its write address and enable).
    held : ``Out(ArrayLayout(ArrayLayout(signed(acc_bits), lanes), banks))``
        The accumulator words read a cycle ago, registered every cycle (the engine's drain
        writes them out).
    """

    def __init__(self, *, lanes, weight_shape, shift_bits, acc_bits, banks=1, word_bits=1, sum_reg=False,
                 lanes_per_copy=None):
        name = type(self).__name__
        self.lanes = check_int(name, "lanes", lanes, 1, 4096)
        self.weight_shape = check_shape(name, "weight_shape", weight_shape)
        self.shift_bits = check_int(name, "shift_bits", shift_bits, 0, 16)
        self.acc_bits = check_int(name, "acc_bits", acc_bits, 1, 256)
        wbits = Shape.cast(weight_shape).width
        if self.acc_bits < wbits:
            raise ValueError(f"{name}: acc_bits is {acc_bits}; allowed: at least the weight's width {wbits} "
                             "(a single weight would overflow the accumulator)")
        self.banks = check_int(name, "banks", banks, 1, 2)
        self.word_bits = check_int(name, "word_bits", word_bits, 0, 32)
        self.sum_reg = check_bool(name, "sum_reg", sum_reg)
        self.lanes_per_copy = self.lanes if lanes_per_copy is None else check_int(
            name, "lanes_per_copy", lanes_per_copy, 1)
        bb = _bank_bits(self.banks)
        super().__init__({
            "i": In(stream.Signature(add_layout(self.lanes, weight_shape, self.shift_bits, self.acc_bits,
                                                self.banks, self.word_bits), always_ready=True)),
            "o": Out(stream.Signature(sum_layout(self.lanes, self.acc_bits, self.banks, self.word_bits),
                                      always_ready=True)),
            "a": Out(data.StructLayout({"valid": 1, "word": unsigned(self.word_bits), "bank": unsigned(bb)})),
            "held": Out(data.ArrayLayout(data.ArrayLayout(signed(self.acc_bits), self.lanes), self.banks)),
        })

    def _operand(self, m, held, fwd, last, fwd2, last2):
        """A lane's accumulator in stage A: the word read (``held``), or the sum it missed."""
        acc = held
        if fwd2 is not None:
            acc = Mux(fwd2, last2, acc)
        return Mux(fwd, last, acc)

    def elaborate(self, platform):
        m = Module()
        P, ab, K = self.lanes, self.acc_bits, self.banks
        copies = lambda nm, v, shape: self._copies(m, nm, v, shape)  # noqa: E731
        q = self.i.payload
        q_valid, q_word, q_bank = self.i.valid, q.word, q.bank

        # Stage R -> A registers.
        a_valid = Signal()
        a_word = Signal(self.word_bits)
        a_bank = Signal(len(q_bank))
        a_w = [Signal(ab, name=f"a_w{ln}", reset_less=True) for ln in range(P)]  # weight << plane (mod 2^ab)
        a_acc = [[Signal(signed(ab), name=f"a_acc{k}_{ln}", reset_less=True) for ln in range(P)] for k in range(K)]
        fwd_next = a_valid & (a_bank == q_bank) & (a_word == q_word)
        m.d.sync += [a_valid.eq(q_valid), a_word.eq(q_word), a_bank.eq(q_bank)]
        a_bank_l = copies("a_bank", q_bank, len(q_bank)) if K > 1 else [0] * P
        a_fwd_l = copies("a_fwd", fwd_next, 1)
        a_fwd2_l = [None] * P
        if self.sum_reg:
            w_valid = Signal()
            w_word = Signal(self.word_bits)
            w_bank = Signal(len(q_bank))
            m.d.sync += [w_valid.eq(a_valid), w_word.eq(a_word), w_bank.eq(a_bank)]
            fwd2_next = w_valid & (w_bank == q_bank) & (w_word == q_word)
            a_fwd2_l = copies("a_fwd2", fwd2_next, 1)
        for ln in range(P):
            m.d.sync += a_w[ln].eq(q.w[ln] << q.shift[ln])
            m.d.sync += [a_acc[k][ln].eq(q.acc[k][ln]) for k in range(K)]

        # Stage A: add (with sum_reg, register the sum: stage W).
        sums = []
        for ln in range(P):
            last = Signal(signed(ab), name=f"a_last{ln}", reset_less=True)  # the sum of the previous cycle
            s_ = Signal(signed(ab), name=f"sum{ln}")
            held = a_acc[0][ln] if K == 1 else Mux(a_bank_l[ln], a_acc[1][ln], a_acc[0][ln])
            last2 = None
            if self.sum_reg:
                last2 = Signal(signed(ab), name=f"a_last2_{ln}", reset_less=True)  # and of the one before
                m.d.sync += last2.eq(last)
            m.d.comb += s_.eq(self._operand(m, held, a_fwd_l[ln], last, a_fwd2_l[ln], last2) + a_w[ln])
            m.d.sync += last.eq(s_)
            sums.append(last if self.sum_reg else s_)

        # Each output port in one assignment, not field by field (hdl/pack.py: Icarus).
        m.d.comb += self.held.eq(pack(self.held.shape(), a_acc, path="held"))
        m.d.comb += self.a.eq(pack(self.a.shape(), {"valid": a_valid, "word": a_word, "bank": a_bank}, path="a"))
        o_valid, o_word, o_bank = (w_valid, w_word, w_bank) if self.sum_reg else (a_valid, a_word, a_bank)
        m.d.comb += [self.o.valid.eq(o_valid),
                     self.o.payload.eq(pack(self.o.payload.shape(), {"sum": sums, "word": o_word, "bank": o_bank},
                                            path="o.payload"))]
        return m

    def _copies(self, m, name, value, shape):
        """Per-lane views of a register taking ``value`` (a copy per lane group)."""
        regs, lanes = copy_regs(name, shape, self.lanes, self.lanes_per_copy)
        m.d.sync += [r.eq(value) for r in regs]
        return lanes
