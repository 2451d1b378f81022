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

from .lanes import COPY_ATTR, COPY_MARK, LaneCopies, lane
from .lsb import lsb_combine, lsb_groups, lsb_index, lsb_partials, popcount_flags
from .memories import PortView, bram_ports, collision_read, int_memory, weight_memory
from .plan import CONST_LOGIC_DEPTH, LANES_PER_COPY, EnginePlan, EwOp, Kind, RedOp, const_parts, lane_group_widths
from .plan import log2 as _log2
from .plan import ubits as _ubits
from .product import DSP_OPERAND_BITS, RegisteredProduct
from .program import EW, RED, SPRAM_BITS, SPRAM_WORDS, SYN
from .timing import PRODUCT_LATENCY, build_of

__all__ = ["Engine", "EnginePlan", "result_layout", "weight_load_layout", "LANES_PER_COPY", "COPY_ATTR", "COPY_MARK",
           "lane_group_widths", "const_parts", "CONST_LOGIC_DEPTH"]



def result_layout(logit_bits):
    """Result payload: ``value`` (a logit, or the class on the last beat) and ``last``."""
    return data.StructLayout({"value": signed(logit_bits), "last": 1})


def weight_load_layout():
    """Weight load payload (SPRAM mapping): one 16-bit word ``data`` at word ``addr``."""
    return data.StructLayout({"addr": unsigned((SPRAM_WORDS - 1).bit_length()), "data": unsigned(SPRAM_BITS)})


def _shape(width, is_signed):
    return signed(width) if is_signed else unsigned(width)


def desc_layout(plan):
    """The descriptor word's layout (:attr:`.plan.EnginePlan.desc_fields`)."""
    return data.FlexibleLayout(plan.desc_size, {
        k: data.Field(_shape(f.width, f.signed), f.offset) for k, f in plan.desc_fields.items()})


class _Descriptor:
    """The running pass's descriptor: fields of the descriptor register, or constants where
    every pass of the program agrees (:attr:`.plan.EnginePlan.desc_consts`)."""

    def __init__(self, view, plan):
        self._view = view
        self._consts = {k: Const(int(f.value), _shape(f.width, f.signed)) for k, f in plan.desc_consts.items()}

    def __getattr__(self, name):
        if name in self._consts:
            return self._consts[name]
        return getattr(self._view, name)


_PLAN_FIELDS = ("pixel_bits", "logit_bits", "pbs", "pbi", "slot_bits", "row_bits_s", "row_bits_i",
                "row_bits", "ib", "wb", "mb", "bb", "tb", "ab", "rw", "ow", "pw", "yw", "mw", "uw", "h_base",
                "hstart", "desc_rows")


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
    ``mult_primitive``: in the fast build, the requantization multipliers are ECP5
    ``MULT18X18D`` blocks with their own registers (:class:`.product.RegisteredProduct`;
    synthesis for the ECP5) when the operands fit.
    ``poison_collisions`` (simulation): invert a memory read's data after it collided with a
    write of its address. The block RAMs may return anything then (:data:`.memories.NO_RW_CHECK`),
    so the results must not change.
    """

    def __init__(self, program, *, spram_primitive=False, mult_primitive=False, poison_collisions=False):
        self.prog = program
        self.plan = EnginePlan(program)
        self.spram_primitive = spram_primitive
        self.mult_primitive = mult_primitive
        self.poison_collisions = poison_collisions
        self.debug_collided = []
        self.build = build_of(program)   # the fast or the compact build's options
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
    # Elaboration reads nothing it set itself: what one stage passes to another is an argument
    # or a return value, what the stages share is a new LaneCopies per elaboration, so a second
    # elaboration builds the same, complete design. The ``debug_*`` members are written at the
    # end, for the simulation harness only (the last elaboration's memories and registers).

    def elaborate(self, platform):
        m = Module()
        prog = self.prog
        P = prog.lanes
        img = prog.image
        S, sb = prog.spike_slots, self.slot_bits
        ib, wb, mb, bb, tb, ab = self.ib, self.wb, self.mb, self.bb, self.tb, self.ab
        K = prog.classes

        # Memories -------------------------------------------------------------------------
        # The image, spike and integer memories never use a read that collided with a write
        # (memories.NO_RW_CHECK; ``poison_collisions`` checks it in simulation).
        poison, flags = self.poison_collisions, []
        img_mem = Memory(shape=unsigned(max(1, img.C * self.pixel_bits)), depth=img.N, init=[])
        m.submodules.img_mem = img_mem
        img_w = img_mem.write_port()
        img_rp = img_mem.read_port()
        img_r = PortView(img_rp, collision_read(m, "img_r", img_mem, img_w, img_rp, poison, flags))

        rows = max(1, prog.spike_rows)
        banks = []
        smems = []
        for ln in range(P):
            mem = Memory(shape=unsigned(S * sb), depth=rows, init=[])
            m.submodules[f"smem{ln}"] = mem
            smems.append(mem)
            wp, ra, rb = mem.write_port(granularity=sb), mem.read_port(), mem.read_port()
            banks.append((wp, PortView(ra, collision_read(m, f"smem{ln}_ra", mem, wp, ra, poison, flags)),
                           PortView(rb, collision_read(m, f"smem{ln}_rb", mem, wp, rb, poison, flags))))

        spram = prog.memory.kind == "spram"
        def gw(lane_width):  # the groups are those of the copies (see _addr_regs)
            return lane_group_widths(prog, lane_width)

        imem, im_w, im_a, im_b = int_memory(m, prog, P * ib, primitive=self.spram_primitive,
                                                       groups=gw(ib), poison=poison, flags=flags)

        def pack(values, width):
            v = 0
            for i, x in enumerate(values):
                v |= (int(x) & ((1 << width) - 1)) << (i * width)
            return v

        wm_r, wm_load = weight_memory(m, prog, P * wb, [pack(row, wb) for row in prog.weights],
                                      primitive=self.spram_primitive, groups=gw(wb))

        cw = mb + bb + tb
        # Block RAM, as the report counts it: with one address register, Yosys would build
        # this shallow, wide ROM from LUTs spread over the die (the 32-lane ECP5 critical
        # path). In the fast build a shallow one is logic, split per lane, each lane's part
        # addressed by its own register: no block RAM clock-to-out (5.8 ns on the ECP5) in
        # front of the lanes, and no address register reaching more than one lane.
        const_groups, const_logic = const_parts(prog, cw)
        _, (cm_r,) = bram_ports(
            m, "cmem", max(1, len(prog.consts)), P * cw,
            [pack([(int(c[0]) & ((1 << mb) - 1)) | ((int(c[1]) & ((1 << bb) - 1)) << mb)
                   | ((int(c[2]) & ((1 << tb) - 1)) << (mb + bb)) for c in word], cw)
             for word in prog.consts], 1, False, const_groups,
            attrs={"rom_style": "logic"} if const_logic else {"rom_style": "block", "ram_style": "block"})

        acc_depth = max(p.acc_words for p in prog.passes if p.kind == SYN)
        amems = []
        for k in range(2):  # one read port per bank: a bank accumulates or drains, never both
            # Block RAM in the fast build: as distributed RAM (a few words of P lanes), its
            # write enable reached hundreds of LUT RAMs over the die (the 32-lane ECP5 path).
            _, (wp, rp) = bram_ports(m, f"amem{k}", acc_depth, P * ab, [], 1, True, gw(ab),
                                     attrs={"ram_style": "block"} if self.build.acc_block_ram else {},
                                     transparent=True)
            amems.append((wp, rp, rp))

        hst = Array(Const(v, _ubits(max(self.hstart))) for v in self.hstart)

        nw, dw = self.plan.desc_words, self.plan.desc_word_width
        desc_mem = Memory(shape=unsigned(dw), depth=len(self.desc_rows) * nw, init=self.plan.desc_init())
        m.submodules.desc_mem = desc_mem
        desc_r = desc_mem.read_port()
        # The descriptor register is a shift register of nw pieces (piece 0 lowest when full);
        # its fields are meaningless while it loads, when no pass runs.
        desc_bits = Signal(nw * dw)
        layout = desc_layout(self.plan)
        desc = _Descriptor(data.View(layout, desc_bits[:layout.size]), self.plan)
        desc_k = Signal(range(nw + 1))

        # Default port enables.
        for wp, ra, rb in banks:
            m.d.comb += [ra.en.eq(1), rb.en.eq(1)]
        m.d.comb += [en.eq(1) for en in wm_r.ens + cm_r.ens]
        m.d.comb += img_r.en.eq(1)
        if spram:  # a bank serves one access per cycle: enable only the ports in use
            is_syn = desc.kind == Kind.SYN
            m.d.comb += [im_a.en.eq(Mux(is_syn, desc.qkv_mode, desc.a_int)),
                         im_b.en.eq(~is_syn & desc.b_used & desc.b_int)]
        else:
            m.d.comb += [en.eq(1) for en in im_a.ens + im_b.ens]
        for wp, rr, rd in amems:
            m.d.comb += [en.eq(1) for en in rr.ens]

        # Top-level control ------------------------------------------------------------
        pc = Signal(range(len(self.desc_rows) + 1))
        lc = LaneCopies(m, self.plan, pc)
        cycle_ctr = Signal(32)
        event_ctr = Signal(32)
        counting = Signal()
        with m.If(counting):
            m.d.sync += cycle_ctr.eq(cycle_ctr + 1)

        pix_idx = Signal(range(img.N * img.C + 1))
        pix_word = Signal(max(1, img.C * self.pixel_bits))
        pix_ch = Signal(range(img.C + 1))

        # A shift register: the out pass (T = N = 1, tiles in order) shifts P logits in at the
        # top per tile, the OUT state shifts one out at the bottom per beat (no K-way decode).
        n_logits = -(-K // prog.lanes) * prog.lanes
        logits = [Signal(signed(self.logit_bits), name=f"logit{j}") for j in range(n_logits)]
        out_idx = Signal(range(K + 1))
        best = Signal(signed(self.logit_bits))
        best_idx = Signal(range(max(2, K)))
        gt = Signal()
        out_beat = Signal()        # a result beat in this cycle
        out_shifting = Signal()    # the fast build shifts the logits after a beat

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
                with m.If(desc.kind == Kind.SYN):
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
                # The logits shift down one place per beat: the current one is always logit0
                # (no K-way multiplexer in front of the argmax comparison). The fast build
                # shifts a cycle after the beat, under each lane group's copy of the beat (one
                # enable would reach every logit register), and offers no beat meanwhile.
                is_class = out_idx == K
                cur = logits[0]
                m.d.comb += [
                    self.result.valid.eq(~out_shifting),
                    self.result.payload.value.eq(Mux(is_class, best_idx, cur)),
                    self.result.payload.last.eq(is_class),
                ]
                # ``gt``: logit0 beats the best so far, decided a beat ahead (both candidates
                # for the next best are compared with logit1), so no comparator sits in front of
                # the update.
                upd = (out_idx == 0) | gt
                with m.If(self.result.valid & self.result.ready):
                    m.d.comb += out_beat.eq(1)
                    m.d.sync += out_idx.eq(out_idx + 1)
                    if not self.build.logit_shift_regs:
                        m.d.sync += [logits[j].eq(logits[j + 1]) for j in range(len(logits) - 1)]
                    m.d.sync += gt.eq(Mux(upd, logits[1] > cur, logits[1] > best))
                    with m.If(~is_class & upd):
                        m.d.sync += [best.eq(cur), best_idx.eq(out_idx)]
                    with m.If(is_class):
                        m.next = "IDLE"

        if self.build.logit_shift_regs:
            shift_regs, shift_l = lc.copy_regs("out_shift", 1)
            m.d.sync += [r.eq(out_beat) for r in shift_regs] + [out_shifting.eq(out_beat)]
            for j in range(len(logits) - 1):
                with m.If(shift_l[j % P]):
                    m.d.sync += logits[j].eq(logits[j + 1])

        syn = self._elab_syn(m, lc, desc, start_syn, syn_done, banks, img_r, im_a, im_w, wm_r, amems, hst,
                             event_ctr)
        self._elab_ew(m, lc, desc, start_ew, ew_done, banks, im_a, im_b, im_w, cm_r, logits, syn)
        # For the simulation harness (simulate.py): the last elaboration's memories and registers.
        self.debug_smem, self.debug_imem, self.debug_pc, self.debug_events = smems, imem, pc, event_ctr
        self.debug_collided = flags
        return m

    # --- SYN: event-driven accumulation ----------------------------------------------------
    def _elab_syn(self, m, lc, desc, start, done, banks, img_r, im_a, im_w, wm_r, amems, hst, event_ctr):
        """Generator | read | fetch | FIFO | scan | D0 | D1 | D2 | queue | issue | I | R | A
        (| W in the fast build: Build.acc_write_regs).

        The generator walks (t, y', x', t_rows, ky, kx) one tap per cycle with running
        pointers (no multiplier): the read address is a time base plus a spatial pointer. The
        scan stage takes the lowest set bit of the current row each cycle; three decode
        stages turn its index into the head's tile range, ``channel * tiles`` and the weight
        and accumulator words; the issue stage sends one (event, tile) per cycle to the
        accumulator pipeline as the single event stage did, so the per-position timing
        rules are unchanged (docs/accelerator.md).
        """
        prog = self.prog
        P = prog.lanes
        b = self.build
        acc_wregs = b.acc_write_regs
        x_regs = b.syn_issue_regs
        S, sb = prog.spike_slots, self.slot_bits
        ib, wb, ab = self.ib, self.wb, self.ab
        Rw = self.row_bits
        cmax = S * P
        pl = self.plan      # widths: EnginePlan._syn_widths
        spw, cw_, rows_w, ww, aww, va_w = pl.spw, pl.coord_bits, pl.rows_w, pl.ww, pl.aww, pl.va_w

        active = Signal()
        # ``active`` for the generator's loop state and for the scan stage: registers of their
        # own (the fast build), each next to the logic it holds, updated like ``active`` below.
        gen_active = lc.flag_copy("syn_gen_active", active)
        scan_active = lc.flag_copy("syn_scan_active", active)
        # Row generator ------------------------------------------------------------------
        t = Signal(len(desc.T))
        oy = Signal(len(desc.Ho))
        ox = Signal(len(desc.Wo))
        tr = Signal(len(desc.t_rows))
        ky = Signal(len(desc.kh))
        kx = Signal(len(desc.kw))
        gen_on = Signal()            # the generator runs (implies active)
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
        sa2 = Signal(rows_w)         # tb2 + sp: the V row address (the row address: below)
        sw = lc.pass_const("sw")      # stride * Wi
        sp00 = lc.pass_const("sp00")  # -pad * Wi - pad
        kw1, kh1, tr1, wo1, ho1, t1, hi1, wi1 = (lc.pass_const(k) for k in (
            "kw1", "kh1", "tr1", "wo1", "ho1", "t1", "hi1", "wi1"))
        inb = (y >= 0) & (y < desc.Hi) & (x >= 0) & (x < desc.Wi)
        # Loop-end flags, registered: each is updated with its counter (no compare chain in
        # front of the generator's enables).
        last_kx, last_ky, last_tr, last_ox, last_oy, last_t = (
            Signal(name=f"last_{k}") for k in ("kx", "ky", "tr", "ox", "oy", "t"))
        z_kx, z_ky, z_tr, z_ox, z_oy, z_t = (lc.pass_const(k) for k in (
            "z_kx", "z_ky", "z_tr", "z_ox", "z_oy", "z_t"))    # loop of one iteration
        # Last in-grid tap of the position (only read for in-grid taps).
        row_last = last_tr & (last_ky | (y == hi1)) & (last_kx | (x == wi1))

        # FIFO of fetched rows and the reads in flight: the credits cover the round trip (issue,
        # read, fetch registers, FIFO, pop seen a cycle later), so the generator never waits
        # for the scan stage's decision of the same cycle. The compact build reads in the
        # tap's cycle and has no fetch register (the row goes from the block RAM output into
        # the FIFO): 3 credits. The fast build reads two cycles after the tap (Build.syn_read_regs:
        # the row address is registered next to the generator before its copies per lane
        # group) and registers the row twice (Build.syn_fetch_regs): 7 credits.
        NF = b.syn_fifo_rows()
        fifo_bits = [Signal(Rw, name=f"fifo_bits{i}") for i in range(NF)]
        fifo_va = [Signal(va_w, name=f"fifo_va{i}") for i in range(NF)]
        fifo_wb = [Signal(ww, name=f"fifo_wb{i}") for i in range(NF)]
        fifo_last = [Signal(name=f"fifo_last{i}") for i in range(NF)]
        fifo_single = [Signal(name=f"fifo_single{i}") for i in range(NF)]  # at most one set bit
        # Less the lowest bit (the fast build's scan loop has no carry chain; the compact one
        # computes it in the loop).
        fifo_rest = [Signal(Rw if b.syn_fetch_regs else 0, name=f"fifo_rest{i}") for i in range(NF)]
        count = Signal(range(NF + 1))
        infl = Signal()
        infl_wb = Signal(ww)
        infl_last = Signal()
        infl_va = Signal(va_w)
        pop = Signal()

        credits = Signal(range(NF + 1))  # rows in the FIFO and in flight
        can_issue = gen_on & (credits < NF)
        issue = Signal()
        m.d.comb += issue.eq(can_issue & inb)
        # Read addresses (spike banks port A: event rows; port B: V rows).
        # (Assigned below, a copy per lane group: the address reaches every bank's LUTs.)
        if not b.syn_read_regs:
            m.d.comb += img_r.addr.eq(sp)  # the image is stored once for every t
        else:
            img_ra = Signal.like(img_r.addr, name="img_ra")  # read Build.syn_read_regs cycles after the issue
            img_ra2 = Signal.like(img_r.addr, name="img_ra2")
            m.d.sync += [img_ra.eq(sp), img_ra2.eq(img_ra)]
            m.d.comb += img_r.addr.eq(img_ra2)

        # Advance the generator (a tap outside the grid costs its cycle here). Level j steps
        # when every level below it is at its end: cum[j - 1], the registered AND of the
        # registered end flags, so each enable is a short function of registers.
        lasts = [last_kx, last_ky, last_tr, last_ox, last_oy, last_t]
        zs = [z_kx, z_ky, z_tr, z_ox, z_oy, z_t]
        cum = [Signal(name=f"cum_last{k}") for k in range(6)]
        nl = [Signal(name=f"next_last{k}") for k in range(6)]  # end flags after this cycle
        wrap_all = can_issue & cum[5]
        nexts = [(kx, kw1), (ky, kh1), (tr, tr1), (ox, wo1), (oy, ho1), (t, t1)]
        # pen[j]: level j is at its last but one iteration (registered like the end flags).
        pen = [Signal(name=f"pen_{k}") for k in ("kx", "ky", "tr", "ox", "oy", "t")]
        ones = [lc.pass_const(k) for k in ("o_kx", "o_ky", "o_tr", "o_ox", "o_oy", "o_t")]
        for j in range(6):
            # When the generator advances, the levels below the stepping one restart (end flag:
            # a loop of one iteration), the stepping level moves on (its end flag is its
            # last-but-one flag), the levels above keep theirs.
            counter, lim = nexts[j]
            restart = ~gen_active | (can_issue & cum[j])
            stepping = can_issue & ~cum[j] & (True if j == 0 else cum[j - 1])
            m.d.comb += nl[j].eq(Mux(restart, zs[j], Mux(stepping, pen[j], lasts[j])))
            with m.If(restart):
                m.d.sync += pen[j].eq(ones[j])
            with m.Elif(stepping):
                m.d.sync += pen[j].eq(counter + 2 == lim)
        m.d.sync += [lasts[j].eq(nl[j]) for j in range(6)]
        m.d.sync += [cum[j].eq(Cat(*nl[:j + 1]).all()) for j in range(6)]
        # Each register takes one of a few values selected by mutually exclusive conditions on
        # registered flags (an AND-OR, not a priority chain of multiplexers); its enable is
        # "inactive, or a level at or above its own steps". While inactive it holds its start
        # value (descriptor and pass constants are valid from the START cycle on).
        init = ~gen_active
        c0 = ~last_kx                # the level that steps when the generator advances
        c1 = cum[0] & ~last_ky
        c2 = cum[1] & ~last_tr
        c3 = cum[2] & ~last_ox
        c4 = cum[3] & ~last_oy
        c5 = cum[4]
        en = [init | can_issue] + [init | (can_issue & cum[j]) for j in range(5)]
        lo = -desc.pad
        sp_s = sp_p + desc.stride
        sp_r = sp_o + sw

        def sel(reg, level, start_value, cases):
            value = Mux(cases[0][0], cases[0][1], 0)
            for cond, v in cases[1:]:
                value = value | Mux(cond, v, 0)
            nxt = Signal.like(reg, name=f"{reg.name}_next")
            m.d.comb += nxt.eq(Mux(en[level], Mux(init, start_value, value), reg))
            m.d.sync += reg.eq(nxt)
            return nxt

        sel(kx, 0, 0, [(c0, kx + 1)])
        sel(ky, 1, 0, [(c1, ky + 1)])
        sel(tr, 2, 0, [(c2, tr + 1)])
        sel(ox, 3, 0, [(c3, ox + 1)])
        sel(oy, 4, 0, [(c4, oy + 1)])
        sel(t, 5, 0, [(c5, t + 1)])
        sel(x, 0, lo, [(c0, x + 1), (c1 | c2, xs), (c3, xs + desc.stride), (c4 | c5, lo)])
        sel(y, 1, lo, [(c1, y + 1), (c2 | c3, ys), (c4, ys + desc.stride), (c5, lo)])
        sel(xs, 3, lo, [(c3, xs + desc.stride), (c4 | c5, lo)])
        sel(ys, 4, lo, [(c4, ys + desc.stride), (c5, lo)])
        sp_next = sel(sp, 0, sp00, [(c0, sp + 1), (c1, sp_k + desc.Wi), (c2, sp_p), (c3, sp_s), (c4, sp_r), (c5, sp00)])
        sel(sp_k, 1, sp00, [(c1, sp_k + desc.Wi), (c2, sp_p), (c3, sp_s), (c4, sp_r), (c5, sp00)])
        sel(sp_p, 3, sp00, [(c3, sp_s), (c4, sp_r), (c5, sp00)])
        sel(sp_o, 4, sp00, [(c4, sp_r), (c5, sp00)])
        sel(tb_t, 5, desc.src_base, [(c5, tb_t + desc.HW)])
        sel(tb2_t, 5, desc.src2_base, [(c5, tb2_t + desc.HW)])
        sel(wb_t, 5, desc.w_base, [(c5, wb_t + desc.t_stride)])
        tb_next = sel(tb, 2, desc.src_base, [(c2, tb + desc.HW), (c3 | c4, tb_t), (c5, tb_t + desc.HW)])
        tb2_next = sel(tb2, 2, desc.src2_base, [(c2, tb2 + desc.HW), (c3 | c4, tb2_t), (c5, tb2_t + desc.HW)])
        sel(wb_tt, 2, desc.w_base, [(c2, wb_tt + desc.t_stride), (c3 | c4, wb_t), (c5, wb_t + desc.t_stride)])
        sel(wptr, 0, desc.w_base, [(c0 | c1, wptr + desc.tap_stride), (c2, wb_tt + desc.t_stride),
                                   (c3 | c4, wb_t), (c5, wb_t + desc.t_stride)])
        if b.syn_read_regs:
            # The row addresses of the generator's tap, registered here a cycle after the tap
            # (sums of the generator's registers, not of their next values): the copies per
            # lane group (in ``_elab_ew``, which shares the ports) take them a cycle later, so
            # no generator logic sits in front of a far copy.
            assert b.syn_read_regs == 2
            syn_ra = Signal(rows_w, name="syn_ra")
            m.d.sync += [syn_ra.eq(tb + sp), sa2.eq(tb2 + sp)]
        else:
            m.d.sync += sa2.eq(tb2_next + sp_next)
        if not b.syn_read_regs:
            sa_l = lc.copies("syn_ra", tb_next + sp_next, rows_w)
            for (wp, ra, rb), a in zip(banks, sa_l):
                m.d.comb += ra.addr.eq(a)
        with m.If(wrap_all):
            m.d.sync += gen_on.eq(0)
        m.d.sync += infl.eq(issue)
        with m.If(issue):
            m.d.sync += [infl_wb.eq(wptr), infl_last.eq(row_last)]
            if not b.syn_read_regs:
                m.d.sync += infl_va.eq(sa2[:va_w])
        rd_on = infl               # the read of an issued row: its data is valid a cycle later
        if b.syn_read_regs:
            # The issued row's flags wait for its read (Build.syn_read_regs cycles); its V row address
            # joins them from ``sa2`` a cycle after the issue.
            infl2, infl2_wb, infl2_last = Signal(name="infl2"), Signal(ww), Signal()
            rd_on, rd_wb, rd_last, rd_va = Signal(name="rd_on"), Signal(ww), Signal(), Signal(va_w)
            m.d.sync += [infl2.eq(infl), infl2_wb.eq(infl_wb), infl2_last.eq(infl_last),
                         infl_va.eq(sa2[:va_w]),
                         rd_on.eq(infl2), rd_wb.eq(infl2_wb), rd_last.eq(infl2_last), rd_va.eq(infl_va)]

        # Flatten the fetched row: spikes channel-major with plane stride 2^pbs.
        row_s = Signal(Rw)
        for c in range(cmax):
            bank, slot = c % P, c // P
            word_a = banks[bank][1].data
            m.d.comb += row_s[(c << self.pbs):(c << self.pbs) + sb].eq(word_a[slot * sb:(slot + 1) * sb])
        row_i = Signal(Rw)
        for c in range(prog.image.C):
            m.d.comb += row_i[(c << self.pbi):(c << self.pbi) + self.pixel_bits].eq(
                img_r.data[c * self.pixel_bits:(c + 1) * self.pixel_bits])
        fetched = Mux(desc.src_img, row_i, row_s)
        # The row is pushed into the FIFO with the row less its lowest set bit and an 'at most
        # one set bit' flag, so that the scan stage never waits on a carry chain or a count
        # tree. The compact build pushes the block RAM output itself, with the flag but not
        # the rest. The fast build registers the fetched row twice (Build.syn_fetch_regs): first
        # next to the memories that hold its bits (the block RAM output multiplexers end
        # there), then with the first half of the rest and the flag (per 4 bits: the OR of the
        # bits below each bit, whether any and whether two are set), so that each half is a
        # few LUT levels.
        if not b.syn_fetch_regs:
            f_valid, f_bits, f_va, f_wb, f_last = infl, fetched, infl_va, infl_wb, infl_last
            fetching = []
            fetched_single = ~popcount_flags(f_bits)[0]
            fetched_rest = Const(0, 0)
        else:
            assert b.syn_fetch_regs == 2
            f0 = (Signal(name="f0_valid"), Signal(Rw, name="f0_bits"), Signal(va_w, name="f0_va"),
                  Signal(ww, name="f0_wb"), Signal(name="f0_last"))
            m.d.sync += [r.eq(v) for r, v in zip(f0, (rd_on, fetched, rd_va, rd_wb, rd_last), strict=True)]
            f_valid, f_bits, f_va, f_wb, f_last = (Signal.like(r, name=r.name.replace("f0", "f1")) for r in f0)
            m.d.sync += [r.eq(v) for r, v in zip((f_valid, f_bits, f_va, f_wb, f_last), f0, strict=True)]
            fetching = [f0[0]]
            low, anys, twos = lsb_partials(f0[1])
            f1_low, f1_any, f1_two = Signal(len(low)), Signal(len(anys)), Signal(len(twos))
            m.d.sync += [f1_low.eq(low), f1_any.eq(anys), f1_two.eq(twos)]
            fetched_rest, two = lsb_combine(f_bits, f1_low, f1_any, f1_two)
            fetched_single = ~two

        # Push the fetched row (circular buffer: a pop moves a pointer, not the rows).
        push = f_valid
        wr_ptr = Signal(range(NF))
        rd_ptr = Signal(range(NF))
        with m.If(push):
            for i in range(NF):
                with m.If(wr_ptr == i):
                    m.d.sync += [fifo_bits[i].eq(f_bits), fifo_va[i].eq(f_va), fifo_wb[i].eq(f_wb),
                                 fifo_last[i].eq(f_last), fifo_single[i].eq(fetched_single),
                                 fifo_rest[i].eq(fetched_rest)]
            m.d.sync += wr_ptr.eq(Mux(wr_ptr == NF - 1, 0, wr_ptr + 1))
        with m.If(pop):
            m.d.sync += rd_ptr.eq(Mux(rd_ptr == NF - 1, 0, rd_ptr + 1))
        m.d.sync += [count.eq(count + push - pop), credits.eq(credits + issue - pop)]

        # Scan stage: the lowest set bit of the row, one per cycle ------------------------
        pending = Signal(Rw)
        e1_va = Signal(va_w)
        e1_wb = Signal(ww)
        e1_last = Signal()
        e1_on = Signal()           # a row is loaded in ``pending``
        rest = Signal(Rw if b.syn_fetch_regs else 0)  # pending less its lowest set bit (registered)
        single = Signal()          # at most one set bit: the row ends with this item (registered)
        groups = lsb_groups(pending)   # the index tree's first level, registered in D0

        # Items: an event (channel, plane) or, for a row without events, an empty item; each
        # carries its row's flags. The decode stages D0, D1 and D2 never stall; a queue of NQ
        # items feeds the issue stage E, and the scan stage emits only while fewer than NQ
        # items are in D0, D1, D2 and the queue (a registered count: no ready chain from E).
        emit = Signal()
        # Stage enables: the fast build's decode stages never stall; the compact build has no
        # queue, its decode stages hold while the next one is full (a ready chain from E).
        d0_en, d1_en, d2_en = Signal(), Signal(), Signal()
        if not b.syn_queue:
            m.d.comb += emit.eq(e1_on & d0_en)
        else:
            NQ = b.syn_queue
            held = Signal(range(NQ + 1))
            m.d.comb += [emit.eq(e1_on & (held < NQ)), d0_en.eq(1), d1_en.eq(1), d2_en.eq(1)]
        row_done = emit & single
        with m.If(emit):
            if not b.syn_fetch_regs:  # the row left has at most one bit iff this one has at most two
                m.d.sync += [pending.eq(pending & (pending - 1)), single.eq(~popcount_flags(pending)[1])]
            else:
                m.d.sync += [pending.eq(rest), rest.eq(rest & (rest - 1)), single.eq(~popcount_flags(rest)[0])]
        with m.If(row_done):
            m.d.sync += e1_on.eq(0)
        m.d.comb += pop.eq((~e1_on | row_done) & scan_active & (count > 0))
        with m.If(pop):
            m.d.sync += [single.eq(Array(fifo_single)[rd_ptr]), pending.eq(Array(fifo_bits)[rd_ptr]),
                         e1_va.eq(Array(fifo_va)[rd_ptr]),
                         e1_wb.eq(Array(fifo_wb)[rd_ptr]), e1_last.eq(Array(fifo_last)[rd_ptr]),
                         rest.eq(Array(fifo_rest)[rd_ptr]),
                         e1_on.eq(1)]

        # Stage D1: the head's first channel, channel * tiles.
        d1_valid = Signal()
        d1_ev = Signal()
        d1_idx = Signal(_ubits(Rw))
        d1_row_end = Signal()
        d1_pos_last = Signal()
        d1_wb = Signal(ww)
        d1_va = Signal(va_w)
        # Stage D0: the lowest set bit's index (its first level came registered).
        d0_valid = Signal()
        d0_ev = Signal()
        d0_row_end = Signal()
        d0_pos_last = Signal()
        d0_wb = Signal(ww)
        d0_va = Signal(va_w)
        d0_groups = [(Signal(name=f"d0_any{i}"), Signal(len(g[1]), name=f"d0_low{i}"))
                     for i, g in enumerate(groups)]
        with m.If(d0_en):
            m.d.sync += [d0_valid.eq(emit), d0_ev.eq(pending != 0), d0_row_end.eq(single),
                         d0_pos_last.eq(e1_last), d0_wb.eq(e1_wb), d0_va.eq(e1_va)]
            for (ra, rl), (ga, gl) in zip(d0_groups, groups):
                m.d.sync += [ra.eq(ga), rl.eq(gl)]
        idx = Signal(_ubits(Rw))
        m.d.comb += idx.eq(lsb_index(d0_groups))
        with m.If(d1_en):
            m.d.sync += [d1_valid.eq(d0_valid), d1_ev.eq(d0_ev), d1_idx.eq(idx), d1_row_end.eq(d0_row_end),
                         d1_pos_last.eq(d0_pos_last), d1_wb.eq(d0_wb), d1_va.eq(d0_va)]
        d1_c = Signal(pl.chan_bits)
        m.d.comb += d1_c.eq(Mux(desc.src_img, d1_idx >> self.pbi, d1_idx >> self.pbs))
        d1_b = Mux(desc.src_img, d1_idx & ((1 << self.pbi) - 1), d1_idx & ((1 << self.pbs) - 1))
        cb = pl.cb                 # channel index bits
        tw = len(desc.tiles)
        item = data.StructLayout({
            "ev": 1, "row_end": 1, "pos_last": 1, "b": pl.plane_bits, "lo": cb + 1, "tile": tw, "tile_hi": tw,
            "at_last": 1, "va": va_w,
            "waddr": ww, "word": aww,  # weight word and accumulator word of the current tile
        })
        d2_valid = Signal()
        d2_ev = Signal()
        d2_row_end = Signal()
        d2_pos_last = Signal()
        d2_wb = Signal(ww)
        d2_va = Signal(va_w)
        d2_b = Signal(pl.plane_bits)
        d2_lo = Signal(cb + 1)     # first channel of the event's head
        d2_ct = Signal(ww)         # channel * tiles
        with m.If(d2_en):
            m.d.sync += [d2_valid.eq(d1_valid), d2_ev.eq(d1_ev), d2_row_end.eq(d1_row_end),
                         d2_pos_last.eq(d1_pos_last), d2_wb.eq(d1_wb), d2_va.eq(d1_va), d2_b.eq(d1_b),
                         d2_ct.eq(d1_c * desc.tiles), d2_lo.eq(Mux(desc.heads_on, hst[desc.h_base + d1_c], 0))]
        # Stage D2: the tile range, the weight and accumulator words of the first tile.
        d2_item = Signal(item)
        tile_lo = Mux(desc.heads_on, d2_lo >> _log2(P), 0)
        ct_lo = d2_ct + tile_lo
        tile_hi = Mux(desc.heads_on, (d2_lo + desc.hd - 1) >> _log2(P), desc.tiles - 1)
        m.d.comb += [
            d2_item.ev.eq(d2_ev), d2_item.row_end.eq(d2_row_end), d2_item.pos_last.eq(d2_pos_last),
            d2_item.b.eq(d2_b), d2_item.lo.eq(d2_lo), d2_item.waddr.eq(d2_wb + ct_lo),
            d2_item.word.eq(Mux(desc.accsel_ch, ct_lo, tile_lo)),
            d2_item.tile.eq(tile_lo), d2_item.tile_hi.eq(tile_hi),
            d2_item.at_last.eq(~d2_ev | (tile_lo == tile_hi)), d2_item.va.eq(d2_va),
        ]

        # Issue stage E: one (event, tile) per cycle.
        e = Signal(item)
        e_valid = Signal()
        e_first = Signal()
        bank = Signal()            # accumulator bank of the current position
        dr_busy = Signal()
        e_final = e.row_end & e.pos_last & e.at_last   # the position's last cycle
        stall = Signal()           # a position can only end (swap banks) when the drain engine is free
        dr_blk = Signal()      # the drain engine is busy and not in its last read
        m.d.comb += stall.eq(e_valid & e_final & dr_blk)
        e_go = e_valid & ~stall
        ev_issue = Signal()
        m.d.comb += ev_issue.eq(e_go & e.ev)
        pos_end = Signal()
        m.d.comb += pos_end.eq(e_go & e_final)
        e_ready = ~e_valid | (~stall & e.at_last)
        take = Signal()
        if not b.syn_queue:
            m.d.comb += [take.eq(e_ready & d2_valid),
                         d2_en.eq(~d2_valid | take), d1_en.eq(~d1_valid | d2_en), d0_en.eq(~d0_valid | d1_en)]
            next_item = d2_item
            decode_empty = ~d0_valid & ~d1_valid & ~d2_valid
        else:
            # Queue between D2 and E (D2 goes straight to E when the queue is empty).
            queue = [Signal(item, name=f"evq{i}") for i in range(NQ)]
            q_n = Signal(range(NQ + 1))
            q_rd = Signal(range(NQ))
            q_wr = Signal(range(NQ))
            q_empty = q_n == 0
            m.d.comb += take.eq(e_ready & (d2_valid | ~q_empty))
            q_push = d2_valid & ~(take & q_empty)
            q_pop = take & ~q_empty
            # The free slot at q_wr takes every decoded item; only the pointer waits for the
            # push decision (the issue stage's take, a long path), and it never points at a
            # held item while D2 holds one (the decode stages never stall).
            with m.If(d2_valid):
                for i in range(NQ):
                    with m.If(q_wr == i):
                        m.d.sync += queue[i].eq(d2_item)
            with m.If(q_push):
                m.d.sync += q_wr.eq(Mux(q_wr == NQ - 1, 0, q_wr + 1))
            with m.If(q_pop):
                m.d.sync += q_rd.eq(Mux(q_rd == NQ - 1, 0, q_rd + 1))
            m.d.sync += [q_n.eq(q_n + q_push - q_pop), held.eq(held + emit - take)]
            next_item = Mux(q_empty, d2_item, Array(queue)[q_rd])
            decode_empty = held == 0
        with m.If(take):
            m.d.sync += [e.eq(next_item), e_valid.eq(1), e_first.eq(1)]
        with m.Elif(ev_issue & ~e.at_last):
            m.d.sync += [e.tile.eq(e.tile + 1), e.at_last.eq(e.tile + 1 == e.tile_hi), e_first.eq(0),
                         e.waddr.eq(e.waddr + 1), e.word.eq(e.word + 1)]
        with m.Elif(e_go & e.at_last):
            m.d.sync += e_valid.eq(0)
        e_b, e_lo, e_tile = e.b, e.lo, e.tile
        # Count events (once per event, at its first tile).
        with m.If(ev_issue & e_first):
            m.d.sync += event_ctr.eq(event_ctr + 1)

        # Drain engine state.
        drain_delay = b.syn_drain_delay()  # the timing rule syn_drain
        dr_delay = Signal(range(drain_delay + 1))  # the drain's first read waits for the last accumulator write
        dr_bank = Signal()
        dr_word = Signal(pl.acc_count_bits)
        dr_ptr = Signal(pl.iw)     # destination word of the position being drained (dst_base included)
        dst_ptr = Signal(pl.iw)    # destination word of the current position
        dr_wr = Signal()
        dr_wr_addr = Signal(pl.iw)
        dr_wr_bank = Signal()

        # V-row lanes for K^T V: lane l holds channel tile * P + l, masked to the event's head.
        # The V row is read (spike banks, port B) as the event issues, so only its address
        # travels with the event; the lanes are selected in stage I.
        # (The fast build reads a cycle later, from E's registers: stage X below; the copies are
        # in ``_elab_ew``.)
        syn_rb = (e.va, ev_issue)
        if not x_regs:
            va_l = lc.copies("syn_rb", data.View(item, next_item).va, va_w, en=take)
            for (wp, ra, rb), a in zip(banks, va_l):
                m.d.comb += rb.addr.eq(a)
        in_head = []
        for ln in range(P):
            ch = e_tile * P + ln
            in_head.append((ch >= e_lo) & (ch < e_lo + desc.hd))

        # The weight word is read as the event issues (its address is a register of E). In the
        # fast build (stage X, Build.syn_issue_regs) registers per lane group take E's register, and
        # the reads happen a cycle after the issue: no issue logic (``take``, the queue, the
        # decode adders) in front of a far copy. The integer memory's port A reads the same
        # address (Q/KV weights; its copies are in ``_elab_ew``).
        if not x_regs:
            m.d.comb += wm_r.addr.eq(e.waddr)
        else:
            assert x_regs == 1
            lc.addr_regs("syn_wa", wm_r.addrs, e.waddr)
        syn_im_addr = e.waddr

        # Stage X (the fast build): the issued event's fields, registered.
        if x_regs:
            x_valid = Signal()
            x_b = Signal(pl.plane_bits)
            x_word = Signal(aww)
            x_bank = Signal()
            x_tile = Signal(len(e_tile))
            x_inh = [Signal(name=f"x_inh{ln}", reset_less=True) for ln in range(P)]
            m.d.sync += x_valid.eq(ev_issue)
            with m.If(ev_issue):
                m.d.sync += [x_b.eq(e_b), x_bank.eq(bank), x_word.eq(e.word), x_tile.eq(e_tile)]
                m.d.sync += [x_inh[ln].eq(in_head[ln]) for ln in range(P)]
            src_valid, src_b, src_bank, src_word, src_tile, src_inh = x_valid, x_b, x_bank, x_word, x_tile, x_inh
        else:
            src_valid, src_b, src_bank, src_word, src_tile, src_inh = ev_issue, e_b, bank, e.word, e_tile, in_head

        # Stage I: the accumulator word is read; the weight lanes (read in E) are registered
        # as read, valid in stage R.
        i_valid = Signal()
        i_b = Signal(pl.plane_bits)
        i_word = Signal(aww)
        i_bank = Signal()
        # Lane data registers have no reset: the reset net would otherwise reach every lane.
        i_inh = [Signal(name=f"i_inh{ln}", reset_less=True) for ln in range(P)]
        i_tile_l = lc.copies("i_tile", src_tile, len(e_tile), en=src_valid)
        i_v = [Signal(sb, name=f"i_v{ln}") for ln in range(P)]
        i_wm = [Signal(signed(wb), name=f"i_wm{ln}", reset_less=True) for ln in range(P)]    # weight lanes (ROM)
        i_im = [Signal(signed(ib), name=f"i_im{ln}", reset_less=True) for ln in range(P)]    # weight lanes (Q KV)
        m.d.sync += i_valid.eq(src_valid)
        with m.If(src_valid):
            m.d.sync += [i_b.eq(src_b), i_bank.eq(src_bank), i_word.eq(src_word)]
            m.d.sync += [i_inh[ln].eq(src_inh[ln]) for ln in range(P)]
        for ln in range(P):
            slots = Array(banks[ln][2].data[s * sb:(s + 1) * sb] for s in range(S))
            m.d.comb += i_v[ln].eq(Mux(i_inh[ln], slots[i_tile_l[ln]], 0))
        if not b.lane_copies:
            for k, (wp, rr, rd) in enumerate(amems):
                m.d.comb += rr.addr.eq(i_word)
        for ln in range(P):
            m.d.sync += [i_wm[ln].eq(lane(wm_r.data, ln, wb)), i_im[ln].eq(lane(im_a.data, ln, ib))]

        # Stage R: the accumulator lanes are registered as read; the weight lanes are selected
        # and shifted by the plane.
        # The accumulator word read in stage I misses the write of the event one ahead (stage
        # A, one cycle later): ``fwd`` marks that case and stage A takes that event's sum.
        # (The write two ahead, three in the fast build, lands in the read's own cycle: the
        # read port is transparent.)
        q_valid = Signal()
        q_word = Signal(aww)
        q_bank = Signal()
        q_v = [Signal(sb, name=f"q_v{ln}", reset_less=True) for ln in range(P)]
        m.d.sync += [q_valid.eq(i_valid), q_word.eq(i_word), q_bank.eq(i_bank)]
        pb = max(self.pbs, self.pbi, 1)
        q_b_l = lc.copies("q_b", i_b[:pb], pb)
        kv_l, qkv_l = lc.spread("kv_mode_l", desc.kv_mode), lc.spread("qkv_mode_l", desc.qkv_mode)
        m.d.sync += [q_v[ln].eq(i_v[ln]) for ln in range(P)]
        a_valid = Signal()
        a_word = Signal(aww)
        a_bank = Signal()
        a_fwd = Signal()
        a_w = [Signal(ab, name=f"a_w{ln}", reset_less=True) for ln in range(P)]  # weight << plane (mod 2^ab)
        a_acc = [[Signal(signed(ab), name=f"a_acc{k}_{ln}", reset_less=True) for ln in range(P)] for k in range(2)]
        fwd_next = a_valid & (a_bank == q_bank) & (a_word == q_word)
        m.d.sync += [a_valid.eq(q_valid), a_word.eq(q_word), a_bank.eq(q_bank), a_fwd.eq(fwd_next)]
        a_bank_l = lc.copies("a_bank", q_bank, 1)
        a_fwd_l = lc.copies("a_fwd", fwd_next, 1)
        if acc_wregs:
            # Stage W (the fast build, Build.acc_write_regs): stage A's sum is registered and
            # written a cycle later, so the read in stage I also misses the write of the event
            # two ahead (in stage W while this one is in stage R): ``fwd2`` takes its sum.
            w_valid = Signal()
            w_word = Signal(aww)
            w_bank = Signal()
            m.d.sync += [w_valid.eq(a_valid), w_word.eq(a_word), w_bank.eq(a_bank)]
            fwd2_next = w_valid & (w_bank == q_bank) & (w_word == q_word)
            a_fwd2_l = lc.copies("a_fwd2", fwd2_next, 1)
        for ln in range(P):
            w = Mux(kv_l[ln], q_v[ln], Mux(qkv_l[ln], i_im[ln], i_wm[ln]))
            m.d.sync += a_w[ln].eq(w << q_b_l[ln])
            m.d.sync += [a_acc[k][ln].eq(lane(amems[k][1].data, ln, ab)) for k in range(2)]

        # Stage A: accumulate and write back (the fast build: register the sum; stage W
        # writes it).
        sums = []
        for ln in range(P):
            last = Signal(signed(ab), name=f"a_last{ln}", reset_less=True)  # the sum of the previous cycle
            s_ = Signal(signed(ab), name=f"sum{ln}")
            acc = Mux(a_bank_l[ln], a_acc[1][ln], a_acc[0][ln])
            if acc_wregs:
                last2 = Signal(signed(ab), name=f"a_last2_{ln}", reset_less=True)  # and of the one before
                m.d.sync += last2.eq(last)
                acc = Mux(a_fwd2_l[ln], last2, acc)
            acc = Mux(a_fwd_l[ln], last, acc)
            m.d.comb += s_.eq(acc + a_w[ln])
            m.d.sync += last.eq(s_)
            sums.append(last if acc_wregs else s_)

        # Drain engine: after three cycles (four in the fast build: the in-flight writes),
        # copy each accumulator word to the integer memory and clear it.
        dr_clr_addr = Signal(pl.acc_count_bits)
        fin = Signal()             # the pass's last cycle (``active`` clears)
        m.d.sync += dr_wr.eq(0)
        with m.If(dr_busy):
            with m.If(dr_delay != 0):
                m.d.sync += dr_delay.eq(dr_delay - 1)
            with m.Else():
                if not b.lane_copies:
                    for k, (wp, rr, rd) in enumerate(amems):
                        with m.If(dr_bank == k):
                            m.d.comb += rd.addr.eq(dr_word)
                m.d.sync += [dr_wr.eq(1), dr_wr_addr.eq(dr_ptr + dr_word), dr_clr_addr.eq(dr_word),
                             dr_wr_bank.eq(dr_bank), dr_word.eq(dr_word + 1)]
                with m.If(dr_word == desc.acc_words - 1):
                    m.d.sync += dr_busy.eq(0)
        # A position ends (banks swap, a drain starts) once the previous drain is in its last
        # read: ``dr_blk`` (registered) counts it down; assignments here win over the drain's
        # own in that cycle.
        dr_left = Signal(len(desc.acc_words) + 2)
        with m.If(pos_end):
            m.d.sync += [bank.eq(~bank), dr_busy.eq(1), dr_delay.eq(drain_delay), dr_word.eq(0),
                         dr_bank.eq(bank), dr_ptr.eq(dst_ptr), dst_ptr.eq(dst_ptr + desc.acc_words),
                         dr_left.eq(desc.acc_words + drain_delay), dr_blk.eq(1)]
        with m.Elif(dr_left != 0):
            m.d.sync += [dr_left.eq(dr_left - 1), dr_blk.eq(dr_left > 2)]
        rd_now = dr_busy & (dr_delay == 0)   # the drain reads a word in this cycle
        if b.lane_copies:
            # A bank's read address (the drain's word while the drain reads the bank, else
            # stage I's word) in registers per lane group, from the next values of the drain
            # state above (``pos_end`` wins) and of ``i_word``.
            rd_next = ~pos_end & dr_busy & Mux(dr_delay != 0, dr_delay == 1, dr_word != desc.acc_words - 1)
            dr_word_next = Mux(pos_end, 0, Mux(rd_now, dr_word + 1, dr_word))
            dr_bank_next = Mux(pos_end, bank, dr_bank)
            i_word_next = Mux(src_valid, src_word, i_word)
            for k, (wp, rr, rd) in enumerate(amems):
                lc.addr_regs(f"acc_ra{k}", rr.addrs,
                                Mux(rd_next & (dr_bank_next == k), dr_word_next, i_word_next))
        if not b.int_write_regs:
            dw_data = Cat(*[Mux(dr_wr_bank, lane(amems[1][2].data, ln, ab),
                                lane(amems[0][2].data, ln, ab))[:ib] for ln in range(P)])
            with m.If(dr_wr & active):
                m.d.comb += [im_w.en.eq(1), im_w.addr.eq(dr_wr_addr), im_w.data.eq(dw_data)]
        else:
            # The fast build writes a drained word a cycle later, from stage R's registers of
            # the accumulator read data (``a_acc``, loaded every cycle from both banks): no
            # logic after a block RAM output (5.8 ns on the ECP5) but the read port's own. The
            # write still lands before the next pass reads (the fourth cycle after done).
            # The data is 0 unless a word is written (a copy of the write flag per lane group),
            # so the EW stage ORs it with its own write data: no select reaches all lanes. The
            # EW stage registers the port's address and enable from the values here (what the
            # drain writes in the next cycle).
            dw_bank = lc.copies("dw_bank", dr_wr_bank, 1)
            dw_on = lc.copies("dw_on", dr_wr & active, 1)
            dw_data = Cat(*[Mux(dw_on[ln], Mux(dw_bank[ln], a_acc[1][ln], a_acc[0][ln]), 0)[:ib]
                            for ln in range(P)])
            drain_write = (dr_wr & active, dr_wr_addr, dw_data)
        # Accumulator writes: stage A's sums, or the drain clearing the word it read (which
        # wins; never the bank being accumulated).
        for k, (wp, rr, rd) in enumerate(amems):
            clear = dr_wr & active & (dr_wr_bank == k)
            if not b.lane_copies:
                wdata = Cat(*sums)
            else:
                # Each lane's data is 0 under a copy of the clear flag: no select reaches all
                # lanes. The copies take the flag's next value: ``dr_wr`` is set when the drain
                # reads (busy, no delay left) and ``active`` by start, cleared by fin (which wins).
                # The enable and address are registered from their next values too (they reach
                # every block RAM of the bank).
                clear_next = (rd_now & ~fin & (start | active)
                              & (Mux(rd_now, dr_bank, dr_wr_bank) == k))
                clear_l = lc.copies(f"acc_clear{k}", clear_next, 1)
                wdata = Cat(*(Mux(clear_l[ln], 0, sums[ln]) for ln in range(P)))
                # (The sums are stage W's: the event now in stage A.)
                lc.addr_regs(f"acc_wa{k}", wp.addrs,
                                Mux(clear_next, Mux(rd_now, dr_word, dr_clr_addr), a_word))
                lc.addr_regs(f"acc_we{k}", wp.ens, (a_valid & (a_bank == k)) | clear_next)
                m.d.comb += wp.data.eq(wdata)
                continue
            m.d.comb += [wp.en.eq((a_valid & (a_bank == k)) | clear),
                         wp.addr.eq(Mux(clear, dr_clr_addr, a_word)), wp.data.eq(wdata)]
            with m.If(clear):
                m.d.comb += wp.data.eq(0)

        # Start / done. While the engine is inactive its loop state holds the start values
        # (descriptor and pass constants are valid from the START cycle), so ``start`` only sets
        # ``active``.
        with m.If(start):
            m.d.sync += [active.eq(1), gen_on.eq(1)]
        with m.If(~active):
            m.d.sync += [dst_ptr.eq(desc.dst_base), bank.eq(0)]
        with m.If(~scan_active):
            m.d.sync += [e1_on.eq(0), count.eq(0), credits.eq(0), wr_ptr.eq(0), rd_ptr.eq(0)]
        # Done two cycles before the pass's last write (the drain's last word), so that the
        # next descriptor load overlaps it: the descriptor changes at the end of the second
        # cycle after done, and the next pass reads memory from the fourth. Predicted a cycle
        # ahead and registered: the front of the pipeline is empty and the drain (the last
        # one: nothing is left to issue) is one cycle before its last read. ``active`` stays
        # on for that last read's write.
        front_empty = (~gen_on & ~infl & ~rd_on & ~Cat(*fetching, f_valid).any() & (count == 0) & ~e1_on
                       & decode_empty & ~e_valid)
        done_r = Signal()
        m.d.sync += [done_r.eq(active & ~done_r & ~fin & front_empty & (dr_left == 2)), fin.eq(done_r)]
        with m.If(fin):
            m.d.sync += active.eq(0)
        for copy in (gen_active, scan_active):
            if copy is not active:
                m.d.sync += copy.eq((copy | start) & ~fin)
        m.d.comb += done.eq(done_r)
        return dict(ra=syn_ra if b.syn_read_regs else None, rb=syn_rb, im_addr=syn_im_addr,
                    drain_write=drain_write if b.int_write_regs else None)

    # --- EW / RED: element-wise and reduction passes --------------------------------------
    def _elab_ew(self, m, lc, desc, start, done, banks, im_a, im_b, im_w, cm_r, logits, syn):
        """One element per cycle through a 9-stage pipeline; tiles follow each other without
        a gap, so a pass costs ``tiles * N * T`` issue cycles plus the pipeline depth once.

        ===== =====================================================================
        stage work (the element issued in cycle 0)
        ===== =====================================================================
        0     loop counters and running pointers; memory read addresses
        1     memory words registered as read; constants
        2     operand lanes (spike slot select or integer lane)
        3     RED running sum; the addend (bias + rounding, or the logit bias)
        4     requantization product (the fast build: operands and product registered again)
        5     product (or operand) + addend
        6     arithmetic shift
        7     saturation (requantization)
        8     ``y - theta``, the residual sum, the multispike rounding, ``y AND b``
        9     neuron (the membrane loop alone), residual saturation, memory write
              (the fast build registers the write port inputs: the write is a cycle later)
        ===== =====================================================================
        """
        prog = self.prog
        P = prog.lanes
        S, sb = prog.spike_slots, self.slot_bits
        ib, mb, bb, tb = self.ib, self.mb, self.bb, self.tb
        ow, pw, yw, mw, uw = self.ow, self.pw, self.yw, self.mw, self.uw
        cw = mb + bb + tb
        bw = self.plan.bw                      # operand b: an integer lane or a spike value
        iw = self.plan.iw                      # integer memory word index
        rw_ = self.plan.srow_w                 # spike memory row index
        op = desc.op

        # Pass flags, registered from the descriptor (valid from the pass's first cycle); a flag
        # no pass of the program sets is the constant 0, and the logic it enables is not built.
        present = {(p.kind, p.op) for p in prog.passes if p.kind != SYN}
        is_red = desc.kind == Kind.RED

        def flag(name, expr, used):
            if not used:
                return Const(0, 1)
            sig = Signal(name=f"ew_{name}")
            m.d.sync += sig.eq(expr)
            return sig

        def uses(*ops):
            return any(o in present for o in ops)

        ew_passes = [p for p in prog.passes if p.kind != SYN]
        f_red = flag("red", is_red, uses(*((RED, o.name.lower()) for o in RedOp)))
        f_rq = flag("rq", desc.requant, any(p.requant for p in ew_passes))
        f_soft = flag("soft", desc.soft, any(p.soft for p in ew_passes))
        f_lif = flag("lif", (~is_red & (op == EwOp.LIF)) | (is_red & (op == RedOp.MASK)),
                     uses((EW, "lif"), (RED, "mask")))
        f_ms = flag("ms", ~is_red & (op == EwOp.MULTISPIKE), uses((EW, "multispike")))
        f_add = flag("add", ~is_red & (op == EwOp.ADD), uses((EW, "add")))
        f_and = flag("and", ~is_red & (op == EwOp.AND), uses((EW, "and")))
        f_out = flag("out", ~is_red & (op == EwOp.OUT), uses((EW, "out")))
        f_mask = flag("mask", is_red & (op == RedOp.MASK), uses((RED, "mask")))
        f_spk = flag("spk", (is_red & (op == RedOp.MASK)) | (~is_red & (
            (op == EwOp.LIF) | (op == EwOp.MULTISPIKE) | (op == EwOp.AND))),
            uses((EW, "lif"), (EW, "multispike"), (EW, "and"), (RED, "mask")))
        nt = lc.pass_const("nt")                  # N * tiles
        smax = self.plan.smax

        # Stage 0: loops (EW: tile, n, t; RED: tile, t, n) and running pointers.
        active = Signal()
        active_next = Signal()   # ``start`` sets ``active``, the pass's done clears it
        m.d.sync += active.eq(active_next)
        # ``active`` for the loop state and for the EW/SYN selects of the memory addresses:
        # registers of their own (the fast build), updated like ``active``.
        loop_active = lc.flag_copy("ew_loop_active", active)
        sel_active = lc.flag_copy("ew_sel_active", active)
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
        n1, t1, tiles1 = (lc.pass_const(k) for k in ("n1", "t1", "tiles1"))
        # End flags (counter == limit) and last-but-one flags, registered and updated with
        # their counters; one-iteration and two-iteration limits are pass constants.
        z_n, z_t, z_tile, o_n, o_t, o_tile = (lc.pass_const(k) for k in (
            "ez_n", "ez_t", "ez_tile", "eo_n", "eo_t", "eo_tile"))
        last_n, last_t, last_tile, pen_n, pen_t, pen_tile = (
            Signal(name=f"ew_{k}") for k in ("last_n", "last_t", "last_tile", "pen_n", "pen_t", "pen_tile"))
        issue = loop_active & run
        init = ~loop_active
        i_last = Mux(f_red, last_n, last_t)   # inner loop: t (EW), n (RED)
        m_last = Mux(f_red, last_t, last_n)   # middle loop: n (EW), t (RED)
        s_in = issue & ~i_last
        s_mid = issue & i_last & ~m_last
        s_tile = issue & i_last & m_last
        last_el = i_last & m_last & last_tile
        with m.If(s_tile & last_tile):
            m.d.sync += run.eq(0)
        red = f_red

        def count(ctr, last, pen, inc, rst, z, o, lim):
            with m.If(init | rst):
                m.d.sync += [ctr.eq(0), last.eq(z), pen.eq(o)]
            with m.Elif(inc):
                m.d.sync += [ctr.eq(ctr + 1), last.eq(pen), pen.eq(ctr + 2 == lim)]

        count(t, last_t, pen_t, Mux(red, s_mid, s_in), Mux(red, s_tile, s_mid | s_tile), z_t, o_t, t1)
        count(n, last_n, pen_n, Mux(red, s_in, s_mid), Mux(red, s_mid | s_tile, s_tile), z_n, o_n, n1)
        count(tile, last_tile, pen_tile, s_tile, Const(0, 1), z_tile, o_tile, tiles1)

        def sel(reg, cases):
            """The next value of ``reg``: one of ``cases`` (exclusive conditions), 0 while
            inactive, else unchanged; registered, and returned for the address registers."""
            value = Const(0, 1)
            any_ = Const(0, 1)
            for cond, v in cases:
                value = value | Mux(cond, v, 0)
                any_ = any_ | cond
            nxt = Signal.like(reg, name=f"{reg.name}_next")
            m.d.comb += nxt.eq(Mux(init, 0, Mux(any_, value, reg)))
            m.d.sync += reg.eq(nxt)
            return nxt

        ew_in, ew_mid, red_in, red_mid = s_in & ~red, s_mid & ~red, s_in & red, s_mid & red
        ii_next = sel(ii, [(ew_in, ii + nt), (red_in | red_mid, ii + desc.tiles), (ew_mid, ii_n + desc.tiles),
                           (s_tile, tile + 1)])
        sel(ii_n, [(ew_mid, ii_n + desc.tiles), (s_tile, tile + 1)])
        si_next = sel(si, [(ew_in, si + desc.N), (red_in | red_mid, si + 1), (ew_mid, n + 1), (s_tile, 0)])
        bi_next = sel(bi, [(ew_in, bi + desc.b_rows), (red_in, bi + ~desc.b_bcast),
                           (ew_mid, Mux(desc.b_bcast, 0, n + 1)), (red_mid, tbr + desc.b_rows), (s_tile, 0)])
        sel(tbr, [(red_mid, tbr + desc.b_rows), (s_tile, 0)])
        sel(ti, [(red_mid, ti + desc.tiles), (s_tile, tile + 1)])
        tile_next = Mux(init, 0, Mux(s_tile, tile + 1, tile))
        # Memory addresses, registered from the next pointer values.
        # The fast build registers them again (Build.ew_addr_regs) in a copy per lane group (each
        # group's memories see their own), with the select between the EW and SYN addresses
        # of a shared port in front of the copies: the addresses are a cycle later.
        a_int, b_int = Signal(iw, name="ew_a_int"), Signal(iw, name="ew_b_int")
        c_adr = Signal(range(max(2, len(prog.consts))), name="ew_c_adr")
        m.d.sync += [a_int.eq(desc.a_base + ii_next), b_int.eq(desc.b_base + ii_next),
                     c_adr.eq(desc.c_base + tile_next)]
        # The spike banks' read addresses, and whether this engine owns the ports (``active``),
        # a copy per lane group.
        b = self.build
        if not b.ew_addr_regs:
            a_spk = lc.copies("ew_a_spk", desc.a_base + si_next, rw_)
            b_spk = lc.copies("ew_b_spk", desc.b_base + bi_next, rw_)
            owns = lc.copies("ew_owns", active_next, 1)
            for ln, (wp, ra, rb) in enumerate(banks):
                with m.If(owns[ln]):
                    m.d.comb += [ra.addr.eq(a_spk[ln]), rb.addr.eq(b_spk[ln])]
            with m.If(active):
                m.d.comb += [im_a.addr.eq(a_int), im_b.addr.eq(b_int)]
            with m.Else():
                m.d.comb += im_a.addr.eq(syn["im_addr"])
            m.d.comb += cm_r.addr.eq(c_adr)
        else:
            assert b.ew_addr_regs == 1
            lc.addr_regs("ew_c_adr_l", cm_r.addrs, c_adr)
            lc.addr_regs("ew_b_int_l", im_b.addrs, b_int)
            lc.addr_regs("im_ra", im_a.addrs, Mux(sel_active, a_int, syn["im_addr"]))
            # The EW/SYN select sits before the registers, so a bank's address pins see a
            # register alone. Port B holds the SYN V row between issues (it is read only for
            # the event issued last).
            aw = len(banks[0][1].addr)
            ew_ra, ew_rb = Signal(aw, name="ew_spk_ra"), Signal(aw, name="ew_spk_rb")
            m.d.sync += [ew_ra.eq(desc.a_base + si_next), ew_rb.eq(desc.b_base + bi_next)]
            ra_l = lc.copies("bank_ra", Mux(sel_active, ew_ra, syn["ra"]), aw)
            rb_regs, rb_l = lc.copy_regs("bank_rb", aw)
            syn_va, syn_issue = syn["rb"]
            with m.If(sel_active):
                m.d.sync += [r.eq(ew_rb) for r in rb_regs]
            with m.Elif(syn_issue):
                m.d.sync += [r.eq(syn_va) for r in rb_regs]
            for ln, (wp, ra, rb) in enumerate(banks):
                m.d.comb += [ra.addr.eq(ra_l[ln]), rb.addr.eq(rb_l[ln])]

        # Element control, carried down the pipeline with the element: ``ctl_at(k)`` is the
        # control of the element issued k cycles ago; ``ctl_lanes(k)`` the same per lane (a
        # copy per lane group in the fast build).
        ctl = data.StructLayout({
            "valid": 1, "last": 1, "first_n": 1, "first_t": 1, "wr": 1,
            "tile": len(tile), "widx": max(iw, rw_),
        })
        c0 = Signal(ctl, name="ew_c0")
        m.d.comb += [
            c0.valid.eq(issue), c0.last.eq(last_el), c0.first_n.eq(n == 0), c0.first_t.eq(t == 0),
            c0.wr.eq(~f_red | last_n), c0.tile.eq(tile),
            c0.widx.eq(Mux(f_red, Mux(f_spk, t, ti), Mux(f_spk, si, ii))),
        ]
        ctlv = [c0]

        def ctl_at(k):
            while len(ctlv) <= k:
                nxt = Signal(ctl, name=f"ew_c{len(ctlv)}")
                m.d.sync += nxt.eq(ctlv[-1])
                ctlv.append(nxt)
            return ctlv[k]

        ctl_cache = {}

        def ctl_lanes(k):
            if not lc.spread_on:
                return [ctl_at(k)] * P
            if k not in ctl_cache:
                ctl_cache[k] = lc.copies(f"ew_c{k}", ctl_at(k - 1), ctl)
            return ctl_cache[k]

        def spread(name, value):
            return lc.spread(f"ew_{name}", value)

        # Stages 1..9 each end in a register in the fast build (stage 9: the memory write
        # port inputs); the compact build keeps only those of stages 2, 3 (the RED running
        # sum), 4 (the product), 5 and 7 (Build.ew_registered, which also gives the timing
        # rule).
        registered = {k: k in b.ew_registered for k in range(1, 10)}
        mult_regs, read_regs = b.ew_mult_regs, b.ew_read_regs
        # cyc[k]: the cycle (after issue) in which stage k's outputs are valid (0: the reads)
        cyc = {0: 1 + b.ew_addr_regs}
        for k in range(1, 9):
            cyc[k] = cyc[k - 1] + registered[k] + {4: mult_regs, 1: read_regs}.get(k, 0)
        cyc_in = {k: cyc[k - 1] for k in range(1, 10)}

        def per_lane(name, shape):  # lane data: no reset (the valid bits travel in ``ctl``)
            return [Signal(shape, name=f"{name}{ln}", reset_less=True) for ln in range(P)]

        def put(k, stmts):
            if registered[k]:
                m.d.sync += stmts
            else:
                m.d.comb += stmts

        def carry(name, values, shape, n_stages):
            """Delay per-lane ``values`` by ``n_stages`` registers; returns the last ones."""
            for k in range(n_stages):
                nxt = per_lane(f"{name}_d{k}_", shape)
                m.d.sync += [d.eq(v) for d, v in zip(nxt, values)]
                values = nxt
            return values

        # Stage 1: the memory words as read (registered in the fast build: nothing between a
        # block RAM output and a register).
        raw_sa, raw_sb = per_lane("ew_rsa", unsigned(S * sb)), per_lane("ew_rsb", unsigned(S * sb))
        raw_ia, raw_ib = per_lane("ew_ria", signed(ib)), per_lane("ew_rib", signed(ib))
        mult1, bias1, theta1 = per_lane("ew_mult", signed(mb)), per_lane("ew_bias", signed(bb)), \
            per_lane("ew_theta", unsigned(tb))
        # The fast build registers the words once more (Build.ew_read_regs): a block RAM column
        # can be far from the lanes it feeds, after 5.8 ns of clock-to-out on the ECP5.
        words = carry("ew_cword", [cm_r.data[ln * cw:(ln + 1) * cw] for ln in range(P)], cw, read_regs)
        rd_sa = carry("ew_rdsa", [banks[ln][1].data for ln in range(P)], S * sb, read_regs)
        rd_sb = carry("ew_rdsb", [banks[ln][2].data for ln in range(P)], S * sb, read_regs)
        rd_ia = carry("ew_rdia", [lane(im_a.data, ln, ib) for ln in range(P)], signed(ib), read_regs)
        rd_ib = carry("ew_rdib", [lane(im_b.data, ln, ib) for ln in range(P)], signed(ib), read_regs)
        for ln in range(P):
            word = words[ln]
            put(1, [
                raw_sa[ln].eq(rd_sa[ln]), raw_sb[ln].eq(rd_sb[ln]),
                raw_ia[ln].eq(rd_ia[ln]), raw_ib[ln].eq(rd_ib[ln]),
                mult1[ln].eq(word[:mb].as_signed()), bias1[ln].eq(word[mb:mb + bb].as_signed()),
                theta1[ln].eq(word[mb + bb:cw]),
            ])
        # Stage 2: operand lanes (the tile's spike slot, or the integer lane).
        c2 = ctl_lanes(cyc_in[2])
        a_int, b_int = spread("a_int", desc.a_int), spread("b_int", desc.b_int)
        opa, opb = per_lane("ew_a", signed(ow)), per_lane("ew_b", signed(bw))
        mult2_, bias2_ = per_lane("ew_mult1d", signed(mb)), per_lane("ew_bias1d", signed(bb))
        for ln in range(P):
            sel_a = Array(raw_sa[ln][s * sb:(s + 1) * sb] for s in range(S))[c2[ln].tile]
            sel_b = Array(raw_sb[ln][s * sb:(s + 1) * sb] for s in range(S))[c2[ln].tile]
            put(2, [
                opa[ln].eq(Mux(a_int[ln], raw_ia[ln], sel_a)),
                opb[ln].eq(Mux(b_int[ln], raw_ib[ln], sel_b)),
                mult2_[ln].eq(mult1[ln]), bias2_[ln].eq(bias1[ln]),
            ])

        # Stage 3: RED running sum (the one-cycle loop of a reduction); the addend.
        c3 = ctl_lanes(cyc_in[3])
        l_mask, l_red, l_rq, l_out = (spread(k, v) for k, v in (
            ("mask_l", f_mask), ("red_l", f_red), ("rq_l", f_rq), ("out_l", f_out)))
        # (A register per lane for the addend's selects and rounding term: they reach every bit
        # of the lane's adder.)
        l_rq_a, l_out_a = lc.lane_regs("ew_rq_a", l_rq), lc.lane_regs("ew_out_a", l_out)
        l_rnd = lc.lane_regs("ew_rnd_l", lc.copies(
            "ew_rnd", (Const(1, pw) << desc.shift) >> 1, unsigned(smax)))  # 2^(shift-1)
        opnd = per_lane("ew_opnd", signed(ow))
        mult2 = per_lane("ew_mult2_", signed(mb))
        adw = max(bb, smax + 1) + 1
        addend = per_lane("ew_addend", signed(adw))
        for ln in range(P):
            cur = Mux(l_mask[ln], opa[ln] & opb[ln], opa[ln])
            total = Mux(c3[ln].first_n, 0, opnd[ln]) + cur
            put(3, [
                opnd[ln].eq(Mux(l_red[ln], total, opa[ln])),
                mult2[ln].eq(mult2_[ln]),
                addend[ln].eq(Mux(l_rq_a[ln], bias2_[ln] + l_rnd[ln], Mux(l_out_a[ln], bias2_[ln], 0))),
            ])
        # Stage 4: the requantization product (a registered multiplier).
        prod = per_lane("ew_prod", signed(ow + mb))
        raw = per_lane("ew_raw", signed(ow))
        addend3 = carry("ew_addend3", addend, signed(adw), cyc_in[5] - cyc[3])
        if mult_regs:
            # The fast build registers the multiplier's operands and its product once more,
            # so the registers can sit next to the DSP column: the route to and from a far
            # lane is a path of its own (Build.ew_mult_regs).
            # Those two registers are the multiplier's (RegisteredProduct: the ECP5's DSP
            # block's own with ``mult_primitive``).
            assert b.ew_mult_regs == PRODUCT_LATENCY
            prim = self.mult_primitive and max(ow, mb) <= DSP_OPERAND_BITS
            m_p = []
            for ln in range(P):
                unit = m.submodules[f"ew_mul{ln}"] = RegisteredProduct(ow, mb, primitive=prim)
                m.d.comb += [unit.a.eq(opnd[ln]), unit.b.eq(mult2[ln])]
                m_p.append(unit.p)
            raw_d = per_lane("ew_raw_d", signed(ow))
            m.d.sync += [d.eq(v) for d, v in zip(raw_d, opnd)]
            raw_p = carry("ew_raw_p", raw_d, signed(ow), 1)
            m.d.sync += [d.eq(v) for d, v in zip(prod + raw, m_p + raw_p)]
        else:
            for ln in range(P):
                put(4, [prod[ln].eq(opnd[ln] * mult2[ln]), raw[ln].eq(opnd[ln])])
        # Stage 5: + bias + rounding (requantization) / + logit bias (out).
        z = per_lane("ew_z", signed(pw))
        for ln in range(P):
            put(5, z[ln].eq(Mux(l_rq[ln], prod[ln], raw[ln]) + addend3[ln]))
        # Stage 6: arithmetic shift (shift is 0 without requantization).
        l_shift = lc.lane_regs("ew_shift_ln", spread("shift_l", desc.shift))  # the shifter's selects
        sh = per_lane("ew_sh", signed(pw))
        for ln in range(P):
            put(6, sh[ln].eq(z[ln] >> l_shift[ln]))
        # Stage 7: saturation to sat_bits: sh fits iff its bits from sat_bits - 1 up are all
        # equal, i.e. sh & mask is 0 or mask, where mask = sat_lo = -2^(sat_bits-1).
        y = per_lane("ew_y", signed(yw))
        sat_lo, sat_hi = spread("sat_lo_l", desc.sat_lo), spread("sat_hi_l", desc.sat_hi)
        sat_mask = lc.lane_regs("ew_sat_mask_l", lc.copies("ew_sat_mask", desc.sat_lo, signed(pw)))
        for ln in range(P):
            hi_bits = sh[ln] & sat_mask[ln]
            fits = (hi_bits == 0) | (hi_bits == sat_mask[ln])
            put(7, y[ln].eq(Mux(~l_rq[ln] | fits, sh[ln], Mux(sh[ln][-1], sat_lo[ln], sat_hi[ln]))))
        # Stage 8: values that feed the neuron stage.
        theta7 = carry("ew_theta7", theta1, unsigned(tb), cyc_in[8] - cyc[1])
        b7 = carry("ew_b7", opb, signed(bw), cyc_in[8] - cyc[2])
        l_ms_rnd = lc.copies("ew_ms_rnd", (Const(1, yw + 1) << desc.ms_shift) >> 1, unsigned(yw + 1))
        ymt = per_lane("ew_ymt", signed(max(yw, tb + 1) + 1))
        y8 = per_lane("ew_y8", signed(yw))
        yadd = per_lane("ew_yadd", signed(max(yw, bw) + 1))
        msp = per_lane("ew_msp", signed(yw + 2))
        yand = per_lane("ew_yand", unsigned(sb))
        for ln in range(P):
            put(8, [
                ymt[ln].eq(y[ln] - theta7[ln]), y8[ln].eq(y[ln]), yadd[ln].eq(y[ln] + b7[ln]),
                msp[ln].eq(y[ln] + l_ms_rnd[ln]), yand[ln].eq(y[ln][:sb] & b7[ln][:sb]),
            ])
        # Stage 9: neuron, and the memory write port inputs (registered in the fast build).
        # The membrane loop (leak, integrate, fire, reset) is the only logic between two
        # membrane registers: U - theta comes precomputed.
        neuron_cycle = cyc[8]
        write_cycle = neuron_cycle + registered[9]
        c9 = ctl_lanes(neuron_cycle)
        l_leak, l_ms_shift, l_levels = (spread(k, v) for k, v in (
            ("leak_l", desc.leak), ("ms_shift_l", desc.ms_shift), ("levels_l", desc.levels)))
        l_lif, l_soft, l_ms, l_and, l_add, l_spk = (spread(k, v) for k, v in (
            ("lif_l", f_lif), ("soft_l", f_soft), ("ms_l", f_ms), ("and_l", f_and), ("add_l", f_add),
            ("spk_l", f_spk)))
        add_lo, add_hi = spread("add_lo_l", desc.add_lo), spread("add_hi_l", desc.add_hi)
        add_mask = lc.copies("ew_add_mask", desc.add_lo, signed(len(yadd[0])))
        l_dst, l_C = spread("dst_l", desc.dst_base), spread("C_l", desc.C)
        out_int = []
        for ln in range(P):
            c = c9[ln]
            membrane = Signal(signed(mw), name=f"membrane{ln}", reset_less=True)  # first_t ignores it
            v_prev = Mux(c.first_t, 0, membrane)
            v_leak = v_prev >> l_leak[ln]
            u = Signal(signed(mw), name=f"ew_u{ln}")
            w = Signal(signed(uw), name=f"ew_w{ln}")
            m.d.comb += [u.eq(v_leak + y8[ln]), w.eq(v_leak + ymt[ln])]
            fire = ~w[-1]
            with m.If(c.valid & c.wr & l_lif[ln]):
                m.d.sync += membrane.eq(Mux(fire, Mux(l_soft[ln], w, 0), u))
            msr = msp[ln] >> l_ms_shift[ln]
            ms = Mux(msr[-1], 0, Mux(msr > l_levels[ln], l_levels[ln], msr))
            spike = Signal(sb, name=f"spike{ln}")
            m.d.comb += spike.eq(Mux(l_lif[ln], fire, Mux(l_ms[ln], ms, Mux(l_and[ln], yand[ln], 0))))
            hi_bits = yadd[ln] & add_mask[ln]
            fits = (hi_bits == 0) | (hi_bits == add_mask[ln])
            y_add = Mux(fits, yadd[ln], Mux(yadd[ln][-1], add_lo[ln], add_hi[ln]))
            out_int.append(Mux(l_add[ln], y_add, y8[ln])[:ib])
            # Spike write: bank ``ln``, slot ``tile`` (lanes past the last channel write nothing).
            wp = banks[ln][0]
            en = Cat(*(c.valid & c.wr & l_spk[ln] & (c.tile == s) & (c.tile * P + ln < l_C[ln])
                       for s in range(S)))
            put(9, [wp.addr.eq(l_dst[ln] + c.widx), wp.data.eq(Cat(*([spike] * S))), wp.en.eq(en)])

        # The logits shift in (out pass): logit j is lane j % P's, and shifts under that lane's
        # copy of the element control (the enable reaches no other lane group's registers).
        for j, (dst, src) in enumerate(zip(logits, logits[P:] + y8)):
            c = c9[j % P]
            with m.If(c.valid & c.wr & l_out[j % P]):
                m.d.sync += dst.eq(src)
        # Integer write (one memory port: in the compact build the lanes of lane group 0 give
        # its address; in the fast build each part's address register takes it from its own
        # lane group's copies, which hold the same values).
        def iw_en_of(ln):
            return c9[ln].valid & c9[ln].wr & ~l_out[ln] & ~l_spk[ln]

        def iw_addr_of(ln):
            return l_dst[ln] + c9[ln].widx

        iw_en, iw_addr, iw_data = iw_en_of(0), iw_addr_of(0), Cat(*out_int)
        if registered[9]:
            # Registered, each lane's data 0 unless written, and ORed with the drain's
            # (``_elab_syn``): the two writers of the port are never active together.
            # The address and enable in registers per lane group, from the next values.
            r_data = [Signal(ib, name=f"ew_iw_data{ln}", reset_less=True) for ln in range(P)]
            m.d.sync += [r.eq(Mux(c9[ln].valid & c9[ln].wr & ~l_out[ln] & ~l_spk[ln], out_int[ln], 0))
                         for ln, r in enumerate(r_data)]
            dw_en_next, dw_addr_next, dw_data = syn["drain_write"]
            step = P // len(im_w.addrs)          # lanes per part: part g's first lane is g * step
            firsts = range(0, P, step)
            lc.addr_regs("im_wa", im_w.addrs,
                            [Mux(iw_en_of(ln), iw_addr_of(ln), dw_addr_next) for ln in firsts])
            lc.addr_regs("im_we", im_w.ens, [iw_en_of(ln) | dw_en_next for ln in firsts])
            m.d.comb += im_w.data.eq(Cat(*r_data) | dw_data)
        else:
            with m.If(iw_en):
                m.d.comb += [im_w.en.eq(1), im_w.addr.eq(iw_addr), im_w.data.eq(iw_data)]

        # Done two cycles before the last element's write (stage 9), so that the next
        # descriptor load overlaps the flush (the descriptor changes at the end of the second
        # cycle after done); the last pass waits for its write (the logits are read next).
        done_r = Signal()
        late, early = ctl_at(write_cycle - 1), ctl_at(write_cycle - 3)
        m.d.sync += done_r.eq(Mux(desc.last_pass, late.valid & late.last, early.valid & early.last))
        m.d.comb += [active_next.eq(start | (active & ~done_r)), done.eq(done_r)]
        for copy in (loop_active, sel_active):
            if copy is not active:
                m.d.sync += copy.eq(start | (copy & ~done_r))
        # While inactive the loop state holds its start values: ``start`` only sets ``active``.
        with m.If(~loop_active):
            m.d.sync += run.eq(1)
