"""The analytic performance and resource model of the accelerator, before any synthesis.

- **Cycles per image**: the program executor's timing rules (:mod:`.execute`), which the
  RTL follows, on real test images; beside it the spec's ``lower_bound_cycles`` (§10) from the
  golden model's counts.
- **Memory**: every engine memory (depth x width, read ports) mapped onto the device's block
  RAM configurations; memories with two read ports are stored twice.
- **Logic**: a per-lane and fixed estimate of LUTs, flip-flops and multipliers.
"""

import math

import numpy as np

from ...boards.synth import DEVICES
from ...sim.model import run_model
from .engine import EnginePlan
from .execute import execute_program

__all__ = ["analyze", "memories", "BRAM_CONFIGS"]

# (depth, width) configurations of one block RAM, per family.
BRAM_CONFIGS = {
    "ice40": [(256, 16), (512, 8), (1024, 4), (2048, 2)],
    "ecp5": [(512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)],
}
_LUTRAM_BITS = 256  # memories this small become logic, not block RAM


def memories(program):
    """``[{name, depth, width, copies, rom}]`` of the engine built for ``program``."""
    eng = EnginePlan(program)
    P = program.lanes
    acc_depth = max(p.acc_words for p in program.passes if p.kind == "syn")
    cw = eng.mb + eng.bb + eng.tb
    mems = [
        dict(name="image", depth=program.image.N, width=program.image.C * eng.pixel_bits, copies=1, rom=False),
        dict(name="spikes", depth=max(1, program.spike_rows), width=program.spike_slots * eng.slot_bits,
             copies=2 * P, rom=False),
        dict(name="ints", depth=max(1, program.int_words), width=P * eng.ib, copies=2, rom=False),
        dict(name="weights", depth=max(1, len(program.weights)), width=P * eng.wb, copies=1, rom=True),
        dict(name="constants", depth=max(1, len(program.consts)), width=P * cw, copies=1, rom=True),
        dict(name="accumulators", depth=acc_depth, width=P * eng.ab, copies=4, rom=False),
        dict(name="descriptors", depth=len(program.passes), width=eng.desc_layout.size, copies=1, rom=True),
    ]
    for m in mems:
        m["bits"] = m["depth"] * m["width"] * m["copies"]
    return mems


def _blocks(depth, width, family):
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in BRAM_CONFIGS[family])


def analyze(program, *, target=None, images=None):
    """The analytic report (JSON-ready). ``images``: default the first 16 test images."""
    if images is None:
        from ...data import load_digits_split

        images = load_digits_split("test")[0][:16]
    images = np.asarray(images)
    P = program.lanes
    runs = [execute_program(program, im) for im in images]
    cycles = np.array([r.total_cycles for r in runs])
    golden = run_model(program.model, images)
    bound = golden.lower_bound_cycles(P)
    mems = memories(program)
    eng = EnginePlan(program)
    logic = {
        "lut": int(900 + P * (2 * eng.ab + eng.ib * 3 + 4 * eng.slot_bits * program.spike_slots)
                   + 4 * eng.row_bits),
        "ff": int(600 + P * (2 * eng.ab + 3 * eng.ib + 2 * 8) + 4 * eng.row_bits),
        "multipliers": P,
    }
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
        "memories": mems,
        "memory_bits": {"total": int(sum(m["bits"] for m in mems)),
                        "rom": int(sum(m["bits"] for m in mems if m["rom"])),
                        "ram": int(sum(m["bits"] for m in mems if not m["rom"]))},
        "logic_estimate": logic,
        "target": target,
    }
    if target is not None:
        if target not in DEVICES:
            raise ValueError(f"unknown target {target!r}; supported: {', '.join(DEVICES)}")
        dev = DEVICES[target]
        totals = dev.totals
        blocks = 0
        for m in mems:
            m["bram_blocks"] = 0 if m["depth"] * m["width"] <= _LUTRAM_BITS else \
                m["copies"] * _blocks(m["depth"], m["width"], dev.family)
            blocks += m["bram_blocks"]
        problems = []
        if blocks > totals["bram"]:
            problems.append(f"block RAM: needs {blocks} blocks, {target} has {totals['bram']}")
        if logic["lut"] > totals["lut"]:
            problems.append(f"logic: needs about {logic['lut']} LUTs, {target} has {totals['lut']}")
        report["device"] = {"name": target, "bram_blocks": blocks, "available": totals,
                            "dsp": min(P, totals["dsp"])}
        report["fits"] = not problems
        report["problems"] = problems
    return report
