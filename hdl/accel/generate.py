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

__all__ = ["generate_accelerator", "TOP_NAME", "verilog_text", "port_table", "header_comment"]

TOP_NAME = "spikeforge_accel"


#: What each member of the Engine's signature carries, by its path in the signature (a stream's
#: payload by the stream's name; a struct payload by its fields). Every member the signature has
#: must be described here: :func:`port_table` refuses an undescribed one.
PORT_DOCS = {
    "pixels": "the image, one pixel channel value per beat, row-major with channels fastest",
    "result": "the K logits of an image, then its class",
    "weights": "the weight words of the SPRAM mapping (Program.weight_image()), loaded before the "
               "first image",
    "sdram_req": "sdram mapping: the weight prefetcher's read requests, one per weighted pass's "
                 "segment (to an SDRAM controller holding sdram.hex from word 0, e.g. "
                 "hdl/sdram.py's SdramController req)",
    "sdram_r": "sdram mapping: the words read, in address order (from the controller's r)",
    "cycles": "cycles of the last image, from its last pixel to its first result beat "
              "(valid from that beat on)",
    "events": "synaptic events (input spikes) the last image processed (valid with cycles)",
}
FIELD_DOCS = {
    ("pixels", None): "unsigned pixel value",
    ("result", "value"): "signed; beats 1..K: logit k-1, beat K+1: the class index (argmax, the "
                         "lowest index on ties)",
    ("result", "last"): "1 on the class beat (the last of the image), 0 on the logits",
    ("weights", "addr"): "SPRAM word address",
    ("weights", "data"): "the 16-bit word stored there",
    ("sdram_req", "addr"): "first 16-bit SDRAM word",
    ("sdram_req", "count"): "words to read",
    ("sdram_req", "write"): "always 0 (reads only)",
    ("sdram_r", "data"): "the 16-bit word read",
    ("sdram_r", "last"): "1 on a request's last word",
}
#: the rules of an amaranth.lib.stream (RFC 61), as the engine's streams follow them
STREAM_RULES = (
    "A beat moves on a rising clk edge where valid and ready are both 1. The sender raises valid "
    "without waiting for ready and then holds valid and payload unchanged until the beat moves; "
    "the receiver may raise or drop ready at any time.")


def _fields(shape):
    """``[(name, lsb, width, signed)]`` of a payload shape (``name`` None for a plain value)."""
    from amaranth.hdl import Shape
    from amaranth.lib import data

    if isinstance(shape, data.StructLayout):
        return [(name, f.offset, Shape.cast(f.shape).width, Shape.cast(f.shape).signed)
                for name, f in shape]
    s = Shape.cast(shape)
    return [(None, 0, s.width, s.signed)]


def port_table(engine):
    """The top module's ports, derived from ``engine``'s wiring signature (plus the ``clk`` and
    ``rst`` of its clock domain): ``[{"port", "direction", "width", "interface", "role",
    "fields"}]``, in signature order. ``port`` is the Verilog name (the member's path joined by
    ``__``); ``fields`` (stream payloads) ``[(field, lsb, width, signed)]``."""
    from amaranth.hdl import Shape
    from amaranth.lib import stream, wiring

    rows = [dict(port="clk", direction="input", width=1, interface="clk", role="clock (rising edge)",
                 fields=None),
            dict(port="rst", direction="input", width=1, interface="rst",
                 role="reset, synchronous, active high", fields=None)]
    members = engine.signature.members
    for name, member in members.items():
        if name not in PORT_DOCS:
            raise KeyError(f"port {name!r} of the engine is not described in PORT_DOCS")
        if member.is_signature and not isinstance(member.signature, stream.Signature):
            raise TypeError(f"port {name!r}: only stream interfaces are described, not {member.signature!r}")
    # flatten() gives each port's flow as the engine sees it (a stream's ``ready`` is an output
    # of the engine where the stream comes in).
    for path, member, _ in engine.signature.flatten(engine):
        name = path[0]
        is_stream = members[name].is_signature
        sink = is_stream and members[name].flow == wiring.In
        rows.append(dict(
            port="__".join(path), direction="output" if member.flow == wiring.Out else "input",
            width=Shape.cast(member.shape).width, interface=name,
            role=(f"stream {'into' if sink else 'out of'} the engine: {path[-1]}" if is_stream else "status"),
            fields=_fields(member.shape) if is_stream and path[-1] == "payload" else None))
    for row in rows:
        for field, *_ in row["fields"] or ():
            if (row["interface"], field) not in FIELD_DOCS:
                raise KeyError(f"payload field {field!r} of port {row['interface']!r} is not described "
                               "in FIELD_DOCS")
    return rows


def header_comment(engine):
    """The comment at the top of the generated Verilog: every port with direction, width and
    protocol (from :func:`port_table`), the stream handshake, what each payload holds and the
    sequence of one image."""
    import textwrap

    prog = engine.prog
    img, K = prog.image, prog.classes
    lines = [f"{TOP_NAME}: spikeforge accelerator, {prog.lanes} lane{'s' if prog.lanes != 1 else ''}, "
             f"{'compact' if prog.compact else 'fast'} build, "
             f"{ {'spram': 'SPRAM', 'sdram': 'SDRAM'}.get(prog.memory.kind, 'block RAM')} mapping of the weights",
             f"model: {f'{img.T} frames of ' if img.frames else ''}{img.H}x{img.W}x{img.C} "
             f"{'' if img.frames else 'image '}of values 0..{img.levels}, "
             f"{K} classes (docs/accelerator.md, \"Integrating the accelerator\")",
             "",
             "Ports (one clock domain: clk; every other port is sampled or changes on its rising edge):",
             f"  {'port':18} {'dir':6} {'width':>5}  protocol"]
    rows = port_table(engine)
    for r in rows:
        lines.append(f"  {r['port']:18} {r['direction']:6} {r['width']:>5}  {r['role']}")
    lines += ["", "Interfaces:"]
    for r in rows:
        if r["fields"] is not None or r["role"] == "status":
            lines += textwrap.wrap(f"{r['interface']}: {PORT_DOCS[r['interface']]}", 98,
                                   initial_indent="  ", subsequent_indent="      ")
        for field, lsb, width, signed in r["fields"] or ():
            bits = f"[{lsb + width - 1}:{lsb}]" if width > 1 else f"[{lsb}]"
            name = f"payload{bits}" + (f" {field}" if field else "")
            lines += textwrap.wrap(f"{name}: {'signed ' if signed and field is None else ''}"
                                   f"{FIELD_DOCS[r['interface'], field]}", 98,
                                   initial_indent="    ", subsequent_indent="      ")
    streams = [n for n, m in engine.signature.members.items() if m.is_signature]
    lines += ["", *textwrap.wrap(f"Streams ({', '.join(streams)}): {STREAM_RULES}", 98), "", "One image:"]
    beats = "T x H x W x C, frame by frame" if img.frames else "H x W x C"
    steps = [f"1. pixels: {img.values} beats ({beats}); pixels__ready is 1 while the engine "
             "waits for an image and 0 from the last pixel until the class beat has moved.",
             "2. compute: no port moves; the cycles output then holds this time.",
             f"3. result: {K + 1} beats, {K} logits then the class with last = 1 "
             + ("(one per cycle while result__ready is 1)." if prog.compact
                else "(at most one every second cycle).")]
    if "weights" in engine.signature.members:
        steps.insert(0, f"0. once after reset: the {len(prog.weight_image())} words of the weight image on "
                        "weights (ready only while the engine waits for an image), before the first pixel.")
    if "sdram_req" in engine.signature.members:
        steps.insert(0, f"0. once after reset: the {prog.memory.sdram_words} words of sdram.hex "
                        "(Program.sdram_image()) in the SDRAM from word 0, before the first pixel; "
                        "during compute the engine reads them segment by segment on sdram_req/sdram_r.")
    for step in steps:
        lines += textwrap.wrap(step, 96, initial_indent="  ", subsequent_indent="     ")
    return "".join(f"// {line}".rstrip() + "\n" for line in lines)


def verilog_text(engine):
    """Verilog of an :class:`Engine` with the top module named :data:`TOP_NAME`, after a
    comment describing its ports (:func:`header_comment`)."""
    from amaranth.back import verilog

    return header_comment(engine) + "\n" + verilog.convert(engine, name=TOP_NAME, emit_src=False)


def generate_accelerator(model, out_dir, *, images, lanes=8, target=None, weights=None):
    """Write ``spikeforge_accel.v``, ``program.json`` and ``report.json`` into ``out_dir``;
    ``images``: those of the report's cycle counts (:func:`.report.analyze`).

    ``target`` (a board or device name, :func:`.report.resolve_target`) adds the fit check
    of :func:`.report.fit` (memories, and logic with a board's host link): a model that does
    not fit is refused with :class:`MappingError` before anything is written. On the
    iCE40UP5K a model whose memories exceed block RAM gets the SPRAM mapping
    (``SB_SPRAM256KA`` instances; the weights are then loaded through the ``weights`` port
    and also written as ``weights.hex``, one 16-bit word per line); on the ECP5-85F (the
    ULX3S) one whose weights exceed block RAM, or with ``weights="sdram"``, the sdram mapping
    (the engine's ``sdram_req``/``sdram_r`` ports; the SDRAM's contents written as
    ``sdram.hex``, one 16-bit word per line). Returns ``{"verilog": path, "program": path,
    "report": path, "analysis": dict}`` (and ``"weights"`` or ``"sdram"``).
    """
    if target is None:
        program = compile_for_target(model, lanes, weights=weights)
        analysis = analyze(program, images=images)
    else:  # the fit check of `spikeforge info` and `build` (host link of a board build counted)
        program, analysis = fit(model, lanes, target, images=images, weights=weights)
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
    if program.memory.kind == "sdram":
        paths["sdram"] = os.path.join(out_dir, "sdram.hex")
        atomic_write(paths["sdram"], "".join(f"{int(w):04x}\n" for w in program.sdram_image()).encode())
    return dict(paths, analysis=analysis)
