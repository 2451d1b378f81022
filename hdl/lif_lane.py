"""Neuron lane: requantization (§5) then the LIF neuron (§6.1) and the multi-level spike (§6.2)
of one lane, with the layer's constants on a port.

The core of :class:`~.lif_array.LifArray` (every stage combinational, constants driven by
the unit's per-channel tables) and of the accelerator engine's EW lanes
(hdl/accel/ew_lanes.py: stages 4..9, registered as the build says, constants from the pass
descriptor): one piece of hardware, so LifArray's tests and bounded proof cover the lanes
the engine ships. Golden function: through the array, :func:`spikeforge.sim.golden.lif_array`.
"""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .accel.product import DSP_OPERAND_BITS, LATENCY, RegisteredProduct
from .params import check_bool, check_int

__all__ = ["LifLane", "STAGES", "const_layout"]

#: The lane's stages, in order; each may end in a register (``registered``).
STAGES = ("product", "sum", "shift", "sat", "pre")


def const_layout(*, z_bits, y_bits, shift_bits, leak_bits, ms_shift_bits, levels_bits):
    """The layer's constants (port ``k``): ``rq`` (requantize: the product and saturation are
    used; else ``a`` passes), ``shift``, the saturation bounds ``sat_lo``/``sat_hi`` and
    ``sat_mask`` (``sat_lo`` at ``z_bits``: ``sh`` fits iff ``sh & sat_mask`` is 0 or
    ``sat_mask``), ``leak``, ``soft`` (soft reset), ``ms_rnd`` (``2^(ms_shift-1)``, 0 for no
    shift), ``ms_shift`` and ``levels``."""
    return data.StructLayout({
        "rq": 1,
        "shift": unsigned(shift_bits),
        "sat_mask": signed(z_bits),
        "sat_lo": signed(y_bits),
        "sat_hi": signed(y_bits),
        "leak": unsigned(leak_bits),
        "soft": 1,
        "ms_rnd": unsigned(y_bits + 1),
        "ms_shift": unsigned(ms_shift_bits),
        "levels": unsigned(levels_bits),
    })


class LifLane(wiring.Component):
    """One lane: ``y = sat(((rq ? a * mult : a) + addend) >> shift)`` (saturated only with
    ``rq``), then the neuron on the membrane value ``v`` the caller keeps::

        v_leak = (first ? 0 : v) >> leak
        u = v_leak + y;  w = v_leak + (y - theta);  fire = w >= 0      (U >= theta)
        v_next = fire ? (soft ? w : 0) : u
        ms = clamp((y + ms_rnd) >> ms_shift, 0, levels)

    The lane runs every cycle with no flow control (the caller's valid flags travel beside
    it, as in :class:`~.accel.product.RegisteredProduct`); each input is read in the stage
    that uses it: ``a``, ``mult`` by ``product``; ``addend`` by ``sum``; ``theta`` by ``pre``;
    ``first`` and ``v`` by the neuron, which is combinational from the ``pre`` stage's
    outputs and ``v``. The constants ``k`` are a pass's (held while a pass runs).

    Parameters
    ----------
    a_bits, mult_bits, addend_bits, z_bits, y_bits, theta_bits, v_bits, w_bits, spike_bits : int
        Widths, derived by the caller from its value bounds: the operand, the multiplier,
        the addend (bias + rounding), the sum ``z`` (holds every value it takes), the
        saturated value ``y``, the threshold (unsigned), the membrane ``U``, ``U - theta``,
        the multi-level spike.
    shift_bits, leak_bits, ms_shift_bits, levels_bits : int
        Widths of the constants (:func:`const_layout`).
    registered : set of :data:`STAGES`
        The stages that end in a register.
    product_regs : 0 or :data:`~.accel.product.LATENCY`
        Registers of the multiplier itself (a :class:`RegisteredProduct`; ``a`` travels beside
        it), before the ``product`` stage's own.
    primitive : bool
        The multiplier as the ECP5 DSP block (with ``product_regs``; both operands at most
        :data:`~.accel.product.DSP_OPERAND_BITS` bits).

    Members
    -------
    a, mult, addend, theta, first, v : ``In``
    k : ``In(const_layout(...))``
    y : ``Out(signed(y_bits))``
        The saturated value after the ``sat`` stage.
    y_pre, fire, v_next, ms : ``Out``
        ``y`` after the ``pre`` stage (as the neuron sees it); the neuron's results.
    """

    def __init__(self, *, a_bits, mult_bits, addend_bits, z_bits, y_bits, theta_bits, v_bits, w_bits,
                 spike_bits, shift_bits, leak_bits, ms_shift_bits, levels_bits, registered=(), product_regs=0,
                 primitive=False):
        name = type(self).__name__
        for what, value, lo in (("a_bits", a_bits, 1), ("mult_bits", mult_bits, 2), ("addend_bits", addend_bits, 1),
                                ("z_bits", z_bits, 2), ("y_bits", y_bits, 2), ("theta_bits", theta_bits, 1),
                                ("v_bits", v_bits, 2), ("w_bits", w_bits, 2), ("spike_bits", spike_bits, 1),
                                ("shift_bits", shift_bits, 1), ("leak_bits", leak_bits, 1),
                                ("ms_shift_bits", ms_shift_bits, 1), ("levels_bits", levels_bits, 1)):
            setattr(self, what, check_int(name, what, value, lo, 64))
        self.registered = frozenset(registered)
        bad = sorted(self.registered - set(STAGES))
        if bad:
            raise ValueError(f"{name}: registered has {bad[0]!r}; allowed: a subset of {', '.join(STAGES)}")
        self.product_regs = check_int(name, "product_regs", product_regs, 0, LATENCY)
        if self.product_regs not in (0, LATENCY):
            raise ValueError(f"{name}: product_regs is {product_regs}; allowed: 0 or {LATENCY}")
        self.primitive = check_bool(name, "primitive", primitive)
        if primitive and (not self.product_regs or max(a_bits, mult_bits) > DSP_OPERAND_BITS):
            raise ValueError(f"{name}: primitive=True needs product_regs={LATENCY} and operands of at most "
                             f"{DSP_OPERAND_BITS} bits, not a_bits={a_bits}, mult_bits={mult_bits}")
        self.k_layout = const_layout(z_bits=z_bits, y_bits=y_bits, shift_bits=shift_bits, leak_bits=leak_bits,
                                     ms_shift_bits=ms_shift_bits, levels_bits=levels_bits)
        super().__init__({
            "a": In(signed(a_bits)), "mult": In(signed(mult_bits)), "addend": In(signed(addend_bits)),
            "theta": In(unsigned(theta_bits)), "first": In(1), "v": In(signed(v_bits)),
            "k": In(self.k_layout),
            "y": Out(signed(y_bits)), "y_pre": Out(signed(y_bits)), "fire": Out(1),
            "v_next": Out(signed(v_bits)), "ms": Out(unsigned(spike_bits)),
        })

    def latency(self, stage):
        """Cycles from ``a`` to the outputs of ``stage`` (:data:`STAGES`)."""
        upto = STAGES[:STAGES.index(stage) + 1]
        return self.product_regs + sum(s in self.registered for s in upto)

    def fires(self, w):
        """Whether the neuron fires, given ``w = U - theta``: ``U >= theta``."""
        return ~w[-1]

    def elaborate(self, platform):
        m = Module()
        k = self.k

        def stage(name, stmts):
            (m.d.sync if name in self.registered else m.d.comb).__iadd__(stmts)

        def sig(shape, name):  # lane data: no reset (the caller's valid flags travel beside it)
            return Signal(shape, name=name, reset_less=True)

        # product: a * mult at full width; a travels beside it (the sum passes it without rq)
        prod, raw = sig(signed(self.a_bits + self.mult_bits), "prod"), sig(signed(self.a_bits), "raw")
        if self.product_regs:
            m.submodules.mul = mul = RegisteredProduct(self.a_bits, self.mult_bits, primitive=self.primitive)
            raws = [sig(signed(self.a_bits), f"raw_d{j}") for j in range(self.product_regs)]
            m.d.comb += [mul.a.eq(self.a), mul.b.eq(self.mult)]
            m.d.sync += [d.eq(s) for d, s in zip(raws, [self.a] + raws[:-1])]
            stage("product", [prod.eq(mul.p), raw.eq(raws[-1])])
        else:
            stage("product", [prod.eq(self.a * self.mult), raw.eq(self.a)])
        # sum: + bias + rounding (requantization), or + the caller's addend
        z = sig(signed(self.z_bits), "z")
        stage("sum", z.eq(Mux(k.rq, prod, raw) + self.addend))
        # shift (arithmetic)
        sh = sig(signed(self.z_bits), "sh")
        stage("shift", sh.eq(z >> k.shift))
        # sat: sh fits iff its bits from the saturation width up are all equal
        y = sig(signed(self.y_bits), "y")
        hi_bits = sh & k.sat_mask
        fits = (hi_bits == 0) | (hi_bits == k.sat_mask)
        stage("sat", y.eq(Mux(~k.rq | fits, sh, Mux(sh[-1], k.sat_lo, k.sat_hi))))
        m.d.comb += self.y.eq(y)
        # pre: the neuron's operands (U - theta comes precomputed: the membrane loop is the
        # only logic between two membrane registers)
        ymt = sig(signed(max(self.y_bits, self.theta_bits + 1) + 1), "ymt")
        y_pre = sig(signed(self.y_bits), "y_pre")
        msp = sig(signed(self.y_bits + 2), "msp")
        stage("pre", [ymt.eq(y - self.theta), y_pre.eq(y), msp.eq(y + k.ms_rnd)])
        m.d.comb += self.y_pre.eq(y_pre)
        # neuron: leak, integrate, fire, reset; the multi-level spike
        v_leak = Mux(self.first, 0, self.v) >> k.leak
        u, w = Signal(signed(self.v_bits), name="u"), Signal(signed(self.w_bits), name="w")
        m.d.comb += [u.eq(v_leak + y_pre), w.eq(v_leak + ymt), self.fire.eq(self.fires(w)),
                     self.v_next.eq(Mux(self.fire, Mux(k.soft, w, 0), u))]
        msr = msp >> k.ms_shift
        m.d.comb += self.ms.eq(Mux(msr[-1], 0, Mux(msr > k.levels, k.levels, msr)))
        return m
