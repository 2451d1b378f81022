"""The ULX3S SDRAM part, its datasheet timing as named values, and the controller's cost model.

One definition shared by the cycle-accurate model (:mod:`spikeforge.sim.sdram_model`), the
controller (:mod:`spikeforge.hdl.sdram`) and the analytic cost model below, so the three cannot
drift apart. Pure Python (layer 1). docs/sdram.md explains the values and the state machine.

The part: amaranth-boards' ``ULX3S_85F_Platform`` declares ``SDRAMResource(0, ...)`` with 13
address pins (``a``), 2 bank pins (``ba``), 16 data pins (``dq``) and 2 byte masks (``dqm``):
a 32 MB x16 SDR SDRAM, 4 banks x 8192 rows x 512 columns of 16-bit words. Boards carry an ISSI
IS42S16160G or an Alliance AS4C32M16SB (a 64 MB part with 1024 columns: with 9 column bits the
controller uses 512 of them, 32 MB). The timing values are the slower of the two parts' -7
speed grades, so one set is safe on either board.
"""

import math
from dataclasses import dataclass

__all__ = ["SdramPart", "SdramTiming", "ULX3S_SDRAM", "split_address", "read_schedule",
           "read_cycles", "sequential_bandwidth"]


@dataclass(frozen=True)
class SdramPart:
    """A x16 SDR SDRAM part: geometry and datasheet timing in nanoseconds (``*_ns``) or clock
    cycles (``*_ck``)."""
    name: str
    banks: int
    rows: int
    columns: int
    data_bits: int
    t_rcd_ns: float        # ACTIVE to READ/WRITE, same bank
    t_rp_ns: float         # PRECHARGE to ACTIVE/REFRESH
    t_ras_ns: float        # ACTIVE to PRECHARGE (minimum)
    t_ras_max_ns: float    # ACTIVE to PRECHARGE (maximum: a row may stay open this long)
    t_rc_ns: float         # ACTIVE to ACTIVE, same bank
    t_rfc_ns: float        # AUTO REFRESH to any command (refresh cycle time)
    t_wr_ns: float         # last write data to PRECHARGE (write recovery, tDPL) ...
    t_wr_min_ck: int       # ... and at least this many cycles
    t_rrd_ns: float        # ACTIVE to ACTIVE, different banks
    t_mrd_ck: int          # LOAD MODE REGISTER to any command, cycles
    t_power_up_ns: float   # stable clock with NOP/DESELECT before the first PRECHARGE ALL
    refreshes: int         # AUTO REFRESH commands ...
    refresh_period_ns: float  # ... per this period
    cl2_max_hz: float      # highest clock at CAS latency 2
    cl3_max_hz: float      # highest clock at CAS latency 3

    @property
    def words(self):
        return self.banks * self.rows * self.columns

    @property
    def address_bits(self):
        return (self.words - 1).bit_length()

    @property
    def t_refi_ns(self):
        """Average refresh interval: one AUTO REFRESH at least this often."""
        return self.refresh_period_ns / self.refreshes

    def timing(self, clk_hz, cas_latency):
        """The rules in cycles of a ``clk_hz`` clock (:class:`SdramTiming`)."""
        if not isinstance(clk_hz, (int, float)) or isinstance(clk_hz, bool) or not clk_hz > 0:
            raise ValueError(f"{self.name}: clk_hz is {clk_hz!r}; allowed: a clock rate > 0 Hz")
        if cas_latency not in (2, 3):
            raise ValueError(f"{self.name}: cas_latency is {cas_latency!r}; allowed: 2, 3")
        fmax = self.cl2_max_hz if cas_latency == 2 else self.cl3_max_hz
        if clk_hz > fmax:
            raise ValueError(f"{self.name}: clk_hz is {clk_hz:g} at CAS latency {cas_latency}; "
                             f"allowed: <= {fmax:g} Hz")

        def ck(ns):  # a minimum time: round up (a small tolerance absorbs float error)
            return max(1, math.ceil(ns * clk_hz / 1e9 - 1e-9))

        return SdramTiming(
            part=self, clk_hz=clk_hz, cl=cas_latency,
            rcd=ck(self.t_rcd_ns), rp=ck(self.t_rp_ns), ras=ck(self.t_ras_ns),
            ras_max=int(self.t_ras_max_ns * clk_hz / 1e9),
            rc=ck(self.t_rc_ns), rfc=ck(self.t_rfc_ns), wr=max(ck(self.t_wr_ns), self.t_wr_min_ck),
            rrd=ck(self.t_rrd_ns),
            mrd=self.t_mrd_ck, power_up=ck(self.t_power_up_ns),
            refi=int(self.t_refi_ns * clk_hz / 1e9))  # a maximum time: round down


#: The ULX3S's 32 MB SDRAM: geometry from amaranth-boards' pins, timing the slower of the
#: IS42S16160G-7 and AS4C32M16SB-7 datasheet values (tRCD/tRP 18 vs 15 ns -> 20 ns as LiteDRAM's
#: IS42S16160 module uses; tRAS 42 ns; tRC 63 ns; tRFC 70 ns; tWR 20 ns and
#: at least 2 cycles; tRRD 15 ns; tMRD 2 ck;
#: 200 us power-up; 8192 refreshes / 64 ms; CL2 up to 100 MHz, CL3 up to 133 MHz).
ULX3S_SDRAM = SdramPart(
    name="IS42S16160G-7/AS4C32M16SB-7 (ULX3S 32 MB)", banks=4, rows=8192, columns=512,
    data_bits=16, t_rcd_ns=20, t_rp_ns=20, t_ras_ns=42, t_ras_max_ns=100_000, t_rc_ns=63,
    t_rfc_ns=70, t_wr_ns=20, t_wr_min_ck=2, t_rrd_ns=15, t_mrd_ck=2, t_power_up_ns=200_000,
    refreshes=8192, refresh_period_ns=64e6, cl2_max_hz=100e6, cl3_max_hz=133e6)


@dataclass(frozen=True)
class SdramTiming:
    """The command rules in clock cycles: a command at cycle ``c2`` after one at ``c1`` needs
    ``c2 - c1 >= rule`` (``ras_max`` and ``refi`` are maxima)."""
    part: SdramPart
    clk_hz: float
    cl: int
    rcd: int
    rp: int
    ras: int
    ras_max: int
    rc: int
    rfc: int
    wr: int
    rrd: int
    mrd: int
    power_up: int
    refi: int

    @property
    def refresh_margin(self):
        """Cycles the controller needs, at worst, from a refresh request to the AUTO REFRESH:
        it waits for tRAS (or tWR after a write), precharges (tRP) and may have an ACTIVE or a
        refresh in flight (tRC/tRFC) before it sees the request; a few cycles of pipeline."""
        return self.ras + self.wr + self.rp + max(self.rc, self.rfc) + 4

    @property
    def refresh_every(self):
        """The controller's refresh timer: cycles from one AUTO REFRESH to the next request."""
        return self.refi - self.refresh_margin


def split_address(part, addr):
    """``(bank, row, column)`` of linear word address ``addr``. The layout is
    ``{row, bank, column}`` (column in the low bits): a long sequential read walks the columns
    of a row, then the same row of the next bank, so consecutive rows are in different banks."""
    col = addr % part.columns
    bank = (addr // part.columns) % part.banks
    row = addr // (part.columns * part.banks)
    return bank, row, col


def read_schedule(timing, addr, count, since_ref=0):
    """The controller's command schedule for reading ``count`` sequential words from ``addr``,
    the consumer always ready: a list of ``(cycle, command)``, cycle 0 the cycle the request is
    taken in the idle state (no row open, the last AUTO REFRESH ``since_ref`` cycles earlier,
    every other rule met). Commands: ``"ACT"``, ``"READ"``, ``"PRE"``, ``"REF"``; cycles are the
    controller's decision cycles (the pins show each one cycle later).

    Closed form per row segment, mirroring the state machine (hdl/sdram.py): ACTIVE (tRC after
    the previous one), tRCD, a READ per cycle to the row's end; PRECHARGE one cycle after the
    last READ (and tRAS after the ACTIVE), tRP. The refresh request rises ``refresh_every``
    cycles after an AUTO REFRESH; it ends the row at the next cycle (PRECHARGE after tRAS), then
    AUTO REFRESH after tRP, tRFC before the next ACTIVE.
    """
    t = timing
    cols = t.part.columns
    sched = []
    last_ref = -since_ref
    now = 1                      # the cycle after the request is taken
    last_act = -(1 << 30)
    a, left = addr, count
    while left:
        if now - last_ref >= t.refresh_every:            # IDLE: refresh first
            last_ref = now
            sched.append((now, "REF"))
            now += t.rfc
            continue
        act = max(now, last_act + t.rc, last_ref + t.rfc)
        if act - last_ref >= t.refresh_every:            # the request rose while waiting
            now = max(now, last_ref + t.refresh_every)
            continue
        sched.append((act, "ACT"))
        last_act = act
        first = act + t.rcd
        due = last_ref + t.refresh_every                 # first cycle the request is seen
        seg = max(0, min(left, cols - a % cols, due - first))
        sched.extend((first + k, "READ") for k in range(seg))
        left -= seg
        a += seg
        if left:                                         # row end or refresh: PRECHARGE
            pre = max(first + seg if seg else max(act + 1, due), act + t.ras)
            sched.append((pre, "PRE"))
            now = pre + t.rp
        # else: the row stays open after the request
    return sched


def read_cycles(timing, addr, count, since_ref=0, pipeline=2):
    """Cycles from the first command opportunity to the last word on the read stream:
    the last READ's cycle + CAS latency + ``pipeline`` (the controller's input register and
    FIFO) + 1."""
    reads = [c for c, cmd in read_schedule(timing, addr, count, since_ref) if cmd == "READ"]
    return reads[-1] + timing.cl + pipeline + 1 if reads else 0


def sequential_bandwidth(timing):
    """``(words_per_cycle, refresh_overhead)`` of a long sequential read, the consumer always
    ready. A row of ``columns`` words costs ``columns + rp + rcd`` cycles (one cycle of PRECHARGE
    + tRP + ACTIVE + tRCD replaces the READ slots: the row change loses ``rp + rcd`` slots, tRAS
    being shorter than a row); a refresh every ``refresh_every`` cycles loses ``rp + rfc + rcd``
    more (PRECHARGE, tRP, AUTO REFRESH, tRFC, ACTIVE, tRCD)."""
    cols = timing.part.columns
    row_cycles = cols + timing.rp + timing.rcd
    ref_loss = timing.rp + timing.rfc + timing.rcd
    refresh_overhead = ref_loss / timing.refresh_every
    return cols / row_cycles * (1 - refresh_overhead), refresh_overhead
