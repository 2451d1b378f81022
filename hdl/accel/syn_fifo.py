"""The SYN pipeline's row FIFO (docs/accelerator.md, "Pipelines"): the fetched rows between the
row read and the scan stage, and the credits that keep the generator from overfilling it."""

from amaranth.hdl import Module, Mux, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..params import check_int

__all__ = ["RowFifo", "row_layout"]


def row_layout(row_bits, va_bits, wb_bits, rest_bits):
    """A fetched row: its ``bits`` (spikes channel-major, or the image's pixels), the V row
    address ``va``, the weight pointer ``wb``, ``last`` (the position's last in-grid row),
    ``single`` (at most one bit set) and ``rest`` (the bits less the lowest set one: the fast
    build's scan stage; 0 bits wide in the compact build)."""
    return data.StructLayout({"bits": unsigned(row_bits), "va": unsigned(va_bits), "wb": unsigned(wb_bits),
                              "last": 1, "single": 1, "rest": unsigned(rest_bits)})


class RowFifo(wiring.Component):
    """A circular buffer of ``depth`` rows of ``layout`` (:func:`row_layout`), with credits.

    Members
    -------
    issue : ``In(1)``
        A row read is issued: it takes a credit (only while ``credits < depth``).
    push, row : ``In``
        The row read arrives: ``row`` is written at ``wr_ptr`` (one push per issue, in order).
    pop : ``In(1)``
        The head (``slots[rd_ptr]``) is taken (only while ``count > 0``): it frees its slot and
        its credit.
    clear : ``In(1)``
        Empty the buffer and return every credit (the pass is not running; no read in flight).
    slots : ``Out(ArrayLayout(layout, depth))``
        The rows; the head is ``slots[rd_ptr]`` (the scan stage reads it with its own
        multiplexer).
    count, credits, rd_ptr, wr_ptr : ``Out``
        Rows in the buffer; rows in the buffer and reads in flight; the head's and the next
        push's slots.

    The credits cover the round trip from the issue to the pop being seen, so the generator
    never waits for the scan stage's decision of the same cycle (``depth``: the build's
    ``syn_fifo_rows``).
    """

    def __init__(self, layout, depth):
        self.layout = layout
        self.depth = check_int("RowFifo", "depth", depth, 1, 64)
        super().__init__({
            "issue": In(1), "push": In(1), "row": In(self.layout), "pop": In(1), "clear": In(1),
            "slots": Out(data.ArrayLayout(self.layout, self.depth)),
            "count": Out(range(self.depth + 1)), "credits": Out(range(self.depth + 1)),
            "rd_ptr": Out(range(self.depth)), "wr_ptr": Out(range(self.depth)),
        })

    def elaborate(self, platform):
        m = Module()
        n = self.depth
        push, pop, wr_ptr, rd_ptr = self.push, self.pop, self.wr_ptr, self.rd_ptr
        # (circular buffer: a pop moves a pointer, not the rows)
        with m.If(push):
            for i in range(n):
                with m.If(wr_ptr == i):
                    m.d.sync += self.slots[i].eq(self.row)
            m.d.sync += wr_ptr.eq(Mux(wr_ptr == n - 1, 0, wr_ptr + 1))
        with m.If(pop):
            m.d.sync += rd_ptr.eq(Mux(rd_ptr == n - 1, 0, rd_ptr + 1))
        m.d.sync += [self.count.eq(self.count + push - pop), self.credits.eq(self.credits + self.issue - pop)]
        with m.If(self.clear):
            m.d.sync += [self.count.eq(0), self.credits.eq(0), wr_ptr.eq(0), rd_ptr.eq(0)]
        return m
