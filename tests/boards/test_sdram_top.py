# amaranth: UnusedElaboratable=no
"""The board top with the weights in SDRAM (issue 21): :class:`AcceleratorSystem` for a program
with the sdram mapping joins the engine's prefetcher, the host's weight load and the CRC
read-back on one SDRAM controller, whose pins the ULX3S top binds with :class:`SdramPins`.

The whole system in amaranth.sim: host-encoded frames over the UART line model, the
cycle-accurate SDRAM model (raising on any broken command rule) on the board's pins through the
pin adapter; the weights (``program.sdram_image()``) are loaded with WEIGHTS frames, verified
with VERIFY, and an IMAGE's RESULT equals the golden model's logits and class."""

import collections
import json
import subprocess

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from spikeforge import builder
from spikeforge.boards.hostlink import (
    ErrorCode, FrameDecoder, MsgType, decode_error, decode_info, decode_loaded, decode_result, decode_verified,
    encode_hello, encode_image, encode_verify, encode_weights, words_crc,
)
from spikeforge.boards.sdram_pins import SdramPins, sdram_pin_bench, simulation_ports
from spikeforge.boards.top import AcceleratorSystem, BoardTop
from spikeforge.devices import TARGETS
from spikeforge.hdl.accel.report import compile_for_target
from spikeforge.hdl.accel.simulate import SIM_SDRAM
from spikeforge.sim.model import run_model
from spikeforge.sim.sdram_model import SdramModel
from uart_bits import drive_uart, sample_uart

DIVISOR = 4
BYTE = 10 * DIVISOR
CLK = 50e6


def _model():
    """The load-bound model of tests/accel/test_sdram_engine.py: 8 lanes of 4-bit weights."""
    return builder.random_model(4, image=(2, 2, 1), patch=1, channels=32, heads=2, blocks=1, mlp_ratio=2,
                                time_steps=1, weight_bits=4, attention="mask")


_PROG = {}


def _program():
    if "p" not in _PROG:
        _PROG["p"] = compile_for_target(_model(), 8, "ecp5-85f", weights="sdram")
    return _PROG["p"]


class _Bench(wiring.Component):
    """The system with the pin adapter on simulation ports (the board top without PLL/UART pins)."""

    def __init__(self, program):
        self.system = AcceleratorSystem(program, divisor=DIVISOR, clk_hz=CLK, leds=0, sdram_part=SIM_SDRAM)
        self.ports = simulation_ports(SIM_SDRAM)
        self.pins = SdramPins(SIM_SDRAM, ports=self.ports)
        super().__init__({"rx": wiring.In(1, init=1), "tx": wiring.Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.system = s = self.system
        m.submodules.pins = self.pins
        m.d.comb += [s.rx.eq(self.rx), self.tx.eq(s.tx)]
        wiring.connect(m, s.sdram, self.pins.sdram)
        return m


def _run(program, steps, *, between=None):
    """Each step: ``(frame, replies to wait for, wait budget in cycles)``. Returns the replies
    (frames), the SDRAM model and the cycles simulated."""
    dut = _Bench(program)
    model = SdramModel(SIM_SDRAM.timing(CLK, program.memory.cas_latency))
    replies = []
    cycles = [0]

    async def host_tx(ctx):
        ctrl = dut.system.sdram_path.controller
        while not ctx.get(ctrl.init_done):
            await ctx.tick()
        for k, (frame, n, budget) in enumerate(steps):
            n0 = len(replies)
            await drive_uart(ctx, dut.rx, frame, DIVISOR)
            for _ in range(budget):
                if len(replies) >= n0 + n:
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"step {k}: no reply to {frame[:8].hex()}: {replies[n0:]}")
            if between is not None:
                between(k, model)
        cycles[0] = model.cycle

    async def host_rx(ctx):
        decoder = FrameDecoder()
        while True:
            replies.extend(decoder.feed(await sample_uart(ctx, dut.tx, 1, DIVISOR, timeout=10 ** 9)))

    sim = Simulator(dut)
    sim.add_clock(1 / CLK)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx, background=True)
    sim.add_testbench(sdram_pin_bench(model, dut.ports), background=True)
    sim.run()
    return replies, model, cycles[0], dut.system


def test_sdram_system_loads_verifies_and_infers_like_the_golden_model():
    """HELLO (INFO: the SDRAM words to load, read-back), an IMAGE before the load (NOT_LOADED),
    begin load and the whole ``sdram_image()`` in WEIGHTS chunks (the part then holds it),
    VERIFY (the CRC-32C of the words read back equals the host's), one IMAGE_LOGITS: its RESULT
    carries the golden model's logits and class, and the weight-set check."""
    prog = _program()
    words = [int(w) for w in prog.sdram_image()]
    n = len(words)
    img = builder.random_images(1, shape=(2, 2, 1), seed=2)
    golden = run_model(prog.model, img)
    pixels, mv = prog.image.values, int(prog.image.levels)
    chunk = 500
    steps = [(encode_hello(1), 1, 200 * BYTE),
             (encode_image(img[0], 2, pixels=pixels, max_value=mv), 1, 200 * BYTE),
             (encode_weights(0, [], 3), 1, 200 * BYTE)]
    for k, off in enumerate(range(0, n, chunk)):
        steps.append((encode_weights(off, words[off:off + chunk], 4 + k), 1, 200 * BYTE))
    seq_v = 4 + len(steps) - 3
    steps.append((encode_verify(seq_v), 1, 200 * BYTE + 4 * n))
    steps.append((encode_image(img[0], seq_v + 1, pixels=pixels, max_value=mv, logits=True), 1, 200_000))
    loaded_at = {}

    def between(k, model):
        if k == len(steps) - 3:           # after the last chunk: the part holds the image
            loaded_at["words"] = [model.word(a) for a in range(n)]

    replies, model, cycles, system = _run(prog, steps, between=between)
    kinds = [f.type for f in replies]
    assert kinds == [MsgType.INFO, MsgType.ERROR] + [MsgType.LOADED] * (len(steps) - 4) + \
        [MsgType.VERIFIED, MsgType.RESULT], kinds
    info = decode_info(replies[0].payload)
    assert (info.weight_words, info.readback) == (n, 1)
    assert decode_error(replies[1].payload) == ErrorCode.NOT_LOADED
    last = decode_loaded(replies[-3].payload)
    assert (last.next_word, last.loaded, last.weight_crc) == (n, True, words_crc(words))
    assert loaded_at["words"] == words
    v = decode_verified(replies[-2].payload)
    assert (v.crc, v.words) == (words_crc(words), n)
    res = decode_result(replies[-1].payload, classes=prog.classes, logit_bits=system.logit_bits, logits=True)
    assert res.seq == seq_v + 1
    assert list(res.logits) == [int(x) for x in golden.logits[0]]
    assert res.cls == int(golden.classes[0])
    assert model.commands["WRITE"] == n
    assert len(model.refreshes) >= 2
    print(f"sdram words {n}, simulated cycles {cycles}, image cycles {res.cycles}")


def test_image_during_a_readback_is_busy():
    """An IMAGE frame that ends while VERIFY's read-back runs is answered BUSY (the engine would
    share the SDRAM with it), and the read-back's VERIFIED still comes."""
    prog = _program()
    words = [int(w) for w in prog.sdram_image()]
    img = builder.random_images(1, shape=(2, 2, 1), seed=2)
    pixels, mv = prog.image.values, int(prog.image.levels)
    # VERIFY and IMAGE back to back in one transmission: the read-back of all the words
    # (thousands of cycles) is still running when the IMAGE frame's check comes
    steps = [(encode_weights(0, [], 1), 1, 200 * BYTE)]
    steps += [(encode_weights(off, words[off:off + 500], 2 + k), 1, 200 * BYTE)
              for k, off in enumerate(range(0, len(words), 500))]
    both = encode_verify(50) + encode_image(img[0], 51, pixels=pixels, max_value=mv)
    assert len(encode_image(img[0], 51, pixels=pixels, max_value=mv)) * BYTE < len(words)
    steps.append((both, 2, 200 * BYTE + 4 * len(words)))
    replies, _, _, _ = _run(prog, steps)
    tail = [(f.seq, f.type) for f in replies[-2:]]
    assert sorted(tail) == [(50, MsgType.VERIFIED), (51, MsgType.ERROR)], tail
    err = next(f for f in replies[-2:] if f.type == MsgType.ERROR)
    assert decode_error(err.payload) == ErrorCode.BUSY


def test_sdram_clock_other_than_50_mhz_is_refused():
    prog = _program()
    with pytest.raises(ValueError, match=r"clock 25 MHz for a model whose weights are in SDRAM; allowed: 50 MHz"):
        AcceleratorSystem(prog, divisor=DIVISOR, clk_hz=25e6)
    with pytest.raises(ValueError, match=r"--clock on ulx3s-85f: clock 60 MHz .* allowed: 50 MHz"):
        BoardTop(TARGETS["ulx3s-85f"], prog, clock_mhz=60)
    with pytest.raises(ValueError, match=r"target 'icebreaker' has none; allowed: ulx3s-85f"):
        BoardTop(TARGETS["icebreaker"], prog)


def test_sdram_system_elaborates_with_the_sdram_ports():
    """The system's ports include the controller's pins; bram programs keep their ports."""
    prog = _program()
    s = AcceleratorSystem(prog, divisor=DIVISOR, clk_hz=CLK, leds=2)
    assert "sdram" in s.signature.members and s.info.weight_words == prog.memory.sdram_words
    text = rtlil.convert(s)
    assert "sdram__dq_oe" in text and "sdram__cs_n" in text
    bram = AcceleratorSystem(compile_for_target(_model(), 8, "ecp5-85f", weights="bram"), divisor=DIVISOR)
    assert "sdram" not in bram.signature.members and bram.info.weight_words == 0
    assert "sdram__" not in rtlil.convert(bram)


@pytest.mark.slow
def test_ulx3s_board_top_synthesizes_with_the_sdram_pins_bound(tmp_path):
    """The ULX3S BoardTop of the sdram program (50 MHz from the PLL) through amaranth-boards'
    platform and ``yosys synth_ecp5`` (no nextpnr): the SDRAM resource's pins are top-level
    ports (DQ 16 ``inout`` pins, 16 ``BIDIR`` I/O cells), with SdramPins' I/O-cell registers and
    DDR clock, beside the UART and LED pins."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from spikeforge.toolchain import find_tool

    prog = _program()
    top = BoardTop(TARGETS["ulx3s-85f"], prog)
    assert top.clock.mhz == 50.0
    plan = ULX3S_85F_Platform().prepare(top, name="top")
    files = dict(plan.files)
    (tmp_path / "top.il").write_text(files["top.il"])
    out = subprocess.run([find_tool("yosys"), "-q", "-p", "read_rtlil top.il; synth_ecp5 -top top; "
                          "tee -o stat.txt stat; write_json top.json"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    mod = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]
    ports = set(mod["ports"])
    for name in ("clk", "clk_en", "cs", "we", "ras", "cas", "ba", "a", "dqm", "dq"):
        assert any(p.startswith(f"sdram_0__{name}") for p in ports), (name, sorted(ports))
    assert mod["ports"]["sdram_0__dq__io"]["direction"] == "inout"
    assert len(mod["ports"]["sdram_0__dq__io"]["bits"]) == 16
    cells = list(mod["cells"].values())
    bidir = [c for c in cells if c["type"] == "TRELLIS_IO" and c["parameters"]["DIR"] == "BIDIR"]
    assert len(bidir) == 16
    ioff = collections.Counter(c["attributes"].get("ioff_dir") for c in cells if c["type"] == "TRELLIS_FF")
    assert ioff["input"] == 16 and ioff["output"] >= (1 + 4 + 2 + 13 + 2) + 16 + 16
    types = collections.Counter(c["type"] for c in cells)
    assert types["ODDRX1F"] == 1 and types["EHXPLLL"] == 1
    print({k: types[k] for k in ("TRELLIS_FF", "LUT4", "CCU2C", "DP16KD", "MULT18X18D", "TRELLIS_IO")})
