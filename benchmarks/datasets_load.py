"""Dataset loading speed on full-sized synthetic files in the real formats (no downloads).

Writes, into a temporary folder, MNIST-sized IDX files (60,000 + 10,000 gzipped images), a
CIFAR-10 binary test batch (10,000 records), N-MNIST samples (``--nmnist`` files of about
4,000 events each, the real average) and one DVS128 Gesture trial (``--gesture-events``
events over 12 labelled gestures, like a real ~25 MB AEDAT file), then times each loader on
one core. Prints figures; asserts nothing.

    python benchmarks/datasets_load.py [--nmnist N] [--gesture-events E]
"""

import argparse
import gzip
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from spikeforge.datasets import load_dataset


def idx(array):
    return struct.pack(">BBBB", 0, 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_all(root, rng, n_nmnist, gesture_events):
    mnist = root / "mnist"
    mnist.mkdir()
    for prefix, n in (("train", 60000), ("t10k", 10000)):
        # MNIST-like: mostly zero pixels, so gzip sizes and times resemble the real files.
        x = (rng.random((n, 28, 28)) < 0.2) * rng.integers(0, 256, (n, 28, 28))
        (mnist / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx(x.astype(np.uint8)), 6))
        (mnist / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(
            gzip.compress(idx(rng.integers(0, 10, n).astype(np.uint8))))
    cifar = root / "cifar-10-batches-bin"
    cifar.mkdir()
    rec = rng.integers(0, 256, (10000, 3073), dtype=np.uint8)
    rec[:, 0] %= 10
    (cifar / "test_batch.bin").write_bytes(rec.tobytes())
    for k in range(1, 6):
        (cifar / f"data_batch_{k}.bin").write_bytes(rec.tobytes())
    for i in range(n_nmnist):
        d = root / "nmnist" / "Test" / str(i % 10)
        d.mkdir(parents=True, exist_ok=True)
        n = 4000
        t = np.sort(rng.integers(0, 300000, n))
        ev = np.stack([rng.integers(0, 34, n), rng.integers(0, 34, n),
                       (rng.integers(0, 2, n) << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF], 1)
        (d / f"{i:05d}.bin").write_bytes(ev.astype(np.uint8).tobytes())
    g = root / "DvsGesture"
    g.mkdir()
    (g / "trials_to_test.txt").write_text("user24_led.aedat\n")
    t = np.sort(rng.integers(0, 80_000_000, gesture_events))
    data = (rng.integers(0, 128, gesture_events) << 17) | (rng.integers(0, 128, gesture_events) << 2) \
        | (rng.integers(0, 2, gesture_events) << 1) | 1
    body = [b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"]
    for s in range(0, gesture_events, 4096):            # cAER writes packets of a few thousand events
        chunk = np.stack([data[s:s + 4096], t[s:s + 4096]], 1).astype("<u4")
        body.append(struct.pack("<hhiiiiii", 1, 1, 8, 4, 0, len(chunk), len(chunk), len(chunk)) + chunk.tobytes())
    (g / "user24_led.aedat").write_bytes(b"".join(body))
    rows = [f"{k % 11 + 1},{k * 6_500_000},{k * 6_500_000 + 6_000_000}" for k in range(12)]
    (g / "user24_led_labels.csv").write_text("class,startTime_usec,endTime_usec\n" + "\n".join(rows) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nmnist", type=int, default=2000)
    parser.add_argument("--gesture-events", type=int, default=3_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_all(root, rng, args.nmnist, args.gesture_events)
        size = (root / "DvsGesture" / "user24_led.aedat").stat().st_size / 1e6
        cases = [("mnist", "train", {}, "60,000 gzipped IDX images"),
                 ("mnist", "test", {"max_value": 15}, "10,000 images, requantized to 0..15"),
                 ("cifar10", "train", {}, "50,000 binary records"),
                 ("nmnist", "test", {}, f"{args.nmnist} samples x 4,000 events, T=10"),
                 ("dvs-gesture", "test", {}, f"1 trial, {size:.0f} MB AEDAT, 12 gestures, T=16, 32x32")]
        print(f"{'dataset':12} {'split':5} {'seconds':>8} {'samples/s':>10}  what")
        for name, split, kw, what in cases:
            t0 = time.perf_counter()
            ds = load_dataset(name, split, data_root=root, **kw)
            dt = time.perf_counter() - t0
            print(f"{name:12} {split:5} {dt:8.2f} {len(ds) / dt:10.0f}  {what}")


if __name__ == "__main__":
    main()
