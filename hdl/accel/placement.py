"""Where the program's data lives: the memory mappings, the SPRAM geometry, the engine's lane
widths as the memories see them, placement of tensors by liveness, and the engine's limits.

Layer L1 (pure Python), part of the compiler (:mod:`.program`).
"""

import dataclasses

__all__ = ["MappingError", "MemoryMap", "SPRAM_WORDS", "SPRAM_BITS", "int_lane_bits", "weight_lane_bits",
           "memory_map", "allocate", "check_limits", "MAX_ROW_BITS", "MAX_COUNT", "MAX_WORDS"]


def _ceil_div(a, b):
    return -(-a // b)


class MappingError(ValueError):
    """The model cannot be mapped onto the accelerator (says what and why)."""


# One iCE40UP5K single-port RAM (SB_SPRAM256KA): 16,384 words of 16 bits, not initialisable.
SPRAM_WORDS = 16384
SPRAM_BITS = 16


def int_lane_bits(widths):
    """The engine's integer (and accumulator) lane width for a program's ``widths``: one bit
    more than the integer values need."""
    return widths["int"] + 1


def weight_lane_bits(widths):
    """The engine's weight lane width for a program's ``widths``."""
    return max(widths["weight"], 2)


@dataclasses.dataclass(frozen=True)
class MemoryMap:
    """Where the engine keeps its integer memory, weights and descriptors.

    ``kind="sdram"`` (ECP5 boards with SDRAM): like ``bram``, but the weights live in SDRAM,
    one segment per weighted SYN pass in pass order (``segments``), loaded into an on-chip
    window of two halves of ``window_words`` weight words while the passes run.
    ``kind="bram"``: every memory is block RAM; weights and descriptors are initialised from
    the bitstream. ``kind="spram"`` (iCE40UP5K): the integer memory is ``int_banks`` banks of
    single-port SPRAM of ``int_bank_words`` words each (every tensor lies in one bank, and
    the tensors one pass touches lie in different banks, so each bank sees at most one access
    per cycle); the weights are one SPRAM, ``weight_pack`` weight words per 16-bit word,
    loaded over the host link at start-up; the descriptor ROM is read in ``desc_word_bits``
    pieces.
    """
    kind: str = "bram"
    int_banks: int = 1
    int_bank_words: int = 0      # 0: one bank of any size
    int_bank_sprams: int = 0     # SPRAMs side by side per bank (P lanes x int bits / 16)
    weight_pack: int = 1         # weight words per stored word
    weight_words: int = 0        # stored weight words (spram: 16-bit words to load)
    desc_word_bits: int = 0      # 0: one descriptor word per pass
    # sdram: the weights in SDRAM, a window of two halves on chip (hdl/accel/weight_stream.py)
    window_words: int = 0        # weight words per window half
    segments: tuple = ()         # weight_stream.Segment per weighted SYN pass, in pass order
    sdram_words: int = 0         # 16-bit SDRAM words of all segments
    sdram_mhz: float = 50.0      # the engine's (and the SDRAM's) clock, for the load-time rules
    cas_latency: int = 2

    @property
    def sprams(self):
        return self.int_banks * self.int_bank_sprams + (1 if self.kind == "spram" else 0)


def memory_map(memory, P, widths, weight_words, sprams):
    if memory == "bram":
        return MemoryMap()
    ib = int_lane_bits(widths)
    wb = weight_lane_bits(widths)
    if P * wb > SPRAM_BITS:
        raise MappingError(
            f"SPRAM mapping: a weight word of {P} lanes x {wb} bits is {P * wb} bits, wider than "
            f"the SPRAM's {SPRAM_BITS}; use at most {max(1, SPRAM_BITS // wb)} lanes")
    pack = 1
    while pack * 2 * P * wb <= SPRAM_BITS:
        pack *= 2
    stored = -(-weight_words // pack)
    if stored > SPRAM_WORDS:
        raise MappingError(
            f"SPRAM mapping: the weights need {stored} 16-bit words, one SPRAM holds {SPRAM_WORDS}")
    per_bank = -(-P * ib // SPRAM_BITS)
    banks = (sprams - 1) // per_bank
    if banks < 1:
        raise MappingError(
            f"SPRAM mapping: one integer word of {P} lanes x {ib} bits needs {per_bank} SPRAMs side "
            f"by side; with one SPRAM for the weights, {sprams} SPRAMs leave {sprams - 1}")
    return MemoryMap(kind="spram", int_banks=banks, int_bank_words=SPRAM_WORDS,
                     int_bank_sprams=per_bank, weight_pack=pack, weight_words=stored,
                     desc_word_bits=SPRAM_BITS)


def allocate(passes, tensors, P, mmap=MemoryMap()):
    """Place tensors in the spike and integer memories by liveness (first fit).

    A tensor lives from the pass that writes it to the last pass that reads it. Spike regions
    are only shared between tensors with the same channel count: the event encoder reads
    whole rows, and memory persists from one image to the next, so slots past a tensor's last
    channel must never hold another tensor's spikes. With a banked integer memory
    (``mmap.int_bank_words``), each integer tensor lies inside one bank and the integer
    tensors that one pass touches lie in different banks. Returns the spike rows and integer
    words (the highest integer address + 1).
    """
    def reads(p):
        return [n for n in (p.src, p.src2, p.a, p.b) if n]

    last = {}
    first = {}
    for i, p in enumerate(passes):
        for n in reads(p):
            last[n] = i
        if p.dst in tensors and p.dst not in first:
            first[p.dst] = i
    # Integer tensors that one pass touches may not share a bank.
    conflicts = {}
    for p in passes:
        ints = {n for n in (p.src, p.src2, p.a, p.b, p.dst) if n in tensors and tensors[n].space == "int"}
        for n in ints:
            conflicts.setdefault(n, set()).update(ints - {n})
    banked = mmap.int_bank_words > 0
    nbanks = mmap.int_banks if banked else 1
    bank_words = mmap.int_bank_words if banked else None
    free = {"spike": [], "int": []}   # [start, length, max_channels]
    top = {"spike": [0], "int": [0] * nbanks}
    bank_of = {}

    def size(t):
        return t.T * t.N if t.space == "spike" else t.T * t.N * _ceil_div(t.C, P)

    def alloc(t):
        need = size(t)
        if t.space == "spike" or not banked:
            banks = [0]
        else:
            if need > bank_words:
                raise MappingError(
                    f"tensor {t.name!r}: {need} integer words, one SPRAM bank holds {bank_words}")
            taken = {bank_of[n] for n in conflicts.get(t.name, ()) if n in bank_of}
            banks = [k for k in range(nbanks) if k not in taken]
            if not banks:
                raise MappingError(
                    f"tensor {t.name!r}: no integer memory bank left that the other tensors of its "
                    f"passes do not use ({nbanks} SPRAM banks); use fewer lanes")
        blocks = free[t.space]
        for b in blocks:
            k = b[0] // bank_words if banked and t.space == "int" else 0
            if k in banks and b[1] >= need and (t.space == "int" or b[2] == t.C):
                t.base = b[0]
                b[0] += need
                b[1] -= need
                if b[1] == 0:
                    blocks.remove(b)
                bank_of[t.name] = k
                return
        tops = top[t.space]
        k = min(banks, key=lambda k: tops[k])
        if banked and t.space == "int" and tops[k] + need > bank_words:
            raise MappingError(
                f"tensor {t.name!r}: the integer memory banks are full ({nbanks} banks of "
                f"{bank_words} words)")
        t.base = (k * bank_words if banked and t.space == "int" else 0) + tops[k]
        tops[k] += need
        bank_of[t.name] = k

    def release(t):
        blocks = free[t.space]
        blocks.append([t.base, size(t), t.C])
        blocks.sort()
        merged = []
        for b in blocks:
            at_bank_start = banked and t.space == "int" and b[0] % bank_words == 0
            if merged and merged[-1][0] + merged[-1][1] == b[0] and merged[-1][2] == b[2] \
                    and not at_bank_start:
                merged[-1][1] += b[1]
                merged[-1][2] = max(merged[-1][2], b[2])
            else:
                merged.append(b)
        free[t.space] = merged

    live = []
    for i, p in enumerate(passes):
        for name in list(live):
            if last.get(name, -1) < i:
                release(tensors[name])
                live.remove(name)
        t = tensors.get(p.dst)
        if t is not None and t.space in ("spike", "int") and first.get(p.dst) == i:
            alloc(t)
            live.append(p.dst)
    if banked:
        used = [k for k in range(nbanks) if top["int"][k]]
        int_words = (max(used) * bank_words + top["int"][max(used)]) if used else 1
    else:
        int_words = top["int"][0]
    return max(1, top["spike"][0]), max(1, int_words)


# Engine limits: counters are 16 bits, addresses 24 bits, the event encoder reads whole rows.
MAX_ROW_BITS = 2048
MAX_COUNT = (1 << 16) - 1
MAX_WORDS = (1 << 24) - 1


def check_limits(model, tensors, passes, spike_rows, int_words, P):
    for t in tensors.values():
        if t.space == "spike":
            bits = t.C * max(1, int(t.levels).bit_length())
            if bits > MAX_ROW_BITS:
                raise MappingError(
                    f"tensor {t.name!r}: a row of {t.C} channels x {int(t.levels).bit_length()} "
                    f"bit planes is {bits} bits; the event encoder reads rows of at most "
                    f"{MAX_ROW_BITS} bits")
    for p in passes:
        for field in ("T", "Hi", "Wi", "Ho", "Wo", "kh", "kw", "tiles", "acc_words", "N"):
            v = getattr(p, field)
            if v > MAX_COUNT:
                raise MappingError(f"pass {p.node!r}: {field} = {v} exceeds the engine's "
                                   f"16-bit loop counters (at most {MAX_COUNT})")
    for what, n in (("spike memory rows", spike_rows), ("integer memory words", int_words)):
        if n > MAX_WORDS:
            raise MappingError(f"{what}: {n} needed; the engine addresses at most {MAX_WORDS}")
