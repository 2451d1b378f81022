"""The generated top Verilog starts with a comment documenting every port for integrators:
checked against the Engine's wiring signature and against the module's own port declarations."""

import re

import pytest
from amaranth.hdl import Shape
from amaranth.lib import wiring

from spikeforge.builder import random_model
from spikeforge.hdl.accel.engine import Engine
from spikeforge.hdl.accel.generate import FIELD_DOCS, TOP_NAME, verilog_text
from spikeforge.hdl.accel.program import compile_model

ROW = re.compile(r"^//   (\w+) +(input|output) +(\d+)  (\S.*)$")


def _header(text):
    lines = []
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        lines.append(line)
    return lines


def _verilog_ports(text):
    """``{name: (direction, width)}`` from the top module's port declarations."""
    body = text[text.index(f"module {TOP_NAME}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for direction, msb, lsb, name in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):(\d+)\]\s+)?(\w+)\s*;",
                                                body, re.M):
        ports[name] = (direction, int(msb) - int(lsb) + 1 if msb else 1)
    return ports


@pytest.mark.parametrize("memory", ["bram", "spram"])
def test_header_lists_every_port_with_direction_width_and_protocol(memory):
    program = compile_model(random_model(3, channels=8, weight_bits=2), 1 if memory == "spram" else 2,
                            memory=memory)
    engine = Engine(program)
    text = verilog_text(engine)
    header = _header(text)
    rows = {m[1]: (m[2], int(m[3]), m[4]) for m in map(ROW.match, header) if m}

    want = {"clk": ("input", 1), "rst": ("input", 1)}
    for path, member, _ in engine.signature.flatten(engine):
        want["__".join(path)] = ("output" if member.flow == wiring.Out else "input",
                                 Shape.cast(member.shape).width)
    assert ("weights__payload" in want) == (memory == "spram")
    assert {k: v[:2] for k, v in rows.items()} == want
    assert _verilog_ports(text) == want  # the comment tells the truth about the module
    for name, (_, _, protocol) in rows.items():
        if "__" in name:  # a stream member: says which stream, which way and which signal
            stream, signal = name.split("__")
            assert protocol == f"stream {'into' if stream != 'result' else 'out of'} the engine: {signal}"

    comment = " ".join(line[2:].strip() for line in header)  # the prose, unwrapped
    assert "valid and ready are both 1" in comment  # the handshake rule
    # every payload field with its bit range and what it holds
    payloads = [("pixels", None)] + [("result", f) for f in ("value", "last")]
    if memory == "spram":
        payloads += [("weights", f) for f in ("addr", "data")]
        assert f"the {len(program.weight_image())} words of the weight image" in comment
    for stream, field in payloads:
        layout = engine.signature.members[stream].signature.members["payload"].shape
        if field is None:
            bits = f"[{Shape.cast(layout).width - 1}:0]"
        else:
            f = layout[field]
            w = Shape.cast(f.shape).width
            bits = f"[{f.offset + w - 1}:{f.offset}]" if w > 1 else f"[{f.offset}]"
        start = f"//     payload{bits}" + (f" {field}" if field else "") + ": "
        assert any(line.startswith(start) and FIELD_DOCS[stream, field][:30] in line for line in header), start
    assert f"{program.image.H * program.image.W * program.image.C} beats" in comment
    assert f"{program.classes + 1} beats" in comment
