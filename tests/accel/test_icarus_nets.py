# amaranth: UnusedElaboratable=no
"""Lint: no net of the accelerator's Verilog is assembled from so many part-select
assignments that Icarus Verilog crawls (issue 19).

Icarus compiles a net driven by ``assign n[hi:lo] = ...;`` parts into a strength-aware
concatenation (``.concat8``) that rebuilds and reduces the whole net bit by bit each time any
part changes: the work per cycle grows with the net's width times its parts. The engine's
accumulate core, its 344-bit input payload driven field by field (34 parts, most changing
every cycle), made the default model's accelerator about 6 times slower on Icarus (8 s an
image before, about 50 s of CPU after the AccumulateLanes merge); Verilator and amaranth.sim
did not notice. A component's port driven with ONE assignment (``hdl/pack.py``) is one
plain concatenation instead. The limit sits above every net the engine had before that merge
(the largest: 80 bits from 16 parts, 32 bits from 32) and well below the culprit (11,696).
No timing here: the rule looks at the text only.
"""

import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.hdl.accel.engine import Engine
from spikeforge.hdl.accel.generate import verilog_text
from spikeforge.hdl.accel.program import compile_model
from spikeforge.hdl.accumulate_lanes import AccumulateLanes
from spikeforge.hdl.pack import pack
from spikeforge.modelfile import load_model
from spikeforge.options import shipped_model_path

#: a net's width times its part assignments, at most
PART_COST_LIMIT = 2048

_NAME = r"(\\\S+|[A-Za-z_][\w$]*)"
_DECL = re.compile(rf"^\s*(?:wire|reg|input|output|inout)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s+)?{_NAME}\s*[=;]", re.M)
_PART = re.compile(rf"^\s*assign\s+{_NAME}\s*\[\d+(?::\d+)?\]\s*=", re.M)


def part_driven_nets(text):
    """``[(module, net, width, parts)]`` of every net of ``text`` driven by two or more
    part-select ``assign`` statements."""
    out = []
    for body in re.findall(r"^module\s.*?^endmodule", text, re.M | re.S):
        module = body.split(None, 2)[1].split("(")[0]
        widths = {name: abs(int(msb) - int(lsb)) + 1 if msb else 1 for msb, lsb, name in _DECL.findall(body)}
        parts = {}
        for name in _PART.findall(body):
            parts[name] = parts.get(name, 0) + 1
        out += [(module, name, widths.get(name, 0), n) for name, n in parts.items() if n >= 2]
    return out


def costly_nets(text, limit=PART_COST_LIMIT):
    """The nets of :func:`part_driven_nets` whose width times parts exceeds ``limit``."""
    return [net for net in part_driven_nets(text) if net[2] * net[3] > limit]


@pytest.fixture(scope="module")
def default_model():
    return load_model(shipped_model_path("default"))


@pytest.mark.parametrize("lanes,compact", [(8, False), (1, True)], ids=["fast-8", "compact-1"])
def test_engine_has_no_costly_part_driven_net(default_model, lanes, compact):
    """The default model's engine: the fast 8-lane build (``spikeforge sim``'s) and the compact
    one-lane build (the iCEBreaker's)."""
    text = verilog_text(Engine(compile_model(default_model, lanes, compact=compact)))
    assert part_driven_nets(text), "the parser found no part-driven net at all: the rule is blind"
    assert costly_nets(text) == []


class _Feed(wiring.Component):
    """The engine's accumulate core (8 lanes, two banks, registered sums) with its payload
    from input ports, field by field (the construct of issue 19) or with :func:`pack`."""

    def __init__(self, packed):
        self.packed = packed
        self.core = AccumulateLanes(lanes=8, weight_shape=13, shift_bits=3, acc_bits=13, banks=2, word_bits=7,
                                    sum_reg=True, lanes_per_copy=4)
        super().__init__({"x": In(self.core.i.payload.shape()), "s": Out(13 * 8)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        x, q = self.x, core.i.payload
        w = [x.w[ln] + 1 for ln in range(8)]  # logic in front, as the engine's weight select
        fields = {"w": [v[:13] for v in w], "shift": [x.shift[ln] for ln in range(8)],
                  "acc": [[x.acc[k][ln] for ln in range(8)] for k in range(2)], "word": x.word, "bank": x.bank}
        m.d.comb += core.i.valid.eq(1)
        if self.packed:
            m.d.comb += q.eq(pack(q.shape(), fields))
        else:
            m.d.comb += [q.word.eq(fields["word"]), q.bank.eq(fields["bank"])]
            for ln in range(8):
                m.d.comb += [q.w[ln].eq(fields["w"][ln]), q.shift[ln].eq(fields["shift"][ln])]
                m.d.comb += [q.acc[k][ln].eq(fields["acc"][k][ln]) for k in range(2)]
        m.d.comb += self.s.eq(core.o.payload.sum.as_value())
        return m


def test_rule_finds_a_payload_driven_field_by_field():
    """The lint fails on the construct it is for: AccumulateLanes' payload driven field by
    field (as the engine did from the AccumulateLanes merge to this fix); packed, it passes."""
    bad = costly_nets(verilog.convert(_Feed(packed=False), name="feed", emit_src=False))
    assert [(net[1].split("$")[0].lstrip("\\"), net[2]) for net in bad] == [("i__payload", 344)]
    assert bad[0][3] >= 30
    assert costly_nets(verilog.convert(_Feed(packed=True), name="feed", emit_src=False)) == []


def test_parser_reads_widths_and_escaped_names():
    text = ("module m(a, b);\n  wire [343:0] \\p$3 ;\n  output [7:0] b;\n  wire [3:0] c;\n"
            "  assign \\p$3 [3:0] = a;\n  assign \\p$3 [343:4] = 0;\n  assign b[7:4] = a;\n  assign b[3:0] = a;\n"
            "  assign c[1] = a;\n  assign c = a;\nendmodule\n")
    assert sorted(part_driven_nets(text)) == [("m", "\\p$3", 344, 2), ("m", "b", 8, 2)]
    assert costly_nets(text, limit=687) == [("m", "\\p$3", 344, 2)]
    assert costly_nets(text, limit=688) == []
