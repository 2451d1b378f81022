"""The requantization multiplier of the fast engine build: a signed product, registered twice.

Golden function: :func:`spikeforge.sim.golden.registered_product` (the product itself; the
unit delivers it :data:`LATENCY` cycles after its operands).

Both registers are the multiplier's own in the ECP5's sysDSP block when ``primitive`` is set:
``MULT18X18D`` with its input registers (A, B) and its output register (P) on ``CLK0``. In
fabric registers around a combinational DSP block, the route to the DSP column and back plus
the multiplier's own delay made one path of about 11.6 ns (the 32-lane ULX3S build's largest
class of failing paths at 100 MHz); inside the block the path is the multiplier alone, and the
routes to and from it are paths of their own. Without ``primitive`` (simulation, other
devices) the same two registers are fabric registers and synthesis picks the multiplier.
"""

from amaranth.hdl import ClockSignal, Const, Instance, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .timing import PRODUCT_LATENCY

__all__ = ["RegisteredProduct", "LATENCY", "DSP_OPERAND_BITS"]

#: Cycles from the operands to their product (a timing rule: :mod:`.timing`).
LATENCY = PRODUCT_LATENCY
#: Operand width of one ECP5 sysDSP multiplier (signed 18 x 18).
DSP_OPERAND_BITS = 18


class RegisteredProduct(wiring.Component):
    """``p = a * b`` (signed), :data:`LATENCY` cycles after ``a`` and ``b``; both registers
    load every cycle (no enable, no reset: the caller's valid flags travel beside them).

    ``primitive``: instantiate the ECP5 ``MULT18X18D`` with its registers (both operands at
    most :data:`DSP_OPERAND_BITS` bits); otherwise fabric registers around ``a * b``.
    """

    def __init__(self, a_bits, b_bits, *, primitive=False):
        for what, bits in (("a_bits", a_bits), ("b_bits", b_bits)):
            if not isinstance(bits, int) or bits < 1:
                raise ValueError(f"RegisteredProduct: {what} must be a positive integer, not {bits!r}")
            if primitive and bits > DSP_OPERAND_BITS:
                raise ValueError(f"RegisteredProduct: {what}={bits} does not fit the ECP5 multiplier "
                                 f"(at most {DSP_OPERAND_BITS} bits with primitive=True)")
        self.a_bits, self.b_bits, self.primitive = a_bits, b_bits, primitive
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)),
                          "p": Out(signed(a_bits + b_bits))})

    def cost(self):
        """Analytic cost: latency in cycles, DSP blocks, and fabric flip-flops."""
        if self.primitive:
            return {"cycles": LATENCY, "dsp": 1, "ff": 0}
        return {"cycles": LATENCY, "dsp": None, "ff": 2 * (self.a_bits + self.b_bits)}

    def elaborate(self, platform):
        m = Module()
        if not self.primitive:
            a_r = Signal(signed(self.a_bits), reset_less=True)
            b_r = Signal(signed(self.b_bits), reset_less=True)
            p_r = Signal(signed(self.a_bits + self.b_bits), reset_less=True)
            m.d.sync += [a_r.eq(self.a), b_r.eq(self.b), p_r.eq(a_r * b_r)]
            m.d.comb += self.p.eq(p_r)
            return m
        n = DSP_OPERAND_BITS
        a = Signal(signed(n))
        b = Signal(signed(n))
        p = Signal(2 * n)
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(p[:len(self.p)])]  # sign-extended
        ports = {f"i_A{i}": a[i] for i in range(n)}
        ports.update({f"i_B{i}": b[i] for i in range(n)})
        ports.update({f"i_C{i}": Const(0) for i in range(n)})
        ports.update({f"o_P{i}": p[i] for i in range(2 * n)})
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
            p_REG_INPUTA_RST="RST0", p_REG_INPUTB_RST="RST0", p_REG_OUTPUT_RST="RST0",
            p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
            p_GSR="DISABLED", p_RESETMODE="SYNC",
            i_SIGNEDA=Const(1), i_SIGNEDB=Const(1), i_SOURCEA=Const(0), i_SOURCEB=Const(0),
            i_CLK0=ClockSignal(), i_CE0=Const(1), i_RST0=Const(0),
            **{f"i_{pin}": Const(0) for pin in ("CLK1", "CLK2", "CLK3", "CE1", "CE2", "CE3",
                                                 "RST1", "RST2", "RST3")},
            **ports)
        return m
