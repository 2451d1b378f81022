"""Window walk: the loop nest of a convolution pass (kernel taps inside output positions,
and any outer levels), with run-time bounds and registered end flags.

The core of the accelerator engine's SYN generator (hdl/accel/syn_front.py, levels
``kx, ky, tr, ox, oy, t``): the generator keeps its coordinate and address registers and
steps them with this core's per-level step conditions, so that the loop order and bounds are
one piece of hardware with a bounded proof of its own (tests/formal/unit_proofs.py,
``WindowWalkProof``). Golden order: :func:`walk_order`.
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .params import check_int

__all__ = ["WindowWalk", "walk_order"]


def walk_order(ns):
    """The counters' values, innermost level first, at each step of a walk whose level ``j``
    has ``ns[j]`` iterations (golden model of :class:`WindowWalk`)."""
    out = []
    idx = [0] * len(ns)
    total = 1
    for n in ns:
        total *= n
    for _ in range(total):
        out.append(tuple(idx))
        for j, n in enumerate(ns):
            idx[j] += 1
            if idx[j] < n:
                break
            idx[j] = 0
    return out


class WindowWalk(wiring.Component):
    """Nested counters, innermost first; each ``step`` advances the innermost level, a level
    at its last iteration restarts and carries into the next.

    Every end flag is a register updated with its counter (``last``: the level is at its last
    iteration; ``cum``: every level up to and including it is), so the step conditions are short
    functions of registers: no compare chain in front of the enables.

    Parameters
    ----------
    levels : sequence of (str, int)
        Each level's name and counter width in bits (>= 1), innermost first: the widths of
        the plan's descriptor fields (never typed by hand).

    Members
    -------
    run : ``In(1)``
        The walk is on. While low every counter holds 0 and every flag its start value (from
        ``bounds``), so ``bounds`` must be valid a cycle before ``run`` rises and held while
        it is high (the engine: pass constants, valid from the pass's START on).
    step : ``In(1)``
        Advance one iteration (only while ``run``).
    bounds : ``In(StructLayout)``
        Per level: ``n1`` (iterations - 1), ``one`` (a loop of one iteration), ``two`` (of
        two iterations).
    count : ``Out(StructLayout)``
        Per level, the counter.
    last, cum : ``Out(len(levels))``
        Registered end flags: level ``j`` at its last iteration; levels ``0..j`` all are.
    adv : ``Out(len(levels))``
        Level ``j`` is the one that steps on an advance (one-hot while ``run``; on the
        wrap the outermost, whose counter then passes its bound until ``run`` falls): an AND
        of registered flags.
    en : ``Out(len(levels))``
        ``~run``, or an advance reaching level ``j`` (``step`` and ``cum[j - 1]``): the
        enable of any register that changes with level ``j`` or a level above it.
    wrap : ``Out(1)``
        ``step`` at the walk's last iteration.
    """

    def __init__(self, levels):
        name = type(self).__name__
        levels = list(levels)
        if not levels:
            raise ValueError(f"{name}: levels is empty; allowed: at least one (name, width)")
        self.names = []
        for lv in levels:
            if not (isinstance(lv, tuple) and len(lv) == 2 and isinstance(lv[0], str)):
                raise TypeError(f"{name}: level {lv!r} is not a (name, width) pair; allowed: (str, int)")
            check_int(name, f"width of level {lv[0]}", lv[1], 1, 32)
            if lv[0] in self.names:
                raise ValueError(f"{name}: level name {lv[0]!r} repeats; allowed: distinct names")
            self.names.append(lv[0])
        self.widths = [w for _, w in levels]
        n = len(levels)
        bound = {nm: data.StructLayout({"n1": unsigned(w), "one": 1, "two": 1})
                 for nm, w in zip(self.names, self.widths)}
        self.bounds_layout = data.StructLayout(bound)
        self.count_layout = data.StructLayout({nm: unsigned(w) for nm, w in zip(self.names, self.widths)})
        super().__init__({
            "run": In(1), "step": In(1), "bounds": In(self.bounds_layout),
            "count": Out(self.count_layout), "last": Out(n), "cum": Out(n), "adv": Out(n),
            "en": Out(n), "wrap": Out(1),
        })

    def _penultimate_after_step(self, count, n1):
        """The level is at its last but one iteration once ``count`` has stepped."""
        return count + 2 == n1

    def elaborate(self, platform):
        m = Module()
        n = len(self.names)
        run, step = self.run, self.step
        bnd = [self.bounds[nm] for nm in self.names]
        counts = [Signal(w, name=nm) for nm, w in zip(self.names, self.widths)]
        lasts = [Signal(name=f"last_{nm}") for nm in self.names]
        cum = [Signal(name=f"cum_last{j}") for j in range(n)]
        nl = [Signal(name=f"next_last{j}") for j in range(n)]  # end flags after this cycle
        # pen[j]: level j is at its last but one iteration (registered like the end flags).
        pen = [Signal(name=f"pen_{nm}") for nm in self.names]
        for j in range(n):
            # When the walk advances, the levels below the stepping one restart (end flag: a
            # loop of one iteration), the stepping level moves on (its end flag is its
            # last-but-one flag), the levels above keep theirs.
            restart = ~run | (step & cum[j])
            stepping = step & ~cum[j] & (True if j == 0 else cum[j - 1])
            m.d.comb += nl[j].eq(Mux(restart, bnd[j].one, Mux(stepping, pen[j], lasts[j])))
            with m.If(restart):
                m.d.sync += pen[j].eq(bnd[j].two)
            with m.Elif(stepping):
                m.d.sync += pen[j].eq(self._penultimate_after_step(counts[j], bnd[j].n1))
        m.d.sync += [lasts[j].eq(nl[j]) for j in range(n)]
        m.d.sync += [cum[j].eq(Cat(*nl[:j + 1]).all()) for j in range(n)]
        # The level that steps: every level below at its end, this one not (the outermost
        # always, when every level below is at its end).
        adv = [(cum[j - 1] if j else Const(1)) & (~lasts[j] if j < n - 1 else Const(1)) for j in range(n)]
        en = [~run | step] + [~run | (step & cum[j]) for j in range(n - 1)]
        m.d.comb += [self.adv.eq(Cat(*adv)), self.en.eq(Cat(*en)), self.wrap.eq(step & cum[n - 1]),
                     self.last.eq(Cat(*lasts)), self.cum.eq(Cat(*cum))]
        for j in range(n):
            # Each counter: 0 while off, +1 when its level steps, 0 when a level above steps.
            nxt = Mux(en[j], Mux(~run, 0, Mux(adv[j], counts[j] + 1, 0)), counts[j])
            m.d.sync += counts[j].eq(nxt)
            m.d.comb += self.count[self.names[j]].eq(counts[j])
        return m
