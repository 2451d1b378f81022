"""The SYN pipeline's issue stage E (docs/accelerator.md, "Pipelines"): one (event, tile) per
cycle from each decoded item, to the accumulate stages."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SynIssue"]


class SynIssue(wiring.Component):
    """Holds one decoded item (:func:`.syn_decode.decoded_layout`) and issues its tiles
    ``tile .. tile_hi``, one a cycle, the weight and accumulator words stepping with the tile;
    an item without an event takes one cycle and issues nothing.

    Members
    -------
    i : ``In(stream.Signature(layout))``
        The decoded items (taken when the held one is in its last cycle, or none is held).
    blk : ``In(1)``
        The drain is busy and not in its last read: the position's last cycle (``row_end``,
        ``pos_last``, at the last tile) waits (the banks swap at a position's end).
    e : ``Out(layout)``, ``valid`` : ``Out(1)``
        The held item, its ``tile``, ``waddr``, ``word`` and ``at_last`` those of the tile
        being issued.
    issue : ``Out(1)``
        The held item's event is issued at its current tile in this cycle.
    first : ``Out(1)``
        The current tile is the item's first.
    event : ``Out(1)``
        An event is issued at its first tile (the event count's strobe).
    pos_end : ``Out(1)``
        The position's last cycle goes (its accumulation ends: banks swap, a drain starts).
    """

    def __init__(self, layout):
        if not isinstance(layout, data.StructLayout):
            raise TypeError(f"SynIssue: layout is {layout!r}; allowed: a decoded item's StructLayout")
        self.layout = layout
        super().__init__({"i": In(stream.Signature(layout)), "blk": In(1), "e": Out(layout), "valid": Out(1),
                          "issue": Out(1), "first": Out(1), "event": Out(1), "pos_end": Out(1)})

    def _next_at_last(self, e):
        """``at_last`` after a step of the tile."""
        return e.tile + 1 == e.tile_hi

    def elaborate(self, platform):
        m = Module()
        e, e_valid, e_first = self.e, self.valid, self.first
        e_final = e.row_end & e.pos_last & e.at_last   # the position's last cycle
        stall = Signal()           # a position can only end (swap banks) when the drain engine is free
        m.d.comb += stall.eq(e_valid & e_final & self.blk)
        e_go = e_valid & ~stall
        ev_issue = self.issue
        m.d.comb += [ev_issue.eq(e_go & e.ev), self.pos_end.eq(e_go & e_final),
                     self.i.ready.eq(~e_valid | (~stall & e.at_last))]
        take = self.i.valid & self.i.ready
        with m.If(take):
            m.d.sync += [e.eq(self.i.payload), e_valid.eq(1), e_first.eq(1)]
        with m.Elif(ev_issue & ~e.at_last):
            m.d.sync += [e.tile.eq(e.tile + 1), e.at_last.eq(self._next_at_last(e)), e_first.eq(0),
                         e.waddr.eq(e.waddr + 1), e.word.eq(e.word + 1)]
        with m.Elif(e_go & e.at_last):
            m.d.sync += e_valid.eq(0)
        # Count events (once per event, at its first tile: the sequencer counts the strobe).
        m.d.comb += self.event.eq(ev_issue & e_first)
        return m
