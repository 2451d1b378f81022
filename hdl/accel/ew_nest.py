"""The EW/RED pipeline's loop nest (stage 0, docs/accelerator.md "Pipelines"): tile, token and
time step, in the pass's order, with registered end flags."""

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int

__all__ = ["EwNest", "bound_layout"]

LEVELS = ("tile", "n", "t")


def bound_layout(width):
    """A level's bound: ``n1`` (iterations - 1), ``one`` (one iteration), ``two`` (two)."""
    return data.StructLayout({"n1": unsigned(width), "one": 1, "two": 1})


class EwNest(wiring.Component):
    """Three nested counters, ``tile`` outermost: an EW pass steps ``t`` innermost and ``n``
    in the middle, a RED pass ``n`` innermost and ``t`` in the middle. Every end flag is a
    register updated with its counter (``last``: at the last iteration; a last-but-one flag
    behind it), so the step conditions are ANDs of registers.

    Parameters
    ----------
    tile_bits, n_bits, t_bits : int
        The counters' widths (the plan's descriptor fields ``tiles``, ``N``, ``T``).

    Members
    -------
    run : ``In(1)``
        The pass runs. While low every counter holds 0 and every flag its start value (from
        ``bounds``), so ``bounds`` and ``red`` must be valid a cycle before ``run`` rises and
        held while it is high (the engine: pass constants and descriptor flags).
    step : ``In(1)``
        Issue the current element and advance (only while ``run``).
    red : ``In(1)``
        The RED order (``n`` innermost).
    bounds : ``In(StructLayout)``
        Per level (``tile``, ``n``, ``t``): :func:`bound_layout`.
    tile, n, t : ``Out``
        The element's coordinates.
    last_tile, last_n, last_t : ``Out(1)``
        Registered: the level is at its last iteration.
    s_in, s_mid, s_tile : ``Out(1)``
        The step advances the inner level (not at its last), restarts it and advances the
        middle one, or restarts both and advances ``tile`` (on the last element too).
    last_el : ``Out(1)``
        The element is the pass's last (every level at its last iteration).
    end : ``Out(1)``
        The step issues the pass's last element.
    """

    def __init__(self, *, tile_bits, n_bits, t_bits):
        name = type(self).__name__
        widths = {"tile": check_int(name, "tile_bits", tile_bits, 1, 32), "n": check_int(name, "n_bits", n_bits, 1, 32),
                  "t": check_int(name, "t_bits", t_bits, 1, 32)}
        self.widths = widths
        members = {
            "run": In(1), "step": In(1), "red": In(1),
            "bounds": In(data.StructLayout({k: bound_layout(widths[k]) for k in LEVELS})),
            **{k: Out(widths[k]) for k in LEVELS},
            **{f"last_{k}": Out(1) for k in LEVELS},
            "s_in": Out(1), "s_mid": Out(1), "s_tile": Out(1), "last_el": Out(1), "end": Out(1),
        }
        super().__init__(members)

    def _penultimate_after_step(self, count, n1):
        """The last-but-one flag's next value when ``count`` steps: ``count + 1 == n1 - 1``."""
        return count + 2 == n1

    def elaborate(self, platform):
        m = Module()
        red, bounds = self.red, self.bounds
        last_n, last_t, last_tile = self.last_n, self.last_t, self.last_tile
        issue = self.run & self.step
        init = ~self.run
        i_last = Mux(red, last_n, last_t)   # inner loop: t (EW), n (RED)
        m_last = Mux(red, last_t, last_n)   # middle loop: n (EW), t (RED)
        m.d.comb += [self.s_in.eq(issue & ~i_last), self.s_mid.eq(issue & i_last & ~m_last),
                     self.s_tile.eq(issue & i_last & m_last), self.last_el.eq(i_last & m_last & last_tile)]
        m.d.comb += self.end.eq(self.s_tile & last_tile)
        s_in, s_mid, s_tile = self.s_in, self.s_mid, self.s_tile

        def count(level, last, inc, rst):
            ctr, b = getattr(self, level), bounds[level]
            pen = Signal(name=f"pen_{level}")     # the counter is at its last-but-one iteration
            with m.If(init | rst):
                m.d.sync += [ctr.eq(0), last.eq(b.one), pen.eq(b.two)]
            with m.Elif(inc):
                m.d.sync += [ctr.eq(ctr + 1), last.eq(pen), pen.eq(self._penultimate_after_step(ctr, b.n1))]

        count("t", last_t, Mux(red, s_mid, s_in), Mux(red, s_tile, s_mid | s_tile))
        count("n", last_n, Mux(red, s_in, s_mid), Mux(red, s_mid | s_tile, s_tile))
        count("tile", last_tile, s_tile, 0)
        return m
