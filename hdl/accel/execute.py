"""Execute a compiled :class:`~.program.Program` in Python, as the engine does.

This is the accelerator's reference at the level of its memories: it keeps the spike memory
(rows of channel values), the integer memory (words of P lanes) and the image memory in the
engine's layouts, runs every pass with the engine's loop order and arithmetic, and counts
cycles with the engine's timing rules (:mod:`.timing`). Its logits must equal the golden
model's; the RTL's memories and cycle counters must equal this executor's.
"""

import dataclasses

import numpy as np

from ...sim import golden
from .plan import EnginePlan
from .program import EW, RED, SYN
from .timing import timing_of

__all__ = ["ExecResult", "execute_program", "pass_cycles", "syn_edge_taps", "cycle_slack"]


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

    tm = timing_of(prog)
    # the descriptor's memory words (one, or 16-bit pieces) are read one per cycle
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


def syn_edge_taps(p):
    """Padding taps at the edges of the output positions of SYN pass ``p``: per position, the
    taps the row generator walks before its first tap inside the input grid and after its
    last, summed over the positions and time steps (0 for an unpadded convolution)."""
    per_t = 0
    taps = p.kh * p.kw
    for oy in range(p.Ho):
        for ox in range(p.Wo):
            inside = [0 <= oy * p.stride + ky - p.pad < p.Hi and 0 <= ox * p.stride + kx - p.pad < p.Wi
                      for ky in range(p.kh) for kx in range(p.kw)]
            if not any(inside):
                per_t += p.t_rows * taps
                continue
            lead = inside.index(True)
            trail = inside[::-1].index(True)
            # the generator walks (t_rows, ky, kx): the edges of every t_rows block
            per_t += p.t_rows * (lead + trail)
    return p.T * per_t


def cycle_slack(prog):
    """How many cycles the engine may differ from :func:`execute_program` for one image of
    ``prog``, either way: 0 (the cycle model is exact) unless a SYN pass walks padding taps.
    At a position that starts in the padding the event stage waits for the first in-grid row
    while the generator walks the taps before it; padding taps after a position's last
    in-grid row overlap with the next position's event work. The model
    (``max(events, taps, drain)`` per position) counts neither. The bound is
    :func:`syn_edge_taps` per such pass; measured: -4 to +8 cycles per 3 x 3, padding-1 pass
    (bounds 16 to 96), exact on every other pass (docs/accelerator.md, "Timing rules")."""
    return sum(syn_edge_taps(p) for p in prog.passes if p.kind == SYN)
