# amaranth: UnusedElaboratable=no
"""Standalone Verilog generation of single hardware units (``spikeforge generate unit``).

``UNITS`` maps a unit name (the name of its golden function) to a factory taking scalar
keyword parameters; tensors (weights, per-channel constants) are made from scalars: random
signed weights from ``seed``, or one value broadcast to every channel.

Every parameter of every unit has a default and a documented range (:data:`PARAMS`,
:func:`describe_units`, ``spikeforge generate unit list``): ``generate unit NAME`` with no
``-p`` writes the unit at its defaults.
"""

import pathlib

import numpy as np
from amaranth.back import verilog

from ..modelfile import atomic_write
from .conv_window import ConvWindowScan
from .event_encoder import SpikeEventEncoder
from .lif_array import MODES, LifArray
from .sparse_add import SparseAdd
from .spike_attention import SpikeAttentionLinear, SpikeAttentionMask

__all__ = ["UNITS", "PARAMS", "make_unit", "generate_unit", "describe_units", "UnitError"]


class UnitError(ValueError):
    """Unknown unit or parameter, or a value of the wrong kind."""


def _sparse_add(*, in_channels=16, out_channels=16, kernel=1, weight_bits=4, levels=1, lanes=8,
                seed=0, fast=False, banks=1):
    """Random signed ``weight_bits``-bit weights ``[kernel, kernel, in, out]`` from ``seed``."""
    if not isinstance(weight_bits, int) or not 2 <= weight_bits <= 16:
        raise UnitError(f"sparse_add: weight_bits is {weight_bits!r}; allowed: an integer 2..16")
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    for name, value in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("kernel", kernel)):
        if not isinstance(value, int) or value < 1:
            raise UnitError(f"sparse_add: {name} is {value!r}; allowed: an integer >= 1")
    w = rng.integers(lo, hi + 1, (kernel, kernel, in_channels, out_channels))
    return SparseAdd(weight=w, levels=levels, lanes=lanes, fast=fast, banks=banks)


def _lif_array(*, channels=16, tokens=64, lanes=8, time_steps=4, in_bits=12, out_bits=8,
               mult=1, bias=0, shift=0, mode="lif", theta=1, leak=1, reset="hard", levels=1,
               ms_shift=0):
    """Accumulator range: the signed ``in_bits`` range; ``mult``, ``bias``, ``theta`` broadcast."""
    if not isinstance(in_bits, int) or not 2 <= in_bits <= 48:
        raise UnitError(f"lif_array: in_bits is {in_bits!r}; allowed: an integer 2..48")
    if not isinstance(channels, int) or channels < 1:
        raise UnitError(f"lif_array: channels is {channels!r}; allowed: an integer >= 1")
    full = [np.full(channels, v, np.int64) if isinstance(v, int) else v for v in (mult, bias, theta)]
    return LifArray(channels=channels, tokens=tokens, lanes=lanes, time_steps=time_steps,
                    in_lo=-(1 << (in_bits - 1)), in_hi=(1 << (in_bits - 1)) - 1,
                    mult=full[0], bias=full[1], shift=shift, out_bits=out_bits, mode=mode,
                    theta=full[2], leak=leak, reset=reset, levels=levels, ms_shift=ms_shift)


def _attention_mask(*, channels=16, tokens=64, time_steps=4, theta=1, leak=1, reset="hard"):
    """``theta`` broadcast to every channel."""
    if not isinstance(channels, int) or channels < 1:
        raise UnitError(f"spike_attention_mask: channels is {channels!r}; allowed: an integer >= 1")
    return SpikeAttentionMask(channels=channels, tokens=tokens, time_steps=time_steps,
                              theta=np.full(channels, theta, np.int64) if isinstance(theta, int)
                              else theta, leak=leak, reset=reset)


UNITS = {
    "spike_event_encoder": lambda **kw: SpikeEventEncoder(**kw),
    "sparse_add": _sparse_add,
    "conv_window_scan": lambda **kw: ConvWindowScan(**kw),
    "lif_array": _lif_array,
    "spike_attention_mask": _attention_mask,
    "spike_attention_linear": lambda **kw: SpikeAttentionLinear(**kw),
}

_CHANNELS = (16, "an integer 1..4096")
_TOKENS = (64, "an integer 1..1048576")
_TIME_STEPS = (4, "an integer 1..64")
_LANES = (8, "an integer 1..1024")
_RESET = ("hard", "hard or soft")

#: unit -> {parameter: (default, allowed)}: every parameter a unit takes, in its order
PARAMS = {
    "spike_event_encoder": {"channels": _CHANNELS, "levels": (1, "an integer 1..65535 (spike levels)"),
                            "fast": (False, "the row scan's fast mode, the engine's fast build's: true or false")},
    "sparse_add": {
        "in_channels": (16, "an integer >= 1"), "out_channels": (16, "an integer >= 1"),
        "kernel": (1, "an integer >= 1 (weights [kernel, kernel, in, out])"),
        "weight_bits": (4, "an integer 2..16"), "levels": (1, "an integer 1..65535"), "lanes": _LANES,
        "seed": (0, "an integer >= 0 (the random weights)"),
        "fast": (False, "the accumulate core's registered sums, the engine's fast build's: true or false"),
        "banks": (1, "1 or 2 (accumulator sets taking turns by group, as the engine's)"),
    },
    "conv_window_scan": {
        "height": (8, "an integer 1..4096"), "width": (8, "an integer 1..4096"), "kernel": (1, "an integer 1..15"),
        "stride": (1, "an integer 1..15"), "padding": (0, "an integer 0..kernel-1"),
    },
    "lif_array": {
        "channels": _CHANNELS, "tokens": _TOKENS, "lanes": _LANES, "time_steps": _TIME_STEPS,
        "in_bits": (12, "an integer 2..48 (signed input range)"), "out_bits": (8, "an integer 2..32"),
        "mult": (1, "an integer -8388608..8388607, every channel"), "bias": (0, "an integer, every channel"),
        "shift": (0, "an integer 0..47"), "mode": ("lif", " or ".join(MODES)),
        "theta": (1, "an integer 1..2**40, every channel"), "leak": (1, "an integer 0..16"), "reset": _RESET,
        "levels": (1, "an integer 1..255"), "ms_shift": (0, "an integer 0..31"),
    },
    "spike_attention_mask": {
        "channels": _CHANNELS, "tokens": _TOKENS, "time_steps": _TIME_STEPS,
        "theta": (1, "an integer 1..2**40, every channel"), "leak": (1, "an integer 0..16"), "reset": _RESET,
    },
    "spike_attention_linear": {
        "channels": _CHANNELS, "heads": (2, "an integer 1..channels that divides channels"), "tokens": _TOKENS,
        "levels_q": (1, "an integer 1..255"), "levels_k": (1, "an integer 1..255"),
        "levels_v": (1, "an integer 1..255"),
    },
}


def describe_units():
    """``{unit: [{"name", "default", "allowed"}]}`` for every unit (``generate unit list``)."""
    return {unit: [{"name": k, "default": d, "allowed": a} for k, (d, a) in PARAMS[unit].items()]
            for unit in UNITS}


def _parse(value):
    """``"12"``, ``"0x10"`` -> int; ``"true"``, ``"false"`` -> bool; anything else stays a
    string; non-strings unchanged."""
    if isinstance(value, str):
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        try:
            return int(value, 0)
        except ValueError:
            return value
    return value


def make_unit(name, params=None):
    """Build unit ``name`` from ``params`` (values may be strings from a command line)."""
    if name not in UNITS:
        raise UnitError(f"unknown unit {name!r}; known: {', '.join(UNITS)}")
    params = {k: _parse(v) for k, v in (params or {}).items()}
    allowed = PARAMS[name]
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise UnitError(f"unit {name!r}: unknown parameter(s) {unknown}; allowed: {', '.join(allowed)} "
                        "(see `spikeforge generate unit list`)")
    try:
        return UNITS[name](**{**{k: d for k, (d, _) in allowed.items()}, **params})
    except (TypeError, ValueError) as e:
        if isinstance(e, UnitError):
            raise
        raise UnitError(f"unit {name!r}: {e}") from e


def generate_unit(name, params, out_dir):
    """Write Verilog of unit ``name`` to ``out_dir/<name>.v`` and return the path."""
    unit = make_unit(name, params)
    path = pathlib.Path(out_dir) / f"{name}.v"
    atomic_write(path, verilog.convert(unit, name=name).encode())
    return path
