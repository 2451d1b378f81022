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
        self.desc_rows = rows
        fields = {}
        for row in rows:
            for k, v in row.items():
                lo, hi = fields.get(k, (0, 0))
                fields[k] = (min(lo, v), max(hi, v))
        self.desc_layout = data.StructLayout({
            k: (signed(bits_for_range(lo, hi)) if lo < 0 else unsigned(_ubits(hi)))
            for k, (lo, hi) in sorted(fields.items())})

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
                "row_bits", "ib", "wb", "mb", "bb", "tb", "ab", "h_base", "hstart", "desc_rows",
                "desc_layout")


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
        desc = data.View(self.desc_layout, Signal(self.desc_layout.size))
        desc_bits = Signal(nw * dw)
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
                whole = Cat(desc_bits[dw:], desc_r.data) if nw > 1 else desc_r.data
                m.d.sync += desc.as_value().eq(whole[:self.desc_layout.size])
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

        self._elab_syn(m, desc, start_syn, syn_done, banks, img_r, im_a, im_w, wm_r, amems, hst,
                       event_ctr)
        self._elab_ew(m, desc, start_ew, ew_done, banks, im_a, im_b, im_w, cm_r, logits)
        return m

    # --- SYN: event-driven accumulation ----------------------------------------------------
    def _elab_syn(self, m, desc, start, done, banks, img_r, im_a, im_w, wm_r, amems, hst, event_ctr):
        prog = self.prog
        P = prog.lanes
        S, sb = prog.spike_slots, self.slot_bits
        ib, wb, ab = self.ib, self.wb, self.ab
        Rw = self.row_bits
        cmax = S * P

        active = Signal()
        # Row generator ------------------------------------------------------------------
        t = Signal(16)
        oy = Signal(16)
        ox = Signal(16)
        tr = Signal(16)
        ky = Signal(16)
        kx = Signal(16)
        gen_on = Signal()
        tt = Mux(desc.t_rows == 1, t, tr)
        y = Signal(signed(18))
        x = Signal(signed(18))
        m.d.comb += [y.eq(oy * desc.stride + ky - desc.pad), x.eq(ox * desc.stride + kx - desc.pad)]
        inb = (y >= 0) & (y < desc.Hi) & (x >= 0) & (x < desc.Wi)
        ky_max = Signal(signed(18))
        kx_max = Signal(signed(18))
        m.d.comb += [
            ky_max.eq(Mux(desc.Hi - 1 + desc.pad - oy * desc.stride < desc.kh - 1,
                          desc.Hi - 1 + desc.pad - oy * desc.stride, desc.kh - 1)),
            kx_max.eq(Mux(desc.Wi - 1 + desc.pad - ox * desc.stride < desc.kw - 1,
                          desc.Wi - 1 + desc.pad - ox * desc.stride, desc.kw - 1)),
        ]
        row_last = (tr == desc.t_rows - 1) & (ky == ky_max) & (kx == kx_max)
        row_off = Signal(24)
        m.d.comb += row_off.eq(tt * desc.HW + y * desc.Wi + x)

        # FIFO of fetched rows (2 entries) and the read in flight.
        fifo_bits = [Signal(Rw, name=f"fifo_bits{i}") for i in range(2)]
        fifo_v = [Signal(cmax * sb, name=f"fifo_v{i}") for i in range(2)]
        fifo_tap = [Signal(16, name=f"fifo_tap{i}") for i in range(2)]
        fifo_tt = [Signal(16, name=f"fifo_tt{i}") for i in range(2)]
        fifo_last = [Signal(name=f"fifo_last{i}") for i in range(2)]
        count = Signal(range(3))
        infl = Signal()
        infl_tap = Signal(16)
        infl_tt = Signal(16)
        infl_last = Signal()
        pop = Signal()

        can_issue = gen_on & ((count + infl - pop) < 2)
        issue = Signal()
        m.d.comb += issue.eq(can_issue & inb)
        # Read addresses (spike banks port A: event rows; port B: V rows).
        for wp, ra, rb in banks:
            m.d.comb += [ra.addr.eq(desc.src_base + row_off), rb.addr.eq(desc.src2_base + row_off)]
        m.d.comb += img_r.addr.eq(y * desc.Wi + x)  # the image is stored once for every t

        with m.If(can_issue):  # advance the generator (a tap outside the grid costs its cycle here)
            last_kx = kx == desc.kw - 1
            last_ky = ky == desc.kh - 1
            last_tr = tr == desc.t_rows - 1
            m.d.sync += kx.eq(Mux(last_kx, 0, kx + 1))
            with m.If(last_kx):
                m.d.sync += ky.eq(Mux(last_ky, 0, ky + 1))
                with m.If(last_ky):
                    m.d.sync += tr.eq(Mux(last_tr, 0, tr + 1))
                    with m.If(last_tr):
                        last_ox = ox == desc.Wo - 1
                        last_oy = oy == desc.Ho - 1
                        m.d.sync += ox.eq(Mux(last_ox, 0, ox + 1))
                        with m.If(last_ox):
                            m.d.sync += oy.eq(Mux(last_oy, 0, oy + 1))
                            with m.If(last_oy):
                                m.d.sync += t.eq(t + 1)
                                with m.If(t == desc.T - 1):
                                    m.d.sync += gen_on.eq(0)
        m.d.sync += infl.eq(issue)
        with m.If(issue):
            m.d.sync += [infl_tap.eq(ky * desc.kw + kx), infl_tt.eq(tt), infl_last.eq(row_last)]

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

        # Push the fetched row, pop to the event stage.
        push = infl
        with m.If(pop):
            m.d.sync += [fifo_bits[0].eq(fifo_bits[1]), fifo_v[0].eq(fifo_v[1]),
                         fifo_tap[0].eq(fifo_tap[1]), fifo_tt[0].eq(fifo_tt[1]),
                         fifo_last[0].eq(fifo_last[1])]
        slot_idx = Mux(pop, count - 1, count)
        with m.If(push):
            for i in range(2):
                with m.If(slot_idx == i):
                    m.d.sync += [fifo_bits[i].eq(fetched), fifo_v[i].eq(row_v), fifo_tap[i].eq(infl_tap),
                                 fifo_tt[i].eq(infl_tt), fifo_last[i].eq(infl_last)]
        m.d.sync += count.eq(count + push - pop)

        # Event stage ------------------------------------------------------------------
        pending = Signal(Rw)
        cur_v = Signal(cmax * sb)
        cur_last = Signal()
        row_wbase = Signal(24)
        cur_tt = Signal(16)
        row_on = Signal()          # a row is loaded in ``pending``
        first = Signal(init=1)     # next issue is the first tile of its event
        tile_r = Signal(16)
        bank = Signal()            # accumulator bank of the current position
        stall = Signal()

        low = Signal(Rw)
        m.d.comb += low.eq(pending & (~pending + 1))
        idx = Signal(_ubits(Rw))
        m.d.comb += idx.eq(one_hot_index(low))
        ev_c = Signal(16)
        ev_b = Signal(8)
        m.d.comb += [
            ev_c.eq(Mux(desc.src_img, idx >> self.pbi, idx >> self.pbs)),
            ev_b.eq(Mux(desc.src_img, idx & ((1 << self.pbi) - 1), idx & ((1 << self.pbs) - 1))),
        ]
        lo = Signal(16)
        m.d.comb += lo.eq(Mux(desc.heads_on, hst[desc.h_base + ev_c], 0))
        tile_lo = Mux(desc.heads_on, lo >> _log2(P), 0)
        tile_hi = Mux(desc.heads_on, (lo + desc.hd - 1) >> _log2(P), desc.tiles - 1)
        tile = Mux(first, tile_lo, tile_r)
        has_ev = pending != 0
        last_tile = tile == tile_hi
        rest = pending & (pending - 1)
        row_finish = row_on & ~stall & (~has_ev | (last_tile & (rest == 0)))

        # Drain engine state.
        dr_busy = Signal()
        dr_delay = Signal()        # first drain cycle waits for the last accumulator write
        dr_bank = Signal()
        dr_word = Signal(16)
        dr_ptr = Signal(24)        # destination word of the position being drained
        dst_ptr = Signal(24)       # destination word of the current position
        dr_wr = Signal()
        dr_wr_addr = Signal(24)
        dr_wr_bank = Signal()
        # A position can only end (swap banks) when the drain engine is free.
        pos_end = Signal()
        m.d.comb += stall.eq(row_on & cur_last & dr_busy &
                             (~has_ev | (last_tile & (rest == 0))))
        m.d.comb += pos_end.eq(row_finish & cur_last)

        # Issue (one (event, tile) per cycle).
        ev_issue = Signal()
        m.d.comb += ev_issue.eq(row_on & has_ev & ~stall)
        with m.If(ev_issue):
            with m.If(last_tile):
                m.d.sync += [pending.eq(rest), first.eq(1)]
            with m.Else():
                m.d.sync += [tile_r.eq(tile + 1), first.eq(0)]
        # Count events (once per event, at its first tile).
        with m.If(ev_issue & first):
            m.d.sync += event_ctr.eq(event_ctr + 1)

        # Load the next row.
        want = (~row_on | row_finish) & active
        m.d.comb += pop.eq(want & (count > 0))
        with m.If(row_finish):
            m.d.sync += row_on.eq(0)
        with m.If(pop):
            m.d.sync += [pending.eq(fifo_bits[0]), cur_v.eq(fifo_v[0]), cur_last.eq(fifo_last[0]),
                         cur_tt.eq(fifo_tt[0]), row_on.eq(1), first.eq(1),
                         row_wbase.eq(desc.w_base + fifo_tap[0] * desc.tap_stride + fifo_tt[0] * desc.t_stride)]
        with m.If(pos_end):
            m.d.sync += [bank.eq(~bank), dr_busy.eq(1), dr_delay.eq(1), dr_word.eq(0),
                         dr_bank.eq(bank), dr_ptr.eq(dst_ptr), dst_ptr.eq(dst_ptr + desc.acc_words)]

        # Stage I: addresses and reads.
        i_valid = Signal()
        i_b = Signal(8)
        i_word = Signal(16)
        i_bank = Signal()
        i_c = Signal(16)
        i_tile = Signal(16)
        i_wbase = Signal(24)
        # V-row lanes for K^T V: lane l holds channel tile * P + l, masked to the event's head.
        vl = []
        for ln in range(P):
            opts = Array(cur_v[(s * P + ln) * sb:(s * P + ln + 1) * sb] for s in range(S))
            ch = tile * P + ln
            in_head = (ch >= lo) & (ch < lo + desc.hd)
            vl.append(Mux(in_head, opts[tile], 0))
        i_v = [Signal(sb, name=f"i_v{ln}") for ln in range(P)]
        m.d.sync += i_valid.eq(ev_issue)
        with m.If(ev_issue):
            m.d.sync += [i_b.eq(ev_b), i_c.eq(ev_c), i_tile.eq(tile), i_bank.eq(bank),
                         i_wbase.eq(row_wbase),
                         i_word.eq(Mux(desc.accsel_ch, ev_c * desc.tiles + tile, tile))]
            m.d.sync += [i_v[ln].eq(vl[ln]) for ln in range(P)]
        waddr = Signal(24)
        m.d.comb += waddr.eq(i_wbase + i_c * desc.tiles + i_tile)
        m.d.comb += wm_r.addr.eq(waddr)
        syn_im_addr = Signal(24)
        m.d.comb += syn_im_addr.eq(waddr)
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
                         ky.eq(0), kx.eq(0), dst_ptr.eq(0), row_on.eq(0), count.eq(0),
                         first.eq(1), bank.eq(0)]
        idle = active & ~start & ~gen_on & ~infl & (count == 0) & ~row_on & ~i_valid & ~a_valid & \
            ~dr_busy & ~dr_wr
        with m.If(idle):
            m.d.sync += active.eq(0)
            m.d.comb += done.eq(1)
        self._syn_im_addr = syn_im_addr
        self._syn_active = active

    # --- EW / RED: element-wise and reduction passes --------------------------------------
    def _elab_ew(self, m, desc, start, done, banks, im_a, im_b, im_w, cm_r, logits):
        prog = self.prog
        P = prog.lanes
        S, sb = prog.spike_slots, self.slot_bits
        ib, mb, bb, tb = self.ib, self.mb, self.bb, self.tb
        K = prog.classes
        cw = mb + bb + tb
        is_red = desc.kind == _KIND[RED]

        active = Signal()
        tile = Signal(16)
        n = Signal(16)
        t = Signal(16)
        phase = Signal(2)   # 0: constants, 1: run, 2: flush
        flush = Signal(3)

        # Operand reads.
        a_addr_int = desc.a_base + (t * desc.N + n) * desc.tiles + tile
        b_addr_int = desc.b_base + (t * desc.N + n) * desc.tiles + tile
        a_addr_spk = desc.a_base + t * desc.N + n
        b_addr_spk = desc.b_base + t * desc.b_rows + Mux(desc.b_bcast, 0, n)
        with m.If(active):
            m.d.comb += [im_a.addr.eq(a_addr_int), im_b.addr.eq(b_addr_int)]
            for wp, ra, rb in banks:
                m.d.comb += [ra.addr.eq(a_addr_spk), rb.addr.eq(b_addr_spk)]
        with m.Else():
            m.d.comb += im_a.addr.eq(self._syn_im_addr)
        m.d.comb += cm_r.addr.eq(desc.c_base + tile)

        issue = Signal()
        m.d.comb += issue.eq(active & (phase == 1))
        last_n = n == desc.N - 1
        last_t = t == desc.T - 1
        last_tile = tile == desc.tiles - 1
        with m.If(active):
            with m.If(phase == 0):
                m.d.sync += phase.eq(1)
            with m.Elif(phase == 1):
                with m.If(is_red):  # order tile, t, n
                    m.d.sync += n.eq(Mux(last_n, 0, n + 1))
                    with m.If(last_n):
                        m.d.sync += t.eq(Mux(last_t, 0, t + 1))
                        with m.If(last_t):
                            m.d.sync += [phase.eq(2), flush.eq(2)]
                with m.Else():  # order tile, n, t
                    m.d.sync += t.eq(Mux(last_t, 0, t + 1))
                    with m.If(last_t):
                        m.d.sync += n.eq(Mux(last_n, 0, n + 1))
                        with m.If(last_n):
                            m.d.sync += [phase.eq(2), flush.eq(2)]
            with m.Elif(phase == 2):
                m.d.sync += flush.eq(flush - 1)
                with m.If(flush == 1):
                    m.d.sync += [phase.eq(0), tile.eq(tile + 1)]
                    with m.If(last_tile):
                        m.d.sync += active.eq(0)
                        m.d.comb += done.eq(1)

        # Stage 1: operand lanes arrive; requantization product.
        s1 = Signal()
        s1_t = Signal(16)
        s1_n = Signal(16)
        s1_tile = Signal(16)
        s1_endred = Signal()
        m.d.sync += [s1.eq(issue), s1_t.eq(t), s1_n.eq(n), s1_tile.eq(tile),
                     s1_endred.eq(issue & is_red & last_n)]
        lanes_a, lanes_b = [], []
        for ln in range(P):
            spk_a = banks[ln][1].data
            spk_b = banks[ln][2].data
            sel_a = Array(spk_a[s * sb:(s + 1) * sb] for s in range(S))[s1_tile]
            sel_b = Array(spk_b[s * sb:(s + 1) * sb] for s in range(S))[s1_tile]
            va = Mux(desc.a_int, im_a.data[ln * ib:(ln + 1) * ib].as_signed(), sel_a)
            vb = Mux(desc.b_int, im_b.data[ln * ib:(ln + 1) * ib].as_signed(), sel_b)
            lanes_a.append(va)
            lanes_b.append(vb)

        def const_lane(ln):
            word = cm_r.data[ln * cw:(ln + 1) * cw]
            return word[:mb].as_signed(), word[mb:mb + bb].as_signed(), word[mb + bb:cw]

        # RED running sums.
        red_sum = [Signal(signed(ib + 16), name=f"red_sum{ln}") for ln in range(P)]
        prod_w = max(ib + 16 + mb, bb) + 2
        s2 = Signal()
        s2_t = Signal(16)
        s2_n = Signal(16)
        s2_tile = Signal(16)
        s2_x = [Signal(signed(prod_w), name=f"s2_x{ln}") for ln in range(P)]
        s2_b = [Signal(signed(ib + 1), name=f"s2_b{ln}") for ln in range(P)]
        rnd = (Const(1, prod_w) << desc.shift) >> 1  # 2^(shift-1), 0 for shift 0
        for ln in range(P):
            mult, bias, _ = const_lane(ln)
            operand = Signal(signed(ib + 16), name=f"operand{ln}")
            with m.If(is_red):
                k_and_v = lanes_a[ln] & lanes_b[ln]
                cur = Mux(desc.op == _RED_OPS["mask"], k_and_v, lanes_a[ln])
                total = Mux(s1_n == 0, 0, red_sum[ln]) + cur
                m.d.comb += operand.eq(total)
                with m.If(s1):
                    m.d.sync += red_sum[ln].eq(total)
            with m.Else():
                m.d.comb += operand.eq(lanes_a[ln])
            with m.If(desc.requant):
                m.d.sync += s2_x[ln].eq(operand * mult + bias + rnd)
            with m.Else():
                m.d.sync += s2_x[ln].eq(operand)
            m.d.sync += s2_b[ln].eq(lanes_b[ln])
        s2_valid = Mux(is_red, s1_endred, s1)
        m.d.sync += [s2.eq(s2_valid), s2_t.eq(s1_t), s2_n.eq(s1_n), s2_tile.eq(s1_tile)]

        # Stage 2: shift, saturate, combine, neuron, write.
        membrane = [Signal(signed(ib + 16 + 2), name=f"membrane{ln}") for ln in range(P)]
        out_int = []
        out_spk = []
        for ln in range(P):
            _, bias, theta = const_lane(ln)
            x = s2_x[ln]
            y = Signal(signed(prod_w), name=f"y{ln}")
            with m.If(desc.requant):
                shifted = x >> desc.shift
                m.d.comb += y.eq(Mux(shifted > desc.sat_hi, desc.sat_hi,
                                     Mux(shifted < desc.sat_lo, desc.sat_lo, shifted)))
            with m.Else():
                m.d.comb += y.eq(x)
            added = y + s2_b[ln]
            y_add = Mux(added > desc.add_hi, desc.add_hi, Mux(added < desc.add_lo, desc.add_lo, added))
            # LIF (membrane across t: t is innermost for EW, outer for RED with n done).
            v_prev = Mux(s2_t == 0, 0, membrane[ln])
            u = Signal(signed(prod_w + 1), name=f"u{ln}")
            m.d.comb += u.eq((v_prev >> desc.leak) + y)
            fire = u >= theta
            v_next = Mux(fire, Mux(desc.soft, u - theta, 0), u)
            is_lif = (~is_red & (desc.op == _EW_OPS["lif"])) | (is_red & (desc.op == _RED_OPS["mask"]))
            with m.If(s2 & is_lif):
                m.d.sync += membrane[ln].eq(v_next)
            ms = Signal(signed(prod_w + 1), name=f"ms{ln}")
            msr = (y + ((Const(1, prod_w) << desc.ms_shift) >> 1)) >> desc.ms_shift
            m.d.comb += ms.eq(Mux(msr < 0, 0, Mux(msr > desc.levels, desc.levels, msr)))
            spike = Signal(sb, name=f"spike{ln}")
            op = desc.op
            with m.If(is_lif):
                m.d.comb += spike.eq(fire)
            with m.Elif(~is_red & (op == _EW_OPS["multispike"])):
                m.d.comb += spike.eq(ms)
            with m.Else():  # and
                m.d.comb += spike.eq(y[:sb] & s2_b[ln][:sb])
            iv = Mux(~is_red & (op == _EW_OPS["add"]), y_add, y)
            out_int.append(iv[:ib])
            out_spk.append(spike)

        spike_out = (is_red & (desc.op == _RED_OPS["mask"])) | (
            ~is_red & ((desc.op == _EW_OPS["lif"]) | (desc.op == _EW_OPS["multispike"]) |
                       (desc.op == _EW_OPS["and"])))
        is_out = ~is_red & (desc.op == _EW_OPS["out"])
        with m.If(s2):
            with m.If(is_out):
                for ln in range(P):
                    for j in range(K):
                        with m.If(s2_tile * P + ln == j):
                            m.d.sync += logits[j].eq(out_int[ln] + const_lane(ln)[1])
            with m.Elif(spike_out):
                row = desc.dst_base + s2_t * Mux(is_red, 1, desc.N) + Mux(is_red, 0, s2_n)
                for ln, (wp, _ra, _rb) in enumerate(banks):
                    m.d.comb += [wp.addr.eq(row), wp.data.eq(Cat(*([out_spk[ln]] * S)))]
                    real = s2_tile * P + ln < desc.C  # lanes past the last channel write nothing
                    for s in range(S):
                        m.d.comb += wp.en[s].eq(real & (s2_tile == s))
            with m.Else():
                word = desc.dst_base + (s2_t * Mux(is_red, 1, desc.N) + Mux(is_red, 0, s2_n)) * desc.tiles \
                    + s2_tile
                m.d.comb += [im_w.en.eq(1), im_w.addr.eq(word), im_w.data.eq(Cat(*out_int))]

        with m.If(start):
            m.d.sync += [active.eq(1), tile.eq(0), n.eq(0), t.eq(0), phase.eq(0)]
