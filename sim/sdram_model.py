"""A cycle-accurate model of the ULX3S's SDR SDRAM (pure Python, layer 1).

:class:`SdramModel` executes the command bus one clock cycle at a time (:meth:`SdramModel.step`):
it holds the memory, returns read data CAS-latency cycles after the READ, and raises
:class:`SdramRuleError` (naming the rule, the cycle, the bank and the times) on any violation of
the part's command rules, from the datasheet values in :mod:`spikeforge.hdl.sdram_timing`:

- power-up: only NOP/DESELECT for ``power_up`` cycles; then PRECHARGE ALL, two AUTO REFRESH and
  LOAD MODE REGISTER (the refreshes and the mode load in either order) before any ACTIVE,
  READ or WRITE ("init sequence not done");
- tRCD (ACTIVE to READ/WRITE), tRAS min and max (ACTIVE to PRECHARGE), tRC (ACTIVE to ACTIVE,
  same bank), tRRD (ACTIVE to ACTIVE, other bank), tRP (PRECHARGE to ACTIVE/REFRESH), tWR (last
  write data to PRECHARGE), tRFC (AUTO REFRESH to any command), tMRD (LOAD MODE to any command);
- READ/WRITE need the bank's row open; ACTIVE needs the bank closed; AUTO REFRESH and LOAD MODE
  need every bank closed;
- the refresh interval: after the init sequence, an AUTO REFRESH at least every ``refi`` cycles
  (8192 per 64 ms, distributed; the model does not allow postponing);
- the data bus: the controller must not drive DQ in a cycle the part drives read data.

Commands are the (cs_n, ras_n, cas_n, we_n) encodings of the datasheet (:data:`COMMANDS`). Burst
lengths 1, 2, 4, 8 (sequential), interrupted by a new READ/WRITE or a PRECHARGE of the bank as
the datasheet says. Not modeled: auto-precharge (A10 on READ/WRITE raises), BURST TERMINATE,
read DQM, power-down and self refresh (CKE low raises).
"""

from dataclasses import dataclass

import numpy as np

from ..hdl.sdram_timing import SdramTiming

__all__ = ["SdramModel", "SdramRuleError", "COMMANDS", "encode", "decode"]

#: command name -> (cs_n, ras_n, cas_n, we_n)
COMMANDS = {
    "DESL": (1, 1, 1, 1), "NOP": (0, 1, 1, 1), "ACT": (0, 0, 1, 1), "READ": (0, 1, 0, 1),
    "WRITE": (0, 1, 0, 0), "BST": (0, 1, 1, 0), "PRE": (0, 0, 1, 0), "REF": (0, 0, 0, 1),
    "MRS": (0, 0, 0, 0),
}
_BY_CODE = {v[1:]: k for k, v in COMMANDS.items() if k != "DESL"}

NEVER = -(1 << 60)


def encode(name):
    """``(cs_n, ras_n, cas_n, we_n)`` of a command name."""
    return COMMANDS[name]


def decode(cs_n, ras_n, cas_n, we_n):
    """The command name of pin levels."""
    if cs_n:
        return "DESL"
    return _BY_CODE[(int(ras_n), int(cas_n), int(we_n))]


class SdramRuleError(AssertionError):
    """A command broke one of the part's rules; the message names the rule, the cycle, the bank
    and the times."""


@dataclass
class _Bank:
    row: int = None            # open row, or None
    act: int = NEVER           # cycle of the last ACTIVE
    pre: int = NEVER           # cycle of the last PRECHARGE
    write_end: int = NEVER     # cycle of the last write data word


class SdramModel:
    """The part, one clock cycle per :meth:`step`.

    Parameters
    ----------
    timing : SdramTiming
        The rules in cycles (``ULX3S_SDRAM.timing(clk_hz, cas_latency)``).
    skip_init : bool
        Start as if the init sequence were done (for hand-written tests of one rule).
    """

    def __init__(self, timing, *, skip_init=False):
        if not isinstance(timing, SdramTiming):
            raise TypeError(f"SdramModel: timing must be an SdramTiming, not {timing!r}")
        self.t = timing
        part = timing.part
        self.part = part
        self.mem = np.zeros(part.words, dtype=np.uint16)
        self.banks = [_Bank() for _ in range(part.banks)]
        self.cycle = 0
        self.last_act = NEVER          # any bank (tRRD)
        self.last_ref = NEVER          # for the refresh interval ...
        self.ref_busy = NEVER          # ... and for tRFC (skip_init: an interval from cycle 0)
        self.last_mrs = NEVER
        self.cl = timing.cl if skip_init else None
        self.burst = 1 if skip_init else None
        self.init = {"pre_all": skip_init, "refs": 2 if skip_init else 0, "mrs": skip_init}
        self.init_done_at = 0 if skip_init else None
        if skip_init:
            self.last_ref = 0
        self.read_out = {}             # cycle -> (bank, word) driven on DQ at that cycle
        self.write_burst = None        # (bank, row, col, start, length)
        self.read_burst = None         # (bank, start cycle, length)
        self.refreshes = []            # cycles of every AUTO REFRESH
        self.commands = {}             # name -> count
        self.issued = {}               # name -> cycles of that command

    # -- checks -------------------------------------------------------------------------------
    def _fail(self, rule, msg):
        raise SdramRuleError(f"SDRAM {rule} violated at cycle {self.cycle}: {msg}")

    def _need(self, rule, since, need, what, bank=None):
        gap = self.cycle - since
        if gap < need:
            where = f"bank {bank}: " if bank is not None else ""
            self._fail(rule, f"{where}{what} at cycle {since}, {gap} cycles ago; "
                             f"needs >= {need} cycles")

    @property
    def init_done(self):
        return self.init_done_at is not None

    # -- one cycle ----------------------------------------------------------------------------
    def step(self, cs_n=0, ras_n=1, cas_n=1, we_n=1, ba=0, a=0, dq=0, dq_oe=0, dqm=0, cke=1,
             cmd=None):
        """Execute the command on the pins this cycle (or ``cmd``, a name, with the pins for
        address and data); return the word the part drives on DQ this cycle, or ``None``."""
        name = cmd if cmd is not None else decode(cs_n, ras_n, cas_n, we_n)
        t = self.t
        if not cke:
            self._fail("CKE", "CKE low (power-down/self refresh) is not modeled")
        out = self.read_out.pop(self.cycle, None)
        if dq_oe and out is not None:
            self._fail("data bus", f"controller drives DQ while the part drives read data of "
                                   f"bank {out[0]} (READ CAS latency {self.cl} cycles earlier)")
        # the mode register and refresh block every command for tMRD / tRFC
        if name not in ("NOP", "DESL"):
            self._need("tMRD", self.last_mrs, t.mrd, "LOAD MODE")
            self._need("tRFC", self.ref_busy, t.rfc, "AUTO REFRESH")
            self.commands[name] = self.commands.get(name, 0) + 1
            self.issued.setdefault(name, []).append(self.cycle)
            if self.init_done_at is None and self.cycle < t.power_up:
                self._fail("power-up wait", f"{name} at cycle {self.cycle}; only NOP/DESELECT "
                                            f"for the first {t.power_up} cycles")
        if self.init_done and self.cycle - self.last_ref > t.refi:
            self._fail("refresh interval", f"last AUTO REFRESH at cycle {self.last_ref}, "
                                           f"{self.cycle - self.last_ref} cycles ago; "
                                           f"needs <= {t.refi} cycles")
        for b, bank in enumerate(self.banks):
            if bank.row is not None and self.cycle - bank.act > t.ras_max:
                self._fail("tRAS max", f"bank {b}: row {bank.row} open since cycle {bank.act}, "
                                       f"{self.cycle - bank.act} cycles; needs <= {t.ras_max}")
        getattr(self, "_" + name.lower())(int(ba), int(a), int(dq), int(dqm), bool(dq_oe))
        # a write burst in progress takes one word per cycle
        if self.write_burst is not None and name != "WRITE":
            self._burst_write_word(int(dq), int(dqm), bool(dq_oe))
        self.cycle += 1
        return None if out is None else out[1]

    # -- commands -----------------------------------------------------------------------------
    def _desl(self, *_):
        pass

    _nop = _desl

    def _bst(self, *_):
        self._fail("command", "BURST TERMINATE is not modeled")

    def _require_init(self, name):
        if not self.init_done:
            left = [k for k, done in (("PRECHARGE ALL", self.init["pre_all"]),
                                      ("2 AUTO REFRESH", self.init["refs"] >= 2),
                                      ("LOAD MODE", self.init["mrs"])) if not done]
            self._fail("init sequence", f"{name} before the init sequence is done "
                                        f"(missing: {', '.join(left)})")

    def _bank(self, ba):
        if not 0 <= ba < self.part.banks:
            self._fail("bank", f"bank {ba}; allowed: 0..{self.part.banks - 1}")
        return self.banks[ba]

    def _act(self, ba, a, *_):
        self._require_init("ACTIVE")
        bank = self._bank(ba)
        if bank.row is not None:
            self._fail("ACTIVE to an open bank", f"bank {ba}: row {bank.row} is open "
                                                 f"(ACTIVE at cycle {bank.act}); PRECHARGE first")
        if not 0 <= a < self.part.rows:
            self._fail("row", f"bank {ba}: row {a}; allowed: 0..{self.part.rows - 1}")
        self._need("tRP", bank.pre, self.t.rp, "PRECHARGE", ba)
        self._need("tRC", bank.act, self.t.rc, "ACTIVE", ba)
        for b, other in enumerate(self.banks):
            if b != ba and self.cycle - other.act < self.t.rrd:
                self._need("tRRD", other.act, self.t.rrd, f"ACTIVE of bank {b}", ba)
        bank.row, bank.act = a, self.cycle
        self.last_act = self.cycle

    def _column(self, name, ba, a):
        self._require_init(name)
        bank = self._bank(ba)
        if a & (1 << 10):
            self._fail("auto precharge", f"bank {ba}: {name} with A10 high (auto precharge) "
                                         f"is not modeled")
        if bank.row is None:
            self._fail(f"{name} to a closed row", f"bank {ba} has no open row; ACTIVE first")
        self._need("tRCD", bank.act, self.t.rcd, "ACTIVE", ba)
        col = a & ((1 << 10) - 1)
        if col >= self.part.columns:
            self._fail("column", f"bank {ba}: column {col}; allowed: 0..{self.part.columns - 1}")
        return bank, col

    def _addr(self, ba, row, col):
        cols, banks = self.part.columns, self.part.banks
        return (row * banks + ba) * cols + col

    def _read(self, ba, a, dq, dqm, dq_oe):
        bank, col = self._column("READ", ba, a)
        self.write_burst = None                  # a READ ends a write burst
        # a new READ ends an earlier read burst: drop its words not yet out
        for c in [c for c in self.read_out if c >= self.cycle + self.t.cl]:
            del self.read_out[c]
        base = col - col % self.burst
        for k in range(self.burst):
            c = base + (col - base + k) % self.burst
            self.read_out[self.cycle + self.t.cl + k] = (ba, int(self.mem[self._addr(ba, bank.row, c)]))
        self.read_burst = (ba, self.cycle, self.burst)

    def _write(self, ba, a, dq, dqm, dq_oe):
        bank, col = self._column("WRITE", ba, a)
        for c in [c for c in self.read_out if c > self.cycle]:  # a WRITE ends a read burst
            del self.read_out[c]
        self.write_burst = [ba, bank.row, col, col - col % self.burst, 0]
        self._burst_write_word(dq, dqm, dq_oe)

    def _burst_write_word(self, dq, dqm, dq_oe):
        ba, row, col, base, k = self.write_burst
        if not dq_oe and dqm != 3:
            self._fail("write data", f"bank {ba}: write burst word {k} with DQ not driven and "
                                     f"not masked (DQM {dqm:#04b})")
        c = base + (col - base + k) % self.burst
        addr = self._addr(ba, row, c)
        old = int(self.mem[addr])
        keep = (0xFF if dqm & 1 else 0) | (0xFF00 if dqm & 2 else 0)
        self.mem[addr] = (old & keep) | (dq & ~keep & 0xFFFF)
        self.banks[ba].write_end = self.cycle
        self.write_burst[4] = k + 1
        if k + 1 >= self.burst:
            self.write_burst = None

    def _pre(self, ba, a, *_):
        banks = range(self.part.banks) if a & (1 << 10) else [ba]
        if not a & (1 << 10):
            self._bank(ba)
        for b in banks:
            bank = self.banks[b]
            if bank.row is None:
                continue                          # precharging a closed bank is a NOP
            self._need("tRAS", bank.act, self.t.ras, "ACTIVE", b)
            self._need("tWR", bank.write_end, self.t.wr, "last write data", b)
            bank.row, bank.pre = None, self.cycle
            if self.write_burst is not None and self.write_burst[0] == b:
                self.write_burst = None
            # read data CL cycles or more after a PRECHARGE of its bank is not driven
            for c in [c for c, (rb, _) in self.read_out.items()
                      if rb == b and c >= self.cycle + self.t.cl]:
                del self.read_out[c]
        if a & (1 << 10) and not self.init_done and self.cycle >= self.t.power_up:
            self.init["pre_all"] = True

    def _closed(self, what):
        for b, bank in enumerate(self.banks):
            if bank.row is not None:
                self._fail(f"{what} with a bank open", f"bank {b}: row {bank.row} open "
                                                       f"(ACTIVE at cycle {bank.act})")
            self._need("tRP", bank.pre, self.t.rp, "PRECHARGE", b)

    def _ref(self, *_):
        self._closed("AUTO REFRESH")
        self.last_ref = self.ref_busy = self.cycle
        self.refreshes.append(self.cycle)
        if not self.init_done and self.init["pre_all"]:
            self.init["refs"] += 1
            self._check_init()

    def _mrs(self, ba, a, *_):
        self._closed("LOAD MODE")
        bl = a & 7
        cl = (a >> 4) & 7
        if bl not in (0, 1, 2, 3) or a & (1 << 3):
            self._fail("mode register", f"burst length code {bl} (A3 {a >> 3 & 1}); allowed: "
                                        f"sequential bursts of 1, 2, 4, 8 (codes 0..3)")
        if cl != self.t.cl:
            self._fail("mode register", f"CAS latency {cl}; the clock needs {self.t.cl}")
        if (a >> 7) & 3 or ba:
            self._fail("mode register", f"operating mode bits {a >> 7:#x}, BA {ba}; allowed: 0")
        self.cl, self.burst = cl, 1 << bl
        self.last_mrs = self.cycle
        if not self.init_done and self.init["pre_all"]:
            self.init["mrs"] = True
            self._check_init()

    def _check_init(self):
        if self.init["pre_all"] and self.init["refs"] >= 2 and self.init["mrs"]:
            self.init_done_at = self.cycle

    # -- host access (tests) ------------------------------------------------------------------
    def word(self, addr):
        return int(self.mem[addr])
