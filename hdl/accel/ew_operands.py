"""The EW/RED pipeline's operand stages 1..3 of one lane (docs/accelerator.md, "Pipelines"): the
memory words as read, the operand lanes, the RED running sum and the requantization's addend."""

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int

__all__ = ["EwOperands"]


class EwOperands(wiring.Component):
    """Stages 1, 2 and 3 of an EW lane, each a register or not (``registered``: the build's
    ``ew_registered`` among 1..3), the words read through ``read_regs`` registers first
    (``Build.ew_read_regs``). Stage k's inputs are those of the cycle its input arrives in
    (the reads in cycle 0, stage 2's in cycle ``read_regs + r1``, stage 3's ``r2`` later, with
    ``rk`` 1 for a registered stage k); its outputs follow by ``rk``.

    Members
    -------
    rd_sa, rd_sb, rd_ia, rd_ib, word : ``In``
        Stage 1 (the reads): the spike rows of operands a and b (``slots`` slots of
        ``slot_bits``), their integer lanes, and the constants word (multiplier, bias,
        threshold).
    tile, a_int, b_int : ``In``
        Stage 2: the element's spike slot; the operands are integer lanes (else the slot).
    mask, red, first_n, rq, out, rnd : ``In``
        Stage 3: ``a & b`` (mask) instead of ``a``; a reduction (``opnd`` sums ``a`` over the
        tokens from ``first_n``); the addend is ``bias + rnd`` (requantize) or ``bias`` (out
        pass) or 0.
    opa, opb : ``Out``
        Stage 2: the operands.
    theta : ``Out``
        Stage 1: the threshold.
    opnd, mult, addend : ``Out``
        Stage 3: the operand (or running sum), the multiplier and the addend.
    """

    def __init__(self, *, slots, slot_bits, int_bits, operand_bits, b_bits, mult_bits, bias_bits, theta_bits,
                 addend_bits, rnd_bits, tile_bits, registered, read_regs):
        name = type(self).__name__
        self.slots = check_int(name, "slots", slots, 1, 64)
        self.slot_bits = check_int(name, "slot_bits", slot_bits, 1, 16)
        self.int_bits = check_int(name, "int_bits", int_bits, 1, 64)
        self.operand_bits = check_int(name, "operand_bits", operand_bits, 1, 64)
        self.b_bits = check_int(name, "b_bits", b_bits, 1, 64)
        self.mult_bits = check_int(name, "mult_bits", mult_bits, 1, 64)
        self.bias_bits = check_int(name, "bias_bits", bias_bits, 1, 64)
        self.theta_bits = check_int(name, "theta_bits", theta_bits, 1, 64)
        self.addend_bits = check_int(name, "addend_bits", addend_bits, 1, 64)
        self.rnd_bits = check_int(name, "rnd_bits", rnd_bits, 1, 64)
        self.tile_bits = check_int(name, "tile_bits", tile_bits, 0, 16)
        self.read_regs = check_int(name, "read_regs", read_regs, 0, 4)
        self.registered = frozenset(registered) & {1, 2, 3}
        if set(registered) - set(range(1, 10)):
            raise ValueError(f"{name}: registered is {sorted(registered)}; allowed: EW stages 1..9")
        cw = self.mult_bits + self.bias_bits + self.theta_bits
        row = unsigned(self.slots * self.slot_bits)
        super().__init__({
            "rd_sa": In(row), "rd_sb": In(row), "rd_ia": In(signed(self.int_bits)), "rd_ib": In(signed(self.int_bits)),
            "word": In(cw), "tile": In(self.tile_bits), "a_int": In(1), "b_int": In(1),
            "mask": In(1), "red": In(1), "first_n": In(1), "rq": In(1), "out": In(1), "rnd": In(self.rnd_bits),
            "opa": Out(signed(self.operand_bits)), "opb": Out(signed(self.b_bits)), "theta": Out(self.theta_bits),
            "opnd": Out(signed(self.operand_bits)), "mult": Out(signed(self.mult_bits)),
            "addend": Out(signed(self.addend_bits)),
        })

    def _masked(self, a, b):
        """The mask pass's operand: ``a & b``."""
        return a & b

    def elaborate(self, platform):
        m = Module()
        S, sb, mb, bb = self.slots, self.slot_bits, self.mult_bits, self.bias_bits
        cw = mb + bb + self.theta_bits

        def put(k, stmts):
            if k in self.registered:
                m.d.sync += stmts
            else:
                m.d.comb += stmts

        def carry(name, value, shape):
            for k in range(self.read_regs):
                nxt = Signal(shape, name=f"{name}_d{k}_", reset_less=True)
                m.d.sync += nxt.eq(value)
                value = nxt
            return value

        # Stage 1: the memory words as read (the fast build registers them once more first:
        # a block RAM column can be far from the lanes it feeds).
        word = carry("ew_cword", self.word, cw)
        rd_sa = carry("ew_rdsa", self.rd_sa, S * sb)
        rd_sb = carry("ew_rdsb", self.rd_sb, S * sb)
        rd_ia = carry("ew_rdia", self.rd_ia, signed(self.int_bits))
        rd_ib = carry("ew_rdib", self.rd_ib, signed(self.int_bits))
        raw_sa = Signal(unsigned(S * sb), name="ew_rsa", reset_less=True)
        raw_sb = Signal(unsigned(S * sb), name="ew_rsb", reset_less=True)
        raw_ia = Signal(signed(self.int_bits), name="ew_ria", reset_less=True)
        raw_ib = Signal(signed(self.int_bits), name="ew_rib", reset_less=True)
        mult1 = Signal(signed(mb), name="ew_mult", reset_less=True)
        bias1 = Signal(signed(bb), name="ew_bias", reset_less=True)
        theta1 = Signal(self.theta_bits, name="ew_theta", reset_less=True)
        put(1, [raw_sa.eq(rd_sa), raw_sb.eq(rd_sb), raw_ia.eq(rd_ia), raw_ib.eq(rd_ib),
                mult1.eq(word[:mb].as_signed()), bias1.eq(word[mb:mb + bb].as_signed()),
                theta1.eq(word[mb + bb:cw])])
        # Stage 2: operand lanes (the tile's spike slot, or the integer lane).
        # (lane data: no reset, the valid bits travel in the element control)
        opa = Signal(signed(self.operand_bits), name="ew_a", reset_less=True)
        opb = Signal(signed(self.b_bits), name="ew_b", reset_less=True)
        mult2_ = Signal(signed(mb), name="ew_mult1d", reset_less=True)
        bias2_ = Signal(signed(bb), name="ew_bias1d", reset_less=True)
        sel_a = Array(raw_sa[s * sb:(s + 1) * sb] for s in range(S))[self.tile]
        sel_b = Array(raw_sb[s * sb:(s + 1) * sb] for s in range(S))[self.tile]
        put(2, [opa.eq(Mux(self.a_int, raw_ia, sel_a)), opb.eq(Mux(self.b_int, raw_ib, sel_b)),
                mult2_.eq(mult1), bias2_.eq(bias1)])
        # Stage 3: RED running sum (the one-cycle loop of a reduction); the addend.
        opnd = Signal(signed(self.operand_bits), name="ew_opnd", reset_less=True)
        mult2 = Signal(signed(mb), name="ew_mult2_", reset_less=True)
        addend = Signal(signed(self.addend_bits), name="ew_addend", reset_less=True)
        cur = Mux(self.mask, self._masked(opa, opb), opa)
        total = Mux(self.first_n, 0, opnd) + cur
        put(3, [opnd.eq(Mux(self.red, total, opa)), mult2.eq(mult2_),
                addend.eq(Mux(self.rq, bias2_ + self.rnd, Mux(self.out, bias2_, 0)))])
        m.d.comb += [self.theta.eq(theta1), self.opa.eq(opa), self.opb.eq(opb), self.opnd.eq(opnd),
                     self.mult.eq(mult2), self.addend.eq(addend)]
        return m
