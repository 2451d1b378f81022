"""Model file -> accelerator Verilog (``spikeforge generate``), with the analytic report.

Everything that can refuse a model (unsupported operator, sizes beyond the engine's limits,
memories beyond the target device) runs before any file is written, and the outputs are
written atomically.
"""

import json
import os

from ...modelfile import atomic_write
from .engine import Engine
from .program import MappingError
from .report import analyze, compile_for_target, fit

__all__ = ["generate_accelerator", "TOP_NAME", "verilog_text"]

TOP_NAME = "spikeforge_accel"


def verilog_text(engine):
    """Verilog of an :class:`Engine` with the top module named :data:`TOP_NAME`."""
    from amaranth.back import verilog

    return verilog.convert(engine, name=TOP_NAME, emit_src=False)


def generate_accelerator(model, out_dir, *, lanes=8, target=None, images=None):
    """Write ``spikeforge_accel.v``, ``program.json`` and ``report.json`` into ``out_dir``.

    ``target`` (a board or device name, :func:`.report.resolve_target`) adds the fit check
    of :func:`.report.fit` (memories, and logic with a board's host link): a model that does
    not fit is refused with :class:`MappingError` before anything is written. On the
    iCE40UP5K a model whose memories exceed block RAM gets the SPRAM mapping
    (``SB_SPRAM256KA`` instances; the weights are then loaded through the ``weights`` port
    and also written as ``weights.hex``, one 16-bit word per line). Returns ``{"verilog":
    path, "program": path, "report": path, "analysis": dict}`` (and ``"weights"``).
    """
    if target is None:
        program = compile_for_target(model, lanes)
        analysis = analyze(program, images=images)
    else:  # the fit check of `spikeforge info` and `build` (host link of a board build counted)
        program, analysis = fit(model, lanes, target, images=images)
        if not analysis["fits"]:
            raise MappingError(f"the model does not fit {target} with {lanes} lane{'s' if lanes != 1 else ''}: "
                               + "; ".join(analysis["problems"]) + " (needed vs available); try "
                               + ("fewer lanes (--lanes)" if lanes > 1 else "a smaller model") + " or a larger device")
    spram = program.memory.kind == "spram"
    engine = Engine(program, spram_primitive=spram)
    text = verilog_text(engine)
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f) for k, f in
             (("verilog", f"{TOP_NAME}.v"), ("program", "program.json"), ("report", "report.json"))}
    program_doc = {
        "lanes": lanes,
        "memory_map": analysis["memory_map"],
        "passes": [{k: v for k, v in vars(p).items() if v not in ("", 0, None, False)}
                   for p in program.passes],
        "tensors": {n: {"space": t.space, "base": t.base, "T": t.T, "H": t.H, "W": t.W, "C": t.C}
                    for n, t in program.tensors.items()},
        "ports": {"pixels": engine.pixel_bits, "logit_bits": engine.logit_bits,
                  "classes": program.classes},
    }
    atomic_write(paths["verilog"], text.encode())
    atomic_write(paths["program"], json.dumps(program_doc, indent=1).encode())
    atomic_write(paths["report"], json.dumps(analysis, indent=1).encode())
    if spram:
        paths["weights"] = os.path.join(out_dir, "weights.hex")
        atomic_write(paths["weights"], "".join(f"{int(w):04x}\n" for w in program.weight_image()).encode())
    return dict(paths, analysis=analysis)
