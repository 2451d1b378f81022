"""The SYN pipeline's row fetch (docs/accelerator.md, "Pipelines"): from the generator's issue
of an in-grid row to the row's push into the row FIFO, with the row's tag and the flags the
scan stage reads."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..pack import pack
from ..params import check_int
from .lsb import lsb_combine, lsb_partials, popcount_flags
from .syn_fifo import row_layout

__all__ = ["SynFetch"]


class SynFetch(wiring.Component):
    """A fixed-latency pipeline: each issued row is pushed exactly ``latency`` cycles after its
    issue (``1 + read_regs + fetch_regs``: the timing rule ``Build.syn_row_latency``), in
    order, with the ``wb`` and ``last`` given at its issue, the ``va`` given ``va_delay``
    cycles after it and the ``data`` read ``1 + read_regs`` cycles after it. The generator's
    credits (the row FIFO's, ``Build.syn_fifo_rows``) cover this latency.

    Parameters
    ----------
    row_bits, va_bits, wb_bits : int
        The row's width and its tag's fields (the plan's).
    read_regs : 0 or 2
        Registers between the issue and the row's read (``Build.syn_read_regs``): 0, the row
        is read in the issue's cycle; 2, the address is registered next to the generator and
        again per lane group.
    fetch_regs : 0 or 2
        Registers between the read and the push (``Build.syn_fetch_regs``): 0, the memory
        output goes into the FIFO with its single flag; 2, the row is registered next to the
        memories, then with the first half of its less-lowest-bit split (``rest``, pushed too).

    Members
    -------
    issue, wb, last : ``In``
        A row read is issued, with its weight pointer and its position-last flag.
    va : ``In(va_bits)``
        The issued row's V row address, ``va_delay`` cycles after the issue (0 or 1: the
        generator's V row address register follows the tap by ``min(read_regs, 1)`` cycles).
    data : ``In(row_bits)``
        The row as read, ``1 + read_regs`` cycles after its issue.
    push, row : ``Out``
        The row (:func:`.syn_fifo.row_layout`: bits, tag, at most one bit ``single``, with
        ``fetch_regs`` the bits less the lowest one ``rest``) enters the FIFO.
    busy : ``Out(1)``
        A row is in flight: issued and not pushed, except in a second read cycle
        (``read_regs``), which the SYN pass's done rule need not see (a position's rows are
        issued before it ends).
    """

    def __init__(self, *, row_bits, va_bits, wb_bits, read_regs, fetch_regs):
        name = type(self).__name__
        self.row_bits = check_int(name, "row_bits", row_bits, 1, 4096)
        self.va_bits = check_int(name, "va_bits", va_bits, 0, 64)
        self.wb_bits = check_int(name, "wb_bits", wb_bits, 1, 64)
        self.read_regs = read_regs
        self.fetch_regs = fetch_regs
        if read_regs not in (0, 2):
            raise ValueError(f"{name}: read_regs is {read_regs!r}; allowed: 0 or 2")
        if fetch_regs not in (0, 2):
            raise ValueError(f"{name}: fetch_regs is {fetch_regs!r}; allowed: 0 or 2")
        self.latency = 1 + read_regs + fetch_regs
        self.va_delay = min(read_regs, 1)
        self.layout = row_layout(self.row_bits, self.va_bits, self.wb_bits, self.row_bits if fetch_regs else 0)
        super().__init__({"issue": In(1), "wb": In(self.wb_bits), "last": In(1), "va": In(self.va_bits),
                          "data": In(self.row_bits), "push": Out(1), "row": Out(self.layout), "busy": Out(1)})

    def _single(self, bits):
        """The compact build's single flag: at most one bit of ``bits`` set."""
        return ~popcount_flags(bits)[0]

    def elaborate(self, platform):
        m = Module()
        Rw, va_w, ww = self.row_bits, self.va_bits, self.wb_bits
        issue = self.issue
        infl = Signal()
        infl_wb = Signal(ww)
        infl_last = Signal()
        infl_va = Signal(va_w)
        m.d.sync += infl.eq(issue)
        with m.If(issue):
            m.d.sync += [infl_wb.eq(self.wb), infl_last.eq(self.last)]
            if not self.read_regs:
                m.d.sync += infl_va.eq(self.va)
        rd_on, rd_wb, rd_last, rd_va = infl, infl_wb, infl_last, infl_va
        if self.read_regs:
            # The issued row's flags wait for its read (read_regs cycles); its V row address
            # joins them a cycle after the issue.
            infl2, infl2_wb, infl2_last = Signal(name="infl2"), Signal(ww), Signal()
            rd_on, rd_wb, rd_last, rd_va = Signal(name="rd_on"), Signal(ww), Signal(), Signal(va_w)
            m.d.sync += [infl2.eq(infl), infl2_wb.eq(infl_wb), infl2_last.eq(infl_last),
                         infl_va.eq(self.va),
                         rd_on.eq(infl2), rd_wb.eq(infl2_wb), rd_last.eq(infl2_last), rd_va.eq(infl_va)]
        fetched = self.data
        if not self.fetch_regs:
            f_valid, f_bits, f_va, f_wb, f_last = rd_on, fetched, rd_va, rd_wb, rd_last
            fetching = []
            single = self._single(f_bits)
            rest = Const(0, 0)
        else:
            # Registered next to the memories that hold the bits (the block RAM output
            # multiplexers end there), then with the first half of the rest and the flag (per
            # 4 bits: the OR of the bits below each bit, whether any and whether two are set).
            f0 = (Signal(name="f0_valid"), Signal(Rw, name="f0_bits"), Signal(va_w, name="f0_va"),
                  Signal(ww, name="f0_wb"), Signal(name="f0_last"))
            m.d.sync += [r.eq(v) for r, v in zip(f0, (rd_on, fetched, rd_va, rd_wb, rd_last), strict=True)]
            f_valid, f_bits, f_va, f_wb, f_last = (Signal.like(r, name=r.name.replace("f0", "f1")) for r in f0)
            m.d.sync += [r.eq(v) for r, v in zip((f_valid, f_bits, f_va, f_wb, f_last), f0, strict=True)]
            fetching = [f0[0]]
            low, anys, twos = lsb_partials(f0[1])
            f1_low, f1_any, f1_two = Signal(len(low)), Signal(len(anys)), Signal(len(twos))
            m.d.sync += [f1_low.eq(low), f1_any.eq(anys), f1_two.eq(twos)]
            rest, two = lsb_combine(f_bits, f1_low, f1_any, f1_two)
            single = ~two
        m.d.comb += [self.push.eq(f_valid),
                     self.row.eq(pack(self.layout, {"bits": f_bits, "va": f_va, "wb": f_wb, "last": f_last,
                                                    "single": single, "rest": rest})),
                     self.busy.eq(Cat(infl, rd_on, *fetching, f_valid).any() if self.read_regs or fetching
                                  else infl)]
        return m
