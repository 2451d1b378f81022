"""The engine's static plan for a program: lane widths, row layouts, descriptor table.

Layer L1 (pure Python, no Amaranth): reports, the executor and tests read widths and the
descriptor format without building hardware; the engine (:mod:`.engine`) turns the plan's
plain numbers into signals, layouts and constants. Every width the engine's datapath uses is
derived here from the program's proven value bounds, never typed by hand.
"""

import dataclasses
import enum
from collections import Counter

from ...graph import bits_for_range
from .placement import MAX_COUNT, MAX_WORDS
from .program import EW, RED, SYN, int_lane_bits, weight_lane_bits
from .timing import build_of

__all__ = ["EnginePlan", "Kind", "EwOp", "RedOp", "DescField", "ubits", "log2", "LANES_PER_COPY",
           "CONST_LOGIC_DEPTH", "const_parts", "lane_group_widths"]

#: The fast build gives each group of this many lanes its own copy of a control register that
#: drives the lanes' datapaths (:class:`.lanes.LaneCopies`), so no net fans out to all P lanes.
LANES_PER_COPY = 4
#: The fast build's constants memory is logic (a LUT per bit and group) up to this many words,
#: block RAM beyond.
CONST_LOGIC_DEPTH = 32


def const_parts(program, const_width):
    """The constants memory's parts (widths, as :func:`lane_group_widths`) and whether it is
    logic: in the fast build a shallow one (``CONST_LOGIC_DEPTH``) is logic, one part per lane
    (each addressed by its own register); else as the other lane-wide memories, in block RAM."""
    groups = lane_group_widths(program, const_width)
    if groups is not None and len(program.consts) <= CONST_LOGIC_DEPTH:
        return [const_width] * program.lanes, True
    return groups, False


def lane_group_widths(program, lane_width):
    """The widths of the parts of a lane-wide memory word, one per lane group, when the engine
    built for ``program`` splits its memories (the fast build with block RAM and lane-group
    copies: a memory per group, addressed by the group's copies), else ``None``."""
    P = program.lanes
    if not build_of(program).lane_copies or P <= LANES_PER_COPY or program.memory.kind not in ("bram", "sdram"):
        return None
    return [min(LANES_PER_COPY, P - lo) * lane_width for lo in range(0, P, LANES_PER_COPY)]


#: Bits of an event's bit-plane index in the SYN decode stages (up to 256 planes).
PLANE_FIELD_BITS = 8


class Kind(enum.IntEnum):
    """A descriptor's pass kind."""
    SYN = 0
    EW = 1
    RED = 2


class EwOp(enum.IntEnum):
    """A descriptor's ``op`` of an EW pass (:attr:`.program.Pass.op`, upper case)."""
    LIF = 0
    MULTISPIKE = 1
    ADD = 2
    AND = 3
    PASS = 4
    OUT = 5


class RedOp(enum.IntEnum):
    """A descriptor's ``op`` of a RED pass."""
    POOL = 0
    MASK = 1


_KIND = {SYN: Kind.SYN, EW: Kind.EW, RED: Kind.RED}


def opcode(p):
    """The descriptor's ``op`` of an EW or RED pass."""
    return (EwOp if p.kind == EW else RedOp)[p.op.upper()]


def ubits(n):
    """Bits of the unsigned ``n`` (at least one)."""
    return max(1, int(n).bit_length())


def log2(n):
    """``ceil(log2(n))``."""
    return max(0, (int(n) - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class DescField:
    """A field of the descriptor word (or a constant of every pass: ``offset`` is ``None``)."""
    width: int
    signed: bool
    offset: object = None
    value: int = 0


def _field_shape(values):
    lo, hi = min(values + [0]), max(values + [0])
    return (bits_for_range(lo, hi), True) if lo < 0 else (ubits(hi), False)


class EnginePlan:
    """The engine's static plan for a program (see the module's docstring)."""

    def __init__(self, program):
        self.prog = prog = program
        self.pixel_bits = ubits(prog.image.levels)
        # the result's value: a logit, or the class index on the last beat
        self.logit_bits = bits_for_range(min(prog.logits.lo, 0), max(prog.logits.hi, prog.classes - 1))
        self._plan()

    def _plan(self):
        prog = self.prog
        P = prog.lanes
        tensors = prog.tensors
        self.pbs = log2(prog.spike_planes) if prog.spike_planes > 1 else 0  # plane stride log2, spikes
        self.pbi = log2(self.pixel_bits) if self.pixel_bits > 1 else 0      # plane stride log2, image
        self.slot_bits = prog.spike_planes
        # The spike memories' writes: whole row words (read-modify-write through a third read
        # port, Build.spike_word_writes) where a word holds more than one slot, else one write
        # enable per slot (``spike_write_granularity`` bits each; None: whole words).
        self.spike_word_writes = build_of(prog).spike_word_writes and prog.spike_slots > 1
        self.spike_read_ports = 3 if self.spike_word_writes else 2
        self.spike_write_granularity = None if self.spike_word_writes else self.slot_bits
        cmax = prog.spike_slots * P
        self.row_bits_s = cmax << self.pbs
        self.row_bits_i = prog.image.C << self.pbi
        # The image memory: one row of C pixels per token, for every frame of a frames model
        # (§4; its read address then includes the time step), else once for every t.
        self.img_depth = prog.image.T * prog.image.N
        self.img_frames = prog.image.T > 1
        self.row_bits = max(self.row_bits_s, self.row_bits_i)
        self.ib = int_lane_bits(prog.widths)
        self.wb = weight_lane_bits(prog.widths)
        self.mb = max(prog.widths["mult"], 2)
        self.bb = max(prog.widths["bias"], 2)
        self.tb = max(prog.widths["theta"], 2)
        # Accumulators: large enough for every SYN destination and for KV weights.
        self.ab = self.ib
        self._ew_widths()
        self._syn_widths()
        # Head-start table for attention passes: channel -> first channel of its head.
        hstart = []
        self.h_base = {}
        for p in prog.passes:
            if p.kind == SYN and p.heads:
                C = tensors[p.src].C
                d = C // p.heads
                self.h_base[p.node] = len(hstart)
                hstart.extend((c // d) * d for c in range(C))
        self.hstart = hstart or [0]
        rows = [self._descriptor(p) for p in prog.passes]
        self.pass_consts = [self._pass_consts(p) for p in prog.passes]
        # A field a pass does not read (None) takes the value the other passes agree on, so
        # that a field with one value over the program becomes a constant of the Verilog
        # instead of descriptor bits (and the logic it selects is not built at all).
        values = {}
        for row in rows:
            for k, v in row.items():
                if v is not None:
                    values.setdefault(k, Counter())[v] += 1
        for row in rows:
            for k, v in row.items():
                if v is None:
                    row[k] = values[k].most_common(1)[0][0] if k in values else 0
        self.desc_rows = rows
        fields = {}
        #: name -> :class:`DescField` without an offset: the fields every pass agrees on
        self.desc_consts = {}
        for k in sorted({k for row in rows for k in row}):
            vs = [row[k] for row in rows if k in row]
            width, signed = _field_shape(vs)
            if len(set(vs)) == 1:
                self.desc_consts[k] = DescField(width, signed, None, vs[0])
            else:
                fields[k] = (width, signed)
        fields["last_pass"] = (1, False)
        # Fields of SYN passes only and of EW / RED passes only share bits: no pass reads the
        # other kind's fields (the engine's other half is idle while it runs).
        syn_keys = {k for row in rows if row["kind"] == Kind.SYN for k in row}
        ew_keys = {k for row in rows if row["kind"] != Kind.SYN for k in row}
        common = [k for k in fields if (k in syn_keys) == (k in ew_keys)]
        layout, offset = {}, 0
        for k in common:
            layout[k] = DescField(*fields[k], offset)
            offset += fields[k][0]
        size = offset
        for keys in (syn_keys, ew_keys):
            at = offset
            for k in fields:
                if k in keys and k not in common:
                    layout[k] = DescField(*fields[k], at)
                    at += fields[k][0]
            size = max(size, at)
        #: name -> :class:`DescField`: the descriptor word's fields
        self.desc_fields = layout
        #: bits of the descriptor word
        self.desc_size = size

    def _syn_widths(self):
        """SYN datapath widths: coordinates, pointers, addresses, indices."""
        prog = self.prog
        P = prog.lanes
        syn = [p for p in prog.passes if p.kind == SYN]
        # Spatial pointer y * Wi + x (negative inside the padding), coordinates, addresses.
        sp_max = max((p.Hi + p.pad + 1) * (p.Wi + p.pad + 1) for p in syn)
        self.spw = ubits(sp_max) + 1
        self.coord_bits = ubits(max(max(p.Hi, p.Wi) + p.pad + max(p.stride, p.kh, p.kw) for p in syn)) + 1
        self.rows_w = ubits(max(prog.spike_rows, self.img_depth, 1))     # spike / image row
        # weight (or KV) word; the sdram mapping's window has two halves of window_words
        self.ww = ubits(max(len(prog.weights), 2 * prog.memory.window_words, prog.int_words, 1))
        self.acc_depth = max(p.acc_words for p in syn)
        self.aww = ubits(self.acc_depth - 1)                             # accumulator word index
        # The SYN drain's counters and pointers and the event decode's fields are sized by the
        # engine's limits (placement.MAX_COUNT, MAX_WORDS), which the compiler checks, not by
        # this program: narrowing them to this program's needs saved 13 of 4,957 iCE40 logic
        # cells but moved the placement (fmax 29.65 instead of 31.77 MHz with the default
        # seed), so the registers keep the limits' widths.
        self.count_bits = ubits(MAX_COUNT)                               # 16
        self.addr_bits = ubits(MAX_WORDS)                                # 24
        self.plane_field_bits = PLANE_FIELD_BITS                         # 8
        # V row address (K^T V passes only; no bits when the program has none).
        self.va_w = self.rows_w if any(p.wsrc == "vrow" for p in syn) else 0
        self.cb = ubits(prog.spike_slots * P)                            # channel index bits
        self.iw = ubits(max(1, prog.int_words))                          # integer memory word
        self.srow_w = ubits(max(1, prog.spike_rows))                     # spike memory row

    def _ew_widths(self):
        """EW/RED datapath widths from the program's proven value bounds (docs/spec.md §9).

        ``rw``: RED running sums (pool: ``N`` values of the operand tensor's range; mask: ``N``
        ANDed spike values). ``ow``: the requantization operand (an integer lane or a RED
        sum). ``pw``: ``operand * mult + bias + 2^(shift-1)``. ``yw``: the value after
        requantization (saturated, the operand unchanged, or a logit). ``mw``: the LIF membrane
        ``U`` (``graph.lif_membrane_bits``: ``2 max|X| + 1`` with a leak, ``T max|X|`` without),
        ``uw``: ``U - theta``. ``bw``: operand b (an integer lane or a spike value). ``smax``:
        the largest requantization shift.
        """
        prog = self.prog
        t = prog.tensors
        sb = self.slot_bits
        spike_max = (1 << sb) - 1
        red_lo = red_hi = 0
        for p in prog.passes:
            if p.kind != RED:
                continue
            if p.op == "pool":
                a = t[p.a]
                red_lo, red_hi = min(red_lo, p.N * min(a.lo, 0)), max(red_hi, p.N * max(a.hi, 0))
            else:
                red_hi = max(red_hi, p.N * spike_max)
        self.rw = bits_for_range(red_lo, red_hi)
        self.ow = max(self.ib, self.rw, sb + 1)
        self.pw = max(self.ow + self.mb, self.bb) + 2
        sat_max = max([p.sat_bits for p in prog.passes if p.kind != SYN and p.requant] + [2])
        self.yw = max(self.ow, sat_max, self.logit_bits)  # out: y is the logit (operand + bias)
        theta_hi = int(prog.consts[..., 2].max(initial=1))
        bound = 1
        for p in prog.passes:
            if not ((p.kind == EW and p.op == "lif") or (p.kind == RED and p.op == "mask")):
                continue
            if p.kind == RED:
                x = p.N * spike_max
            elif p.requant:
                x = 1 << (p.sat_bits - 1)
            else:
                a = t[p.a]
                x = max(abs(a.lo), abs(a.hi))
            bound = max(bound, 2 * x + 1 if p.leak >= 1 else p.T * x)
        self.mw = bits_for_range(-bound, bound)
        self.uw = bits_for_range(-bound - theta_hi, bound)
        self.bw = max(self.ib, sb + 1)
        self.smax = max([p.shift for p in prog.passes if p.kind != SYN] + [1])

    def pass_const_shape(self, name):
        """``(values per pass, width, signed)`` of a per-pass constant (:meth:`_pass_consts`)."""
        values = [row[name] for row in self.pass_consts]
        return (values, *_field_shape(values))

    def _pass_consts(self, p):
        """Products of descriptor fields the engine needs as constants of a pass (its running
        pointers add them), so that no multiplier sits in an address path."""
        d = dict(nt=0, sw=0, sp00=0, kw1=0, kh1=0, tr1=0, wo1=0, ho1=0, hi1=0, wi1=0, n1=0,
                 t1=p.T - 1, tiles1=p.tiles - 1, z_kx=0, z_ky=0, z_tr=0, z_ox=0, z_oy=0, z_t=0,
                 o_kx=0, o_ky=0, o_tr=0, o_ox=0, o_oy=0, o_t=0,
                 ez_n=0, ez_t=0, ez_tile=0, eo_n=0, eo_t=0, eo_tile=0)
        if p.kind == SYN:  # "minus one" values: loop ends compare two registers
            d.update(sw=p.stride * p.Wi, sp00=-p.pad * p.Wi - p.pad, kw1=p.kw - 1, kh1=p.kh - 1,
                     tr1=p.t_rows - 1, wo1=p.Wo - 1, ho1=p.Ho - 1, hi1=p.Hi - 1, wi1=p.Wi - 1)
            d.update(z_kx=int(p.kw == 1), z_ky=int(p.kh == 1), z_tr=int(p.t_rows == 1),
                     z_ox=int(p.Wo == 1), z_oy=int(p.Ho == 1), z_t=int(p.T == 1),
                     o_kx=int(p.kw == 2), o_ky=int(p.kh == 2), o_tr=int(p.t_rows == 2),
                     o_ox=int(p.Wo == 2), o_oy=int(p.Ho == 2), o_t=int(p.T == 2))
        else:
            d.update(nt=p.N * p.tiles, n1=p.N - 1, ez_n=int(p.N == 1), ez_t=int(p.T == 1),
                     ez_tile=int(p.tiles == 1), eo_n=int(p.N == 2), eo_t=int(p.T == 2),
                     eo_tile=int(p.tiles == 2))
        return d

    def _descriptor(self, p):
        prog = self.prog
        t = prog.tensors
        d = dict(kind=_KIND[p.kind])
        if p.kind == SYN:
            src = t[p.src]
            vrow = p.wsrc == "vrow"
            d.update(src_img=int(src.space == "image"), kv_mode=int(vrow),
                     qkv_mode=int(p.wsrc == "kv"), accsel_ch=int(p.accsel == "channel"),
                     heads_on=int(bool(p.heads)),
                     hd=(src.C // p.heads) if p.heads else (None if not vrow else 0),
                     h_base=self.h_base.get(p.node, 0) if p.heads else None,
                     T=p.T, t_rows=p.t_rows, Hi=p.Hi, Wi=p.Wi, HW=p.Hi * p.Wi, Ho=p.Ho, Wo=p.Wo,
                     kh=p.kh, kw=p.kw, stride=p.stride, pad=p.pad, tiles=p.tiles,
                     w_base=p.w_base, tap_stride=p.tap_stride, t_stride=p.t_stride,
                     acc_words=p.acc_words, src_base=src.base,
                     src2_base=t[p.src2].base if vrow else None,
                     dst_base=t[p.dst].base)
        else:
            a = t[p.a]
            b = t[p.b] if p.b else None
            dst = t[p.dst]
            sat = p.sat_bits or 2
            add = p.add_bits or 2
            lif = (p.kind == EW and p.op == "lif") or (p.kind == RED and p.op == "mask")
            d.update(op=opcode(p),
                     T=p.T, N=p.N, tiles=p.tiles, a_int=int(a.space == "int"), a_base=a.base,
                     b_used=int(b is not None), b_int=int(b.space == "int") if b is not None else None,
                     b_base=b.base if b is not None else None,
                     b_bcast=int(p.b_broadcast) if b is not None else None,
                     C=dst.C, b_rows=(b.H * b.W) if b is not None else None,
                     dst_base=dst.base if dst.space in ("int", "spike") else 0,
                     requant=int(p.requant), shift=p.shift,
                     sat_hi=(1 << (sat - 1)) - 1 if p.requant else None,
                     sat_lo=-(1 << (sat - 1)) if p.requant else None,
                     add_hi=(1 << (add - 1)) - 1 if p.op == "add" else None,
                     add_lo=-(1 << (add - 1)) if p.op == "add" else None,
                     leak=p.leak if lif else None, soft=int(p.soft) if lif else None,
                     levels=p.levels if p.op == "multispike" else None,
                     ms_shift=p.ms_shift if p.op == "multispike" else None,
                     c_base=p.c_base)
        return d

    @property
    def desc_words(self):
        """Memory words per descriptor (one, or ``desc_word_bits`` pieces)."""
        bits = self.prog.memory.desc_word_bits
        return -(-self.desc_size // bits) if bits else 1

    @property
    def desc_word_width(self):
        return self.prog.memory.desc_word_bits or self.desc_size

    def desc_init(self):
        """Descriptor memory words: pass ``i`` at ``i * desc_words``, lowest piece first."""
        out = []
        for i, row in enumerate(self.desc_rows):
            row = dict(row, last_pass=int(i == len(self.desc_rows) - 1))
            value = 0
            for name, field in self.desc_fields.items():
                v = int(row.get(name, 0))
                value |= (v & ((1 << field.width) - 1)) << field.offset
            bits = self.desc_word_width
            out.extend((value >> (k * bits)) & ((1 << bits) - 1) for k in range(self.desc_words))
        return out
