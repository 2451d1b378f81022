"""The accelerator engine: one P-lane datapath running a compiled program (docs/accelerator.md).

Golden function: :func:`spikeforge.sim.model.run_model` (whole model); the memory-level
reference is :func:`spikeforge.hdl.accel.execute.execute_program`.

The engine receives an image on ``pixels``, runs every pass of the program, and sends the
logits followed by the class on ``result``. ``cycles`` and ``events`` hold the cycle and event
counts of the last image.
"""

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ...graph import bits_for_range
from ..event_encoder import one_hot_index
from .memories import int_memory, weight_memory
from .program import EW, RED, SPRAM_BITS, SYN

__all__ = ["Engine", "EnginePlan", "result_layout", "weight_load_layout"]


def lane(word, i, width):
    """Lane ``i`` of a packed memory word, signed."""
    return word[i * width:(i + 1) * width].as_signed()

_EW_OPS = {"lif": 0, "multispike": 1, "add": 2, "and": 3, "pass": 4, "out": 5}
_RED_OPS = {"pool": 0, "mask": 1}
_KIND = {SYN: 0, EW: 1, RED: 2}


def _ubits(n):
    return max(1, int(n).bit_length())


def _log2(n):
    return max(0, (int(n) - 1).bit_length())


def _two_or_more(bits):
    """1 when at least two bits of ``bits`` are set: a tree of (any, two or more) pairs."""
    nodes = [(bits[i], Const(0, 1)) for i in range(len(bits))]
    while len(nodes) > 1:
        nxt = []
        for i in range(0, len(nodes) - 1, 2):
            (a1, m1), (a2, m2) = nodes[i], nodes[i + 1]
            nxt.append((a1 | a2, m1 | m2 | (a1 & a2)))
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes = nxt
    return nodes[0][1]


def result_layout(logit_bits):
    """Result payload: ``value`` (a logit, or the class on the last beat) and ``last``."""
    return data.StructLayout({"value": signed(logit_bits), "last": 1})


def weight_load_layout():
    """Weight load payload (SPRAM mapping): one 16-bit word ``data`` at word ``addr``."""
    return data.StructLayout({"addr": unsigned(14), "data": unsigned(SPRAM_BITS)})


class EnginePlan:
    """The engine's static plan for a program: lane widths, row layouts, descriptor table.

    Separate from :class:`Engine` so that reports and tests can read widths without building
    hardware.
    """

    def __init__(self, program):
        self.prog = prog = program
        self.pixel_bits = _ubits(prog.image.levels)
        self.logit_bits = bits_for_range(min(prog.logits.lo, 0), max(prog.logits.hi, 0))
        self._plan()

    def _plan(self):
        prog = self.prog
        P = prog.lanes
        tensors = prog.tensors
        self.pbs = _log2(prog.spike_planes) if prog.spike_planes > 1 else 0  # plane stride log2, spikes
        self.pbi = _log2(self.pixel_bits) if self.pixel_bits > 1 else 0      # plane stride log2, image
        self.slot_bits = prog.spike_planes
        cmax = prog.spike_slots * P
        self.row_bits_s = cmax << self.pbs
        self.row_bits_i = prog.image.C << self.pbi
        self.row_bits = max(self.row_bits_s, self.row_bits_i)
        self.ib = prog.widths["int"] + 1
        self.wb = max(prog.widths["weight"], 2)
        self.mb = max(prog.widths["mult"], 2)
        self.bb = max(prog.widths["bias"], 2)
        self.tb = max(prog.widths["theta"], 2)
        # Accumulators: large enough for every SYN destination and for KV weights.
        self.ab = self.ib
        self._ew_widths()
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
        rows = []
        for p in prog.passes:
            rows.append(self._descriptor(p))
        self.pass_consts = [self._pass_consts(p) for p in prog.passes]
        self.desc_rows = rows
        fields = {}
        for row in rows:
            for k, v in row.items():
                lo, hi = fields.get(k, (0, 0))
                fields[k] = (min(lo, v), max(hi, v))
        self.desc_layout = data.StructLayout({
            k: (signed(bits_for_range(lo, hi)) if lo < 0 else unsigned(_ubits(hi)))
            for k, (lo, hi) in sorted(fields.items())})

    def _ew_widths(self):
        """EW/RED datapath widths from the program's proven value bounds (docs/spec.md §9).

        ``rw``: RED running sums (pool: ``N`` values of the operand tensor's range; mask: ``N``
        ANDed spike values). ``ow``: the requantization operand (an integer lane or a RED
        sum). ``pw``: ``operand * mult + bias + 2^(shift-1)``. ``yw``: the value after
        requantization (saturated, the operand unchanged, or a logit). ``mw``: the LIF membrane
        ``U`` (``graph.lif_membrane_bits``: ``2 max|X| + 1`` with a leak, ``T max|X|`` without),
        ``uw``: ``U - theta``.
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

    def _pass_consts(self, p):
        """Products of descriptor fields the engine needs as constants of a pass (its running
        pointers add them), so that no multiplier sits in an address path."""
        if p.kind == SYN:
            return dict(nt=0, sw=p.stride * p.Wi, sp00=-p.pad * p.Wi - p.pad)
        return dict(nt=p.N * p.tiles, sw=0, sp00=0)

    def _descriptor(self, p):
        prog = self.prog
        t = prog.tensors
        d = dict(kind=_KIND[p.kind], last_pass=0)
        if p.kind == SYN:
            src = t[p.src]
            d.update(src_img=int(src.space == "image"), kv_mode=int(p.wsrc == "vrow"),
                     qkv_mode=int(p.wsrc == "kv"), accsel_ch=int(p.accsel == "channel"),
                     heads_on=int(bool(p.heads)),
                     hd=(src.C // p.heads) if p.heads else 0, h_base=self.h_base.get(p.node, 0),
                     T=p.T, t_rows=p.t_rows, Hi=p.Hi, Wi=p.Wi, HW=p.Hi * p.Wi, Ho=p.Ho, Wo=p.Wo,
                     kh=p.kh, kw=p.kw, stride=p.stride, pad=p.pad, tiles=p.tiles,
                     w_base=p.w_base, tap_stride=p.tap_stride, t_stride=p.t_stride,
                     acc_words=p.acc_words, src_base=src.base,
                     src2_base=t[p.src2].base if p.wsrc == "vrow" else 0,
                     dst_base=t[p.dst].base)
        else:
            a = t[p.a]
            b = t[p.b] if p.b else None
            dst = t[p.dst]
            sat = p.sat_bits or 2
            add = p.add_bits or 2
            d.update(op=_EW_OPS[p.op] if p.kind == EW else _RED_OPS[p.op],
                     T=p.T, N=p.N, tiles=p.tiles, a_int=int(a.space == "int"), a_base=a.base,
                     b_used=int(b is not None), b_int=int(b is not None and b.space == "int"),
                     b_base=b.base if b is not None else 0, b_bcast=int(p.b_broadcast),
                     C=dst.C, b_rows=(b.H * b.W) if b is not None else 0,
                     dst_base=dst.base if dst.space in ("int", "spike") else 0,
                     requant=int(p.requant), shift=p.shift,
                     sat_hi=(1 << (sat - 1)) - 1, sat_lo=-(1 << (sat - 1)),
                     add_hi=(1 << (add - 1)) - 1, add_lo=-(1 << (add - 1)),
                     leak=p.leak, soft=int(p.soft), levels=p.levels, ms_shift=p.ms_shift,
                     c_base=p.c_base)
        return d

    @property
    def desc_words(self):
        """Memory words per descriptor (one, or ``desc_word_bits`` pieces)."""
        bits = self.prog.memory.desc_word_bits
        return -(-self.desc_layout.size // bits) if bits else 1

    @property
    def desc_word_width(self):
        return self.prog.memory.desc_word_bits or self.desc_layout.size

    def _desc_init(self):
        """Descriptor memory words: pass ``i`` at ``i * desc_words``, lowest piece first."""
        layout = self.desc_layout
        out = []
        for i, row in enumerate(self.desc_rows):
            row = dict(row, last_pass=int(i == len(self.desc_rows) - 1))
            value = 0
            for name, field in layout:
                v = row.get(name, 0)
                value |= (v & ((1 << field.width) - 1)) << field.offset
            bits = self.desc_word_width
            out.extend((value >> (k * bits)) & ((1 << bits) - 1) for k in range(self.desc_words))
        return out


_PLAN_FIELDS = ("pixel_bits", "logit_bits", "pbs", "pbi", "slot_bits", "row_bits_s", "row_bits_i",
                "row_bits", "ib", "wb", "mb", "bb", "tb", "ab", "rw", "ow", "pw", "yw", "mw", "uw", "h_base",
                "hstart", "desc_rows", "desc_layout")


class Engine(wiring.Component):
    """Run one compiled program per image.

    Members
    -------
    pixels : ``In(stream.Signature(unsigned(pixel_bits)))``
        The image, row-major with channels fastest (``H * W * C`` beats).
    result : ``Out(stream.Signature(result_layout(logit_bits)))``
        ``K`` logits then the class (``last`` set on the class beat).
    cycles, events : ``Out(32)``
        Cycles from the last pixel to the first result beat, and synaptic events processed,
        for the last image.
    weights : ``In(stream.Signature(weight_load_layout()))``
        Only with the SPRAM mapping: the words of ``program.weight_image()``, accepted while
        the engine waits for an image. Load them all before the first image.

    ``spram_primitive``: instantiate ``SB_SPRAM256KA`` for the SPRAM mapping (synthesis for
    the iCE40UP5K) instead of the behavioural model (simulation).
    """

    def __init__(self, program, *, spram_primitive=False):
        self.prog = program
        self.plan = EnginePlan(program)
        self.spram_primitive = spram_primitive
        for name in _PLAN_FIELDS:
            setattr(self, name, getattr(self.plan, name))
        members = {
            "pixels": In(stream.Signature(unsigned(self.pixel_bits))),
            "result": Out(stream.Signature(result_layout(self.logit_bits))),
            "cycles": Out(32),
            "events": Out(32),
        }
        if program.memory.kind == "spram":
            members["weights"] = In(stream.Signature(weight_load_layout()))
        super().__init__(members)

    # --- hardware -----------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        prog = self.prog
        P = prog.lanes
        img = prog.image
        S, sb = prog.spike_slots, self.slot_bits
        ib, wb, mb, bb, tb, ab = self.ib, self.wb, self.mb, self.bb, self.tb, self.ab
        K = prog.classes

        # Memories -------------------------------------------------------------------------
        img_mem = Memory(shape=unsigned(max(1, img.C * self.pixel_bits)), depth=img.N, init=[])
        m.submodules.img_mem = img_mem
        img_w = img_mem.write_port()
        img_r = img_mem.read_port()

        rows = max(1, prog.spike_rows)
        banks = []
        self.debug_smem = []
        for lane in range(P):
            mem = Memory(shape=unsigned(S * sb), depth=rows, init=[])
            m.submodules[f"smem{lane}"] = mem
            self.debug_smem.append(mem)
            banks.append((mem.write_port(granularity=sb), mem.read_port(), mem.read_port()))

        spram = prog.memory.kind == "spram"
        self.debug_imem, im_w, im_a, im_b = int_memory(m, prog, P * ib, primitive=self.spram_primitive)

        def pack(values, width):
            v = 0
            for i, x in enumerate(values):
                v |= (int(x) & ((1 << width) - 1)) << (i * width)
            return v

        wm_r, wm_load = weight_memory(m, prog, P * wb, [pack(row, wb) for row in prog.weights],
                                      primitive=self.spram_primitive)

        cw = mb + bb + tb
        cmem = Memory(shape=unsigned(P * cw), depth=max(1, len(prog.consts)),
                      init=[pack([(int(c[0]) & ((1 << mb) - 1)) | ((int(c[1]) & ((1 << bb) - 1)) << mb)
                                  | ((int(c[2]) & ((1 << tb) - 1)) << (mb + bb)) for c in word], cw)
                            for word in prog.consts])
        m.submodules.cmem = cmem
        cm_r = cmem.read_port()

        acc_depth = max(p.acc_words for p in prog.passes if p.kind == SYN)
        amems = []
        for k in range(2):  # one read port per bank: a bank accumulates or drains, never both
            mem = Memory(shape=unsigned(P * ab), depth=acc_depth, init=[])
            m.submodules[f"amem{k}"] = mem
            wp = mem.write_port()
            rp = mem.read_port(transparent_for=(wp,))
            amems.append((wp, rp, rp))

        hst = Array(Const(v, _ubits(max(self.hstart))) for v in self.hstart)

        nw, dw = self.plan.desc_words, self.plan.desc_word_width
        desc_mem = Memory(shape=unsigned(dw), depth=len(self.desc_rows) * nw, init=self.plan._desc_init())
        m.submodules.desc_mem = desc_mem
        desc_r = desc_mem.read_port()
        # The descriptor register is a shift register of nw pieces (piece 0 lowest when full);
        # its fields are meaningless while it loads, when no pass runs.
        desc_bits = Signal(nw * dw)
        desc = data.View(self.desc_layout, desc_bits[:self.desc_layout.size])
        desc_k = Signal(range(nw + 1))

        # Default port enables.
        for wp, ra, rb in banks:
            m.d.comb += [ra.en.eq(1), rb.en.eq(1)]
        m.d.comb += [wm_r.en.eq(1), cm_r.en.eq(1), img_r.en.eq(1)]
        if spram:  # a bank serves one access per cycle: enable only the ports in use
            is_syn = desc.kind == _KIND[SYN]
            m.d.comb += [im_a.en.eq(Mux(is_syn, desc.qkv_mode, desc.a_int)),
                         im_b.en.eq(~is_syn & desc.b_used & desc.b_int)]
        else:
            m.d.comb += [im_a.en.eq(1), im_b.en.eq(1)]
        for wp, rr, rd in amems:
            m.d.comb += rr.en.eq(1)

        # Top-level control ------------------------------------------------------------
        pc = Signal(range(len(self.desc_rows) + 1))
        self.debug_pc = pc
        cycle_ctr = Signal(32)
        event_ctr = Signal(32)
        self.debug_events = event_ctr
        counting = Signal()
        with m.If(counting):
            m.d.sync += cycle_ctr.eq(cycle_ctr + 1)

        pix_idx = Signal(range(img.N * img.C + 1))
        pix_word = Signal(max(1, img.C * self.pixel_bits))
        pix_ch = Signal(range(img.C + 1))

        logits = Array(Signal(signed(self.logit_bits), name=f"logit{j}") for j in range(K))
        out_idx = Signal(range(K + 1))
        best = Signal(signed(self.logit_bits))
        best_idx = Signal(range(max(2, K)))

        start_syn = Signal()
        start_ew = Signal()
        syn_done = Signal()
        ew_done = Signal()

        with m.FSM(name="top"):
            with m.State("IDLE"):
                m.d.comb += self.pixels.ready.eq(1)
                if wm_load is not None:
                    m.d.comb += [self.weights.ready.eq(1), wm_load.en.eq(self.weights.valid),
                                 wm_load.addr.eq(self.weights.payload.addr),
                                 wm_load.data.eq(self.weights.payload.data)]
                with m.If(self.pixels.valid):
                    if img.C == 1:
                        word = self.pixels.payload
                    else:
                        word = Cat(pix_word[self.pixel_bits:], self.pixels.payload)
                    m.d.sync += pix_word.eq(word)
                    last_ch = (pix_ch == img.C - 1)
                    m.d.sync += pix_ch.eq(Mux(last_ch, 0, pix_ch + 1))
                    with m.If(last_ch):
                        m.d.comb += [img_w.en.eq(1), img_w.addr.eq(pix_idx // img.C), img_w.data.eq(word)]
                    m.d.sync += pix_idx.eq(pix_idx + 1)
                    with m.If(pix_idx == img.N * img.C - 1):
                        m.d.sync += [pix_idx.eq(0), pc.eq(0), cycle_ctr.eq(0), event_ctr.eq(0),
                                     counting.eq(1), desc_k.eq(0)]
                        m.next = "DESC"
            # The descriptor: nw memory words, read one per cycle (pass setup: nw + 2 cycles).
            with m.State("DESC"):
                m.d.comb += [desc_r.addr.eq(pc * nw + desc_k), desc_r.en.eq(1)]
                m.d.sync += desc_k.eq(desc_k + 1)
                if nw > 1:
                    with m.If(desc_k != 0):
                        m.d.sync += desc_bits.eq(Cat(desc_bits[dw:], desc_r.data))
                with m.If(desc_k == nw - 1):
                    m.next = "DESC2"
            with m.State("DESC2"):
                m.d.sync += desc_k.eq(0)
                m.d.sync += desc_bits.eq(Cat(desc_bits[dw:], desc_r.data) if nw > 1 else desc_r.data)
                m.next = "START"
            with m.State("START"):
                with m.If(desc.kind == _KIND[SYN]):
                    m.d.comb += start_syn.eq(1)
                with m.Else():
                    m.d.comb += start_ew.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(syn_done | ew_done):
                    with m.If(desc.last_pass):
                        m.d.sync += [out_idx.eq(0), counting.eq(0), self.cycles.eq(cycle_ctr + 1),
                                     self.events.eq(event_ctr)]
                        m.next = "OUT"
                    with m.Else():
                        m.d.sync += pc.eq(pc + 1)
                        m.next = "DESC"
            with m.State("OUT"):
                is_class = out_idx == K
                m.d.comb += [
                    self.result.valid.eq(1),
                    self.result.payload.value.eq(Mux(is_class, best_idx, logits[out_idx])),
                    self.result.payload.last.eq(is_class),
                ]
                with m.If(self.result.ready):
                    m.d.sync += out_idx.eq(out_idx + 1)
                    cur = logits[out_idx]
                    with m.If(~is_class & ((out_idx == 0) | (cur > best))):
                        m.d.sync += [best.eq(cur), best_idx.eq(out_idx)]
                    with m.If(is_class):
                        m.next = "IDLE"

        self._pc = pc
        self._elab_syn(m, desc, start_syn, syn_done, banks, img_r, im_a, im_w, wm_r, amems, hst,
                       event_ctr)
        self._elab_ew(m, desc, start_ew, ew_done, banks, im_a, im_b, im_w, cm_r, logits)
        return m

    # --- SYN: event-driven accumulation ----------------------------------------------------
    def _elab_syn(self, m, desc, start, done, banks, img_r, im_a, im_w, wm_r, amems, hst, event_ctr):
        """Row generator | read | 3-row FIFO | scan | decode 1 | decode 2 | issue | I | A.

        The generator walks (t, y', x', t_rows, ky, kx) one tap per cycle with running
        pointers (no multiplier): the read address is a time base plus a spatial pointer. The
        scan stage takes the lowest set bit of the current row each cycle; two decode stages
        turn its index into the head's tile range, ``channel * tiles`` and the weight base;
        the issue stage sends one (event, tile) per cycle to the accumulator pipeline exactly
        as before, so the per-position timing rules are unchanged.
        """
        prog = self.prog
        P = prog.lanes
        S, sb = prog.spike_slots, self.slot_bits
        ib, wb, ab = self.ib, self.wb, self.ab
        Rw = self.row_bits
        cmax = S * P
        syn = [p for p in prog.passes if p.kind == SYN]
        # Spatial pointer y * Wi + x (negative inside the padding), coordinates, addresses.
        sp_max = max((p.Hi + p.pad + 1) * (p.Wi + p.pad + 1) for p in syn)
        spw = _ubits(sp_max) + 1
        cw_ = _ubits(max(max(p.Hi, p.Wi) + p.pad + max(p.stride, p.kh, p.kw) for p in syn)) + 1
        rows_w = _ubits(max(prog.spike_rows, prog.image.N, 1))
        ww = _ubits(max(len(prog.weights), prog.int_words, 1))

        active = Signal()
        # Row generator ------------------------------------------------------------------
        t = Signal(len(desc.T))
        oy = Signal(len(desc.Ho))
        ox = Signal(len(desc.Wo))
        tr = Signal(len(desc.t_rows))
        ky = Signal(len(desc.kh))
        kx = Signal(len(desc.kw))
        gen_on = Signal()
        y = Signal(signed(cw_))      # oy * stride + ky - pad
        x = Signal(signed(cw_))      # ox * stride + kx - pad
        ys = Signal(signed(cw_))     # oy * stride - pad
        xs = Signal(signed(cw_))     # ox * stride - pad
        sp = Signal(signed(spw))     # y * Wi + x
        sp_k = Signal(signed(spw))   # y * Wi + xs   (start of the kernel row)
        sp_p = Signal(signed(spw))   # ys * Wi + xs  (the position's first tap)
        sp_o = Signal(signed(spw))   # ys * Wi - pad (the first position of the output row)
        tb_t = Signal(rows_w)        # src_base + t * HW          (position time step)
        tb2_t = Signal(rows_w)       # src2_base + t * HW
        wb_t = Signal(ww)            # w_base + t * t_stride
        tb = Signal(rows_w)          # src_base + tt * HW         (row time step)
        tb2 = Signal(rows_w)         # src2_base + tt * HW
        wb_tt = Signal(ww)           # w_base + tt * t_stride
        wptr = Signal(ww)            # w_base + tap * tap_stride + tt * t_stride
        sw = self._pass_const(m, "sw")      # stride * Wi
        sp00 = self._pass_const(m, "sp00")  # -pad * Wi - pad
        inb = (y >= 0) & (y < desc.Hi) & (x >= 0) & (x < desc.Wi)
        # Last in-grid tap of the position (only read for in-grid taps).
        row_last = (tr == desc.t_rows - 1) & ((ky == desc.kh - 1) | (y == desc.Hi - 1)) & \
            ((kx == desc.kw - 1) | (x == desc.Wi - 1))

        # FIFO of fetched rows (3 entries, so the generator never waits for the scan stage's
        # decision of the same cycle) and the read in flight.
        NF = 3
        fifo_bits = [Signal(Rw, name=f"fifo_bits{i}") for i in range(NF)]
        fifo_v = [Signal(cmax * sb, name=f"fifo_v{i}") for i in range(NF)]
        fifo_wb = [Signal(ww, name=f"fifo_wb{i}") for i in range(NF)]
        fifo_last = [Signal(name=f"fifo_last{i}") for i in range(NF)]
        count = Signal(range(NF + 1))
        infl = Signal()
        infl_wb = Signal(ww)
        infl_last = Signal()
        pop = Signal()

        can_issue = gen_on & ((count + infl) < NF)
        issue = Signal()
        m.d.comb += issue.eq(can_issue & inb)
        # Read addresses (spike banks port A: event rows; port B: V rows).
        for wp, ra, rb in banks:
            m.d.comb += [ra.addr.eq(tb + sp), rb.addr.eq(tb2 + sp)]
        m.d.comb += img_r.addr.eq(sp)  # the image is stored once for every t

        with m.If(can_issue):  # advance the generator (a tap outside the grid costs its cycle here)
            last_kx = kx == desc.kw - 1
            last_ky = ky == desc.kh - 1
            last_tr = tr == desc.t_rows - 1
            last_ox = ox == desc.Wo - 1
            last_oy = oy == desc.Ho - 1
            with m.If(~last_kx):
                m.d.sync += [kx.eq(kx + 1), x.eq(x + 1), sp.eq(sp + 1), wptr.eq(wptr + desc.tap_stride)]
            with m.Elif(~last_ky):
                m.d.sync += [kx.eq(0), ky.eq(ky + 1), x.eq(xs), y.eq(y + 1), sp_k.eq(sp_k + desc.Wi),
                             sp.eq(sp_k + desc.Wi), wptr.eq(wptr + desc.tap_stride)]
            with m.Elif(~last_tr):
                m.d.sync += [kx.eq(0), ky.eq(0), tr.eq(tr + 1), x.eq(xs), y.eq(ys), sp_k.eq(sp_p),
                             sp.eq(sp_p), tb.eq(tb + desc.HW), tb2.eq(tb2 + desc.HW),
                             wb_tt.eq(wb_tt + desc.t_stride), wptr.eq(wb_tt + desc.t_stride)]
            with m.Elif(~last_ox):
                m.d.sync += [kx.eq(0), ky.eq(0), tr.eq(0), ox.eq(ox + 1), xs.eq(xs + desc.stride),
                             x.eq(xs + desc.stride), y.eq(ys), sp_p.eq(sp_p + desc.stride),
                             sp_k.eq(sp_p + desc.stride), sp.eq(sp_p + desc.stride),
                             tb.eq(tb_t), tb2.eq(tb2_t), wb_tt.eq(wb_t), wptr.eq(wb_t)]
            with m.Elif(~last_oy):
                m.d.sync += [kx.eq(0), ky.eq(0), tr.eq(0), ox.eq(0), oy.eq(oy + 1),
                             ys.eq(ys + desc.stride), y.eq(ys + desc.stride), xs.eq(-desc.pad),
                             x.eq(-desc.pad), sp_o.eq(sp_o + sw), sp_p.eq(sp_o + sw), sp_k.eq(sp_o + sw),
                             sp.eq(sp_o + sw), tb.eq(tb_t), tb2.eq(tb2_t), wb_tt.eq(wb_t), wptr.eq(wb_t)]
            with m.Else():
                m.d.sync += [kx.eq(0), ky.eq(0), tr.eq(0), ox.eq(0), oy.eq(0), t.eq(t + 1),
                             ys.eq(-desc.pad), y.eq(-desc.pad), xs.eq(-desc.pad), x.eq(-desc.pad),
                             sp_o.eq(sp00), sp_p.eq(sp00), sp_k.eq(sp00), sp.eq(sp00),
                             tb_t.eq(tb_t + desc.HW), tb.eq(tb_t + desc.HW),
                             tb2_t.eq(tb2_t + desc.HW), tb2.eq(tb2_t + desc.HW),
                             wb_t.eq(wb_t + desc.t_stride), wb_tt.eq(wb_t + desc.t_stride),
                             wptr.eq(wb_t + desc.t_stride)]
                with m.If(t == desc.T - 1):
                    m.d.sync += gen_on.eq(0)
        m.d.sync += infl.eq(issue)
        with m.If(issue):
            m.d.sync += [infl_wb.eq(wptr), infl_last.eq(row_last)]

        # Flatten the fetched row: spikes channel-major with plane stride 2^pbs.
        row_s = Signal(Rw)
        row_v = Signal(cmax * sb)
        for c in range(cmax):
            bank, slot = c % P, c // P
            word_a = banks[bank][1].data
            word_b = banks[bank][2].data
            m.d.comb += [
                row_s[(c << self.pbs):(c << self.pbs) + sb].eq(word_a[slot * sb:(slot + 1) * sb]),
                row_v[c * sb:(c + 1) * sb].eq(word_b[slot * sb:(slot + 1) * sb]),
            ]
        row_i = Signal(Rw)
        for c in range(prog.image.C):
            m.d.comb += row_i[(c << self.pbi):(c << self.pbi) + self.pixel_bits].eq(
                img_r.data[c * self.pixel_bits:(c + 1) * self.pixel_bits])
        fetched = Mux(desc.src_img, row_i, row_s)

        # Push the fetched row, pop to the scan stage.
        push = infl
        with m.If(pop):
            for i in range(NF - 1):
                m.d.sync += [fifo_bits[i].eq(fifo_bits[i + 1]), fifo_v[i].eq(fifo_v[i + 1]),
                             fifo_wb[i].eq(fifo_wb[i + 1]), fifo_last[i].eq(fifo_last[i + 1])]
        slot_idx = Mux(pop, count - 1, count)
        with m.If(push):
            for i in range(NF):
                with m.If(slot_idx == i):
                    m.d.sync += [fifo_bits[i].eq(fetched), fifo_v[i].eq(row_v), fifo_wb[i].eq(infl_wb),
                                 fifo_last[i].eq(infl_last)]
        m.d.sync += count.eq(count + push - pop)

        # Scan stage: the lowest set bit of the row, one per cycle ------------------------
        pending = Signal(Rw)
        e1_v = Signal(cmax * sb)
        e1_wb = Signal(ww)
        e1_last = Signal()
        e1_on = Signal()           # a row is loaded in ``pending``
        low = Signal(Rw)
        m.d.comb += low.eq(pending & (~pending + 1))
        rest = Signal(Rw)
        m.d.comb += rest.eq(pending & (pending - 1))
        single = Signal()          # at most one set bit: the row ends with this item
        m.d.comb += single.eq(~_two_or_more(pending))
        idx = Signal(_ubits(Rw))
        m.d.comb += idx.eq(one_hot_index(low))

        # Items: an event (channel, plane) or, for a row without events, an empty item; each
        # carries the row's flags. Stages D1, D2 and E (issue) hold one item each.
        def item(name):
            return {
                "valid": Signal(name=f"{name}_valid"), "ev": Signal(name=f"{name}_ev"),
                "idx": Signal(len(idx), name=f"{name}_idx"), "row_end": Signal(name=f"{name}_row_end"),
                "pos_last": Signal(name=f"{name}_pos_last"), "wb": Signal(ww, name=f"{name}_wb"),
                "v": Signal(cmax * sb, name=f"{name}_v"),
            }
        d1, d2, e = item("d1"), item("d2"), item("e")
        d1_c = Signal(16)
        d1_b = Signal(8)
        m.d.comb += [
            d1_c.eq(Mux(desc.src_img, d1["idx"] >> self.pbi, d1["idx"] >> self.pbs)),
            d1_b.eq(Mux(desc.src_img, d1["idx"] & ((1 << self.pbi) - 1), d1["idx"] & ((1 << self.pbs) - 1))),
        ]
        d2_c = Signal(16)
        d2_b = Signal(8)
        d2_lo = Signal(16)     # first channel of the event's head
        d2_ct = Signal(ww)     # channel * tiles
        e_b = Signal(8)
        e_ct = Signal(ww)
        e_lo = Signal(16)
        e_base = Signal(ww)    # weight word of the event's tile 0: wb + channel * tiles
        e_tile = Signal(16)
        e_tile_hi = Signal(16)
        e_first = Signal()
        bank = Signal()        # accumulator bank of the current position
        dr_busy = Signal()

        # Issue stage E: one (event, tile) per cycle.
        e_at_last = ~e["ev"] | (e_tile == e_tile_hi)
        e_final = e["row_end"] & e["pos_last"] & e_at_last   # the position's last cycle
        stall = Signal()       # a position can only end (swap banks) when the drain engine is free
        m.d.comb += stall.eq(e["valid"] & e_final & dr_busy)
        e_go = e["valid"] & ~stall
        ev_issue = Signal()
        m.d.comb += ev_issue.eq(e_go & e["ev"])
        pos_end = Signal()
        m.d.comb += pos_end.eq(e_go & e_final)
        e_ready = ~e["valid"] | (e_go & e_at_last)
        d2_ready = ~d2["valid"] | e_ready
        d1_ready = ~d1["valid"] | d2_ready
        emit = e1_on & d1_ready
        row_done = emit & single

        with m.If(emit):
            m.d.sync += pending.eq(rest)
        with m.If(row_done):
            m.d.sync += e1_on.eq(0)
        m.d.comb += pop.eq((~e1_on | row_done) & active & (count > 0))
        with m.If(pop):
            m.d.sync += [pending.eq(fifo_bits[0]), e1_v.eq(fifo_v[0]), e1_wb.eq(fifo_wb[0]),
                         e1_last.eq(fifo_last[0]), e1_on.eq(1)]

        # Stage D1: the head's first channel, channel * tiles.
        with m.If(d1_ready):
            m.d.sync += [d1["valid"].eq(emit), d1["ev"].eq(pending != 0), d1["idx"].eq(idx),
                         d1["row_end"].eq(single), d1["pos_last"].eq(e1_last), d1["wb"].eq(e1_wb),
                         d1["v"].eq(e1_v)]
        with m.If(d2_ready):
            m.d.sync += [d2[k].eq(d1[k]) for k in d2]
            m.d.sync += [d2_c.eq(d1_c), d2_b.eq(d1_b), d2_ct.eq(d1_c * desc.tiles),
                         d2_lo.eq(Mux(desc.heads_on, hst[desc.h_base + d1_c], 0))]
        # Stage D2: the tile range and the weight base.
        with m.If(e_ready):
            m.d.sync += [e[k].eq(d2[k]) for k in e]
            m.d.sync += [e_b.eq(d2_b), e_ct.eq(d2_ct), e_lo.eq(d2_lo), e_base.eq(d2["wb"] + d2_ct),
                         e_first.eq(1),
                         e_tile.eq(Mux(desc.heads_on, d2_lo >> _log2(P), 0)),
                         e_tile_hi.eq(Mux(desc.heads_on, (d2_lo + desc.hd - 1) >> _log2(P), desc.tiles - 1))]
        with m.Elif(ev_issue):
            m.d.sync += [e_tile.eq(e_tile + 1), e_first.eq(0)]
        # Count events (once per event, at its first tile).
        with m.If(ev_issue & e_first):
            m.d.sync += event_ctr.eq(event_ctr + 1)

        # Drain engine state.
        dr_delay = Signal()        # first drain cycle waits for the last accumulator write
        dr_bank = Signal()
        dr_word = Signal(16)
        dr_ptr = Signal(24)        # destination word of the position being drained
        dst_ptr = Signal(24)       # destination word of the current position
        dr_wr = Signal()
        dr_wr_addr = Signal(24)
        dr_wr_bank = Signal()
        with m.If(pos_end):
            m.d.sync += [bank.eq(~bank), dr_busy.eq(1), dr_delay.eq(1), dr_word.eq(0),
                         dr_bank.eq(bank), dr_ptr.eq(dst_ptr), dst_ptr.eq(dst_ptr + desc.acc_words)]

        # Stage I: addresses and reads.
        i_valid = Signal()
        i_b = Signal(8)
        i_word = Signal(16)
        i_bank = Signal()
        i_waddr = Signal(ww)
        # V-row lanes for K^T V: lane l holds channel tile * P + l, masked to the event's head.
        vl = []
        for ln in range(P):
            opts = Array(e["v"][(s * P + ln) * sb:(s * P + ln + 1) * sb] for s in range(S))
            ch = e_tile * P + ln
            in_head = (ch >= e_lo) & (ch < e_lo + desc.hd)
            vl.append(Mux(in_head, opts[e_tile], 0))
        i_v = [Signal(sb, name=f"i_v{ln}") for ln in range(P)]
        m.d.sync += i_valid.eq(ev_issue)
        with m.If(ev_issue):
            m.d.sync += [i_b.eq(e_b), i_bank.eq(bank), i_waddr.eq(e_base + e_tile),
                         i_word.eq(Mux(desc.accsel_ch, e_ct + e_tile, e_tile))]
            m.d.sync += [i_v[ln].eq(vl[ln]) for ln in range(P)]
        m.d.comb += wm_r.addr.eq(i_waddr)
        syn_im_addr = i_waddr
        for k, (wp, rr, rd) in enumerate(amems):
            m.d.comb += rr.addr.eq(i_word)

        # Stage A: accumulate.
        a_valid = Signal()
        a_b = Signal(8)
        a_word = Signal(16)
        a_bank = Signal()
        a_v = [Signal(sb + 1, name=f"a_v{ln}") for ln in range(P)]
        m.d.sync += [a_valid.eq(i_valid), a_b.eq(i_b), a_word.eq(i_word), a_bank.eq(i_bank)]
        m.d.sync += [a_v[ln].eq(i_v[ln]) for ln in range(P)]
        sums = []
        for ln in range(P):
            w_wm = lane(wm_r.data, ln, wb)
            w_im = lane(im_a.data, ln, ib)
            w = Mux(desc.kv_mode, a_v[ln], Mux(desc.qkv_mode, w_im, w_wm))
            accv = Mux(a_bank, lane(amems[1][1].data, ln, ab), lane(amems[0][1].data, ln, ab))
            s_ = Signal(signed(ab), name=f"sum{ln}")
            m.d.comb += s_.eq(accv + (w << a_b))
            sums.append(s_)
        for k, (wp, rr, rd) in enumerate(amems):
            with m.If(a_valid & (a_bank == k)):
                m.d.comb += [wp.en.eq(1), wp.addr.eq(a_word), wp.data.eq(Cat(*sums))]

        # Drain engine: after two cycles (in-flight writes), copy each accumulator word to the
        # integer memory and clear it.
        dr_clr_addr = Signal(16)
        m.d.sync += dr_wr.eq(0)
        with m.If(dr_busy):
            with m.If(dr_delay):
                m.d.sync += dr_delay.eq(0)
            with m.Else():
                for k, (wp, rr, rd) in enumerate(amems):
                    with m.If(dr_bank == k):
                        m.d.comb += rd.addr.eq(dr_word)
                m.d.sync += [dr_wr.eq(1), dr_wr_addr.eq(dr_ptr + dr_word), dr_clr_addr.eq(dr_word),
                             dr_wr_bank.eq(dr_bank), dr_word.eq(dr_word + 1)]
                with m.If(dr_word == desc.acc_words - 1):
                    m.d.sync += dr_busy.eq(0)
        with m.If(dr_wr & active):
            data_w = Mux(dr_wr_bank, amems[1][2].data, amems[0][2].data)
            m.d.comb += [im_w.en.eq(1), im_w.addr.eq(desc.dst_base + dr_wr_addr)]
            m.d.comb += im_w.data.eq(Cat(*[lane(data_w, ln, ab)[:ib] for ln in range(P)]))
            for k, (wp, rr, rd) in enumerate(amems):
                with m.If(dr_wr_bank == k):
                    m.d.comb += [wp.en.eq(1), wp.addr.eq(dr_clr_addr), wp.data.eq(0)]

        # Start / done.
        with m.If(start):
            m.d.sync += [active.eq(1), gen_on.eq(1), t.eq(0), oy.eq(0), ox.eq(0), tr.eq(0),
                         ky.eq(0), kx.eq(0), dst_ptr.eq(0), e1_on.eq(0), count.eq(0), bank.eq(0),
                         y.eq(-desc.pad), x.eq(-desc.pad), ys.eq(-desc.pad), xs.eq(-desc.pad),
                         sp.eq(sp00), sp_k.eq(sp00), sp_p.eq(sp00), sp_o.eq(sp00),
                         tb_t.eq(desc.src_base), tb.eq(desc.src_base), tb2_t.eq(desc.src2_base),
                         tb2.eq(desc.src2_base), wb_t.eq(desc.w_base), wb_tt.eq(desc.w_base),
                         wptr.eq(desc.w_base)]
        idle = active & ~start & ~gen_on & ~infl & (count == 0) & ~e1_on & ~d1["valid"] & ~d2["valid"] & \
            ~e["valid"] & ~i_valid & ~a_valid & ~dr_busy & ~dr_wr
        with m.If(idle):
            m.d.sync += active.eq(0)
            m.d.comb += done.eq(1)
        self._syn_im_addr = syn_im_addr
        self._syn_active = active

    # --- per-pass constants derived from the descriptor ----------------------------------
    def _pass_const(self, m, name):
        """A per-pass constant of :meth:`EnginePlan._pass_consts` (exact, computed here in
        Python), looked up by the pass counter and registered: valid from the second cycle of
        a pass's descriptor load, long before the pass starts."""
        values = [row[name] for row in self.plan.pass_consts]
        lo, hi = min(values + [0]), max(values + [0])
        shape = signed(bits_for_range(lo, hi)) if lo < 0 else unsigned(_ubits(hi))
        sig = Signal(shape, name=f"pc_{name}")
        m.d.sync += sig.eq(Array(Const(v, shape) for v in values)[self._pc])
        return sig

    # --- EW / RED: element-wise and reduction passes --------------------------------------
    def _elab_ew(self, m, desc, start, done, banks, im_a, im_b, im_w, cm_r, logits):
        """One element per cycle through an 8-stage pipeline; tiles follow each other without
        a gap, so a pass costs ``tiles * N * T`` issue cycles plus the pipeline depth once.

        ===== =====================================================================
        stage work (the element issued in cycle 0)
        ===== =====================================================================
        0     loop counters and running pointers; memory read addresses
        1     operand lanes from the memories (spike slot select), constants
        2     RED running sum; the addend (bias + rounding, or the logit bias)
        3     requantization product
        4     product (or operand) + addend
        5     arithmetic shift
        6     saturation (requantization)
        7     ``y - theta``, the residual sum, the multispike rounding, ``y AND b``
        8     neuron (the membrane loop alone), residual saturation, memory write
        ===== =====================================================================
        """
        prog = self.prog
        P = prog.lanes
        S, sb = prog.spike_slots, self.slot_bits
        ib, mb, bb, tb = self.ib, self.mb, self.bb, self.tb
        ow, pw, yw, mw, uw = self.ow, self.pw, self.yw, self.mw, self.uw
        K = prog.classes
        cw = mb + bb + tb
        bw = max(ib, sb + 1)                   # operand b: an integer lane or a spike value
        iw = _ubits(max(1, prog.int_words))    # integer memory word index
        rw_ = _ubits(max(1, prog.spike_rows))  # spike memory row index
        op = desc.op

        # Pass flags, registered from the descriptor (valid from the pass's first cycle).
        f_red, f_rq, f_lif, f_ms, f_add, f_and, f_out, f_spk, f_mask, f_soft = (
            Signal(name=f"ew_{n}") for n in ("red", "rq", "lif", "ms", "add", "and", "out", "spk",
                                             "mask", "soft"))
        is_red = desc.kind == _KIND[RED]
        m.d.sync += [
            f_red.eq(is_red), f_rq.eq(desc.requant), f_soft.eq(desc.soft),
            f_lif.eq((~is_red & (op == _EW_OPS["lif"])) | (is_red & (op == _RED_OPS["mask"]))),
            f_ms.eq(~is_red & (op == _EW_OPS["multispike"])),
            f_add.eq(~is_red & (op == _EW_OPS["add"])),
            f_and.eq(~is_red & (op == _EW_OPS["and"])),
            f_out.eq(~is_red & (op == _EW_OPS["out"])),
            f_mask.eq(is_red & (op == _RED_OPS["mask"])),
            f_spk.eq((is_red & (op == _RED_OPS["mask"])) | (~is_red & (
                (op == _EW_OPS["lif"]) | (op == _EW_OPS["multispike"]) | (op == _EW_OPS["and"])))),
        ]
        nt = self._pass_const(m, "nt")                  # N * tiles
        rnd = Signal(pw)                                # 2^(shift-1), 0 for shift 0
        ms_rnd = Signal(yw + 1)
        m.d.sync += [rnd.eq((Const(1, pw) << desc.shift) >> 1),
                     ms_rnd.eq((Const(1, yw + 1) << desc.ms_shift) >> 1)]

        # Stage 0: loops (EW: tile, n, t; RED: tile, t, n) and running pointers.
        active = Signal()
        run = Signal()
        tile = Signal(len(desc.tiles))
        n = Signal(len(desc.N))
        t = Signal(len(desc.T))
        ii = Signal(iw)    # integer word (t * N + n) * tiles + tile
        ii_n = Signal(iw)  # EW: n * tiles + tile
        si = Signal(rw_)   # spike row t * N + n
        bi = Signal(rw_)   # spike row of operand b: t * b_rows + (n, or 0 when broadcast)
        tbr = Signal(rw_)  # RED: t * b_rows
        ti = Signal(iw)    # RED: t * tiles + tile (pool output word)
        last_n = n == desc.N - 1
        last_t = t == desc.T - 1
        last_tile = tile == desc.tiles - 1
        issue = run
        last_el = last_n & last_t & last_tile
        with m.If(run):
            step_tile = Signal()
            with m.If(f_red):
                m.d.sync += n.eq(Mux(last_n, 0, n + 1))
                with m.If(~last_n):
                    m.d.sync += [ii.eq(ii + desc.tiles), si.eq(si + 1), bi.eq(bi + ~desc.b_bcast)]
                with m.Elif(~last_t):
                    m.d.sync += [t.eq(t + 1), ii.eq(ii + desc.tiles), si.eq(si + 1),
                                 tbr.eq(tbr + desc.b_rows), bi.eq(tbr + desc.b_rows), ti.eq(ti + desc.tiles)]
                with m.Else():
                    m.d.comb += step_tile.eq(1)
            with m.Else():
                m.d.sync += t.eq(Mux(last_t, 0, t + 1))
                with m.If(~last_t):
                    m.d.sync += [ii.eq(ii + nt), si.eq(si + desc.N), bi.eq(bi + desc.b_rows)]
                with m.Elif(~last_n):
                    m.d.sync += [n.eq(n + 1), ii_n.eq(ii_n + desc.tiles), ii.eq(ii_n + desc.tiles),
                                 si.eq(n + 1), bi.eq(Mux(desc.b_bcast, 0, n + 1))]
                with m.Else():
                    m.d.comb += step_tile.eq(1)
            with m.If(step_tile):
                m.d.sync += [t.eq(0), n.eq(0), tile.eq(tile + 1), ii.eq(tile + 1), ii_n.eq(tile + 1),
                             si.eq(0), bi.eq(0), tbr.eq(0), ti.eq(tile + 1)]
                with m.If(last_tile):
                    m.d.sync += run.eq(0)
        with m.If(active):
            m.d.comb += [im_a.addr.eq(desc.a_base + ii), im_b.addr.eq(desc.b_base + ii)]
            for wp, ra, rb in banks:
                m.d.comb += [ra.addr.eq(desc.a_base + si), rb.addr.eq(desc.b_base + bi)]
        with m.Else():
            m.d.comb += im_a.addr.eq(self._syn_im_addr)
        m.d.comb += cm_r.addr.eq(desc.c_base + tile)

        # Element control, carried down the pipeline with the element.
        ctl = data.StructLayout({
            "valid": 1, "last": 1, "first_n": 1, "first_t": 1, "wr": 1,
            "tile": len(tile), "widx": max(iw, rw_),
        })
        stages = [Signal(ctl, name=f"ew_c{k}") for k in range(9)]
        c0 = Signal(ctl)
        m.d.comb += [
            c0.valid.eq(issue), c0.last.eq(last_el), c0.first_n.eq(n == 0), c0.first_t.eq(t == 0),
            c0.wr.eq(~f_red | last_n), c0.tile.eq(tile),
            c0.widx.eq(Mux(f_red, Mux(f_spk, t, ti), Mux(f_spk, si, ii))),
        ]
        stages[0] = c0
        for k in range(1, 9):
            m.d.sync += stages[k].eq(stages[k - 1])
        c1, c2, c3, c4, c5, c6, c7, c8 = stages[1:]

        def per_lane(name, shape):
            return [Signal(shape, name=f"{name}{ln}") for ln in range(P)]

        # Stage 1: operand lanes and constants.
        opa, opb = per_lane("ew_a", signed(ow)), per_lane("ew_b", signed(bw))
        mult1, bias1, theta1 = per_lane("ew_mult", signed(mb)), per_lane("ew_bias", signed(bb)), \
            per_lane("ew_theta", unsigned(tb))
        for ln in range(P):
            spk_a = banks[ln][1].data
            spk_b = banks[ln][2].data
            sel_a = Array(spk_a[s * sb:(s + 1) * sb] for s in range(S))[c1.tile]
            sel_b = Array(spk_b[s * sb:(s + 1) * sb] for s in range(S))[c1.tile]
            word = cm_r.data[ln * cw:(ln + 1) * cw]
            m.d.sync += [
                opa[ln].eq(Mux(desc.a_int, lane(im_a.data, ln, ib), sel_a)),
                opb[ln].eq(Mux(desc.b_int, lane(im_b.data, ln, ib), sel_b)),
                mult1[ln].eq(word[:mb].as_signed()), bias1[ln].eq(word[mb:mb + bb].as_signed()),
                theta1[ln].eq(word[mb + bb:cw]),
            ]

        def carry(name, values, shape, n_stages):
            """Delay per-lane ``values`` by ``n_stages`` registers; returns the last ones."""
            for k in range(n_stages):
                nxt = per_lane(f"{name}_d{k}_", shape)
                m.d.sync += [d.eq(v) for d, v in zip(nxt, values)]
                values = nxt
            return values

        # Stage 2: RED running sum (the one-cycle loop of a reduction); the addend.
        opnd = per_lane("ew_opnd", signed(ow))
        mult2 = per_lane("ew_mult2_", signed(mb))
        addend = per_lane("ew_addend", signed(max(bb, pw) + 1))
        for ln in range(P):
            cur = Mux(f_mask, opa[ln] & opb[ln], opa[ln])
            total = Mux(c2.first_n, 0, opnd[ln]) + cur
            m.d.sync += [
                opnd[ln].eq(Mux(f_red, total, opa[ln])),
                mult2[ln].eq(mult1[ln]),
                addend[ln].eq(Mux(f_rq, bias1[ln] + rnd, Mux(f_out, bias1[ln], 0))),
            ]
        # Stage 3: the requantization product (a registered multiplier).
        prod = per_lane("ew_prod", signed(ow + mb))
        raw = per_lane("ew_raw", signed(ow))
        addend3 = carry("ew_addend3", addend, signed(max(bb, pw) + 1), 1)
        for ln in range(P):
            m.d.sync += [prod[ln].eq(opnd[ln] * mult2[ln]), raw[ln].eq(opnd[ln])]
        # Stage 4: + bias + rounding (requantization) / + logit bias (out).
        z = per_lane("ew_z", signed(pw))
        for ln in range(P):
            m.d.sync += z[ln].eq(Mux(f_rq, prod[ln], raw[ln]) + addend3[ln])
        # Stage 5: arithmetic shift (shift is 0 without requantization).
        sh = per_lane("ew_sh", signed(pw))
        for ln in range(P):
            m.d.sync += sh[ln].eq(z[ln] >> desc.shift)
        # Stage 6: saturation to sat_bits: sh fits iff its bits from sat_bits - 1 up are all
        # equal, i.e. sh & mask is 0 or mask, where mask = sat_lo = -2^(sat_bits-1).
        y = per_lane("ew_y", signed(yw))
        sat_mask = Signal(signed(pw))
        m.d.sync += sat_mask.eq(desc.sat_lo)
        for ln in range(P):
            hi_bits = sh[ln] & sat_mask
            fits = (hi_bits == 0) | (hi_bits == sat_mask)
            m.d.sync += y[ln].eq(Mux(~f_rq | fits, sh[ln], Mux(sh[ln][-1], desc.sat_lo, desc.sat_hi)))
        # Stage 7: values that feed the neuron stage.
        theta7 = carry("ew_theta7", theta1, unsigned(tb), 5)
        b7 = carry("ew_b7", opb, signed(bw), 5)
        ymt = per_lane("ew_ymt", signed(max(yw, tb + 1) + 1))
        y8 = per_lane("ew_y8", signed(yw))
        yadd = per_lane("ew_yadd", signed(max(yw, bw) + 1))
        msp = per_lane("ew_msp", signed(yw + 2))
        yand = per_lane("ew_yand", unsigned(sb))
        for ln in range(P):
            m.d.sync += [
                ymt[ln].eq(y[ln] - theta7[ln]), y8[ln].eq(y[ln]), yadd[ln].eq(y[ln] + b7[ln]),
                msp[ln].eq(y[ln] + ms_rnd), yand[ln].eq(y[ln][:sb] & b7[ln][:sb]),
            ]
        # Stage 8: neuron and write. The membrane loop (leak, integrate, fire, reset) is the
        # only logic between two membrane registers: U - theta comes precomputed.
        add_mask = Signal(signed(len(yadd[0])))
        m.d.sync += add_mask.eq(desc.add_lo)
        out_int, out_spk = [], []
        for ln in range(P):
            membrane = Signal(signed(mw), name=f"membrane{ln}")
            v_prev = Mux(c8.first_t, 0, membrane)
            v_leak = v_prev >> desc.leak
            u = Signal(signed(mw), name=f"ew_u{ln}")
            w = Signal(signed(uw), name=f"ew_w{ln}")
            m.d.comb += [u.eq(v_leak + y8[ln]), w.eq(v_leak + ymt[ln])]
            fire = ~w[-1]
            with m.If(c8.valid & c8.wr & f_lif):
                m.d.sync += membrane.eq(Mux(fire, Mux(f_soft, w, 0), u))
            msr = msp[ln] >> desc.ms_shift
            ms = Mux(msr[-1], 0, Mux(msr > desc.levels, desc.levels, msr))
            spike = Signal(sb, name=f"spike{ln}")
            m.d.comb += spike.eq(Mux(f_lif, fire, Mux(f_ms, ms, yand[ln])))
            hi_bits = yadd[ln] & add_mask
            fits = (hi_bits == 0) | (hi_bits == add_mask)
            y_add = Mux(fits, yadd[ln], Mux(yadd[ln][-1], desc.add_lo, desc.add_hi))
            iv = Mux(f_add, y_add, y8[ln])
            out_int.append(iv[:ib])
            out_spk.append(spike)

        with m.If(c8.valid & c8.wr):
            with m.If(f_out):
                for ln in range(P):
                    for j in range(K):
                        with m.If(c8.tile * P + ln == j):
                            m.d.sync += logits[j].eq(y8[ln])
            with m.Elif(f_spk):
                for ln, (wp, _ra, _rb) in enumerate(banks):
                    m.d.comb += [wp.addr.eq(desc.dst_base + c8.widx), wp.data.eq(Cat(*([out_spk[ln]] * S)))]
                    real = c8.tile * P + ln < desc.C  # lanes past the last channel write nothing
                    for s in range(S):
                        m.d.comb += wp.en[s].eq(real & (c8.tile == s))
            with m.Else():
                m.d.comb += [im_w.en.eq(1), im_w.addr.eq(desc.dst_base + c8.widx), im_w.data.eq(Cat(*out_int))]

        with m.If(c8.valid & c8.last):
            m.d.sync += active.eq(0)
            m.d.comb += done.eq(1)
        with m.If(start):
            m.d.sync += [active.eq(1), run.eq(1), tile.eq(0), n.eq(0), t.eq(0), ii.eq(0), ii_n.eq(0),
                         si.eq(0), bi.eq(0), tbr.eq(0), ti.eq(0)]
