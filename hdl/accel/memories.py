"""The engine's integer and weight memories in block RAM or in iCE40UP5K SPRAM.

The engine sees every memory through ports with ``addr``, ``en`` and ``data`` (reads: data one
cycle after the address, as a synchronous block RAM read port) or ``addr``, ``en`` and
``data`` (writes). :class:`~.program.MemoryMap` decides the backing:

- ``bram``: one :class:`amaranth.lib.memory.Memory` per memory, initialised weights.
- ``spram``: :class:`SinglePortRAM` blocks. The integer memory is ``int_banks`` banks (address
  bits above ``log2(int_bank_words)`` pick the bank); each bank serves one access per cycle,
  a write first, then read port ``a``, then ``b``. The compiler places the integer tensors of
  one pass in different banks, so the accesses the engine uses never collide. The weights are
  one SPRAM holding ``weight_pack`` weight words per 16-bit word, written by the loader.
"""

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .program import SPRAM_BITS, SPRAM_WORDS

#: Address bits of one SPRAM.
SPRAM_ADDR_BITS = (SPRAM_WORDS - 1).bit_length()

__all__ = ["SinglePortRAM", "Port", "PortView", "GroupedMemoryView", "NO_RW_CHECK", "collision_read", "bram_ports",
           "int_memory", "weight_memory"]

#: The attribute of a memory whose read ports' data is never used after a cycle in which the
#: write port wrote the address they read (a read/write collision). A block RAM may return
#: anything then, so synthesis needs no logic to give the old word: Yosys emulates that with
#: a delayed write and a bypass multiplexer after the block RAM output (40 LUTs and 48 FFs
#: per 18-bit block on the ECP5). ``boards.build`` turns the attribute into Yosys's collision
#: mask; simulation checks the claim (:func:`collision_read`'s ``poison``).
NO_RW_CHECK = "no_rw_check"


class SinglePortRAM(wiring.Component):
    """One iCE40UP5K SPRAM: 16,384 x 16 bits, one access per cycle.

    ``we``: write ``wdata`` at ``addr``; else ``re``: ``rdata`` is the word at ``addr`` on the
    next cycle; with neither, ``rdata`` holds. ``primitive=True`` instantiates
    ``SB_SPRAM256KA`` (for synthesis); ``False`` is the behavioural model with the same
    cycle behaviour (for simulation; also what other devices get).
    """

    addr: In(SPRAM_ADDR_BITS)
    wdata: In(SPRAM_BITS)
    we: In(1)
    re: In(1)
    rdata: Out(SPRAM_BITS)

    def __init__(self, *, primitive=False):
        self.primitive = primitive
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        if self.primitive:
            m.submodules.spram = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=self.addr, i_DATAIN=self.wdata, i_MASKWREN=Const(0b1111, 4),
                i_WREN=self.we, i_CHIPSELECT=self.we | self.re, i_CLOCK=ClockSignal(),
                i_STANDBY=Const(0), i_SLEEP=Const(0), i_POWEROFF=Const(1),
                o_DATAOUT=self.rdata)
        else:
            m.submodules.mem = mem = Memory(shape=SPRAM_BITS, depth=SPRAM_WORDS, init=[])
            wp = mem.write_port()
            rp = mem.read_port()
            m.d.comb += [wp.addr.eq(self.addr), wp.data.eq(self.wdata), wp.en.eq(self.we),
                         rp.addr.eq(self.addr), rp.en.eq(self.re & ~self.we),
                         self.rdata.eq(rp.data)]
        return m


class Port:
    """A memory port as the engine uses it: ``addr``, ``en``, ``data``.

    A memory split into lane groups (the fast build's block RAM: :func:`bram_ports`'s
    ``groups``) has an address and an enable per group, ``addrs`` and ``ens``, which the
    engine drives from per-group copies of its address registers, so that no address net
    spans the die; ``addr`` and ``en`` are then not available. ``data`` is always the whole
    word (the groups' parts in order).
    """

    def __init__(self, name, addr_bits, data_bits, groups=1):
        self.groups = groups
        if groups == 1:
            self.addrs = [Signal(addr_bits, name=f"{name}_addr")]
            self.ens = [Signal(name=f"{name}_en")]
        else:
            self.addrs = [Signal(addr_bits, name=f"{name}_addr{g}") for g in range(groups)]
            self.ens = [Signal(name=f"{name}_en{g}") for g in range(groups)]
        self.data = Signal(data_bits, name=f"{name}_data")

    def _one(self, signals, what):
        if self.groups != 1:
            raise AttributeError(f"a port of a memory in {self.groups} lane groups has one {what} "
                                 f"per group: use {what}s")
        return signals[0]

    @property
    def addr(self):
        return self._one(self.addrs, "addr")

    @property
    def en(self):
        return self._one(self.ens, "en")


class PortView:
    """A read port's ``addr`` and ``en`` with other ``data`` (see :func:`collision_read`)."""

    def __init__(self, port, data):
        self.addr, self.en, self.data = port.addr, port.en, data


def collision_read(m, name, mem, wp, rp, poison, flags=None):
    """The data of read port ``rp`` of ``mem``, which is marked :data:`NO_RW_CHECK`.

    With ``poison`` (simulation) the data is inverted after a read that collided with a write
    of ``wp`` (both enabled, same address): a result that still equals the golden model's did
    not use it, as the hardware must not. ``flags`` (a list) collects the registered
    collision flags, for testbenches.
    """
    mem.attrs[NO_RW_CHECK] = 1
    if not poison:
        return rp.data
    hit = Signal(name=f"{name}_collided")
    with m.If(rp.en):
        m.d.sync += hit.eq((wp.en != 0) & (wp.addr == rp.addr))
    if flags is not None:
        flags.append(hit)
    return rp.data ^ Mux(hit, Const(-1, len(rp.data)), 0)


class GroupedMemoryView:
    """The rows of a memory split into lane groups, whole (like a :class:`Memory`'s ``data``
    and ``depth``), for testbenches."""

    def __init__(self, memories):
        self.memories = memories
        self.depth = memories[0].depth
        self.data = _GroupedRows(memories)


class _GroupedRows:
    def __init__(self, memories):
        self.memories = memories

    def __getitem__(self, i):
        return Cat(*(mem.data[i] for mem in self.memories))


def bram_ports(m, name, depth, width, init, reads, write, groups=None, attrs=None, transparent=False,
               collisions_unused=False, poison=False, flags=None):
    """A block RAM memory of ``width``-bit words with ``write`` (0 or 1) write ports and
    ``reads`` read ports: one :class:`Memory`, or one per lane group, each holding its part of
    every word (``groups``: the parts' widths, low part first, summing to ``width``).
    ``transparent``: the read ports see the write port's data in the cycle it writes.
    ``collisions_unused``: the engine never uses a collided read (:func:`collision_read`, with
    ``poison`` and ``flags``). Returns
    (the memory, or a :class:`GroupedMemoryView`; the write port then the read ports, as
    :class:`Port`)."""
    groups = list(groups or [width])
    if sum(groups) != width:
        raise ValueError(f"lane group widths {groups} do not add up to the word width {width}")
    parts = [(sum(groups[:g]), sum(groups[:g + 1])) for g in range(len(groups))]
    abits = max(0, (depth - 1).bit_length())
    ports = ([Port(f"{name}_w", abits, width, len(parts))] if write else []) + \
        [Port(f"{name}_r{i}", abits, width, len(parts)) for i in range(reads)]
    mems = []
    for g, (lo, hi) in enumerate(parts):
        mask = (1 << hi) - (1 << lo)
        mem = Memory(shape=hi - lo, depth=depth, init=[(int(v) & mask) >> lo for v in init],
                     attrs=attrs or {})
        m.submodules[name if len(parts) == 1 else f"{name}_g{g}"] = mem
        mems.append(mem)
        rports = ports
        if write:
            wp, w = mem.write_port(), ports[0]
            m.d.comb += [wp.addr.eq(w.addrs[g]), wp.en.eq(w.ens[g]), wp.data.eq(w.data[lo:hi])]
            rports = ports[1:]
        for i, r in enumerate(rports):
            rp = mem.read_port(transparent_for=(wp,) if write and transparent else ())
            rdata = rp.data
            if write and collisions_unused:
                rdata = collision_read(m, f"{name}_g{g}_r{i}", mem, wp, rp, poison, flags)
            m.d.comb += [rp.addr.eq(r.addrs[g]), rp.en.eq(r.ens[g]), r.data[lo:hi].eq(rdata)]
    return (mems[0] if len(mems) == 1 else GroupedMemoryView(mems)), ports


def int_memory(m, program, width, *, primitive=False, groups=None, poison=False, flags=None):
    """The integer memory: ``(memory or None, write, read_a, read_b)`` ports of ``width`` bits.

    In block RAM the returned memory is the :class:`Memory` (a :class:`GroupedMemoryView` in
    lane groups, ``groups`` as :func:`bram_ports`; for test access); in SPRAM it is ``None`` (and ``groups`` is
    ignored: the SPRAM mapping is the compact build's). Its read ports never use a collided
    read (``poison``, ``flags``: :func:`collision_read`).
    """
    mm = program.memory
    depth = max(1, program.int_words)
    if mm.kind in ("bram", "sdram"):
        mem, (w, a, b) = bram_ports(m, "imem", depth, width, [], 2, True, groups,
                                    collisions_unused=True, poison=poison, flags=flags)
        return mem, w, a, b
    lb = (mm.int_bank_words - 1).bit_length()
    abits = max(1, (depth - 1).bit_length())
    w, a, b = (Port(f"imem_{n}", abits, width) for n in ("w", "a", "b"))
    bank_data = []
    a_bank = Signal(range(mm.int_banks))
    b_bank = Signal(range(mm.int_banks))
    m.d.sync += [a_bank.eq(a.addr >> lb), b_bank.eq(b.addr >> lb)]
    for k in range(mm.int_banks):
        sel_w = w.en & ((w.addr >> lb) == k)
        sel_a = a.en & ((a.addr >> lb) == k)
        sel_b = b.en & ((b.addr >> lb) == k)
        addr = Signal(SPRAM_ADDR_BITS, name=f"imem{k}_addr")
        m.d.comb += addr.eq(Mux(sel_w, w.addr, Mux(sel_a, a.addr, b.addr))[:lb])
        parts = []
        for j in range(mm.int_bank_sprams):
            ram = SinglePortRAM(primitive=primitive)
            m.submodules[f"imem{k}_{j}"] = ram
            lo = j * SPRAM_BITS
            m.d.comb += [ram.addr.eq(addr), ram.we.eq(sel_w), ram.re.eq(sel_a | sel_b)]
            if lo < width:
                m.d.comb += ram.wdata.eq(w.data[lo:lo + SPRAM_BITS])
            parts.append(ram.rdata)
        bank_data.append(Signal(width, name=f"imem{k}_data"))
        m.d.comb += bank_data[-1].eq(Cat(*parts)[:width])
    banks = Array(bank_data)
    m.d.comb += [a.data.eq(banks[a_bank]), b.data.eq(banks[b_bank])]
    return None, w, a, b


def weight_memory(m, program, width, init, *, primitive=False, groups=None):
    """The weight memory: ``(read port, load port or None)``; in block RAM in lane groups
    (``groups`` as :func:`bram_ports`).

    ``load`` (SPRAM only) has ``addr`` (a 16-bit stored word), ``data`` (16 bits) and ``en``.
    The engine must not read while it loads.

    ``sdram`` mapping: the weight window, two halves of ``window_words`` words in block RAM;
    ``load`` is its write port (``addr``, ``data`` a whole weight word, ``en``), written by the
    prefetcher (:class:`.weight_prefetch.WeightPrefetch`) in the half no pass reads.
    """
    mm = program.memory
    depth = max(1, len(program.weights))
    if mm.kind == "sdram":
        _mem, (load, r) = bram_ports(m, "wwin", 2 * mm.window_words, width, [], 1, True, groups)
        return r, load
    if mm.kind == "bram":
        _mem, (r,) = bram_ports(m, "wmem", depth, width, init, 1, False, groups)
        return r, None
    pack = mm.weight_pack
    lp = (pack - 1).bit_length()
    r = Port("wmem_r", max(1, (depth - 1).bit_length()) + 1, width)
    load = Port("wmem_load", SPRAM_ADDR_BITS, SPRAM_BITS)
    ram = SinglePortRAM(primitive=primitive)
    m.submodules.wmem = ram
    sub = Signal(max(1, lp))
    m.d.sync += sub.eq(r.addr[:lp] if lp else 0)
    m.d.comb += [
        ram.addr.eq(Mux(load.en, load.addr, r.addr >> lp)),
        ram.wdata.eq(load.data), ram.we.eq(load.en), ram.re.eq(r.en & ~load.en),
    ]
    if lp:
        words = Array(ram.rdata[i * width:(i + 1) * width] for i in range(pack))
        m.d.comb += r.data.eq(words[sub])
    else:
        m.d.comb += r.data.eq(ram.rdata[:width])
    return r, load
