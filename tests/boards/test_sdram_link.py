# amaranth: UnusedElaboratable=no
"""Protocol version 5's weight load into the SDRAM, end to end in the gateware: host-encoded
WEIGHTS and VERIFY frames over the UART line into :class:`UARTHostLink` (``readback``), its
weight words through :class:`SdramWeightLoader` into the controller, VERIFY through
:class:`SdramReadbackCrc`, the controller on the ULX3S pin adapter with the cycle-accurate SDRAM
model on the pins; the replies decoded by the host codec."""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from spikeforge.boards.hostlink import (
    ErrorCode, FrameDecoder, MsgType, decode_error, decode_loaded, decode_verified, encode_verify, encode_weights,
    words_crc,
)
from spikeforge.boards.link_gateware import UARTHostLink
from spikeforge.boards.sdram_load import SdramArbiter, SdramReadbackCrc, SdramWeightLoader
from spikeforge.boards.sdram_pins import IO_DELAY, SdramPins, sdram_pin_bench, simulation_ports
from spikeforge.hdl.sdram import SdramController
from spikeforge.hdl.sdram_timing import ULX3S_SDRAM
from spikeforge.sim.sdram_model import SdramModel
from uart_bits import drive_uart, sample_uart

QUICK = dataclasses.replace(ULX3S_SDRAM, t_power_up_ns=2_000)
DIVISOR = 4
BYTE = 10 * DIVISOR


class SdramLinkSystem(wiring.Component):
    """The link (readback), loader, read-back, arbiter, controller and pins: the weight side of
    the ULX3S board top."""

    def __init__(self, weight_words):
        self.link = UARTHostLink(divisor=DIVISOR, pixels=4, max_value=16, classes=2, logit_bits=8,
                                 cycle_bits=8, timeout_bytes=3, weight_words=weight_words, readback=True)
        self.ctrl = SdramController(clk_hz=50_000_000, part=QUICK, max_count=128, io_delay=IO_DELAY)
        self.loader = SdramWeightLoader(weight_words=weight_words, max_count=128, part=QUICK)
        self.readback = SdramReadbackCrc(max_count=128, part=QUICK)
        self.arb = SdramArbiter(2, max_count=128, part=QUICK)
        self.ports = simulation_ports(QUICK)
        self.pins = SdramPins(QUICK, ports=self.ports)
        super().__init__({"rx": wiring.In(1, init=1), "tx": wiring.Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        for name in ("link", "ctrl", "loader", "readback", "arb", "pins"):
            m.submodules[name] = getattr(self, name)
        m.d.comb += [self.link.rx.eq(self.rx), self.tx.eq(self.link.tx),
                     self.link.image.ready.eq(1), self.link.result.valid.eq(0)]
        wiring.connect(m, self.ctrl.sdram, self.pins.sdram)
        wiring.connect(m, self.arb.req, self.ctrl.req)
        wiring.connect(m, self.ctrl.r, self.arb.r)
        wiring.connect(m, self.link.weights, self.loader.weights)
        wiring.connect(m, self.loader.req, self.arb.ports[0].req)
        wiring.connect(m, self.loader.w, self.ctrl.w)
        wiring.connect(m, self.link.verify, self.readback.start)
        wiring.connect(m, self.readback.result, self.link.verified)
        wiring.connect(m, self.readback.req, self.arb.ports[1].req)
        wiring.connect(m, self.arb.ports[1].r, self.readback.r)
        return m


def _run(steps, weight_words, *, between=None):
    """Each step: ``(frame, replies to wait for)``; ``between(step_index, model)`` runs after
    each step's replies. Returns the decoded replies and the model."""
    dut = SdramLinkSystem(weight_words)
    model = SdramModel(QUICK.timing(50_000_000, 2))
    replies = []

    async def host_tx(ctx):
        while not ctx.get(dut.ctrl.init_done):
            await ctx.tick()
        for k, (frame, n) in enumerate(steps):
            n0 = len(replies)
            await drive_uart(ctx, dut.rx, frame, DIVISOR)
            for _ in range(400 * BYTE):
                if len(replies) >= n0 + n:
                    break
                await ctx.tick()
            else:
                raise AssertionError(f"no reply to {frame[:8].hex()}: {replies[n0:]}")
            if between is not None:
                between(k, model)

    async def host_rx(ctx):
        decoder = FrameDecoder()
        while True:
            replies.extend(decoder.feed(await sample_uart(ctx, dut.tx, 1, DIVISOR, timeout=10 ** 9)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(host_tx)
    sim.add_testbench(host_rx, background=True)
    sim.add_testbench(sdram_pin_bench(model, dut.ports), background=True)
    sim.run()
    out = []
    for f in replies:
        if f.type == MsgType.LOADED:
            out.append((f.seq, "LOADED", decode_loaded(f.payload)))
        elif f.type == MsgType.VERIFIED:
            out.append((f.seq, "VERIFIED", decode_verified(f.payload)))
        else:
            assert f.type == MsgType.ERROR, f
            out.append((f.seq, "ERROR", decode_error(f.payload)))
    return out, model


def _words(n, seed):
    return [int(v) for v in np.random.default_rng(seed).integers(0, 1 << 16, n)]


def test_load_over_the_link_then_verify_reads_the_sdram_back():
    """Begin load, three chunks, VERIFY: every
    LOADED carries the CRC of the words so far, the part holds the words, and VERIFIED carries
    the CRC-32C of the words read back from the SDRAM, equal to the host's CRC of the words
    sent. A second VERIFY after a word is flipped in the part's memory gives another CRC: the
    host's check fails (tests/boards/test_weights_runtime.py: the host's error)."""
    n = 120
    words = _words(n, 21)
    steps = [(encode_weights(0, [], 1), 1), (encode_weights(0, words[:50], 2), 1),
             (encode_weights(50, words[50:100], 3), 1), (encode_weights(100, words[100:], 4), 1),
             (encode_verify(5), 1), (encode_verify(6), 1)]

    def between(k, model):
        if k == 4:
            assert [model.word(a) for a in range(n)] == words
            model.mem[107] ^= 0x8000

    out, model = _run(steps, n, between=between)
    assert [(seq, kind) for seq, kind, _ in out] == [(1, "LOADED"), (2, "LOADED"), (3, "LOADED"), (4, "LOADED"),
                                                     (5, "VERIFIED"), (6, "VERIFIED")]
    for (_, _, loaded), end in zip(out[:4], (0, 50, 100, 120)):
        assert (loaded.next_word, loaded.loaded, loaded.weight_crc) == (end, end == n, words_crc(words[:end]))
    good, bad = out[4][2], out[5][2]
    assert (good.crc, good.words) == (words_crc(words), n)
    flipped = list(words)
    flipped[107] ^= 0x8000
    assert (bad.crc, bad.words) == (words_crc(flipped), n) and bad.crc != words_crc(words)
    assert model.commands["WRITE"] == n and model.commands["READ"] == 2 * n


def test_verify_before_loading_and_offsets_beyond_16_bits():
    """VERIFY before any load reads nothing back (CRC 0, 0 words). A WEIGHTS offset above
    65535 (version 5's u32 offset) is checked in full: a board at next_word 0 answers
    BAD_OFFSET for offset 65536 (whose low 16 bits are 0)."""
    steps = [(encode_verify(7), 1), (encode_weights(0, [], 8), 1), (encode_weights(1 << 16, [1, 2], 9), 1)]
    out, _ = _run(steps, 40)
    assert out[0] == (7, "VERIFIED", decode_verified(bytes(8)))
    assert out[1][1] == "LOADED" and out[2] == (9, "ERROR", ErrorCode.BAD_OFFSET)


def test_readback_parameter_checks():
    with pytest.raises(ValueError, match="readback with weight_words 0"):
        UARTHostLink(divisor=4, readback=True)
    with pytest.raises(TypeError, match="readback is 1"):
        UARTHostLink(divisor=4, weight_words=4, readback=1)
