"""The engine's streams under random bubbles and backpressure (amaranth.sim, issue 19 item 4).

Every other engine test holds ``pixels.valid`` and ``result.ready`` high. Here a seeded
producer drops ``pixels.valid`` (and, with the SPRAM mapping, ``weights.valid``) for random
cycles and sends the next image's pixels as soon as the previous ones are taken (so ``valid``
is held through the whole computation), while a consumer drops ``result.ready`` at random,
also while no result is offered. :func:`spikeforge.hdl.testing.stream_get` checks the stream
rules on ``result`` every cycle (``valid`` held, payload unchanged until the transfer).

Checked per image: logits and class equal the golden model; ``events`` equals the executor's;
``cycles`` is the compute time only: it equals the number of cycles from the cycle after the
last pixel's transfer to the first cycle ``result.valid`` is high (docs/accelerator.md), so
neither input bubbles nor result backpressure change it. The same image sent twice under
different stall patterns gives the same ``cycles``, and it equals the executor's exactly
(padded k x k convolutions too: docs/accelerator.md, "Timing rules").
A monitor checks that no pixel moves between an image's last pixel and its class beat.
"""

import random

import numpy as np
import pytest

from spikeforge.builder import random_model
from spikeforge.cli import default_model_path
from spikeforge.hdl.accel.engine import Engine
from spikeforge.hdl.accel.execute import execute_program
from spikeforge.hdl.accel.program import SYN, compile_model
from spikeforge.hdl.testing import simulate, stream_get, stream_put
from spikeforge.modelfile import load_model
from spikeforge.sim.model import run_model


def run_stalled(prog, images, *, seed, pixel_stall=0.3, result_stall=0.5, weight_stall=0.3):
    """Simulate ``Engine(prog)`` on ``images`` with random stalls on every stream.

    Returns a dict of per-image lists: ``logits``, ``classes``, ``cycles``, ``events`` (the
    ports, read after the class beat), ``wait`` (cycles from the last pixel's transfer to the
    first cycle ``result.valid`` is high, less one), and counts of the stall cycles seen:
    ``bubbles`` (pixels.valid low while the engine was ready) and ``refused`` (result.valid
    high, ready low).
    """
    dut = Engine(prog, poison_collisions=True)
    images = np.asarray(images, np.int64)
    K = prog.classes
    pixels_per_image = images[0].size
    rng = random.Random(seed)
    put_rng, get_rng, w_rng = (random.Random(rng.getrandbits(32)) for _ in range(3))
    out = {k: [] for k in ("logits", "classes", "cycles", "events", "wait")}
    seen = {"bubbles": 0, "refused": 0, "pixels": 0, "last_pixel": None, "errors": []}

    async def producer(ctx):
        if prog.memory.kind == "spram":
            words = [{"addr": a, "data": int(w)} for a, w in enumerate(prog.weight_image())]
            await stream_put(ctx, dut.weights, words, rng=w_rng, stall=weight_stall)
        # All images back to back: the next image's first pixel waits, valid held high, while
        # the engine computes and sends the previous result.
        await stream_put(ctx, dut.pixels, images.reshape(-1).tolist(), rng=put_rng, stall=pixel_stall)

    async def consumer(ctx):
        for _ in images:
            beats = await stream_get(ctx, dut.result, K + 1, rng=get_rng, stall=result_stall,
                                     timeout=50 * execute_program(prog, images[0]).total_cycles + 10_000)
            lasts = [b["last"] for b in beats]
            assert lasts == [0] * K + [1], f"result 'last' flags {lasts}"
            out["logits"].append([b["value"] for b in beats[:K]])
            out["classes"].append(beats[K]["value"])
            out["cycles"].append(ctx.get(dut.cycles))
            out["events"].append(ctx.get(dut.events))

    async def monitor(ctx):
        cycle = 0
        offered = True   # the result of the current image was offered already
        while True:
            _, _, pv, pr, rv, rr = await ctx.tick().sample(dut.pixels.valid, dut.pixels.ready,
                                                           dut.result.valid, dut.result.ready)
            if pr and not pv:
                seen["bubbles"] += 1
            if rv and not rr:
                seen["refused"] += 1
            if pv and pr:
                if not offered:
                    seen["errors"].append(f"cycle {cycle}: a pixel moved before the result was offered")
                seen["pixels"] += 1
                if seen["pixels"] % pixels_per_image == 0:
                    seen["last_pixel"], offered = cycle, False
            if rv and pr:
                seen["errors"].append(f"cycle {cycle}: pixels.ready and result.valid both high")
            if rv and not offered:
                out["wait"].append(cycle - seen["last_pixel"] - 1)
                offered = True
            cycle += 1

    simulate(dut, producer, consumer, background=[monitor])
    assert seen["errors"] == [], seen["errors"][:3]
    out.update(bubbles=seen["bubbles"], refused=seen["refused"], pixels=seen["pixels"])
    return out


def check(model, prog, images, r):
    K = prog.classes
    want = run_model(model, images)
    assert r["pixels"] == images.size
    np.testing.assert_array_equal(np.array(r["logits"]).reshape(-1, K), want.logits)
    np.testing.assert_array_equal(r["classes"], want.classes)
    refs = [execute_program(prog, im) for im in images]
    assert r["events"] == [e.events for e in refs]
    # ``cycles`` is the compute time: from the last pixel to the first offered result beat.
    assert r["cycles"] == r["wait"]
    # The cycle model is exact (0 cycles), padded convolutions too.
    assert r["cycles"] == [e.total_cycles for e in refs]
    # The stalls happened (the test is not vacuous).
    assert r["bubbles"] > 0 and r["refused"] > 0, (r["bubbles"], r["refused"])


def _padded(prog):
    return any(p.kind == SYN and p.pad for p in prog.passes)


# Small random models (as tests/accel/test_engine.py makes them): both builds, the three
# attention variants, several lane counts, the SPRAM mapping (weights streamed with bubbles).
# ``embed_kernel=3`` gives a padded 3 x 3 embedding convolution (its padding taps change the
# SYN pipeline's timing), ``embed_kernel=patch`` an unpadded one.
# About 10 s of CPU each at 4 and 8 lanes; the SPRAM mapping at one lane (the weight stream
# with bubbles) is slow (about 25 s); the 2-lane one repeats the 4-lane one (full tier).
RANDOM = [
    # seed, attention, lanes, compact, memory, embed_kernel
    (1, "linear", 4, False, None, 2),
    (4, "qsd", 8, True, None, 3),
    pytest.param(3, "mask", 1, True, "spram", 2, marks=pytest.mark.slow),
    pytest.param(2, "qsd", 2, False, None, 2, marks=pytest.mark.full),
]


@pytest.mark.parametrize("seed,attention,lanes,compact,memory,kernel", RANDOM)
def test_random_model_under_bubbles_and_backpressure(seed, attention, lanes, compact, memory, kernel):
    model = random_model(seed, attention=attention, levels=2, time_steps=2, channels=8, heads=2,
                         blocks=1, patch=2, embed_kernel=kernel, classes=4)
    kw = {"memory": memory} if memory else {}
    prog = compile_model(model, lanes, compact=compact, **kw)
    assert prog.memory.kind == (memory or "bram")
    imgs = np.random.default_rng(seed).integers(0, 17, (2, 8, 8, 1))
    images = np.concatenate([imgs, imgs[:1]])  # the first image again, under other stalls
    r = run_stalled(prog, images, seed=seed)
    check(model, prog, images, r)
    assert r["cycles"][0] == r["cycles"][2]


@pytest.mark.full
def test_shipped_model_under_bubbles_and_backpressure():
    """The shipped model at 4 lanes (its embedding convolutions are padded 3 x 3: ``cycles``
    is checked for stall invariance and against the executor, exactly).
    Full tier (about 100 s of CPU): in the CI tier the shipped model runs under stalls in
    Verilator (tests/accel_verilog: test_default_model_under_bubbles_and_backpressure) and
    the engine in amaranth.sim under stalls on random models (the tests above)."""
    model = load_model(default_model_path())
    prog = compile_model(model, 4)
    from spikeforge.data import load_digits_split

    imgs = load_digits_split("test")[0][:2]
    images = np.concatenate([imgs, imgs[:1]])
    r = run_stalled(prog, images, seed=7, pixel_stall=0.5, result_stall=0.7)
    check(model, prog, images, r)
    assert r["cycles"][0] == r["cycles"][2]
    assert _padded(prog)
