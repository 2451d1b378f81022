"""Keyword-parameter checks shared by the hardware units.

Every unit checks its parameters in its constructor and raises at once with a message that
names the unit, the parameter, the offending value and what is allowed.
"""

import numbers

import numpy as np
from amaranth.hdl import Shape

__all__ = ["check_int", "check_choice", "check_bool", "check_shape", "check_int_array", "ceil_log2", "field_bits"]


def check_int(unit, name, value, lo, hi=None):
    """Return ``value`` if it is an integer in ``lo..hi`` (``hi=None``: unbounded)."""
    allowed = f"an integer >= {lo}" if hi is None else f"an integer {lo}..{hi}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{unit}: {name} must be {allowed}, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        raise ValueError(f"{unit}: {name} is {value}; allowed: {allowed}")
    return int(value)


def check_choice(unit, name, value, choices):
    if value not in choices:
        raise ValueError(f"{unit}: {name} is {value!r}; allowed: {', '.join(map(repr, choices))}")
    return value


def check_bool(unit, name, value):
    """Return ``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise TypeError(f"{unit}: {name} is {value!r}; allowed: True or False")
    return value


def check_shape(unit, name, value):
    """Return ``value`` if it is an Amaranth shape or layout (``Shape.cast`` accepts it)."""
    try:
        Shape.cast(value)
    except TypeError as e:
        raise TypeError(f"{unit}: {name} must be a shape or layout, not {value!r}") from e
    return value


def check_int_array(unit, name, value, shape, lo=None, hi=None):
    """Return ``value`` as an int64 array of ``shape`` with every element in ``lo..hi``."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{unit}: {name} must be an integer array, not dtype {arr.dtype}")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{unit}: {name} has shape {tuple(arr.shape)}; expected {tuple(shape)}")
    arr = arr.astype(np.int64)
    for bad in (arr < lo if lo is not None else None, arr > hi if hi is not None else None):
        if bad is not None and bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"{unit}: {name}[{', '.join(map(str, idx))}] = {int(arr[idx])}; "
                             f"allowed: {lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}")
    return arr


def ceil_log2(n):
    """Bits to index ``n`` items (0 for ``n <= 1``)."""
    return max(0, (int(n) - 1).bit_length())


def field_bits(n):
    """Width of an unsigned field indexing ``n`` items; at least 1 so that it is a real signal."""
    return max(1, ceil_log2(n))
