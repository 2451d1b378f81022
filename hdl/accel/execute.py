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
from .timing import COMPACT, FAST, SYN_DECODE_STAGES, TIMING, TIMING_COMPACT, timing_of
from .weight_stream import WAIT_OFFSET, load_bounds, sdram_timing_of

__all__ = ["ExecResult", "execute_program", "pass_cycles", "syn_walk_cycles", "window_timeline"]


@dataclasses.dataclass
class ExecResult:
    logits: np.ndarray         # [K]
    cls: int
    spikes: dict               # spike tensor name -> [T, H, W, C]
    ints: dict                 # int tensor name -> [T, H, W, C] (as stored, raw for conv outputs)
    cycles: dict               # pass name -> cycles
    events: int                # events processed by the synaptic passes
    #: sdram mapping: (lo, hi) total cycles when the SDRAM's refresh phase and open row are not
    #: known (``cycles`` holds the nominal case); None otherwise (``cycles`` exact)
    cycle_bounds: tuple = None
    weight_waits: dict = None  # sdram mapping: pass name -> nominal cycles waiting for weights

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
    """Run ``prog`` on one image ``[H, W, Cin]`` (a frames program, §4: ``[T, H, W, Cin]``);
    returns an :class:`ExecResult`."""
    P = prog.lanes
    T_model = prog.model.time_steps
    spikes, ints, cycles = {}, {}, {}
    img = np.asarray(image, np.int64)
    im = prog.image
    if img.shape != im.sample_shape:
        # an image of another dataset would index past the image memory (IndexError deep inside)
        raise ValueError(f"the image is {'x'.join(map(str, img.shape))}; the program's input is "
                         f"{'x'.join(map(str, im.sample_shape))} ({'T x ' if im.frames else ''}H x W x C)")
    if img.size and (img.min() < 0 or img.max() > im.levels):
        raise ValueError(f"the image's pixels span {img.min()}..{img.max()}; the program's input takes 0..{im.levels}")
    n_events = 0

    def spike_rows(name):
        if name == prog.image.name:
            return img if im.frames else np.broadcast_to(img[None], (T_model, *img.shape))
        return spikes[name]

    tm = timing_of(prog)
    sdram = prog.memory.kind == "sdram"
    segs = {s.pass_index: s for s in prog.memory.segments}
    window = np.zeros((2 * prog.memory.window_words, P), np.int64) if sdram else None
    # the descriptor's memory words (one, or 16-bit pieces) are read one per cycle
    setup = tm["pass_setup"] + EnginePlan(prog).desc_words - 1
    for i, p in enumerate(prog.passes):
        c = setup
        if i == len(prog.passes) - 1:
            c += tm["last_flush"]
        if p.kind == SYN:
            wmem = prog.weights
            if sdram and i in segs:   # the prefetcher has loaded the pass's segment into its half
                sg = segs[i]
                at = sg.half * prog.memory.window_words
                window[at:at + sg.weight_words] = prog.weights[sg.first:sg.first + sg.weight_words]
                wmem = window
            src = spike_rows(p.src)
            dst = prog.tensors[p.dst]
            C_src = src.shape[-1]
            out = np.zeros((p.T * p.Ho * p.Wo, p.acc_words, P), np.int64)
            vsrc = spikes[p.src2] if p.wsrc == "vrow" else None
            walk = []  # the generator's taps in order: None (padding) or [E cycles per item, pos_last]
            for t in range(p.T):
                for oy in range(p.Ho):
                    for ox in range(p.Wo):
                        acc = out[(t * p.Ho + oy) * p.Wo + ox]
                        pos_last = None
                        for tr in range(p.t_rows):
                            tt = t if p.t_rows == 1 else tr
                            for ky in range(p.kh):
                                for kx in range(p.kw):
                                    y, x = oy * p.stride + ky - p.pad, ox * p.stride + kx - p.pad
                                    if not (0 <= y < p.Hi and 0 <= x < p.Wi):
                                        walk.append(None)  # walked by the generator, no row read
                                        continue
                                    row = src[tt].reshape(-1, C_src)[y * p.Wi + x]
                                    evs = _events(row)
                                    items = []  # issue cycles per item: tiles per event, or an empty row's cycle
                                    tap = ky * p.kw + kx
                                    for ch, b in evs:
                                        tiles = _head_tiles(ch, C_src, p.heads, p.tiles, P)
                                        items.append(len(tiles))
                                        for tile in tiles:
                                            if p.wsrc == "wmem":
                                                w = wmem[p.w_base + tap * p.tap_stride + tt * p.t_stride
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
                                    pos_last = [items or [tm["syn_row"]], False]
                                    walk.append(pos_last)
                        pos_last[1] = True  # the position's last in-grid row ends it
            c += syn_walk_cycles(walk, p.acc_words, prog.compact)
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
    bounds = waits = None
    if sdram:
        totals = []
        for which in range(3):
            per_pass, w = window_timeline(prog, cycles, which)
            totals.append(sum(per_pass.values()))
            if which == 1:
                nominal, waits = per_pass, w
        cycles, bounds = nominal, (totals[0], totals[2])
    return ExecResult(logits=logits, cls=cls, spikes=spikes, ints=ints, cycles=cycles, events=n_events,
                      cycle_bounds=bounds, weight_waits=waits)


def window_timeline(prog, compute, which=1):
    """The sdram mapping's pass cycles: ``compute`` (pass name -> cycles with the weights on
    chip) plus each weighted pass's wait for its segment, on the prefetcher's schedule
    (:mod:`.weight_stream`): segment 0 requested at cycle 0 (the cycle after the last pixel),
    segment ``j`` once segment ``j - 1`` is complete and the pass of segment ``j - 2`` has
    ended; a weighted pass's START (``desc_words + WAIT_OFFSET`` cycles into it) waits for its
    segment. ``which``: 0, 1, 2 = the load time's lower bound, nominal value, upper bound
    (:func:`.weight_stream.load_bounds`). Returns ``(cycles per pass, waits per weighted pass)``."""
    timing = sdram_timing_of(prog.memory)
    segs = {s.pass_index: (j, s) for j, s in enumerate(prog.memory.segments)}
    nseg = len(segs)
    nw = EnginePlan(prog).desc_words
    done = [None] * nseg     # cycle the segment is seen complete
    ended = [None] * nseg    # cycle its pass ended (its half is free)
    out, waits = {}, {}

    def load(j):
        s = prog.memory.segments[j]
        if j == 0:
            start = 0
        else:
            if done[j - 1] is None or (j >= 2 and ended[j - 2] is None):
                return
            start = max(done[j - 1], ended[j - 2] if j >= 2 else 0)
        done[j] = start + load_bounds(timing, s)[which]

    t = 0
    if nseg:
        load(0)
    for i, p in enumerate(prog.passes):
        c = compute[p.node]
        if i in segs:
            j, _ = segs[i]
            if j + 1 < nseg and done[j + 1] is None:
                load(j + 1)
            wait = max(0, done[j] - (t + nw + WAIT_OFFSET))
            waits[p.node] = wait
            c += wait
            ended[j] = t + c
        out[p.node] = c
        t += c
    return out, waits


def syn_walk_cycles(walk, acc_words, compact):
    """Cycles of a SYN pass after its setup, from its generator walk (the engine's pipeline
    of ``Engine._elab_syn``, stage by stage, in event time: one step per row and item, not
    per cycle).

    ``walk`` lists the generator's taps in order (t, oy, ox, t_rows, ky, kx): ``None`` for a
    padding tap, else ``[items, pos_last]`` for an in-grid row, ``items`` the issue stage's
    cycles per item (an event's tiles; one for a row without events) and ``pos_last`` whether
    it is the position's last in-grid row.

    - Generator: one tap per cycle (in the grid or not) while it holds a credit: a tap in
      cycle g needs fewer than NF rows issued and not popped before g.
    - Row r: pushed into the FIFO ``Build.syn_row_latency()`` cycles after its tap, popped by the
      scan stage a cycle after its push at the earliest, and not before the previous row's
      last item is emitted (the scan stage takes the next row in that cycle).
    - Scan: one item per cycle from the cycle after the pop, while fewer items than the
      decode stages and queue hold are in flight (``Build.syn_in_flight``).
    - Issue: takes an item ``SYN_DECODE_STAGES`` cycles after its emission at the earliest,
      keeps it for its cycles; a position's last item ends the position (banks swap, a drain
      starts) no earlier than ``acc_words + syn_drain`` cycles after the previous end.
    - End: the last drain, then a cycle to the pass's done.
    """
    build = COMPACT if compact else FAST
    tm = TIMING_COMPACT if compact else TIMING     # the build's rules, computed once at import
    assert tm["syn_tap"] == 1
    lat = build.syn_row_latency()
    credits = build.syn_fifo_rows()
    held, same_cycle = build.syn_in_flight()
    drain = acc_words + tm["syn_drain"]
    pops = []            # pop cycle per row
    takes = []           # take cycle per item
    g = -1               # the generator's last tap
    emitted = None       # the last item's emission
    row_end = None       # the previous row's last emission
    free = 0             # the issue stage is free for the next item from this cycle
    end_ok = 0           # the next position end may happen from this cycle (the drain)
    end = None
    for tap in walk:
        r = len(pops)
        g += 1
        if r >= credits:
            g = max(g, pops[r - credits] + 1)
        if tap is None:
            continue
        items, pos_last = tap
        pop = g + lat + 1 if row_end is None else max(row_end, g + lat + 1)
        pops.append(pop)
        s = pop + 1 if emitted is None else max(pop, emitted) + 1
        for k, cyc in enumerate(items):
            if k:
                s = emitted + 1
            i = len(takes)
            if i >= held:
                s = max(s, takes[i - held] + (0 if same_cycle else 1))
            take = max(s + SYN_DECODE_STAGES, free)
            takes.append(take)
            emitted = s
            free = take + cyc
        row_end = emitted
        if pos_last:
            end = max(free, end_ok)
            free = end
            end_ok = end + drain
    # The engine signals done (registered: the pass ends two cycles later) in the cycle the
    # last drain is two cycles from its end, or, when the generator is still walking the
    # last position's trailing padding taps then, once it has stopped: cycle ``g`` of this
    # walk's frame (measured against the engine: tests/accel/test_cycle_model.py).
    return max(end + drain - 2, g) + 3


def pass_cycles(prog, image):
    """Cycles of every pass for one image (the analytic model)."""
    return execute_program(prog, image).cycles

