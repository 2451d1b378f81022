"""Draw the pictures of docs/plots.md into docs/img/ (small PNGs, 80 dpi).

    python docs/make_images.py [--build-report build/icebreaker/build_report.json]

accel_waveform: one test image through the engine in amaranth.sim (a small random model;
docs/accelerator.md; ``--only waveform`` draws just this one); eval: the shipped model on the
digits test split (360 images); info: the shipped model at one
lane on the iCE40UP5K (the iCEBreaker's build); lanes: ``benchmarks/accel_lanes.py --analytic`` (16 images); build:
the report given (without one, docs/img/build_utilization.png is left as it is). Needs the
plot extra (``pip install -e ".[plot]"``).
"""

import argparse
import importlib.util
import io
import sys
from pathlib import Path

from PIL import Image

from spikeforge import plots
from spikeforge.cli import default_model_path
from spikeforge.data import load_digits_split
from spikeforge.modelfile import atomic_write, load_model

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"
DPI = 80


# --- the accelerator's waveform (docs/accelerator.md, "Integrating the accelerator") -----------

WAVE_SIGNALS = ("pixels__valid", "pixels__ready", "result__valid", "result__ready", "result__last")


def accel_trace(seed=0, lanes=2, stall=(3, 2)):
    """One image through ``Engine`` in amaranth.sim for a small random model.

    The testbench streams the pixels, holds ``result.ready`` high, then drops it for
    ``stall[1]`` cycles after result beat ``stall[0]`` (back-pressure). Returns ``(trace,
    info)``: ``trace`` maps each of :data:`WAVE_SIGNALS` to its value per cycle (sampled at the
    rising edge), ``info`` the program, the engine's ``cycles`` output and the classes.
    """
    from amaranth.sim import Simulator

    from spikeforge.builder import random_model
    from spikeforge.data import load_digits_split
    from spikeforge.hdl.accel.engine import Engine
    from spikeforge.hdl.accel.program import compile_model
    from spikeforge.sim.model import run_model

    model = random_model(seed, channels=8, mlp_ratio=1)
    program = compile_model(model, lanes)
    image = load_digits_split("test")[0][0]
    dut = Engine(program)
    K = program.classes
    trace = {name: [] for name in WAVE_SIGNALS}
    got = {}

    async def bench(ctx):
        ctx.set(dut.result.ready, 1)
        beats, stalled = [], 0
        pixels = [int(v) for v in image.reshape(-1)]
        while len(beats) < K + 1:
            if pixels:
                ctx.set(dut.pixels.payload, pixels[0])
            ctx.set(dut.pixels.valid, bool(pixels))
            ready = not (len(beats) == stall[0] and stalled < stall[1])
            ctx.set(dut.result.ready, ready)
            _, _, pv, pr, rv, rr, last, value = await ctx.tick().sample(
                dut.pixels.valid, dut.pixels.ready, dut.result.valid, dut.result.ready,
                dut.result.payload.last, dut.result.payload.value)
            for name, v in zip(WAVE_SIGNALS, (pv, pr, rv, rr, last)):
                trace[name].append(int(v))
            if pv and pr:
                pixels.pop(0)
            if not ready:
                stalled += 1
            if rv and rr:
                beats.append(value)
        for _ in range(3):  # a few idle cycles after the image
            ctx.set(dut.pixels.valid, 0)
            _, _, pv, pr, rv, rr, last = await ctx.tick().sample(
                dut.pixels.valid, dut.pixels.ready, dut.result.valid, dut.result.ready, dut.result.payload.last)
            for name, v in zip(WAVE_SIGNALS, (pv, pr, rv, rr, last)):
                trace[name].append(int(v))
        got.update(cycles=ctx.get(dut.cycles), logits=beats[:K], cls=beats[K])

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    golden = run_model(model, image[None])
    assert got["logits"] == golden.logits[0].tolist() and got["cls"] == golden.classes[0], \
        "the waveform's image does not match the golden model"
    return trace, dict(program=program, **got)


def draw_accel_waveform(path, dpi=DPI):
    """``accel_waveform.png``: the stream handshakes of one image, the long compute between
    them cut out of the cycle axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    trace, info = accel_trace()
    n = len(trace["pixels__valid"])
    pv, pr = np.array(trace["pixels__valid"]), np.array(trace["pixels__ready"])
    rv = np.array(trace["result__valid"])
    last_pixel = int(np.flatnonzero(pv & pr)[-1])
    first_result = int(np.flatnonzero(rv)[0])
    windows = [(0, last_pixel + 6), (first_result - 5, n)]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.1), sharey=True,
                             gridspec_kw={"width_ratios": [windows[0][1] - windows[0][0],
                                                          windows[1][1] - windows[1][0]], "wspace": 0.04})
    names = list(WAVE_SIGNALS)
    for ax, (lo, hi) in zip(axes, windows):
        x = np.arange(lo, hi + 1)
        for row, name in enumerate(names):
            y0 = (len(names) - 1 - row) * 1.5
            v = np.array(trace[name][lo:hi] + trace[name][hi - 1:hi], float)
            ax.step(x, y0 + 0.9 * v, where="post", lw=1.3, color="C0" if "pixels" in name else "C3")
            both = (np.array(trace[name.split("__")[0] + "__valid"][lo:hi])
                    & np.array(trace[name.split("__")[0] + "__ready"][lo:hi]))
            if name.endswith("valid"):  # shade the cycles where a beat moves
                for c in np.flatnonzero(both):
                    ax.axvspan(lo + c, lo + c + 1, ymin=0, ymax=1, color="0.9", zorder=0)
        ax.set_xlim(lo, hi)
        ax.set_xlabel("cycle")
        ax.spines[["top", "left", "right"]].set_visible(False)
        ax.tick_params(left=False)
    axes[1].spines["left"].set_visible(True)
    axes[1].spines["left"].set_linestyle((0, (2, 2)))
    axes[0].set_yticks([(len(names) - 1 - r) * 1.5 + 0.45 for r in range(len(names))], names)
    prog = info["program"]
    axes[0].set_title(f"{prog.image.H * prog.image.W * prog.image.C} pixel beats", fontsize=9)
    axes[1].set_title(f"... {first_result - last_pixel - 1} cycles of compute cut ... then "
                      f"{prog.classes} logits and the class (last)", fontsize=9)
    fig.suptitle(f"One image through the accelerator (random model, {prog.lanes} lanes; shaded: a beat "
                 f"moves; result.ready dropped for 2 cycles)", fontsize=10, y=1.04)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-report", help="a build_report.json to draw build_utilization.png from")
    ap.add_argument("--only", choices=("waveform",), help="draw only this picture")
    args = ap.parse_args(argv)
    paths = [draw_accel_waveform(OUT / "accel_waveform.png")]
    if args.only == "waveform":
        return _compress(paths)
    model = load_model(default_model_path())
    images, labels = load_digits_split("test")
    paths += plots.plot_eval(model, images, labels, OUT, dpi=DPI)
    paths += plots.plot_info(model, 1, "ice40-up5k", OUT, images=images[:16], dpi=DPI)
    if args.build_report:
        paths += plots.plot_build(args.build_report, OUT, dpi=DPI)
    spec = importlib.util.spec_from_file_location("accel_lanes", ROOT / "benchmarks" / "accel_lanes.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--analytic", "--images", "16", "--plot", str(OUT)])  # draws lanes.png at 100 MHz
    paths.append(OUT / "lanes.png")
    return _compress(paths)


def _compress(paths):
    for p in paths:  # a 64-colour palette: a third of the size, the same to the eye
        buf = io.BytesIO()
        Image.open(p).convert("RGB").quantize(colors=64).save(buf, format="png", optimize=True)
        atomic_write(p, buf.getvalue())
        print(p.relative_to(ROOT), f"{p.stat().st_size / 1024:.0f} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
