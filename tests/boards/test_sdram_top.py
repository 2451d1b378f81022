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
    encode_hello, encode_image, encode_verify, encode_weights, image_bytes, result_check, words_crc,
)
from spikeforge.boards.link_gateware import UARTHostLink
from spikeforge.boards.sdram_pins import SdramPins, sdram_pin_bench, simulation_ports
from spikeforge.boards.top import AcceleratorSystem, BoardTop
from spikeforge.devices import TARGETS
from spikeforge.hdl.accel.report import compile_for_target
from spikeforge.hdl.accel.simulate import SIM_SDRAM
from spikeforge.sim.model import run_model
from spikeforge.sim.sdram_model import SdramModel
from sdram_ports import assert_sdram_pins_bound
from uart_bits import drive_uart, sample_uart

DIVISOR = 4
BYTE = 10 * DIVISOR
CLK = 50e6


def _load_bound_model():
    """The load-bound model of tests/accel/test_sdram_engine.py: 8 lanes of 4-bit weights,
    2,184 SDRAM words."""
    return builder.random_model(4, image=(2, 2, 1), patch=1, channels=32, heads=2, blocks=1, mlp_ratio=2,
                                time_steps=1, weight_bits=4, attention="mask")


def _tiny_model():
    """The same shape at 8 channels and one head: 162 SDRAM words (a short load)."""
    return builder.random_model(4, image=(2, 2, 1), patch=1, channels=8, heads=1, blocks=1, mlp_ratio=2,
                                time_steps=1, weight_bits=4, attention="mask")


_PROG = {}


def _program(name="tiny"):
    if name not in _PROG:
        model = _tiny_model() if name == "tiny" else _load_bound_model()
        _PROG[name] = compile_for_target(model, 8, "ecp5-85f", weights="sdram")
    return _PROG[name]


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


def _whole_flow(prog, *, busy_check=False):
    """HELLO (INFO: the SDRAM words to load, read-back), an IMAGE before the load (NOT_LOADED),
    begin load and the whole ``sdram_image()`` in WEIGHTS chunks (the part then holds it),
    VERIFY (the CRC-32C of the words read back equals the host's), one IMAGE_LOGITS: its RESULT
    carries the golden model's logits and class, and the check of the loaded weight set
    continued over the image. ``busy_check``: then VERIFY and IMAGE back to back (the IMAGE's
    frame ends while the read-back runs: BUSY, and VERIFIED still comes) and the IMAGE again
    (the same RESULT)."""
    words = [int(w) for w in prog.sdram_image()]
    n = len(words)
    img = builder.random_images(1, shape=(2, 2, 1), seed=2)
    golden = run_model(prog.model, img)
    pixels, mv = prog.image.values, int(prog.image.levels)
    wait = 200 * BYTE
    steps = [(encode_hello(1), 1, wait), (encode_image(img[0], 2, pixels=pixels, max_value=mv), 1, wait),
             (encode_weights(0, [], 3), 1, wait)]
    chunk = 500
    for k, off in enumerate(range(0, n, chunk)):
        steps.append((encode_weights(off, words[off:off + chunk], 4 + k), 1, wait))
    last = len(steps) - 1                 # the last chunk's step, and its LOADED's reply
    steps.append((encode_verify(40), 1, wait + 4 * n))
    steps.append((encode_image(img[0], 41, pixels=pixels, max_value=mv, logits=True), 1, 200_000))
    if busy_check:
        frame = encode_image(img[0], 51, pixels=pixels, max_value=mv)
        assert len(frame) * BYTE < n            # the frame is shorter than the read-back
        steps.append((encode_verify(50) + frame, 2, wait + 4 * n))
        steps.append((encode_image(img[0], 52, pixels=pixels, max_value=mv, logits=True), 1, 200_000))
    held = {}

    def between(k, model):
        if k == last:                     # after the last chunk: the part holds the image
            held["words"] = [model.word(a) for a in range(n)]

    replies, model, cycles, system = _run(prog, steps, between=between)
    kinds = [f.type for f in replies]
    want = [MsgType.INFO, MsgType.ERROR] + [MsgType.LOADED] * (last - 1) + [MsgType.VERIFIED, MsgType.RESULT]
    assert kinds[:len(want)] == want, kinds
    info = decode_info(replies[0].payload)
    assert (info.weight_words, info.readback, info.clock_hz) == (n, 1, int(CLK))
    assert decode_error(replies[1].payload) == ErrorCode.NOT_LOADED
    lo = decode_loaded(replies[last].payload)
    assert (lo.next_word, lo.loaded, lo.weight_crc) == (n, True, words_crc(words))
    assert held["words"] == words
    v = decode_verified(replies[last + 1].payload)
    assert (v.crc, v.words) == (words_crc(words), n)
    results = [f for f in replies if f.type == MsgType.RESULT]
    for f in results:
        res = decode_result(f.payload, classes=prog.classes, logit_bits=system.logit_bits, logits=True)
        assert list(res.logits) == [int(x) for x in golden.logits[0]]
        assert res.cls == int(golden.classes[0])
        assert res.check == result_check(image_bytes(img[0], pixels=pixels, max_value=mv), words_crc(words))
    assert [f.seq for f in results] == ([41, 52] if busy_check else [41])
    if busy_check:
        tail = sorted((f.seq, f.type) for f in replies[len(want):len(want) + 2])
        assert tail == [(50, MsgType.VERIFIED), (51, MsgType.ERROR)], tail
        assert decode_error(next(f for f in replies if f.seq == 51).payload) == ErrorCode.BUSY
    assert model.commands["WRITE"] == n
    print(f"sdram words {n}, simulated cycles {cycles}, image cycles "
          f"{decode_result(results[0].payload, logit_bits=system.logit_bits).cycles}, "
          f"refreshes {len(model.refreshes)}")


def test_sdram_system_loads_verifies_and_infers_like_the_golden_model():
    """The whole flow (:func:`_whole_flow`) on the 8-channel model (162 SDRAM words)."""
    _whole_flow(_program("tiny"))


@pytest.mark.slow
def test_load_bound_sdram_system_and_an_image_during_a_readback():
    """The whole flow on the load-bound model (2,184 SDRAM words; most passes wait for their
    segment), then an IMAGE during a read-back: BUSY. About 3.5 CPU minutes (200,000 cycles)."""
    _whole_flow(_program("load_bound"), busy_check=True)


def test_link_answers_an_image_during_a_readback_busy():
    """The host link alone (cheap): an IMAGE whose frame ends while a VERIFY's read-back runs
    is answered BUSY and not handed on; once VERIFIED went out, the same IMAGE is taken."""
    link = UARTHostLink(divisor=DIVISOR, pixels=4, max_value=16, classes=2, logit_bits=8, cycle_bits=8,
                        timeout_bytes=3, weight_words=4, readback=True)
    image = encode_image([1, 2, 3, 4], 9, pixels=4, max_value=16)
    replies, taken = [], []
    answer = [False]

    async def host_tx(ctx):
        for frame, n in ((encode_weights(0, [], 1), 1), (encode_weights(0, [5, 6, 7, 8], 2), 1),
                         (encode_verify(3) + image, 1)):
            n0 = len(replies)
            await drive_uart(ctx, link.rx, frame, DIVISOR)
            for _ in range(100 * BYTE):
                if len(replies) >= n0 + n:
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"no reply to {frame[:8].hex()} (taken: {bool(taken)})")
        assert not taken                   # the image was refused, not handed on
        answer[0] = True                   # the read-back answers now
        for _ in range(100 * BYTE):
            if len(replies) >= 4:
                break
            await ctx.tick()
        await drive_uart(ctx, link.rx, image, DIVISOR)
        for _ in range(100 * BYTE):
            if taken:
                break
            await ctx.tick()

    async def host_rx(ctx):
        decoder = FrameDecoder()
        while True:
            replies.extend(decoder.feed(await sample_uart(ctx, link.tx, 1, DIVISOR, timeout=10 ** 9)))

    async def readback(ctx):
        ctx.set(link.image.ready, 1)
        ctx.set(link.weights.ready, 1)
        while True:
            ctx.set(link.verify.ready, 1)
            ctx.set(link.verified.valid, answer[0])
            ctx.set(link.verified.payload.words, 4)
            await ctx.tick()
            if ctx.get(link.image.valid):
                taken.append(1)

    sim = Simulator(link)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx, background=True)
    sim.add_testbench(readback, background=True)
    sim.run()
    assert [(f.seq, f.type) for f in replies] == [(1, MsgType.LOADED), (2, MsgType.LOADED), (9, MsgType.ERROR),
                                                  (3, MsgType.VERIFIED)]
    assert decode_error(replies[2].payload) == ErrorCode.BUSY
    assert taken


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
    bram = AcceleratorSystem(compile_for_target(_tiny_model(), 8, "ecp5-85f", weights="bram"), divisor=DIVISOR)
    assert "sdram" not in bram.signature.members and bram.info.weight_words == 0
    assert "sdram__" not in rtlil.convert(bram)


@pytest.mark.slow
def test_ulx3s_board_top_synthesizes_with_the_sdram_pins_bound(tmp_path):
    """The ULX3S BoardTop of the sdram program (50 MHz from the PLL) through amaranth-boards'
    platform and ``yosys synth_ecp5`` (no nextpnr): the SDRAM resource's pins are top-level
    ports (DQ 16 ``inout`` pins, 16 ``BIDIR`` I/O cells), with SdramPins' I/O-cell registers and
    DDR clock, beside the UART and LED pins. Synthesis stops before LUT mapping
    (``-run :map_luts``): on this design YoWASP's ``yosys-abc`` exits with status 1 and no
    message (ABC9 and ``-noabc9`` alike; seen 2026-12-08, not investigated), and the pins, I/O
    cells, I/O registers, PLL and DDR buffer are all mapped before it. About 30 s."""
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    from spikeforge.toolchain import find_tool

    prog = _program()
    top = BoardTop(TARGETS["ulx3s-85f"], prog)
    assert top.clock.mhz == 50.0
    plan = ULX3S_85F_Platform().prepare(top, name="top")
    files = dict(plan.files)
    (tmp_path / "top.il").write_text(files["top.il"])
    out = subprocess.run([find_tool("yosys"), "-q", "-p", "read_rtlil top.il; synth_ecp5 -top top -run :map_luts; "
                          "select top; write_json -selected top.json"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=1800)
    assert out.returncode == 0, out.stderr[-2000:]
    mod = json.loads((tmp_path / "top.json").read_text())["modules"]["top"]
    cells = assert_sdram_pins_bound(mod)
    ioff = collections.Counter(c["attributes"].get("ioff_dir") for c in cells if c["type"] == "TRELLIS_FF")
    assert ioff["input"] == 16 and ioff["output"] >= (1 + 4 + 2 + 13 + 2) + 16 + 16
    types = collections.Counter(c["type"] for c in cells)
    assert types["ODDRX1F"] == 1 and types["EHXPLLL"] == 1
    print({k: types[k] for k in ("TRELLIS_FF", "CCU2C", "DP16KD", "MULT18X18D", "TRELLIS_IO")})
