"""The SYN pipeline's drain (docs/accelerator.md, "Pipelines"): the accumulator banks' handover
and the copy of a finished position's accumulator words to the integer memory."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..params import check_bool, check_int

__all__ = ["SynDrain"]


class SynDrain(wiring.Component):
    """Two accumulator banks: the SYN pipeline accumulates a position into ``bank`` while the
    drain copies the previous position's words out of the other one.

    Members
    -------
    pos_end : ``In(1)``
        The position accumulating ends (its last event issued): ``bank`` swaps and the drain
        of the bank it leaves starts. Only while ``active`` and not ``blk``.
    active : ``In(1)``
        The pass runs. While it does not, ``bank`` is 0 and the destination pointer is
        ``dst_base`` (the first position's).
    acc_words, dst_base : ``In``
        The pass's accumulator words per position (``1 .. 2^count_bits``) and the integer
        memory word of its first position's first word: descriptor fields, held while the pass
        runs and its last drain ends.
    bank : ``Out(1)``
        The bank accumulating.
    busy : ``Out(1)``
        A drain has words left to read.
    blk : ``Out(1)``
        A drain is running and not in its last read: a position cannot end (the pipeline's
        issue stage stalls).
    left : ``Out(acc_words_bits + 2)``
        Cycles to the running drain's last read, that one included (0: none).
    rd, rd_bank, rd_word : ``Out``
        The drain reads word ``rd_word`` of bank ``rd_bank`` in this cycle (``delay`` cycles
        after ``pos_end``, the words in order, one per cycle).
    wr, wr_bank, wr_addr, clr_addr : ``Out``
        A cycle after each read: write the word read to integer memory word ``wr_addr`` (the
        destination of the position, ``acc_words`` words after the previous position's) and
        clear word ``clr_addr`` of bank ``wr_bank``.
    rd_next, rd_bank_next, rd_word_next : ``Out`` (with ``next_values``)
        ``rd``, ``rd_bank`` and ``rd_word`` of the next cycle, for registers that copy them
        (the fast build's per-lane-group address registers of the accumulator banks).

    ``delay``: cycles between ``pos_end`` and the drain's first read (the timing rule
    ``syn_drain``: the accumulator writes still in flight land first), at least 1.
    """

    def __init__(self, *, count_bits, addr_bits, acc_words_bits, delay, next_values=False):
        name = "SynDrain"
        self.count_bits = check_int(name, "count_bits", count_bits, 1, 32)
        self.addr_bits = check_int(name, "addr_bits", addr_bits, 1, 64)
        self.acc_words_bits = check_int(name, "acc_words_bits", acc_words_bits, 1, 32)
        self.delay = check_int(name, "delay", delay, 1, 64)
        self.next_values = check_bool(name, "next_values", next_values)
        members = {
            "pos_end": In(1),
            "active": In(1),
            "acc_words": In(self.acc_words_bits),
            "dst_base": In(self.addr_bits),
            "bank": Out(1),
            "busy": Out(1),
            "blk": Out(1),
            "left": Out(self.acc_words_bits + 2),
            "rd": Out(1),
            "rd_bank": Out(1),
            "rd_word": Out(self.count_bits),
            "wr": Out(1),
            "wr_bank": Out(1),
            "wr_addr": Out(self.addr_bits),
            "clr_addr": Out(self.count_bits),
        }
        if self.next_values:
            members.update({"rd_next": Out(1), "rd_bank_next": Out(1), "rd_word_next": Out(self.count_bits)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        bank, busy, blk, left = self.bank, self.busy, self.blk, self.left
        word, dr_bank, pos_end, acc_words = self.rd_word, self.rd_bank, self.pos_end, self.acc_words
        wait = Signal(range(self.delay + 1))   # cycles to the first read
        ptr = Signal(self.addr_bits)           # destination of the position being drained
        dst = Signal(self.addr_bits)           # destination of the position accumulating
        m.d.comb += self.rd.eq(busy & (wait == 0))
        m.d.sync += self.wr.eq(0)
        with m.If(busy):
            with m.If(wait != 0):
                m.d.sync += wait.eq(wait - 1)
            with m.Else():
                m.d.sync += [self.wr.eq(1), self.wr_addr.eq(ptr + word), self.clr_addr.eq(word),
                             self.wr_bank.eq(dr_bank), word.eq(word + 1)]
                with m.If(word == acc_words - 1):
                    m.d.sync += busy.eq(0)
        # A position ends (banks swap, a drain starts) once the previous drain is in its last
        # read: ``blk`` (registered) counts it down; assignments here win over the drain's own
        # in that cycle.
        with m.If(pos_end):
            m.d.sync += [bank.eq(~bank), busy.eq(1), wait.eq(self.delay), word.eq(0), dr_bank.eq(bank),
                         ptr.eq(dst), dst.eq(dst + acc_words), left.eq(acc_words + self.delay), blk.eq(1)]
        with m.Elif(left != 0):
            m.d.sync += [left.eq(left - 1), blk.eq(self._blocks(left))]
        with m.If(~self.active):
            m.d.sync += [dst.eq(self.dst_base), bank.eq(0)]
        if self.next_values:
            word_next = Mux(pos_end, 0, Mux(self.rd, word + 1, word))
            # word == acc_words - 1, registered from the word's next value: the compare with the
            # descriptor field is then not in front of every lane group's address registers (the
            # 32-lane 100 MHz build's critical path, 11.6 ns)
            last = Signal()
            m.d.sync += last.eq(word_next == acc_words - 1)
            m.d.comb += [self.rd_word_next.eq(word_next),
                         self.rd_next.eq(~pos_end & busy & Mux(wait != 0, wait == 1, ~last)),
                         self.rd_bank_next.eq(Mux(pos_end, bank, dr_bank))]
        return m

    def _blocks(self, left):
        """``blk``'s next value from this cycle's ``left``: the next cycle is not the last read."""
        return left > 2
