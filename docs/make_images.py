"""Draw the pictures of docs/plots.md into docs/img/ (small PNGs, 80 dpi).

    python docs/make_images.py [--build-report build/icebreaker/build_report.json]

eval: the shipped model on the digits test split (360 images); info: the shipped model at one
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build-report", help="a build_report.json to draw build_utilization.png from")
    args = ap.parse_args(argv)
    model = load_model(default_model_path())
    images, labels = load_digits_split("test")
    paths = plots.plot_eval(model, images, labels, OUT, dpi=DPI)
    paths += plots.plot_info(model, 1, "ice40-up5k", OUT, images=images[:16], dpi=DPI)
    if args.build_report:
        paths += plots.plot_build(args.build_report, OUT, dpi=DPI)
    spec = importlib.util.spec_from_file_location("accel_lanes", ROOT / "benchmarks" / "accel_lanes.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--analytic", "--images", "16", "--plot", str(OUT)])  # draws lanes.png at 100 MHz
    paths.append(OUT / "lanes.png")
    for p in paths:  # a 64-colour palette: a third of the size, the same to the eye
        buf = io.BytesIO()
        Image.open(p).convert("RGB").quantize(colors=64).save(buf, format="png", optimize=True)
        atomic_write(p, buf.getvalue())
        print(p.relative_to(ROOT), f"{p.stat().st_size / 1024:.0f} KiB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
