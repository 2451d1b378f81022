"""The accelerator engine: one P-lane datapath running a compiled program (docs/accelerator.md).

Golden function: :func:`spikeforge.sim.model.run_model` (whole model); the memory-level
reference is :func:`spikeforge.hdl.accel.execute.execute_program`.

The engine receives an image on ``pixels``, runs every pass of the program, and sends the
logits followed by the class on ``result``. ``cycles`` and ``events`` hold the cycle and event
counts of the last image.
"""

from amaranth.hdl import Array, Const, Module, Mux, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .ew import elaborate_ew
from .lanes import COPY_ATTR, COPY_MARK, LaneCopies
from .logits import Logits, result_layout
from .memories import PortView, bram_ports, collision_read, int_memory, weight_memory
from .plan import CONST_LOGIC_DEPTH, LANES_PER_COPY, EnginePlan, Kind, const_parts, lane_group_widths
from .program import SPRAM_BITS, SPRAM_WORDS, SYN
from .sequencer import Sequencer
from .weight_prefetch import WeightPrefetch
from .weight_stream import sdram_words_per_weight
from ..sdram import request_layout, word_layout
from ..sdram_timing import ULX3S_SDRAM
from .syn import elaborate_syn
from .timing import build_of

__all__ = ["Engine", "EnginePlan", "result_layout", "weight_load_layout", "LANES_PER_COPY", "COPY_ATTR", "COPY_MARK",
           "lane_group_widths", "const_parts", "CONST_LOGIC_DEPTH"]



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
    sdram_req : ``Out(stream.Signature(request_layout(ULX3S_SDRAM, sdram_max_count)))``
    sdram_r : ``In(stream.Signature(word_layout(ULX3S_SDRAM)))``
        Only with the sdram mapping: the weight prefetcher's read requests and the words read,
        to be connected to an :class:`~spikeforge.hdl.sdram.SdramController`'s ``req`` and ``r``
        (``max_count`` at least ``sdram_max_count``) holding ``program.sdram_image()`` from word
        0. The controller sits at the engine's boundary, so that a board top can share it with
        the host's one-time weight load (its write requests) and check it by reading back.

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
        if program.memory.kind == "sdram":
            self.sdram_max_count = max([1 << 16] + [s.words for s in program.memory.segments])
            members["sdram_req"] = Out(stream.Signature(request_layout(ULX3S_SDRAM, self.sdram_max_count)))
            members["sdram_r"] = In(stream.Signature(word_layout(ULX3S_SDRAM)))
        super().__init__(members)

    # --- hardware -----------------------------------------------------------------------
    # Elaboration reads nothing it set itself: what one stage passes to another is an argument
    # or a return value, what the stages share is a new LaneCopies per elaboration, so a second
    # elaboration builds the same, complete design. The ``debug_*`` members are written at the
    # end, for the simulation harness only (the last elaboration's memories and registers).

    def elaborate(self, platform):
        prog = self.prog
        P = prog.lanes
        img = prog.image
        S = prog.spike_slots
        sb = self.slot_bits
        ib = self.ib
        wb = self.wb
        mb = self.mb
        bb = self.bb
        tb = self.tb
        ab = self.ab
        m = Module()

        # Memories -------------------------------------------------------------------------
        # The image, spike and integer memories never use a read that collided with a write
        # (memories.NO_RW_CHECK; ``poison_collisions`` checks it in simulation).
        poison, flags = self.poison_collisions, []
        img_mem = Memory(shape=unsigned(max(1, img.C * self.pixel_bits)), depth=self.plan.img_depth, init=[])
        m.submodules.img_mem = img_mem
        img_w = img_mem.write_port()
        img_rp = img_mem.read_port()
        img_r = PortView(img_rp, collision_read(m, "img_r", img_mem, img_w, img_rp, poison, flags))

        rows = max(1, prog.spike_rows)
        banks = []
        smems = []
        # With whole-word writes (plan.spike_word_writes) the EW pipeline reads the row it
        # writes on a third port (``rmw``: its own, so no pass's operand reads are disturbed).
        rmw = [] if self.plan.spike_word_writes else None
        for ln in range(P):
            mem = Memory(shape=unsigned(S * sb), depth=rows, init=[])
            m.submodules[f"smem{ln}"] = mem
            smems.append(mem)
            wp, ra, rb = mem.write_port(granularity=self.plan.spike_write_granularity), mem.read_port(), mem.read_port()
            banks.append((wp, PortView(ra, collision_read(m, f"smem{ln}_ra", mem, wp, ra, poison, flags)),
                           PortView(rb, collision_read(m, f"smem{ln}_rb", mem, wp, rb, poison, flags))))
            if rmw is not None:
                rc = mem.read_port()
                rmw.append(PortView(rc, collision_read(m, f"smem{ln}_rc", mem, wp, rc, poison, flags)))

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

        nw, dw = self.plan.desc_words, self.plan.desc_word_width
        desc_mem = Memory(shape=unsigned(dw), depth=len(self.desc_rows) * nw, init=self.plan.desc_init())
        m.submodules.desc_mem = desc_mem
        desc_r = desc_mem.read_port()
        # The sequencer: image and weight load, the descriptor register (a shift register of nw
        # pieces, piece 0 lowest when full; its fields are meaningless while it loads, when no
        # pass runs), pass start and done, the result's OUT state.
        m.submodules.sequencer = seq = Sequencer(
            pixel_bits=self.pixel_bits, channels=img.C, values=img.values, img_addr_bits=len(img_w.addr),
            passes=len(self.desc_rows), desc_words=nw, desc_word_bits=dw, desc_addr_bits=len(desc_r.addr),
            weight_load=None if wm_load is None or prog.memory.kind == "sdram"
            else (weight_load_layout(), (len(wm_load.addr), len(wm_load.data))),
            weight_gate=prog.memory.kind == "sdram")
        layout = desc_layout(self.plan)
        desc = _Descriptor(data.View(layout, seq.desc_bits[:layout.size]), self.plan)

        # Default port enables.
        for wp, ra, rb in banks:
            m.d.comb += [ra.en.eq(1), rb.en.eq(1)]
        for rc in rmw or []:
            m.d.comb += rc.en.eq(1)
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

        pc = seq.pc   # the running pass
        lc = LaneCopies(m, self.plan, pc)

        # The result stage: the out pass shifts the logits in, the sequencer's OUT state sends.
        m.submodules.logits = logits = Logits(prog.classes, P, self.logit_bits,
                                              shift_group=lc.per_copy if self.build.logit_shift_regs else None)
        wiring.connect(m, wiring.flipped(self.result), logits.result)

        wiring.connect(m, wiring.flipped(self.pixels), seq.pixels)
        if prog.memory.kind == "sdram":
            # The weight window's prefetcher: segment by segment from SDRAM; a weighted pass
            # starts once its segment is in (hold), and releases its half when it ends.
            mm = prog.memory
            m.submodules.prefetch = pf = WeightPrefetch(
                segments=mm.segments, window_words=mm.window_words, weight_bits=P * wb,
                per=sdram_words_per_weight(P, wb), max_count=self.sdram_max_count)
            self.debug_prefetch = pf
            wiring.connect(m, pf.req, wiring.flipped(self.sdram_req))
            wiring.connect(m, wiring.flipped(self.sdram_r), pf.rd)
            seg_passes = {s.pass_index for s in mm.segments}
            weighted = Array(Const(int(i in seg_passes), 1) for i in range(len(prog.passes) + 1))[seq.pc]
            m.d.comb += [a.eq(pf.write.addr) for a in wm_load.addrs]
            m.d.comb += [e.eq(pf.write.en) for e in wm_load.ens]
            m.d.comb += [wm_load.data.eq(pf.write.data), pf.start.eq(seq.image_start),
                         seq.hold.eq(weighted & ~pf.ready), pf.release.eq(seq.syn_done & weighted)]
        elif wm_load is not None:
            wiring.connect(m, wiring.flipped(self.weights), seq.weights)
            m.d.comb += [wm_load.en.eq(seq.weight_write.en), wm_load.addr.eq(seq.weight_write.addr),
                         wm_load.data.eq(seq.weight_write.data)]
        res = logits.result
        m.d.comb += [
            img_w.en.eq(seq.img_write.en), img_w.addr.eq(seq.img_write.addr), img_w.data.eq(seq.img_write.data),
            desc_r.en.eq(seq.desc_read.en), desc_r.addr.eq(seq.desc_read.addr), seq.desc_read.data.eq(desc_r.data),
            seq.syn_pass.eq(desc.kind == Kind.SYN), seq.last_pass.eq(desc.last_pass),
            logits.send.eq(seq.send), seq.result_done.eq(res.valid & res.ready & res.payload.last),
            self.cycles.eq(seq.cycles), self.events.eq(seq.events),
        ]

        syn = elaborate_syn(self, m, lc, desc, seq.start_syn, seq.syn_done, banks, img_r, im_a, im_w, wm_r, amems,
                            seq.event)
        elaborate_ew(self, m, lc, desc, seq.start_ew, seq.ew_done, banks, rmw, im_a, im_b, im_w, cm_r, logits.tile,
                     syn)
        # For the simulation harness (simulate.py): the last elaboration's memories and registers.
        self.debug_smem, self.debug_imem, self.debug_pc, self.debug_events = smems, imem, pc, seq.event_count
        self.debug_collided = flags
        return m
