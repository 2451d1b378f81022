"""SDRAM controller for the ULX3S's 32 MB SDR SDRAM: init, auto refresh, sequential reads and
writes of N words from a linear address, read data on a stream with backpressure.

The timing comes from :mod:`.sdram_timing` (the part's datasheet values in ns, converted at the
clock), the same definition the cycle-accurate model (:mod:`spikeforge.sim.sdram_model`) checks
against; :func:`.sdram_timing.read_cycles` and :func:`.sdram_timing.sequential_bandwidth` are
its cost model. State machine and figures: docs/sdram.md.
"""

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_choice, check_int, field_bits
from .sdram_timing import ULX3S_SDRAM, SdramPart, read_cycles, sequential_bandwidth, split_address

__all__ = ["SdramController", "pins_signature", "request_layout", "word_layout",
           "read_cycles", "sequential_bandwidth", "split_address"]

# (cs_n, ras_n, cas_n, we_n) as the datasheet's truth table
_NOP, _ACT, _READ, _WRITE, _PRE, _REF, _MRS = (
    0b0111, 0b0011, 0b0101, 0b0100, 0b0010, 0b0001, 0b0000)


def pins_signature(part):
    """The part's pins at datasheet levels (``*_n`` active low); ``dq`` split into output,
    output enable and input. A board top binds them to amaranth-boards' ``sdram`` resource
    (whose ``cs``/``ras``/``cas``/``we`` are active high: ``PinsN``)."""
    return wiring.Signature({
        "clk_en": Out(1), "cs_n": Out(1), "ras_n": Out(1, init=1), "cas_n": Out(1, init=1),
        "we_n": Out(1, init=1),
        "ba": Out(field_bits(part.banks)), "a": Out(13), "dqm": Out(part.data_bits // 8),
        "dq_o": Out(part.data_bits), "dq_oe": Out(1), "dq_i": In(part.data_bits),
    })


def request_layout(part, max_count):
    """A request: ``count`` words (0 does nothing) from word address ``addr``; ``write``: the
    words come from the ``w`` stream, else they go out on ``r``."""
    return data.StructLayout({"addr": unsigned(part.address_bits),
                              "count": unsigned(max_count.bit_length()), "write": 1})


def word_layout(part):
    """A word read: its ``data``; ``last``, the request's final word."""
    return data.StructLayout({"data": unsigned(part.data_bits), "last": 1})


class SdramController(wiring.Component):
    """One row open at a time, mode register burst length 1, a READ or WRITE every cycle
    within a row.

    Parameters
    ----------
    clk_hz : int
        Clock rate; the datasheet's ns are rounded up to its cycles.
    cas_latency : int
        2 or 3 (2 allowed up to the part's ``cl2_max_hz``).
    max_count : int
        Largest ``count`` of a request.
    fifo_depth : int
        Read FIFO entries; a READ is issued only when the FIFO has room for it and every READ in
        flight, so backpressure never loses a word. ``>= cas_latency + 3`` keeps one word per
        cycle when the consumer is always ready.
    part : SdramPart
        The part (default: the ULX3S's).

    Members
    -------
    req : ``In(stream.Signature(request_layout(...)))``
        Requests; taken when the previous one has issued all its commands.
    r : ``Out(stream.Signature(word_layout(part)))``
        Read words in address order.
    w : ``In(stream.Signature(unsigned(16)))``
        Write words, one per word of a write request.
    sdram : ``Out(pins_signature(part))``
        The part's pins (registered outputs).
    init_done : ``Out(1)``
        The init sequence has finished.
    """

    def __init__(self, *, clk_hz, cas_latency=2, max_count=1 << 16, fifo_depth=8, io_delay=0,
                 part=ULX3S_SDRAM):
        name = type(self).__name__
        if not isinstance(part, SdramPart):
            raise TypeError(f"{name}: part must be an SdramPart, not {part!r}")
        check_choice(name, "cas_latency", cas_latency, (2, 3))
        self.clk_hz = check_int(name, "clk_hz", clk_hz, 1_000_000, 200_000_000)
        self.part = part
        self.timing = part.timing(clk_hz, cas_latency)
        self.max_count = check_int(name, "max_count", max_count, 1, part.words)
        self.io_delay = check_int(name, "io_delay", io_delay, 0, 4)
        self.fifo_depth = check_int(name, "fifo_depth", fifo_depth, cas_latency + 3, 256)
        if self.timing.refresh_every < 1:
            raise ValueError(f"{name}: clk_hz is {clk_hz}; allowed: a clock at which the refresh "
                             f"interval ({self.timing.refi} cycles) exceeds the controller's "
                             f"refresh margin ({self.timing.refresh_margin} cycles)")
        super().__init__({
            "req": In(stream.Signature(request_layout(part, self.max_count))),
            "r": Out(stream.Signature(word_layout(part))),
            "w": In(stream.Signature(unsigned(part.data_bits))),
            "sdram": Out(pins_signature(part)),
            "init_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        t = self.timing
        part = self.part
        pins = self.sdram
        cl = t.cl

        # -- cycles since each command (saturating); a rule holds when since_x >= t_x ---------
        cap = max(t.rc, t.rfc, t.ras, t.wr, t.rp, t.mrd, cl + 1, t.rcd) + 1
        since = {k: Signal(range(cap + 1), name=f"since_{k}", init=cap)
                 for k in ("act", "pre", "ref", "mrs", "wr", "rd")}
        issued = {k: Signal(name=f"issue_{k}") for k in since}
        for k, cnt in since.items():
            with m.If(issued[k]):
                m.d.sync += cnt.eq(1)
            with m.Elif(cnt != cap):
                m.d.sync += cnt.eq(cnt + 1)

        ref_count = Signal(range(t.refi + 2))       # cycles since the last AUTO REFRESH
        with m.If(issued["ref"]):
            m.d.sync += ref_count.eq(1)
        with m.Elif(ref_count != t.refi + 1):
            m.d.sync += ref_count.eq(ref_count + 1)
        refresh_due = Signal()
        m.d.comb += refresh_due.eq(self.init_done & (ref_count >= t.refresh_every))

        # -- the pins: registered; NOP unless a state issues a command ------------------------
        cmd = Signal(4, init=_NOP)
        m.d.comb += pins.clk_en.eq(1)
        m.d.sync += [Cat(pins.we_n, pins.cas_n, pins.ras_n, pins.cs_n).eq(cmd), pins.dq_oe.eq(0)]
        m.d.comb += pins.dqm.eq(0)

        def issue(code, kind, ba=0, a=0):
            m.d.comb += [cmd.eq(code), issued[kind].eq(1)]
            m.d.sync += [pins.ba.eq(ba), pins.a.eq(a)]

        # -- the request being served ---------------------------------------------------------
        addr = Signal(part.address_bits)
        left = Signal(range(self.max_count + 1))
        writing = Signal()
        col_bits = (part.columns - 1).bit_length()
        bank_bits = field_bits(part.banks)
        col = addr[:col_bits]
        bank = addr[col_bits:col_bits + bank_bits]
        row = addr[col_bits + bank_bits:]
        open_bank = Signal(bank_bits)
        open_row = Signal(len(row))

        def accept():
            m.d.comb += self.req.ready.eq(1)
            with m.If(self.req.valid):
                m.d.sync += [addr.eq(self.req.payload.addr), left.eq(self.req.payload.count),
                             writing.eq(self.req.payload.write)]

        def next_word():        # a word issued; with the request's last, take the next one
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
            with m.If(left == 1):
                accept()        # (its assignments come later, so they win)

        # -- read data: CAS latency + the input register, then the FIFO -----------------------
        m.submodules.fifo = rfifo = fifo.SyncFIFO(width=part.data_bits + 1, depth=self.fifo_depth)
        lat = cl + 2 + self.io_delay
        rd_pipe = Signal(lat)       # bit k: a READ decided k cycles ago
        last_pipe = Signal(lat)
        read_last = Signal()
        dq_in = Signal(part.data_bits)
        m.d.sync += [rd_pipe.eq(Cat(issued["rd"], rd_pipe[:-1])),
                     last_pipe.eq(Cat(read_last, last_pipe[:-1])), dq_in.eq(pins.dq_i)]
        m.d.comb += [rfifo.w_en.eq(rd_pipe[-1]), rfifo.w_data.eq(Cat(dq_in, last_pipe[-1]))]
        in_flight = sum(rd_pipe[k] for k in range(lat))
        credit = Signal()
        m.d.comb += credit.eq(rfifo.level + in_flight < self.fifo_depth)
        m.d.comb += [self.r.payload.eq(rfifo.r_data), self.r.valid.eq(rfifo.r_rdy),
                     rfifo.r_en.eq(self.r.ready)]

        power = Signal(range(t.power_up + 1))
        init_refs = Signal()
        with m.FSM(name="sdram"):
            with m.State("POWER_UP"):       # NOP for the datasheet's power-up time
                m.d.sync += power.eq(power + 1)
                with m.If(power >= t.power_up - 2):   # PRECHARGE ALL on the pins at power_up
                    m.next = "INIT_PRE"
            with m.State("INIT_PRE"):
                issue(_PRE, "pre", a=1 << 10)
                m.next = "INIT_REF"
            with m.State("INIT_REF"):       # two AUTO REFRESH
                with m.If((since["pre"] >= t.rp) & (since["ref"] >= t.rfc)):
                    issue(_REF, "ref")
                    m.d.sync += init_refs.eq(1)
                    with m.If(init_refs):
                        m.next = "INIT_MRS"
            with m.State("INIT_MRS"):       # burst length 1, sequential, CAS latency cl
                with m.If(since["ref"] >= t.rfc):
                    issue(_MRS, "mrs", a=cl << 4)
                    m.d.sync += self.init_done.eq(1)
                    m.next = "IDLE"
            with m.State("IDLE"):           # every bank closed
                ready = (since["pre"] >= t.rp) & (since["ref"] >= t.rfc) & (since["mrs"] >= t.mrd)
                with m.If(refresh_due):
                    with m.If(ready):
                        issue(_REF, "ref")
                with m.Elif(left != 0):
                    with m.If(ready & (since["act"] >= t.rc)):
                        issue(_ACT, "act", ba=bank, a=row)
                        m.d.sync += [open_bank.eq(bank), open_row.eq(row)]
                        m.next = "OPEN"
                with m.Else():
                    accept()
            with m.State("OPEN"):           # row open_row of bank open_bank
                can_pre = (since["act"] >= t.ras) & (since["wr"] >= t.wr)
                with m.If(refresh_due | ((left != 0) & ((bank != open_bank) | (row != open_row)))):
                    with m.If(can_pre):
                        issue(_PRE, "pre", ba=open_bank)
                        m.next = "IDLE"
                with m.Elif(left != 0):
                    with m.If(since["act"] >= t.rcd):
                        with m.If(writing):
                            with m.If(since["rd"] >= cl + 1):   # read data off the bus
                                m.d.comb += self.w.ready.eq(1)
                                with m.If(self.w.valid):
                                    issue(_WRITE, "wr", ba=bank, a=col)
                                    m.d.sync += [pins.dq_o.eq(self.w.payload), pins.dq_oe.eq(1)]
                                    next_word()
                        with m.Elif(credit):
                            issue(_READ, "rd", ba=bank, a=col)
                            m.d.comb += read_last.eq(left == 1)
                            next_word()
                with m.Else():
                    accept()
        return m
