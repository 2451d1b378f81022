"""The model graph: nodes, operator schemas, shape and value-bound inference, validation.

Everything a model file may contain is checked here against ``docs/spec.md``; the bounds
computed by :func:`infer` (§9 of the specification) are the ones hardware widths derive from.
"""

import dataclasses
import math

import numpy as np

__all__ = [
    "ModelError", "Node", "Model", "TensorInfo", "OPS", "SPEC_VERSION",
    "infer", "validate", "signed_range", "bits_for_range",
]

SPEC_VERSION = 1


class ModelError(ValueError):
    """A model (file or in-memory graph) that violates the specification.

    The message is one line naming the node, the offending value and what is allowed.
    """


def signed_range(bits):
    """Inclusive range of a signed ``bits``-bit integer."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def bits_for_range(lo, hi):
    """Smallest signed width holding every integer in ``lo..hi``."""
    bits = 1
    while not (signed_range(bits)[0] <= lo and hi <= signed_range(bits)[1]):
        bits += 1
    return bits


@dataclasses.dataclass
class Node:
    name: str
    op: str
    inputs: list
    attrs: dict
    tensors: dict  # name -> np.ndarray of integers


@dataclasses.dataclass
class Model:
    time_steps: int
    nodes: list
    metadata: dict = dataclasses.field(default_factory=dict)

    def node(self, name):
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    @property
    def input(self):
        return self.nodes[0]

    @property
    def head(self):
        return self.nodes[-1]


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Shape ``(H, W, C)`` and proven value range ``lo..hi`` of a node's output (per image,
    per time step). ``levels`` is D for spike tensors and ``None`` for integer tensors."""
    shape: tuple
    lo: int
    hi: int
    levels: object = None

    @property
    def is_spikes(self):
        return self.levels is not None

    @property
    def bits(self):
        return bits_for_range(self.lo, self.hi)


# Operator schema: input count, integer attributes with allowed ranges, tensors.
_INT = (int, np.integer)
OPS = {
    "input": dict(inputs=0, attrs={"height": (1, 1024), "width": (1, 1024),
                                   "channels": (1, 4096), "max_value": (1, 65535)},
                  tensors=()),
    "conv": dict(inputs=1, attrs={"kernel": (1, 15), "stride": (1, 15), "padding": (0, 7),
                                  "in_channels": (1, 4096), "out_channels": (1, 4096),
                                  "weight_bits": (2, 16), "acc_bits": (2, 48),
                                  "mult_bits": (2, 24), "shift": (0, 47), "out_bits": (2, 32)},
                 tensors=("weight", "mult", "bias")),
    "lif": dict(inputs=1, attrs={"leak": (0, 16), "reset": ("hard", "soft")},
                tensors=("theta",)),
    "multispike": dict(inputs=1, attrs={"levels": (1, 255), "shift": (0, 31)}, tensors=()),
    "add": dict(inputs=2, attrs={"out_bits": (2, 32)}, tensors=()),
    "sdsa_mask": dict(inputs=3, attrs={"leak": (0, 16), "reset": ("hard", "soft")},
                      tensors=("theta",)),
    "sdsa_linear": dict(inputs=3, attrs={"heads": (1, 4096)}, tensors=()),
    "pool": dict(inputs=1, attrs={"acc_bits": (2, 48), "mult_bits": (2, 24),
                                  "shift": (0, 47), "out_bits": (2, 32)},
                 tensors=("mult", "bias")),
    "head": dict(inputs=1, attrs={"in_channels": (1, 4096), "classes": (1, 4096),
                                  "weight_bits": (2, 16), "acc_bits": (2, 48)},
                 tensors=("weight", "bias")),
}


def _fail(node, message):
    raise ModelError(f"node {node.name!r} ({node.op}): {message}")


def _check_attrs(node):
    schema = OPS[node.op]
    for key, allowed in schema["attrs"].items():
        if key not in node.attrs:
            _fail(node, f"missing attribute {key!r}")
        value = node.attrs[key]
        if isinstance(allowed[0], str):
            if value not in allowed:
                _fail(node, f"attribute {key!r} is {value!r}; allowed: {', '.join(allowed)}")
        else:
            if isinstance(value, bool) or not isinstance(value, _INT):
                _fail(node, f"attribute {key!r} must be an integer, not {value!r}")
            if not allowed[0] <= value <= allowed[1]:
                _fail(node, f"attribute {key!r} is {value}; allowed {allowed[0]}..{allowed[1]}")
    extra = set(node.attrs) - set(schema["attrs"])
    if extra:
        _fail(node, f"unknown attribute(s) {sorted(extra)}; allowed: {sorted(schema['attrs'])}")


def _tensor(node, name, shape):
    if name not in node.tensors:
        _fail(node, f"missing tensor {name!r}")
    t = node.tensors[name]
    if not isinstance(t, np.ndarray) or t.dtype.kind not in "iu":
        _fail(node, f"tensor {name!r} must be an integer array, not "
                    f"{getattr(t, 'dtype', type(t).__name__)}")
    if tuple(t.shape) != tuple(shape):
        _fail(node, f"tensor {name!r} has shape {tuple(t.shape)}; expected {tuple(shape)}")
    return t.astype(np.int64)


def _check_range(node, name, t, lo, hi, what):
    bad = (t < lo) | (t > hi)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        _fail(node, f"tensor {name!r}[{', '.join(map(str, idx))}] = {int(t[idx])} is outside "
                    f"{what} {lo}..{hi}")


def _requant_bounds(node, acc_lo, acc_hi, mult, bias):
    """Check the accumulator and requantization product fit (§9); return the output range."""
    acc_bits, mult_bits = node.attrs["acc_bits"], node.attrs["mult_bits"]
    lo, hi = signed_range(acc_bits)
    if acc_lo.min() < lo or acc_hi.max() > hi:
        o = int(np.argmax(np.maximum(lo - acc_lo, acc_hi - hi)))
        _fail(node, f"accumulator of channel {o} reaches {int(acc_lo[o])}..{int(acc_hi[o])}, "
                    f"which overflows the declared acc_bits={acc_bits} ({lo}..{hi})")
    _check_range(node, "mult", mult, *signed_range(mult_bits), f"the signed {mult_bits}-bit range")
    if (mult == 0).any():
        _fail(node, f"tensor 'mult'[{int(np.argmax(mult == 0))}] is 0; multipliers must be non-zero")
    shift = node.attrs["shift"]
    rnd = (1 << (shift - 1)) if shift else 0
    p_lo = np.minimum(acc_lo * mult, acc_hi * mult) + bias + rnd
    p_hi = np.maximum(acc_lo * mult, acc_hi * mult) + bias + rnd
    plo, phi = signed_range(acc_bits + mult_bits)
    if p_lo.min() < plo or p_hi.max() > phi:
        o = int(np.argmax(np.maximum(plo - p_lo, p_hi - phi)))
        _fail(node, f"requantization acc*mult+bias of channel {o} reaches "
                    f"{int(p_lo[o])}..{int(p_hi[o])}, which overflows acc_bits+mult_bits="
                    f"{acc_bits + mult_bits} bits")
    out_lo, out_hi = signed_range(node.attrs["out_bits"])
    return (max(out_lo, int(p_lo.min()) >> shift), min(out_hi, int(p_hi.max()) >> shift))


def _infer_node(node, ins, T):
    """Return the TensorInfo of ``node`` given the infos of its inputs."""
    a = node.attrs
    if node.op == "input":
        return TensorInfo((a["height"], a["width"], a["channels"]), 0, a["max_value"],
                          levels=a["max_value"])

    if node.op in ("conv", "head") and not ins[0].is_spikes:
        _fail(node, f"input {node.inputs[0]!r} carries integers ({ins[0].lo}..{ins[0].hi}), "
                    "not spikes; a synaptic layer needs a neuron or the image before it")

    if node.op == "conv":
        (H, W, C), D = ins[0].shape, ins[0].levels
        k, s, p, ci, co = a["kernel"], a["stride"], a["padding"], a["in_channels"], a["out_channels"]
        if ci != C:
            _fail(node, f"in_channels={ci} but input {node.inputs[0]!r} has {C} channels")
        if p >= k:
            _fail(node, f"padding={p} must be smaller than kernel={k}")
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        if Ho < 1 or Wo < 1:
            _fail(node, f"kernel={k}, stride={s}, padding={p} leave no output on a {H}x{W} grid")
        w = _tensor(node, "weight", (k, k, ci, co))
        wb = a["weight_bits"]
        _check_range(node, "weight", w, *signed_range(wb), f"the signed {wb}-bit range")
        mult = _tensor(node, "mult", (co,))
        bias = _tensor(node, "bias", (co,))
        flat = w.reshape(-1, co)
        acc_lo, acc_hi = D * np.minimum(flat, 0).sum(0), D * np.maximum(flat, 0).sum(0)
        lo, hi = _requant_bounds(node, acc_lo, acc_hi, mult, bias)
        return TensorInfo((Ho, Wo, co), lo, hi)

    if node.op == "lif":
        theta = _tensor(node, "theta", (ins[0].shape[2],))
        _check_range(node, "theta", theta, 1, 1 << 40, "the allowed thresholds")
        return TensorInfo(ins[0].shape, 0, 1, levels=1)

    if node.op == "multispike":
        return TensorInfo(ins[0].shape, 0, a["levels"], levels=a["levels"])

    if node.op == "add":
        if ins[0].shape != ins[1].shape:
            _fail(node, f"inputs {node.inputs[0]!r} {ins[0].shape} and {node.inputs[1]!r} "
                        f"{ins[1].shape} differ in shape")
        lo, hi = signed_range(a["out_bits"])
        return TensorInfo(ins[0].shape, max(lo, ins[0].lo + ins[1].lo),
                          min(hi, ins[0].hi + ins[1].hi))

    if node.op in ("sdsa_mask", "sdsa_linear"):
        for name, info in zip(node.inputs, ins):
            if info.shape != ins[0].shape:
                _fail(node, f"q, k, v shapes differ: {node.inputs[0]!r} {ins[0].shape}, "
                            f"{name!r} {info.shape}")
            if not info.is_spikes:
                _fail(node, f"input {name!r} carries integers, not spikes")
        H, W, C = ins[0].shape
        N = H * W
        if node.op == "sdsa_mask":
            for name, info in zip(node.inputs, ins):
                if info.levels != 1:
                    _fail(node, f"input {name!r} has spike levels 0..{info.levels}; the mask "
                                "form needs binary spikes (levels 0..1)")
            theta = _tensor(node, "theta", (C,))
            _check_range(node, "theta", theta, 1, 1 << 40, "the allowed thresholds")
            return TensorInfo(ins[0].shape, 0, 1, levels=1)
        h = a["heads"]
        if C % h:
            _fail(node, f"heads={h} does not divide the {C} channels")
        d = C // h
        hi = d * N * ins[0].levels * ins[1].levels * ins[2].levels
        return TensorInfo(ins[0].shape, 0, hi)

    if node.op == "pool":
        H, W, C = ins[0].shape
        N = H * W
        mult = _tensor(node, "mult", (C,))
        bias = _tensor(node, "bias", (C,))
        acc_lo = np.full(C, N * ins[0].lo, dtype=np.int64)
        acc_hi = np.full(C, N * ins[0].hi, dtype=np.int64)
        lo, hi = _requant_bounds(node, acc_lo, acc_hi, mult, bias)
        return TensorInfo((1, 1, C), lo, hi)

    if node.op == "head":
        H, W, C = ins[0].shape
        if (H, W) != (1, 1):
            _fail(node, f"input {node.inputs[0]!r} has {H}x{W} tokens; the head needs one "
                        "pooled token (1x1): put a 'pool' node before it")
        if a["in_channels"] != C:
            _fail(node, f"in_channels={a['in_channels']} but input {node.inputs[0]!r} has {C} channels")
        K, wb = a["classes"], a["weight_bits"]
        w = _tensor(node, "weight", (C, K))
        _check_range(node, "weight", w, *signed_range(wb), f"the signed {wb}-bit range")
        bias = _tensor(node, "bias", (K,))
        D = ins[0].levels
        lo = bias + T * D * np.minimum(w, 0).sum(0)
        hi = bias + T * D * np.maximum(w, 0).sum(0)
        blo, bhi = signed_range(a["acc_bits"])
        if lo.min() < blo or hi.max() > bhi:
            j = int(np.argmax(np.maximum(blo - lo, hi - bhi)))
            _fail(node, f"logit {j} reaches {int(lo[j])}..{int(hi[j])}, which overflows the "
                        f"declared acc_bits={a['acc_bits']} ({blo}..{bhi})")
        return TensorInfo((1, 1, K), int(lo.min()), int(hi.max()))
    raise AssertionError(node.op)


def infer(model, partial=False):
    """Validate ``model`` and return ``{node name: TensorInfo}`` (shapes and value bounds).

    Raises :class:`ModelError` on the first violation of the specification. ``partial=True``
    accepts a model under construction that does not end in its head yet.
    """
    T = model.time_steps
    if isinstance(T, bool) or not isinstance(T, _INT) or not 1 <= T <= 64:
        raise ModelError(f"time_steps is {T!r}; allowed: an integer 1..64")
    if not model.nodes:
        raise ModelError("the model has no nodes; it needs an 'input' node first and a 'head' last")
    infos = {}
    for i, node in enumerate(model.nodes):
        if not isinstance(node.name, str) or not node.name:
            raise ModelError(f"node #{i} has no name (got {node.name!r})")
        if node.op not in OPS:
            _fail(node, f"unknown operator {node.op!r}; known: {', '.join(OPS)}")
        if node.name in infos:
            _fail(node, "duplicate node name")
        if (node.op == "input") != (i == 0):
            _fail(node, "the 'input' node must be the first node and appear exactly once")
        if (node.op == "head") != (i == len(model.nodes) - 1) and not (partial and node.op != "head"):
            _fail(node, "the 'head' node must be the last node and appear exactly once")
        n_in = OPS[node.op]["inputs"]
        if len(node.inputs) != n_in:
            _fail(node, f"has {len(node.inputs)} inputs {node.inputs}; the operator takes {n_in}")
        for name in node.inputs:
            if name not in infos:
                _fail(node, f"input {name!r} is not the name of an earlier node")
        _check_attrs(node)
        extra = set(node.tensors) - set(OPS[node.op]["tensors"])
        if extra:
            _fail(node, f"unexpected tensor(s) {sorted(extra)}; the operator takes "
                        f"{list(OPS[node.op]['tensors']) or 'none'}")
        infos[node.name] = _infer_node(node, [infos[n] for n in node.inputs], T)
    return infos


def validate(model):
    """Raise :class:`ModelError` unless ``model`` satisfies the specification."""
    infer(model)
    return model


def lif_membrane_bits(in_info, leak, T):
    """Signed width of the LIF membrane U for inputs in ``in_info.lo..hi`` (§9)."""
    m = max(abs(in_info.lo), abs(in_info.hi))
    bound = 2 * m + 1 if leak >= 1 else T * m  # floor shift adds at most 1/2 a step
    return bits_for_range(-bound, bound)


def ceil_log2(n):
    return max(0, math.ceil(math.log2(n))) if n > 0 else 0
