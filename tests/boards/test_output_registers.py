# amaranth: UnusedElaboratable=no
"""boards/output_registers.py: the register after an ECP5 block RAM read moves into the block
RAM (REGMODE OUTREG) only where the circuit stays the same. Checked on Yosys's own mapping of
a small design: which read ports it absorbs, that nextpnr then times the shorter path, and
under Verilator (behavioural models of the cells, ecp5_cells_model.v) that the netlists before
and after give the same outputs on every cycle, and the memory's contents."""

import json
import re
import subprocess
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikeforge.boards.output_registers import absorb_output_registers, absorb_output_registers_file
from spikeforge.boards.synth import NO_RW_CHECK_COMMANDS
from spikeforge.toolchain import ToolNotFound, find_tool
from spikeforge.hdl.accel.memories import NO_RW_CHECK
from spikeforge.sim.runners import run_cocotb, simulator_missing_reason

HERE = Path(__file__).parent


class ReadRegisters(wiring.Component):
    """Four memories, one write address and data; each read registered once more:
    ``q16`` plainly (absorbable), ``q36`` from a 36-bit memory (a pseudo-dual-port block),
    ``qen`` through a register with an enable, ``qfan`` where the read data also leaves
    unregistered (``raw``): neither of the last two may move into the block RAM."""

    def __init__(self, memories=("m16", "m36", "men", "mfan"), stages=1):
        self.memories, self.stages = memories, stages
        super().__init__({"wa": In(10), "wd": In(36), "we": In(1), "ra": In(10), "en": In(1),
                          "q16": Out(16), "q36": Out(36), "qen": Out(16), "qfan": Out(16), "raw": Out(16)})

    def elaborate(self, platform):
        m = Module()
        for name, width, depth, out in (("m16", 16, 1024, self.q16), ("m36", 36, 512, self.q36),
                                        ("men", 16, 1024, self.qen), ("mfan", 16, 1024, self.qfan)):
            if name not in self.memories:
                continue
            m.submodules[name] = mem = Memory(shape=width, depth=depth, init=[], attrs={NO_RW_CHECK: 1})
            wp, rp = mem.write_port(), mem.read_port()
            m.d.comb += [wp.addr.eq(self.wa), wp.data.eq(self.wd), wp.en.eq(self.we), rp.addr.eq(self.ra)]
            reg = Signal(width, name=f"{name}_q", reset_less=True)   # no reset, as in the engine
            last = reg
            for stage in range(1, self.stages):   # further registers, for a timed path after the read
                nxt = Signal(width, name=f"{name}_q{stage}", reset_less=True)
                m.d.sync += nxt.eq(last)
                last = nxt
            m.d.comb += out.eq(last)
            if name == "men":
                with m.If(self.en):
                    m.d.sync += reg.eq(rp.data)
            else:
                m.d.sync += reg.eq(rp.data)
            if name == "mfan":
                m.d.comb += self.raw.eq(rp.data)
        return m


def _yosys(tmp_path):
    try:
        return find_tool("yosys")
    except ToolNotFound as e:
        pytest.skip(str(e))


def _synthesize(tmp, design):
    """(the synthesized netlist, the netlist after the pass, what it absorbed), as pre.json and
    post.json in ``tmp``."""
    yosys = _yosys(tmp)
    (tmp / "top.il").write_text(rtlil.convert(design, name="top"))
    script = "; ".join(["read_rtlil top.il", *NO_RW_CHECK_COMMANDS, "synth_ecp5 -top top -json pre.json"])
    subprocess.run([yosys, "-q", "-p", script], cwd=tmp, capture_output=True, check=True)
    (tmp / "post.json").write_bytes((tmp / "pre.json").read_bytes())
    absorbed = absorb_output_registers_file(tmp / "post.json")
    return json.loads((tmp / "pre.json").read_text()), json.loads((tmp / "post.json").read_text()), absorbed


@pytest.fixture(scope="module")
def netlists(tmp_path_factory):
    """(work folder, the synthesized netlist, the netlist after the pass, what it absorbed)."""
    tmp = tmp_path_factory.mktemp("outreg")
    return (tmp, *_synthesize(tmp, ReadRegisters()))


def _cells(netlist):
    return netlist["modules"]["top"]["cells"]


def _block_of(cells, port_net_name, netlist):
    """The DP16KD cell whose outputs drive (or fed the register of) output ``port_net_name``."""
    bits = set(netlist["modules"]["top"]["ports"][port_net_name]["bits"])
    for name, cell in cells.items():
        if cell["type"] == "DP16KD" and bits & {b[0] for p, b in cell["connections"].items() if p.startswith("DO")}:
            return name, cell
    return None, None


def test_only_plain_read_registers_move_into_the_block_ram(netlists):
    _tmp, pre, post, absorbed = netlists
    before, after = _cells(pre), _cells(post)
    kinds = {c["type"] for c in before.values()}
    assert kinds == {"DP16KD", "TRELLIS_FF"}, kinds   # the design maps to nothing else
    # q16: one 18-bit block, read port B; q36: one 36-bit pseudo-dual-port block, both halves
    got = sorted((ports, n) for _name, ports, n in absorbed)
    assert got == [("AB", 36), ("B", 16)], absorbed
    assert sum(c["type"] == "TRELLIS_FF" for c in before.values()) == 16 + 36 + 16 + 16
    assert sum(c["type"] == "TRELLIS_FF" for c in after.values()) == 16 + 16
    for out, modes in (("q16", {"B": "OUTREG"}), ("q36", {"A": "OUTREG", "B": "OUTREG"})):
        name, cell = _block_of(after, out, post)
        assert name is not None, f"{out} is not driven by a block RAM after the pass"
        assert {h: cell["parameters"][f"REGMODE_{h}"] for h in modes} == modes
        assert cell["connections"]["OCEA"] == cell["connections"]["OCEB"] == ["1"]
    for out in ("qen", "qfan"):   # still a fabric register in front of the output
        assert _block_of(after, out, post) == (None, None)
    blocks = [c for c in after.values() if c["type"] == "DP16KD"]
    assert sorted(c["parameters"]["REGMODE_B"] for c in blocks) == ["NOREG", "NOREG", "OUTREG", "OUTREG"]


def test_a_register_with_a_reset_an_initial_one_or_another_clock_stays(netlists):
    _tmp, pre, _post, _absorbed = netlists
    for change in ({"LSR": "rst"}, {"REGSET": "SET"}, {"CLK": "other"}, {"CE": "en"}, {"CLKMUX": "INV"}):
        netlist = json.loads(json.dumps(pre))
        cells = _cells(netlist)
        m16, block = _block_of(cells, "q16", netlist)
        assert m16 is None   # q16 still comes from a fabric register before the pass
        q16 = netlist["modules"]["top"]["ports"]["q16"]["bits"]
        for cell in cells.values():
            if cell["type"] == "TRELLIS_FF" and cell["connections"]["Q"][0] in q16:
                for key, value in change.items():
                    if key in ("REGSET", "CLKMUX"):
                        cell["parameters"][key] = value
                    elif key == "CE":
                        cell["parameters"]["CEMUX"] = "CE"
                        cell["connections"]["CE"] = [10**6]
                    else:
                        cell["connections"][key] = [10**6 + 1]
                break
        absorbed = absorb_output_registers(netlist)
        assert sorted(p for _n, p, _k in absorbed) == ["AB"], (change, absorbed)


def test_nextpnr_times_the_absorbed_read_as_a_register_output(tmp_path):
    _pre, _post, absorbed = _synthesize(tmp_path, ReadRegisters(("m16", "m36"), stages=2))
    assert len(absorbed) == 2
    try:
        nextpnr = find_tool("nextpnr-ecp5")
    except ToolNotFound as e:
        pytest.skip(str(e))
    fmax = {}
    for name in ("pre", "post"):
        out = subprocess.run([nextpnr, "--25k", "--package", "CABGA381", "--json", f"{name}.json",
                              "--lpf-allow-unconstrained", "--timing-allow-fail", "--seed", "1", "--quiet",
                              "--freq", "100", "-l", f"{name}.log"], cwd=tmp_path, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        found = re.findall(r"Max frequency for clock +'[^']*clk[^']*': ([\d.]+) MHz",
                           (tmp_path / f"{name}.log").read_text())
        fmax[name] = float(found[-1])
    # a block RAM read with no output register leaves after ~5.8 ns (speed 6): below 175 MHz
    assert fmax["pre"] < 175 < fmax["post"], fmax


def test_netlists_before_and_after_agree_under_verilator(netlists):
    tmp, _pre, _post, _absorbed = netlists
    reason = simulator_missing_reason("verilator")
    if reason is not None:
        pytest.skip(reason)
    yosys = _yosys(tmp)
    for name in ("pre", "post"):
        subprocess.run([yosys, "-q", "-p", f"read_json {name}.json; rename top {name}_top; "
                        f"write_verilog -noattr {name}.v"], cwd=tmp, capture_output=True, check=True)
    ports = "wa wd we ra en".split()
    outs = "q16 q36 qen qfan raw".split()
    widths = {"wa": 10, "wd": 36, "we": 1, "ra": 10, "en": 1, "q16": 16, "q36": 36, "qen": 16, "qfan": 16, "raw": 16}
    decl = "\n".join(f"    input wire [{widths[p] - 1}:0] {p}," for p in ports)
    decl += "\n" + "\n".join(f"    output wire [{widths[o] - 1}:0] {o}_{n}," for n in ("pre", "post") for o in outs)

    def conns(n):
        return ", ".join([".clk(clk)", *(f".{p}({p})" for p in ports), *(f".{o}({o}_{n})" for o in outs)])
    (tmp / "both.v").write_text(
        "module both(\n    input wire clk,\n    input wire rst,\n" + decl.rstrip(",") + "\n);\n"
        f"    pre_top u_pre({conns('pre')});\n    post_top u_post({conns('post')});\nendmodule\n")
    result = run_cocotb([tmp / "both.v", tmp / "pre.v", tmp / "post.v", HERE / "ecp5_cells_model.v"], "both",
                        HERE / "tb_output_registers.py", build_dir=tmp / "sim",
                        parameters={"cycles": 3000, "seed": 3}, build_args=("-Wno-fatal",), timeout=600)
    assert result.passed == ["same_outputs_and_contents"]
