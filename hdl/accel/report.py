"""The analytic performance and resource model of the accelerator, before any synthesis.

- **Cycles per image**: the program executor's timing rules (:mod:`.execute`), which the
  RTL follows, on real test images; beside it the spec's ``lower_bound_cycles`` (§10) from the
  golden model's counts.
- **Memory**: every engine memory (depth x width, read ports) mapped onto the device's block
  RAM configurations (memories with two read ports are stored twice), or the SPRAM blocks
  of the iCE40UP5K mapping.
- **Logic**: a per-lane and fixed estimate of LUTs, flip-flops and multipliers.
"""

import dataclasses
import math

import numpy as np

from ...devices import DEVICES, LINK_LOGIC, TARGETS
from ...sim.model import run_model
from .plan import EnginePlan, const_parts, lane_group_widths
from .execute import execute_program
from .program import SPRAM_BITS, SPRAM_WORDS, MappingError, compile_model, weight_lane_bits
from .weight_stream import pass_bandwidth, sdram_timing_of

__all__ = ["WEIGHT_MAPPINGS", "window_words_for", "analyze", "memories",
           "memory_fit", "compile_for_target", "fit", "resolve_target", "DeviceTooSmall",
           "BRAM_CONFIGS"]


class DeviceTooSmall(MappingError):
    """The model's memories exceed the device with every memory mapping (needed vs available)."""

# (depth, width) configurations of one block RAM, per family.
BRAM_CONFIGS = {
    "ice40": [(256, 16), (512, 8), (1024, 4), (2048, 2)],
    "ecp5": [(512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)],
}
_LUTRAM_BITS = 256  # memories this small become logic, not block RAM


def memories(program):
    """``[{name, kind, depth, width, copies, rom, parts, granularity}]`` of the engine built for ``program``.

    ``kind``: "bram" (block RAM, or logic when tiny), "logic" or "spram" (iCE40UP5K
    single-port RAM: ``copies`` is then the number of SPRAM blocks). ``parts``: the widths of
    a word's parts, one memory each (the fast build's lane groups), or ``[width]``.
    ``granularity``: the bits of each write enable (``None``: whole words): the spike memories
    have one per slot, or are written whole with a third read port (plan.spike_word_writes).
    """
    eng = EnginePlan(program)
    mm = program.memory
    P = program.lanes
    acc_depth = max(p.acc_words for p in program.passes if p.kind == "syn")
    cw = eng.mb + eng.bb + eng.tb

    def mem(name, depth, width, copies, rom, kind="bram", lane_width=None, parts=None, granularity=None):
        parts = parts or (lane_width and lane_group_widths(program, lane_width)) or [width]
        return dict(name=name, kind=kind, depth=depth, width=width, copies=copies, rom=rom, parts=parts,
                    granularity=granularity)

    mems = [
        mem("image", eng.img_depth, program.image.C * eng.pixel_bits, 1, False),
        mem("spikes", max(1, program.spike_rows), program.spike_slots * eng.slot_bits, eng.spike_read_ports * P,
            False, granularity=eng.spike_write_granularity),
    ]
    if mm.kind == "sdram":   # the weight window: two halves, written by the prefetcher
        mems += [
            mem("ints", max(1, program.int_words), P * eng.ib, 2, False, lane_width=eng.ib),
            mem("weight window", 2 * mm.window_words, P * eng.wb, 1, False, lane_width=eng.wb),
        ]
    elif mm.kind == "spram":
        mems += [
            mem("ints", mm.int_bank_words, min(P * eng.ib, SPRAM_BITS), mm.int_banks * mm.int_bank_sprams,
                False, "spram"),
            mem("weights", SPRAM_WORDS, SPRAM_BITS, 1, False, "spram"),
        ]
    else:
        mems += [
            mem("ints", max(1, program.int_words), P * eng.ib, 2, False, lane_width=eng.ib),
            mem("weights", max(1, len(program.weights)), P * eng.wb, 1, True, lane_width=eng.wb),
        ]
    n_consts = max(1, len(program.consts))
    const_groups, const_logic = const_parts(program, cw)
    mems += [
        mem("constants", n_consts, P * cw, 1, True, "logic" if const_logic else "bram", parts=const_groups),
        mem("accumulators", acc_depth, P * eng.ab, 2, False, lane_width=eng.ab),
        mem("descriptors", len(program.passes) * eng.desc_words, eng.desc_word_width, 1, True),
    ]
    for m in mems:
        m["bits"] = m["depth"] * m["width"] * m["copies"]
    return mems


def _whole(depth, width, configs):
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in configs)


def _blocks(depth, width, family, granularity=None):
    """Block RAMs of one ``depth`` x ``width`` memory; ``granularity``: the bits of each write
    enable when the memory is written in parts (the spike memories: one enable per slot).

    A block RAM has no write enable per bit except the iCE40's 256 x 16 mode (a bit mask) and
    the ECP5's byte enables (9 bits, in its 18- and 36-bit modes): otherwise each part of the
    word takes blocks of its own, as Yosys maps it (a 1,862 x 8 spike memory written per bit
    takes 8 ECP5 blocks, not 1)."""
    configs = BRAM_CONFIGS[family]
    if granularity is None or granularity >= width:
        return _whole(depth, width, configs)
    per_part = math.ceil(width / granularity) * _whole(depth, granularity, configs)
    if family == "ice40":
        return min(per_part, _whole(depth, width, [(256, 16)]))
    if granularity % 9 == 0:
        return min(per_part, _whole(depth, width, [(d, w) for d, w in configs if w >= 18]))
    return per_part


def memory_fit(program, target):
    """Block RAM and SPRAM use of ``program`` on device ``target``: ``(usage, problems)``.

    ``usage``: ``{"bram": blocks, "spram": blocks}``; ``problems``: lines "what: needs N,
    device has M" (empty when it fits). Also sets ``bram_blocks`` on every memory of
    :func:`memories`'s list, which it returns as ``usage["memories"]``.
    """
    if target not in DEVICES:
        raise ValueError(f"unknown target {target!r}; supported: {', '.join(DEVICES)}")
    dev = DEVICES[target]
    mems = memories(program)
    bram = spram = 0
    for m in mems:
        if m["kind"] == "spram":
            m["bram_blocks"] = 0
            spram += m["copies"]
        elif m["kind"] == "logic":
            m["bram_blocks"] = 0
        else:
            m["bram_blocks"] = 0 if m["depth"] * m["width"] <= _LUTRAM_BITS else \
                m["copies"] * sum(_blocks(m["depth"], w, dev.family, m["granularity"]) for w in m["parts"])
            bram += m["bram_blocks"]
    problems = []
    if bram > dev.totals["bram"]:
        problems.append(f"block RAM: needs {bram} blocks, {target} has {dev.totals['bram']}")
    if spram > dev.totals.get("spram", 0):
        problems.append(f"SPRAM: needs {spram} blocks, {target} has {dev.totals.get('spram', 0)}")
    return {"bram": bram, "spram": spram, "memories": mems}, problems


#: The values of ``--weights``: where the weights live (``None``: chosen by the fit).
WEIGHT_MAPPINGS = ("bram", "sdram")


def window_words_for(parts, free_blocks, family, most):
    """A window half's weight words when ``free_blocks`` block RAMs are left for the window (one
    memory of two halves, its words in ``parts`` of these widths: the lane groups): the most, in
    steps of 512 words, whose two halves take at most ``free_blocks``, and no more than ``most``
    (the largest pass's words) rounded up to 512. At least 512."""
    step = 512
    best = step
    for k in range(1, -(-max(1, most) // step) + 1):
        if sum(_blocks(2 * k * step, w, family) for w in parts) > free_blocks:
            break
        best = k * step
    return best


def _sdram_program(model, lanes, target, bram_program, clock_mhz):
    """The sdram mapping on ``target``: the window halves share the block RAM that the other
    memories leave (:func:`.weight_stream.window_words_for`)."""
    usage, _ = memory_fit(bram_program, target)
    others = sum(m["bram_blocks"] for m in usage["memories"] if m["name"] != "weights")
    most = max([p.kh * p.kw * p.tap_stride for p in bram_program.passes if p.kind == "syn" and p.wsrc == "wmem"]
               + [1])
    wb = weight_lane_bits(bram_program.widths)
    ww = window_words_for(lane_group_widths(bram_program, wb) or [lanes * wb], DEVICES[target].totals["bram"] - others,
                          DEVICES[target].family, most)
    program = compile_model(model, lanes, memory="sdram", window_words=ww)
    program.memory = dataclasses.replace(program.memory, sdram_mhz=float(clock_mhz))
    return program


def compile_for_target(model, lanes, target=None, weights=None, clock_mhz=50.0):
    """:func:`compile_model` with the memory mapping ``target`` needs.

    Block RAM everywhere; on a device with SPRAM (the iCE40UP5K) the SPRAM mapping when the
    block RAM mapping does not fit the device's block RAM; on a device with SDRAM beside it
    (the ECP5-85F of the ULX3S) the SDRAM mapping then (weights streamed into a window of two
    halves of a quarter of the block RAM each, :mod:`.weight_stream`; ``clock_mhz``: the clock
    of its load-time rules). On iCE40 the descriptors are read in 16-bit pieces (a whole
    descriptor is some 200 bits wide: a dozen block RAMs). ``weights``: ``"bram"`` or
    ``"sdram"`` forces the weights' place (:data:`WEIGHT_MAPPINGS`).
    """
    if weights not in (None,) + WEIGHT_MAPPINGS:
        raise MappingError(f"weights mapping {weights!r}; allowed: {', '.join(WEIGHT_MAPPINGS)}")
    if weights == "sdram" and (target is None or not DEVICES.get(target, DEVICES["ice40-up5k"]).sdram_words):
        have = [n for n, d in DEVICES.items() if d.sdram_words]
        raise MappingError(f"--weights sdram: target {target!r} has no SDRAM; allowed on {', '.join(have)} "
                           "(board ulx3s-85f)")
    if target is None or target not in DEVICES:
        return compile_model(model, lanes)
    ice40 = DEVICES[target].family == "ice40"
    program = compile_model(model, lanes, desc_word_bits=SPRAM_BITS if ice40 else None, compact=ice40)
    if weights == "sdram":
        return _sdram_program(model, lanes, target, program, clock_mhz)
    if weights == "bram":
        return program
    if DEVICES[target].sdram_words:
        usage, problems = memory_fit(program, target)
        if not problems:
            return program
        try:
            return _sdram_program(model, lanes, target, program, clock_mhz)
        except MappingError as e:
            raise DeviceTooSmall(f"{'; '.join(problems)}; the SDRAM mapping does not fit either: {e}") from None
    if not DEVICES[target].totals.get("spram"):
        return program
    usage, problems = memory_fit(program, target)
    if not problems:
        return program
    try:
        return compile_model(model, lanes, memory="spram", sprams=DEVICES[target].totals["spram"],
                             compact=ice40)
    except MappingError as e:
        raise DeviceTooSmall(f"{'; '.join(problems)}; the SPRAM mapping does not fit either: {e}") from None


#: logic per further lane: Yosys on the ULX3S 85F board top, shipped model at 32 lanes (22,934
#: LUT4s + 2,959 CCU2Cs, 21,744 flip-flops; less the one-lane engine and the host link)
LANE_LOGIC = {"lut": 760, "ff": 560}


def logic_estimate(program, extra=None):
    """Estimated logic of the engine (``extra``: ``{"lut", "ff"}`` of what surrounds it).

    Calibrated on Yosys (``synth_ice40 -dsp``) runs of the engine alone at one lane, per build
    (``Program.compact``), through a 4-channel random model (spike rows of 8 bits, block RAM
    mapping) and the shipped model (rows of 32 bits, SPRAM mapping for the compact build):

    ======== ============================ ============================ ===================
    build    8-bit rows (LUT4 / FF)       shipped model (LUT4 / FF)    per row bit
    ======== ============================ ============================ ===================
    compact  2,291 / 1,599                2,990 / 2,134                29 LUTs, 22 FFs
    fast     2,549 / 2,026                3,357 / 2,749 (block RAM)    24 LUTs, 20 FFs
    ======== ============================ ============================ ===================

    A 32-channel model with 64-bit rows (MLP ratio 2) measures 3,428 / 2,327 (compact) and
    3,859 / 3,108 (fast): the compact line overestimates it by about 14%. Each further lane:
    LANE_LOGIC. ``cells``: iCE40 logic cells (a LUT4 and a flip-flop each); measured, about two
    thirds of the flip-flops need a cell of their own (0.65 on the shipped model's board top).
    """
    eng = EnginePlan(program)
    P = program.lanes
    base_lut, row_lut, base_ff, row_ff = (2060, 29, 1420, 22) if program.compact else (2360, 24, 1870, 20)
    lut = base_lut + LANE_LOGIC["lut"] * (P - 1) + row_lut * eng.row_bits + (extra or {}).get("lut", 0)
    ff = base_ff + LANE_LOGIC["ff"] * (P - 1) + row_ff * eng.row_bits + (extra or {}).get("ff", 0)
    return {"lut": int(lut), "ff": int(ff), "cells": int(lut + 2 * ff // 3), "multipliers": P}


def analyze(program, *, images, target=None, extra_logic=None, golden=None):
    """The analytic report (JSON-ready) on ``images`` (``[B >= 1, H, W, C]``, a frames model's
    ``[B >= 1, T, H, W, C]``, the caller's: the
    command line takes the first 16 test images of the data set); ``golden``: the golden
    model's result on those images when the caller has it (else it is run here);
    ``extra_logic``: ``{"lut", "ff"}`` around the engine (a board's host link), counted in the
    fit check."""
    images = np.asarray(images)
    img = program.image
    if images.ndim != 1 + len(img.sample_shape) or images.shape[1:] != img.sample_shape or len(images) == 0:
        want = ", ".join(map(str, img.sample_shape))
        raise ValueError(f"images have shape {images.shape}; expected [B >= 1, {want}] (the model's input)")
    P = program.lanes
    runs = [execute_program(program, im) for im in images]
    cycles = np.array([r.total_cycles for r in runs])
    if golden is None:
        golden = run_model(program.model, images)
    elif len(golden.classes) != len(images):
        raise ValueError(f"the golden result is for {len(golden.classes)} images, not the {len(images)} given")
    bound = golden.lower_bound_cycles(P)
    mems = memories(program)
    logic = logic_estimate(program, extra_logic)
    per_pass = {}
    for r in runs:
        for k, v in r.cycles.items():
            per_pass[k] = per_pass.get(k, 0) + v / len(runs)
    report = {
        "lanes": P,
        "images": int(len(images)),
        "cycles_per_image": {"mean": float(cycles.mean()), "min": int(cycles.min()), "max": int(cycles.max())},
        "lower_bound_cycles": float(np.mean(bound)),
        "ratio_to_bound": float(cycles.mean() / np.mean(bound)),
        "cycles_per_pass": {k: round(v, 1) for k, v in per_pass.items()},
        "events_per_image": float(np.mean([r.events for r in runs])),
        "memory_map": dataclasses.asdict(program.memory),
        "memories": mems,
        "memory_bits": {"total": int(sum(m["bits"] for m in mems)),
                        "rom": int(sum(m["bits"] for m in mems if m["rom"])),
                        "ram": int(sum(m["bits"] for m in mems if not m["rom"]))},
        "logic_estimate": logic,
        "target": target,
        "weights": program.memory.kind,
    }
    if program.memory.kind == "sdram":
        mm = program.memory
        timing = sdram_timing_of(mm)
        bounds = np.array([r.cycle_bounds for r in runs])
        report["cycles_per_image"]["bounds"] = [int(bounds[:, 0].min()), int(bounds[:, 1].max())]
        bw = pass_bandwidth(timing, P, EnginePlan(program).wb)
        report["sdram"] = {
            "clock_mhz": mm.sdram_mhz, "cas_latency": mm.cas_latency,
            "window_half_words": mm.window_words, "segments": len(mm.segments),
            "sdram_words": mm.sdram_words, "sdram_bytes": 2 * mm.sdram_words,
            "bandwidth": bw,
            "per_pass": {s.node: {"weight_words": s.weight_words, "sdram_words": s.words, "half": s.half,
                                  "load_cycles_bound": int(math.ceil(s.words / bw["sdram_words_per_cycle"])),
                                  "compute_cycles": round(per_pass[s.node] - np.mean(
                                      [r.weight_waits[s.node] for r in runs]), 1),
                                  "wait_cycles": round(float(np.mean([r.weight_waits[s.node] for r in runs])), 1)}
                         for s in mm.segments},
        }
    if target is not None:
        usage, problems = memory_fit(program, target)
        totals = DEVICES[target].totals
        family = DEVICES[target].family
        if family == "ice40" and logic["cells"] > totals["lut"]:
            problems.append(f"logic: needs about {logic['cells']} logic cells ({logic['lut']} LUTs, "
                            f"{logic['ff']} flip-flops, estimate), {target} has {totals['lut']}")
        elif family != "ice40" and logic["lut"] > totals["lut"]:
            problems.append(f"logic: needs about {logic['lut']} LUTs (estimate), {target} has {totals['lut']}")
        report["memories"] = usage["memories"]
        report["device"] = {"name": target, "bram_blocks": usage["bram"], "spram_blocks": usage["spram"],
                            "available": totals, "dsp": min(P, totals["dsp"])}
        report["fits"] = not problems
        report["problems"] = problems
    return report


def resolve_target(name):
    """``(device, board)`` of a ``--target``: a board name (``icebreaker``, ``ulx3s-85f``) or a
    device name of :data:`~spikeforge.devices.DEVICES` (``board`` is then None)."""
    if name in TARGETS:
        return TARGETS[name].device, name
    if name in DEVICES:
        return name, None
    raise ValueError(f"unknown target {name!r}; allowed: a board ({', '.join(sorted(TARGETS))}) "
                     f"or a device ({', '.join(DEVICES)})")


def fit(model, lanes, target, *, images, golden=None, weights=None, clock_mhz=50.0):
    """The one fit check of ``spikeforge info``, ``generate`` and ``build``: ``(program, analysis)``.

    ``target``: a board or device name (:func:`resolve_target`). The logic counted is the engine
    plus the host link a board build adds around it (:data:`~spikeforge.devices.LINK_LOGIC`), since a
    bitstream is only made with it: all three commands give the same verdict for the same model,
    lanes and device. ``analysis["fits"]`` and ``analysis["problems"]`` ("needed vs available")
    say whether it fits; a model whose memories fit no mapping of the device is analysed in its
    block RAM mapping, with the mapping's problem listed. ``images``, ``golden``: as :func:`analyze`;
    ``weights``, ``clock_mhz``: as :func:`compile_for_target`.
    """
    device, _ = resolve_target(target)
    try:
        program = compile_for_target(model, lanes, device, weights=weights, clock_mhz=clock_mhz)
        refused = None
    except DeviceTooSmall as e:
        ice40 = DEVICES[device].family == "ice40"
        program = compile_model(model, lanes, desc_word_bits=SPRAM_BITS if ice40 else None, compact=ice40)
        refused = str(e)
    analysis = analyze(program, target=device, images=images, extra_logic=LINK_LOGIC, golden=golden)
    if refused is not None:
        analysis["problems"] = [refused] + [p for p in analysis["problems"] if not p.startswith("block RAM")]
        analysis["fits"] = False
    analysis["logic_counted"] = "engine and the host link of a board build (estimate)"
    return program, analysis
