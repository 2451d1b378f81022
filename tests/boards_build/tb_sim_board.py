"""cocotb testbench: the unchanged host runtime (HostLink + run_images) talks to the simulated
board system through its UART pins (UARTPinTransport). Parameters (test_parameters()): model
(file), images (count), divisor, timeout (simulated seconds per attempt), out (summary JSON),
corrupt_image (index whose first IMAGE frame is corrupted), corrupt_reply_image (index whose
first RESULT frame is corrupted)."""

import json

import cocotb
from cocotb.task import bridge

from spikeforge.boards.cli import run_images
from spikeforge.boards.hostlink import ErrorCode
from spikeforge.boards.runtime import HostLink
from spikeforge.boards.sim_board import UARTPinTransport
from spikeforge.data import load_digits_split
from spikeforge.hdl.accel.program import compile_model
from spikeforge.modelfile import load_model
from spikeforge.sim.cocotb_util import TB, test_parameters

IMAGE_FRAME_HEADER = 5


@cocotb.test()
async def host_runtime_through_uart_pins(dut):
    p = test_parameters()
    model = load_model(p["model"])
    program = compile_model(model, 1)
    img = program.image
    images, labels = load_digits_split("test")
    images, labels = images[:p["images"]], labels[:p["images"]]

    tb = TB(dut)
    dut.rx.value = 1
    await tb.start()
    transport = UARTPinTransport(dut, divisor=p["divisor"], period_ns=tb.period_ns)
    link = HostLink(transport, classes=program.classes, pixels=img.H * img.W * img.C,
                    max_value=int(img.levels), timeout=p["timeout"], settle=p["settle"], retries=2)

    # Image k's first attempt is write number k (no retry before it): corrupt a pixel byte.
    transport.corrupt_write(p["corrupt_image"], IMAGE_FRAME_HEADER + 10)
    reply_len = 4 * program.classes + 5 + 7

    def run():
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
        "retries": link.stats.retries,
        "nacks": {ErrorCode(k).name: v for k, v in link.stats.nacks.items()},
        "bad_replies": link.stats.bad_replies,
        "timeouts": link.stats.timeouts,
        "latency_s": link.stats.latency(),
        "images_per_second": link.stats.throughput(),
        "board_cycles": link.stats.board_cycles,
        "reply_len": reply_len,
        "leds": int(dut.leds.value),
    }
    with open(p["out"], "w") as f:
        json.dump(summary, f, indent=1)
    assert summary["logits_match"] == len(rows), "logits differ from the golden model"
    assert summary["nacks"].get("BAD_CRC") == 1, f"corrupted IMAGE frame not NACKed: {summary['nacks']}"
    assert summary["bad_replies"] == 1, "corrupted RESULT frame not detected"
    assert summary["retries"] == 2, f"expected exactly 2 retries, got {summary['retries']}"
