"""Control registers copied per lane group, and the per-pass constants (docs/accelerator.md).

With many lanes, a control register that every lane reads would drive hundreds of LUTs spread
over the die. The fast build gives each group of :data:`.plan.LANES_PER_COPY` lanes its own
copy of such a register; synthesis must not merge the copies back into one (they have the
same input), so each copy carries the signal attribute :data:`COPY_ATTR`, which the board
flow turns into Yosys's ``keep`` on the registers that drive it (boards/build.py,
``KEEP_COPIES``). Their names end in :data:`COPY_MARK` and a group number, for people reading
a netlist.

:class:`LaneCopies` holds what one elaboration of the engine shares between its stages (the
module, the copies of pass constants made so far, the pass counter decoded one-hot): a new
one per elaboration, so that elaborating twice builds the same design.
"""

from amaranth.hdl import Cat, Const, Shape, Signal, Value, signed, unsigned

from .plan import LANES_PER_COPY
from .timing import build_of

__all__ = ["COPY_ATTR", "COPY_MARK", "LaneCopies", "lane", "copy_regs", "copy_signal"]

#: The attribute (value 1) of every such copy: synthesis keeps the copies apart
#: (boards/build.py), where it would otherwise merge registers with the same input into one.
COPY_ATTR = "spikeforge_copy"
#: Part of the name of every copy (for reading a netlist; the flow matches the attribute).
COPY_MARK = "__rep"


def copy_signal(shape, name, **kwargs):
    """A signal that is a copy of a register: named with :data:`COPY_MARK`, marked with
    :data:`COPY_ATTR` (``name`` already carries the mark and the copy's number)."""
    return Signal(shape, name=name, attrs={COPY_ATTR: 1}, **kwargs)


def copy_regs(name, shape, lanes, per_copy):
    """One register per group of ``per_copy`` lanes (one register, with a reset, when that is
    every lane); returns (registers, the register of each lane). The caller assigns every
    register the same value."""
    if per_copy >= lanes:
        reg = Signal(shape, name=name)
        return [reg], [reg] * lanes
    # No reset on the copies (their sources have one; they follow a cycle later), so the
    # reset net does not reach every lane group.
    regs = [copy_signal(shape, f"{name}{COPY_MARK}{g}", reset_less=True) for g in range(-(-lanes // per_copy))]
    return regs, [regs[ln // per_copy] for ln in range(lanes)]


def lane(word, i, width):
    """Lane ``i`` of a packed memory word, signed."""
    return word[i * width:(i + 1) * width].as_signed()


class LaneCopies:
    """Per-lane-group copies of control registers in module ``m`` for the engine of ``plan``
    (copies only in the fast build with more than :data:`LANES_PER_COPY` lanes), and the
    per-pass constants decoded from the pass counter ``pc``."""

    def __init__(self, m, plan, pc):
        self.m, self.plan, self.pc = m, plan, pc
        self.P = plan.prog.lanes
        self.spread_on = build_of(plan.prog).lane_copies and self.P > LANES_PER_COPY
        self._spread_cache = {}
        self._pc_onehot = None

    @property
    def per_copy(self):
        """Lanes per copy: :data:`LANES_PER_COPY` in the fast build, else every lane."""
        return LANES_PER_COPY if self.spread_on else self.P

    def copy_regs(self, name, shape):
        """One register per group of :data:`LANES_PER_COPY` lanes in the fast build, one
        register otherwise (:func:`copy_regs`)."""
        return copy_regs(name, shape, self.P, self.per_copy)

    def addr_regs(self, name, addrs, expr):
        """Drive a memory port's addresses (one per part, :func:`.memories.bram_ports`: a lane
        group, or a lane) from registers that take ``expr``: the address pins of a part's
        memory see that part's register alone (copies, kept apart by synthesis). ``expr`` may
        be a list, one expression per part (each from that part's lane group's copies)."""
        m = self.m
        if len(addrs) == 1:
            regs = [Signal(len(addrs[0]), name=name)]
        else:
            regs = [copy_signal(len(addrs[0]), f"{name}{COPY_MARK}{g}", reset_less=True)
                    for g in range(len(addrs))]
        exprs = expr if isinstance(expr, list) else [expr] * len(regs)
        m.d.sync += [r.eq(e) for r, e in zip(regs, exprs, strict=True)]
        m.d.comb += [a.eq(r) for a, r in zip(addrs, regs, strict=True)]

    def flag_copy(self, name, flag):
        """In the fast build, a register of its own to be updated exactly like the 1-bit
        ``flag`` (the caller assigns it the same next value, computed from itself): a
        high-fanout control flag held next to each block of logic it controls, kept apart by
        synthesis. Otherwise ``flag`` itself."""
        if not self.spread_on:
            return flag
        return copy_signal(1, f"{name}{COPY_MARK}")

    def copies(self, name, expr, shape, en=None):
        """Per-lane views of a register that takes ``expr`` (when ``en``)."""
        m = self.m
        regs, lanes = self.copy_regs(name, shape)
        stmts = [r.eq(expr) for r in regs]
        if en is None:
            m.d.sync += stmts
        else:
            with m.If(en):
                m.d.sync += stmts
        return lanes

    def spread(self, name, value):
        """Per-lane views of a pass constant (a descriptor field, a flag): in the fast build a
        copy per lane group, one cycle late. Pass constants are valid from a pass's START
        cycle and hold one cycle past its last write, so the copies are exact for every stage
        from 2 on (the first element reaches stage 2 three cycles after START at the soonest)."""
        if isinstance(value, Const) or not self.spread_on:
            return [value] * self.P
        if name not in self._spread_cache:
            v = Value.cast(value)
            self._spread_cache[name] = self.copies(name, v, v.shape())
        return self._spread_cache[name]

    def lane_regs(self, name, views):
        """Per-lane registers taking per-lane ``views`` (of :meth:`spread` or :meth:`copies`)
        a cycle later, in the fast build: a register next to each lane for a value that fans
        out widely inside it (a shift amount, a mask). Exact for every stage from 3 on, by
        :meth:`spread`'s argument with one more cycle."""
        if not self.spread_on:
            return views
        regs = [copy_signal(Value.cast(v).shape(), f"{name}{COPY_MARK}l{ln}", reset_less=True)
                for ln, v in enumerate(views)]
        self.m.d.sync += [r.eq(v) for r, v in zip(regs, views, strict=True)]
        return regs

    def pass_const(self, name):
        """A per-pass constant of :meth:`.plan.EnginePlan._pass_consts` (exact, computed in
        Python): the pass counter decoded one-hot (registered), each bit an OR of the passes
        that set it (registered). Valid from the pass's START cycle on, like the descriptor."""
        m = self.m
        n = len(self.plan.pass_consts)
        if self._pc_onehot is None:
            self._pc_onehot = Signal(n, name="pc_onehot")
            m.d.sync += self._pc_onehot.eq(Cat(*(self.pc == i for i in range(n))))
        values, width, is_signed = self.plan.pass_const_shape(name)
        shape = signed(width) if is_signed else unsigned(width)
        if len(set(values)) == 1:  # the same in every pass: a constant
            return Const(values[0], shape)
        sig = Signal(shape, name=f"pc_{name}")
        bits = []
        for b in range(Shape.cast(shape).width):  # bit b: OR of the passes whose value has bit b set
            terms = [self._pc_onehot[i] for i, v in enumerate(values) if (v >> b) & 1]
            bits.append(Cat(*terms).any() if terms else Const(0, 1))
        m.d.sync += sig.eq(Cat(*bits))
        return sig
