"""cocotb testbench: the unchanged host runtime (HostLink + run_images) talks to the simulated
board system through its UART pins (UARTPinTransport). Parameters (test_parameters()): model
(file), images (count), divisor, timeout (simulated seconds per attempt), out (summary JSON),
corrupt_image (index whose first IMAGE frame is corrupted), corrupt_reply_image (index whose
first RESULT frame is corrupted), lanes, target (device name or "": the memory mapping, as
`spikeforge build` picks it). With the SPRAM mapping the host first loads the weights, and the
second WEIGHTS frame is corrupted (NACKed, retried)."""

import dataclasses
import json

import cocotb
from cocotb.task import bridge

from spikeforge.boards.cli import run_images
from spikeforge.boards.hostlink import ErrorCode
from spikeforge.boards.runtime import HostLink
from spikeforge.boards.sim_board import UARTPinTransport
from spikeforge.data import load_digits_split
from spikeforge.hdl.accel.report import compile_for_target
from spikeforge.modelfile import load_model
from spikeforge.sim.cocotb_util import TB, test_parameters

IMAGE_FRAME_HEADER = 5


@cocotb.test()
async def host_runtime_through_uart_pins(dut):
    p = test_parameters()
    model = load_model(p["model"])
    program = compile_for_target(model, p["lanes"], p["target"] or None)
    spram = program.memory.kind == "spram"
    img = program.image
    images, labels = load_digits_split("test")
    images, labels = images[:p["images"]], labels[:p["images"]]

    tb = TB(dut)
    dut.rx.value = 1
    await tb.start()
    transport = UARTPinTransport(dut, divisor=p["divisor"], period_ns=tb.period_ns)
    link = HostLink(transport, classes=program.classes, pixels=img.H * img.W * img.C,
                    max_value=int(img.levels), timeout=p["timeout"], settle=p["settle"], retries=2)

    reply_len = 4 * program.classes + 5 + 7
    loaded = None
    if spram:
        # write 0: begin load; write 2: the second data chunk, a data byte corrupted
        transport.corrupt_write(2, IMAGE_FRAME_HEADER + 40)
        loaded = await bridge(lambda: link.load_weights(program.weight_image()))()

    def run():
        # Image k's first attempt is write number (writes so far + k): corrupt a pixel byte.
        transport.corrupt_write(transport.writes + p["corrupt_image"], IMAGE_FRAME_HEADER + 10)
        first = run_images(link, model, images[:p["corrupt_reply_image"]], labels[:p["corrupt_reply_image"]])
        # the next reply's byte 12 (a logit byte) arrives corrupted: CRC error, host retries
        transport.corrupt_read(transport.received + 12)
        rest = run_images(link, model, images[p["corrupt_reply_image"]:], labels[p["corrupt_reply_image"]:])
        return first, rest

    first, rest = await bridge(run)()
    transport.close()
    rows = first["results"] + rest["results"]
    summary = {
        "images": len(rows),
        "logits_match": sum(r["logits_match"] for r in rows),
        "accuracy": sum(r["cls"] == r["label"] for r in rows) / len(rows),
        "results": rows,
        "retries": link.stats.retries + (loaded.retries if loaded is not None else 0),
        "nacks": {ErrorCode(k).name: v for k, v in link.stats.nacks.items()},
        "bad_replies": link.stats.bad_replies,
        "timeouts": link.stats.timeouts,
        "latency_s": link.stats.latency(),
        "images_per_second": link.stats.throughput(),
        "board_cycles": link.stats.board_cycles,
        "reply_len": reply_len,
        "leds": int(dut.leds.value),
        "memory": program.memory.kind,
        "weights_loaded": None if loaded is None else dataclasses.asdict(loaded),
    }
    with open(p["out"], "w") as f:
        json.dump(summary, f, indent=1)
    assert summary["logits_match"] == len(rows), "logits differ from the golden model"
    corrupted = 2 if spram else 1   # the IMAGE frame, and a WEIGHTS frame with SPRAM
    assert summary["nacks"].get("BAD_CRC") == corrupted, f"corrupted frames not NACKed: {summary['nacks']}"
    assert summary["bad_replies"] == 1, "corrupted RESULT frame not detected"
    assert summary["retries"] == 1 + corrupted, f"expected exactly {1 + corrupted} retries, got {summary['retries']}"
