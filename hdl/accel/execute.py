"""Execute a compiled :class:`~.program.Program` in Python, as the engine does.

This is the accelerator's reference at the level of its memories: it keeps the spike memory
(rows of channel values), the integer memory (words of P lanes) and the image memory in the
engine's layouts, runs every pass with the engine's loop order and arithmetic, and counts
cycles with the engine's timing rules (:func:`pass_cycles`). Its logits must equal the golden
model's; the RTL's memories and cycle counters must equal this executor's.
"""

import dataclasses

import numpy as np

from ...sim import golden
from .program import EW, RED, SYN

__all__ = ["ExecResult", "execute_program", "pass_cycles", "TIMING", "TIMING_COMPACT", "timing_of",
           "EW_REGISTERED", "EW_MULT_REGS", "EW_READ_REGS", "EW_ADDR_REGS", "ACC_WRITE_REGS", "SYN_READ_REGS",
           "SYN_FETCH_REGS", "SYN_ISSUE_REGS", "ew_write_cycle"]

#: EW/RED stages (1..9, docs/accelerator.md) that end in a register, per build (key:
#: ``Program.compact``; stage 9's register holds the memory write port inputs). An element is
#: written ``ew_write_cycle`` cycles after its issue: one for the memory read, one per register.
EW_REGISTERED = {False: (1, 2, 3, 4, 5, 6, 7, 8, 9), True: (2, 3, 4, 5, 7)}
#: Further registers around the requantization multiplier (stage 4): the fast build registers
#: its operands and its product once more, for the route between a lane and the DSP column.
EW_MULT_REGS = {False: 2, True: 0}
#: Further registers after the memory reads (stage 1): the fast build registers the words
#: twice, for the route from a block RAM column to the lanes.
EW_READ_REGS = {False: 1, True: 0}
#: Further registers in front of the memory reads: the fast build registers the addresses
#: twice, once next to the loop counters and again in a copy per lane group (whose block RAMs
#: and LUT RAMs can be anywhere on the die).
EW_ADDR_REGS = {False: 1, True: 0}


#: Registers between the SYN accumulator's adder and the block RAM write (stage W): the fast
#: build writes a registered sum a cycle later (the route from a lane's adder to its block
#: RAM column is a path of its own). Its drain then waits one more cycle for the last write.
ACC_WRITE_REGS = {False: 1, True: 0}


#: Cycles between the SYN row generator's tap and its spike row read in the fast build: the
#: row address (the sum of the generator's registers) is registered next to the generator a
#: cycle after the tap, then copied per lane group (the compact build reads in the tap's
#: cycle). A cycle of pipeline fill per SYN pass each.
SYN_READ_REGS = 2


#: Registers between the spike row's read and the SYN row FIFO: the fast build registers the
#: row twice (once next to the lane groups' memories that hold its bits, again next to the
#: FIFO, whose 'at most one set bit' flag and row-less-its-lowest-bit carry chain read all of
#: them); the compact build pushes the memory output itself. A cycle of pipeline fill each.
SYN_FETCH_REGS = {False: 2, True: 0}


#: Stage X between the SYN issue stage and its memory reads (the fast build): the address
#: copies per lane group take the issue stage's registers, so the reads happen a cycle after
#: the issue. The drain waits one more cycle for the last write.
SYN_ISSUE_REGS = {False: 1, True: 0}


def ew_write_cycle(compact):
    return (1 + len(EW_REGISTERED[compact]) + EW_MULT_REGS[compact] + EW_READ_REGS[compact]
            + EW_ADDR_REGS[compact])


# Timing rules of the engine (cycles), shared with the RTL and checked by its tests.
TIMING = dict(
    pass_setup=3,       # load a one-word pass descriptor, start the loops (+1 per further word)
    syn_row=1,          # a row with no event costs one cycle in the event stage
    syn_tap=1,          # the row generator visits one kernel tap (in the grid or not) per cycle
    syn_drain=2 + ACC_WRITE_REGS[False] + SYN_ISSUE_REGS[False],  # a drain blocks the next
                        # position end for this many cycles + accumulator words
    syn_drain_tail=7 + SYN_READ_REGS + SYN_FETCH_REGS[False],  # pipeline fill (read, fetch,
                        # FIFO, scan, 3 decode stages) and flush
    ew_latency=ew_write_cycle(False) - 2,  # EW/RED: pipeline depth less the 2 overlapped cycles,
                                           # paid once per pass (tiles follow without a gap)
    last_flush=2,       # passes end 2 cycles before their last write, except the last pass
    red_epilogue=0,     # RED: the epilogue is pipelined behind the next (tile, t)
)


#: The compact build (``Program.compact``, small devices): the same rules with a shorter EW
#: pipeline (EW_REGISTERED) and no fetch register in front of the SYN row FIFO.
TIMING_COMPACT = dict(TIMING, ew_latency=ew_write_cycle(True) - 2, syn_drain_tail=7 + SYN_FETCH_REGS[True],
                      syn_drain=2 + ACC_WRITE_REGS[True] + SYN_ISSUE_REGS[True])


def timing_of(prog):
    """The timing rules of the engine built for ``prog``."""
    return TIMING_COMPACT if prog.compact else TIMING


@dataclasses.dataclass
class ExecResult:
    logits: np.ndarray         # [K]
    cls: int
    spikes: dict               # spike tensor name -> [T, H, W, C]
    ints: dict                 # int tensor name -> [T, H, W, C] (as stored, raw for conv outputs)
    cycles: dict               # pass name -> cycles
    events: int                # events processed by the synaptic passes

    @property
    def total_cycles(self):
        return sum(self.cycles.values())


def _events(row_vals):
    """(channel, plane) events of a row of unsigned values, channel-major then plane."""
    out = []
    for c in np.flatnonzero(row_vals):
        v = int(row_vals[c])
        b = 0
        while v >> b:
            if (v >> b) & 1:
                out.append((int(c), b))
            b += 1
    return out


def _head_tiles(c, C, heads, tiles, P):
    if not heads:
        return range(tiles)
    d = C // heads
    lo = (c // d) * d
    return range(lo // P, (lo + d - 1) // P + 1)


def _head_lane_mask(c, C, heads, tile, P):
    d = C // heads
    lo = (c // d) * d
    ch = tile * P + np.arange(P)
    return (ch >= lo) & (ch < lo + d)


def execute_program(prog, image):
    """Run ``prog`` on one image ``[H, W, Cin]``; returns an :class:`ExecResult`."""
    P = prog.lanes
    T_model = prog.model.time_steps
    spikes, ints, cycles = {}, {}, {}
    img = np.asarray(image, np.int64)
    im = prog.image
    if img.shape != (im.H, im.W, im.C):
        # an image of another dataset would index past the image memory (IndexError deep inside)
        raise ValueError(f"the image is {'x'.join(map(str, img.shape))}; the program's input is "
                         f"{im.H}x{im.W}x{im.C} (H x W x C)")
    if img.size and (img.min() < 0 or img.max() > im.levels):
        raise ValueError(f"the image's pixels span {img.min()}..{img.max()}; the program's input takes 0..{im.levels}")
    n_events = 0

    def spike_rows(name):
        if name == prog.image.name:
            return np.broadcast_to(img[None], (T_model, *img.shape))
        return spikes[name]

    from .engine import EnginePlan  # the descriptor's memory words (one, or 16-bit pieces)
    tm = timing_of(prog)
    setup = tm["pass_setup"] + EnginePlan(prog).desc_words - 1
    for i, p in enumerate(prog.passes):
        c = setup
        if i == len(prog.passes) - 1:
            c += tm["last_flush"]
        if p.kind == SYN:
            src = spike_rows(p.src)
            dst = prog.tensors[p.dst]
            C_src = src.shape[-1]
            out = np.zeros((p.T * p.Ho * p.Wo, p.acc_words, P), np.int64)
            vsrc = spikes[p.src2] if p.wsrc == "vrow" else None
            prev_drain = 0
            for t in range(p.T):
                for oy in range(p.Ho):
                    for ox in range(p.Wo):
                        acc = out[(t * p.Ho + oy) * p.Wo + ox]
                        pos_cycles = 0
                        gen_cycles = p.t_rows * p.kh * p.kw * tm["syn_tap"]
                        for tr in range(p.t_rows):
                            tt = t if p.t_rows == 1 else tr
                            for ky in range(p.kh):
                                for kx in range(p.kw):
                                    y, x = oy * p.stride + ky - p.pad, ox * p.stride + kx - p.pad
                                    if not (0 <= y < p.Hi and 0 <= x < p.Wi):
                                        continue  # skipped by the row generator, off the event path
                                    row = src[tt].reshape(-1, C_src)[y * p.Wi + x]
                                    evs = _events(row)
                                    work = 0
                                    tap = ky * p.kw + kx
                                    for ch, b in evs:
                                        for tile in _head_tiles(ch, C_src, p.heads, p.tiles, P):
                                            work += 1
                                            if p.wsrc == "wmem":
                                                w = prog.weights[p.w_base + tap * p.tap_stride + tt * p.t_stride
                                                                 + ch * p.ch_stride + tile]
                                            elif p.wsrc == "kv":
                                                w = ints[p.src2][tt, 0, ch, tile * P:(tile + 1) * P]
                                            else:  # vrow: the V row of the same token, masked to the head
                                                vrow = vsrc[tt].reshape(-1, C_src)[y * p.Wi + x]
                                                w = np.zeros(P, np.int64)
                                                lanes = tile * P + np.arange(P)
                                                ok = lanes < C_src
                                                w[ok] = vrow[lanes[ok]]
                                                w = w * _head_lane_mask(ch, C_src, p.heads, tile, P)
                                            word = tile if p.accsel == "tile" else ch * p.tiles + tile
                                            acc[word] += np.asarray(w, np.int64) << b
                                    n_events += len(evs)
                                    pos_cycles += max(tm["syn_row"], work)
                        # The drain of the previous position overlaps this one's accumulation.
                        c += max(pos_cycles, gen_cycles, prev_drain)
                        prev_drain = p.acc_words + tm["syn_drain"]
            c += prev_drain + tm["syn_drain_tail"]
            # Store as [T, H, W, C] of the destination tensor (channels = tiles * P lanes).
            if p.accsel == "channel":  # K^T V: [T, C rows, tiles*P]
                vals = out.reshape(p.T, p.acc_words // p.tiles, p.tiles * P)
                ints[p.dst] = vals[:, None, :, :]
            else:
                vals = out.reshape(dst.T, dst.H, dst.W, p.tiles * P)[..., :dst.C]
                ints[p.dst] = vals
        elif p.kind == EW:
            a = ints[p.a] if p.a in ints else spikes[p.a]
            mult, bias, theta = (prog.consts[p.c_base:p.c_base + p.tiles, :, j].reshape(-1) for j in range(3))
            Cd = a.shape[-1]
            mult, bias, theta = mult[:Cd], bias[:Cd], theta[:Cd]
            x = a
            if p.requant:
                x = golden.requantize(x, mult, bias, p.shift, p.sat_bits)
            if p.op == "add":
                y = golden.residual_add(x, ints[p.b], p.add_bits)
                ints[p.dst] = y
            elif p.op == "and":
                m = spikes[p.b]
                y = x & (m[:, :1, :1, :] if p.b_broadcast else m)
                spikes[p.dst] = y
            elif p.op == "lif":
                s, _ = golden.lif(x[None], theta, p.leak, "soft" if p.soft else "hard")
                spikes[p.dst] = s[0]
            elif p.op == "multispike":
                spikes[p.dst] = golden.multispike(x, p.levels, p.ms_shift)
            elif p.op == "pass":
                ints[p.dst] = x
            elif p.op == "out":
                logits = x.reshape(-1) + bias
            c += p.tiles * p.N * p.T + tm["ew_latency"]
        elif p.kind == RED:
            mult, bias, theta = (prog.consts[p.c_base:p.c_base + p.tiles, :, j].reshape(-1) for j in range(3))
            if p.op == "pool":
                x = ints[p.a]
                Cd = x.shape[-1]
                ints[p.dst] = golden.token_pool(x[None], mult[:Cd], bias[:Cd], p.shift, p.sat_bits)[0]
            else:
                k, v = spikes[p.a], spikes[p.b]
                Cd = k.shape[-1]
                kv = (k & v).reshape(k.shape[0], -1, Cd).sum(1)
                m, _ = golden.lif(kv[None], theta[:Cd], p.leak, "soft" if p.soft else "hard")
                spikes[p.dst] = m[0][:, None, None, :]
            c += p.tiles * p.T * (p.N + tm["red_epilogue"]) + tm["ew_latency"]
        cycles[p.node] = c
    cls = int(golden.classify(logits[None])[0])
    return ExecResult(logits=logits, cls=cls, spikes=spikes, ints=ints, cycles=cycles, events=n_events)


def pass_cycles(prog, image):
    """Cycles of every pass for one image (the analytic model)."""
    return execute_program(prog, image).cycles
