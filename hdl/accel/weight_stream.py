"""Weights in SDRAM (the ``sdram`` memory mapping): the segment layout and the load-time rules.

Layer L1 (pure Python), part of the compiler (:mod:`.program`) and read by the engine
(:mod:`.weight_prefetch`, :mod:`.engine`) and the executor (:mod:`.execute`), so the three
cannot drift apart. docs/sdram.md ("The engine's weights in SDRAM") describes the design.

- **Segments.** Every weighted SYN pass (``wsrc == "wmem"``: conv, head) owns one contiguous
  segment of SDRAM, in pass order, holding its weight words in the order the pass's word
  addresses count (``(tap * Ci + ci) * tiles + tile``). A weight word of ``P`` lanes of ``wb``
  bits (lane 0 lowest) is ``ceil(P * wb / 16)`` 16-bit SDRAM words, the lowest first.
- **Window.** On chip, two halves of ``window_words`` weight words each (block RAM): segment
  ``j`` goes to half ``j mod 2``, and its pass's ``w_base`` is the half's first word. A pass
  whose weights exceed a half is refused.
- **Loads.** The prefetcher requests segment 0 the cycle the image's last pixel moves, segment
  ``j`` (j >= 1) once segment ``j - 1`` is complete and the pass of segment ``j - 2`` is done
  (its half is free); a weighted pass starts once its segment is complete.
"""

import dataclasses
import math

import numpy as np

from ..sdram_timing import ULX3S_SDRAM, read_cycles, sequential_bandwidth
from .placement import MappingError, MemoryMap, weight_lane_bits

__all__ = ["Segment", "sdram_map", "sdram_image", "SDRAM_WORD_BITS", "sdram_words_per_weight", "layout_segments",
           "PREFETCH_LATENCY", "WAIT_OFFSET", "load_cycles", "load_bounds", "sdram_timing_of", "pass_bandwidth"]

#: Bits of one SDRAM word (the ULX3S part's data bus).
SDRAM_WORD_BITS = ULX3S_SDRAM.data_bits

#: Cycles from the controller's last word of a segment on its read stream to the cycle the
#: sequencer sees the segment complete: the prefetcher writes the assembled weight word in the
#: word's cycle and its ``ready`` (a comparison of two registers) is high from the next.
PREFETCH_LATENCY = 1

#: The sequencer holds a weighted pass's START state until its segment is complete: the pass's
#: START is ``desc_words + 1`` cycles after the pass begins (its descriptor load).
WAIT_OFFSET = 1


@dataclasses.dataclass(frozen=True)
class Segment:
    """One weighted pass's weights in SDRAM."""
    pass_index: int      # index into Program.passes
    node: str            # the pass's name
    base: int            # first SDRAM word
    words: int           # SDRAM words
    weight_words: int    # weight words (words / sdram_words_per_weight)
    first: int           # the pass's first word in Program.weights
    half: int            # window half (segment index mod 2)


def sdram_words_per_weight(P, wb):
    """16-bit SDRAM words per weight word of ``P`` lanes x ``wb`` bits."""
    return -(-P * wb // SDRAM_WORD_BITS)


def pass_weight_words(p):
    """Weight words a weighted SYN pass reads: every tap, input channel and tile."""
    return p.kh * p.kw * p.tap_stride


def layout_segments(passes, P, wb, window_words):
    """The segments of the weighted passes (:class:`Segment`), in pass order, contiguous in
    SDRAM from word 0. Raises ``ValueError`` naming a pass whose weights exceed a half."""
    per = sdram_words_per_weight(P, wb)
    segs, base = [], 0
    for i, p in enumerate(passes):
        if p.kind != "syn" or p.wsrc != "wmem":
            continue
        n = pass_weight_words(p)
        if n > window_words:
            raise ValueError(
                f"sdram mapping: pass {p.node!r} reads {n} weight words, more than a window half of "
                f"{window_words} words (splitting a pass into output-tile groups is not done yet; "
                f"allowed: passes of at most {window_words} weight words)")
        segs.append(Segment(pass_index=i, node=p.node, base=base, words=n * per, weight_words=n,
                            first=p.w_base, half=len(segs) % 2))
        base += n * per
    return segs


def sdram_map(passes, P, wb, window_words, compact=False):
    """The sdram mapping's :class:`~.placement.MemoryMap`: a window of two halves of
    ``window_words`` weight words (None: the largest pass's, rounded up to 512), the load-time
    rules at the map's ``sdram_mhz`` (50 MHz; a target's clock replaces it); points each
    weighted pass's ``w_base`` at its window half. Raises :class:`~.placement.MappingError` for
    a pass larger than a half."""
    if compact:
        raise MappingError("memory mapping 'sdram' is for the fast (ECP5) build; allowed with compact=False")
    if window_words is not None and (not isinstance(window_words, int) or isinstance(window_words, bool)
                                     or window_words < 1):
        raise MappingError(f"window_words is {window_words!r}; allowed: a count of weight words >= 1")
    if window_words is None:
        most = max([p.kh * p.kw * p.tap_stride for p in passes if p.kind == "syn" and p.wsrc == "wmem"] + [1])
        window_words = -(-most // 512) * 512
    try:
        segs = layout_segments(passes, P, wb, window_words)
    except ValueError as e:
        raise MappingError(str(e)) from None
    for s in segs:
        passes[s.pass_index].w_base = s.half * window_words
    return MemoryMap(kind="sdram", window_words=window_words, segments=tuple(segs),
                     sdram_words=sum(s.words for s in segs))


def sdram_image(prog):
    """The 16-bit words the host writes to SDRAM from word 0 for program ``prog`` (the sdram
    mapping): the segments in pass order, each weight word of P lanes x ``weight`` bits (lane 0
    lowest, two's complement) as :func:`sdram_words_per_weight` words, the lowest first."""
    if prog.memory.kind != "sdram":
        raise ValueError(f"sdram_image: this program keeps its weights in {prog.memory.kind}, not SDRAM")
    wb = weight_lane_bits(prog.widths)
    per = sdram_words_per_weight(prog.lanes, wb)
    mask = (1 << wb) - 1
    out = np.zeros(prog.memory.sdram_words, np.uint16)
    for seg in prog.memory.segments:
        for i in range(seg.weight_words):
            word = 0
            for ln, v in enumerate(prog.weights[seg.first + i]):
                word |= (int(v) & mask) << (ln * wb)
            for k in range(per):
                out[seg.base + i * per + k] = (word >> (16 * k)) & 0xFFFF
    return out


def sdram_timing_of(mmap):
    """The SDRAM's rules in cycles of the engine's clock (:class:`~..sdram_timing.SdramTiming`)."""
    return ULX3S_SDRAM.timing(mmap.sdram_mhz * 1e6, mmap.cas_latency)


def load_cycles(timing, seg, since_ref=0):
    """Cycles from a segment's request (the controller idle, no row open, the last refresh
    ``since_ref`` cycles before) to the cycle the sequencer sees it complete: the controller's
    exact cost model (:func:`~..sdram_timing.read_cycles`) plus :data:`PREFETCH_LATENCY`."""
    return read_cycles(timing, seg.base, seg.words, since_ref) + PREFETCH_LATENCY


def load_bounds(timing, seg):
    """``(lo, nominal, hi)`` cycles of a segment's load when the refresh timer's phase and the
    controller's open row are not known (the executor's case).

    - ``lo``: a READ every cycle from the first (the previous segment left the row open), but
      each row change loses tRP + tRCD slots (PRECHARGE, ACTIVE) and each refresh the timer
      must issue meanwhile (one per ``refresh_every`` cycles) tRFC more:
      ``words + (rows - 1) (tRP + tRCD) + floor(words / refresh_every) tRFC + CL + 3 +
      PREFETCH_LATENCY``.
    - ``hi``: from idle, every row change paying PRECHARGE, tRP, ACTIVE, tRCD and tRAS, and a
      refresh (PRECHARGE, tRP, AUTO REFRESH, tRFC, ACTIVE, tRCD, tRAS) for every refresh
      interval the load spans, plus one.
    - ``nominal``: ``words`` at :func:`~..sdram_timing.sequential_bandwidth`, plus tRCD, CL, 3 and
      :data:`PREFETCH_LATENCY` (the mean over the phases, to within a refresh).
    """
    t = timing
    cols = t.part.columns
    n = seg.words
    if n == 0:
        return 0, 0, 0
    fixed = t.cl + 3 + PREFETCH_LATENCY
    rows = (seg.base % cols + n - 1) // cols + 1
    lo = n + (rows - 1) * (t.rp + t.rcd) + (n // t.refresh_every) * t.rfc + fixed
    row_cost = 1 + t.rp + t.rcd + t.ras
    hi0 = n + rows * row_cost + fixed
    refreshes = hi0 // t.refresh_every + 1
    hi = hi0 + refreshes * (t.rp + t.rfc + row_cost)
    bw, _ = sequential_bandwidth(t)
    nominal = math.ceil(n / bw) + t.rcd + 1 + fixed
    return lo, min(max(nominal, lo), hi), hi


def pass_bandwidth(timing, P, wb):
    """Per-pass SDRAM bandwidth bound: weight words per cycle of a long load, and bytes/s."""
    bw, overhead = sequential_bandwidth(timing)
    per = sdram_words_per_weight(P, wb)
    return {"sdram_words_per_cycle": round(bw, 4), "weight_words_per_cycle": round(bw / per, 4),
            "bytes_per_s": round(bw * 2 * timing.clk_hz), "refresh_overhead": round(overhead, 4)}
