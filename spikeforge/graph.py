"""The model graph: nodes, operator schemas, shape and value-bound inference, validation.

Everything a model file may contain is checked here against ``docs/spec.md``; the bounds
computed by :func:`infer` (§9 of the specification) are the ones hardware widths derive from.
"""

import dataclasses
import math
import re

import numpy as np

__all__ = [
    "ModelError", "Node", "Model", "TensorInfo", "OPS", "SPEC_VERSION",
    "infer", "validate", "tensor_shapes", "signed_range", "bits_for_range",
    "GOLDEN_BITS", "MAX_NODES", "NAME_RE", "ENCODINGS", "input_encoding", "input_shape", "check_inputs",
]

SPEC_VERSION = 1

#: Widest signed value (in bits) the golden model computes exactly: int64 less 2 bits of margin.
GOLDEN_BITS = 62
#: Most nodes a model may have.
MAX_NODES = 1024
#: Node names: 1-128 of ``[A-Za-z0-9_.:-]``, first and last ``[A-Za-z0-9_]`` (and no ``..``).
NAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.:-]{0,126}[A-Za-z0-9_])?")


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


#: The input encodings of §4: the first is the default (a model without the attribute).
ENCODINGS = ("direct", "frames")

# Operator schema: input count, integer attributes with allowed ranges, tensors; ``optional``:
# attributes a node may leave out, whose first allowed value is then the meaning.
_INT = (int, np.integer)
OPS = {
    "input": dict(inputs=0, attrs={"height": (1, 1024), "width": (1, 1024),
                                   "channels": (1, 4096), "max_value": (1, 65535)},
                  optional={"encoding": ENCODINGS}, tensors=()),
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


def _short(value, limit=60):
    """``repr(value)`` cut to ``limit`` characters: error messages stay one short line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _check_attrs(node):
    schema = OPS[node.op]
    if not isinstance(node.attrs, dict):
        _fail(node, f"attrs must be a mapping of attribute names to values, not {_short(node.attrs)}")
    optional = schema.get("optional", {})
    for key, allowed in {**schema["attrs"], **optional}.items():
        if key not in node.attrs:
            if key in optional:
                continue
            _fail(node, f"missing attribute {key!r}")
        value = node.attrs[key]
        if isinstance(allowed[0], str):
            if not isinstance(value, str) or value not in allowed:
                _fail(node, f"attribute {key!r} is {_short(value)}; allowed: {', '.join(allowed)}")
        else:
            if isinstance(value, bool) or not isinstance(value, _INT):
                _fail(node, f"attribute {key!r} must be an integer, not {_short(value)}")
            if not allowed[0] <= value <= allowed[1]:
                _fail(node, f"attribute {key!r} is {value}; allowed {allowed[0]}..{allowed[1]}")
    extra = set(node.attrs) - set(schema["attrs"]) - set(optional)
    if extra:
        _fail(node, f"unknown attribute(s) {_short(sorted(map(str, extra)))}; "
                    f"allowed: {sorted([*schema['attrs'], *optional])}")


def input_encoding(model):
    """The model's input encoding (§4): ``"direct"`` (also for a model file without the
    attribute) or ``"frames"``."""
    return model.input.attrs.get("encoding", ENCODINGS[0])


def input_shape(model):
    """The shape of one input sample (§4): ``(H, W, C)`` for direct encoding, ``(T, H, W, C)``
    for frames."""
    a = model.input.attrs
    hwc = (int(a["height"]), int(a["width"]), int(a["channels"]))
    return (int(model.time_steps), *hwc) if input_encoding(model) == "frames" else hwc


def _words(shape):
    return "x".join(map(str, shape))


def check_inputs(model, images):
    """``images`` as int64 ``[B, *input_shape(model)]`` in ``0..max_value``, or a one-line
    ValueError naming the mismatch (a still image for a frames model and the other way round
    included)."""
    x = np.asarray(images)
    want = input_shape(model)
    enc = input_encoding(model)
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
        what = (f"{want[0]} frames of {_words(want[1:])}, T x H x W x C" if enc == "frames"
                else f"one {_words(want)} image, H x W x C")
        hint = ""
        if enc == "frames" and tuple(x.shape[1:]) == want[1:]:
            hint = "; still images need a model with direct input encoding"
        elif enc == "direct" and x.ndim == len(want) + 2 and tuple(x.shape[2:]) == want:
            hint = "; event frames need a model with frames input encoding (spec §4)"
        raise ValueError(f"images have shape {tuple(int(n) for n in x.shape[1:])}; the model's input "
                         f"({enc} encoding) takes {what} per sample{hint}")
    if x.dtype.kind not in "iub" and x.size and not np.all(x == np.rint(x)):
        raise ValueError("images must hold integers")
    x = np.asarray(x, np.int64)
    mv = int(model.input.attrs["max_value"])
    if x.size and (x.min() < 0 or x.max() > mv):
        raise ValueError(f"image values span {x.min()}..{x.max()}; the model's input allows 0..{mv}")
    return x


def _tensor(node, name, shape):
    if name not in node.tensors:
        _fail(node, f"missing tensor {name!r}")
    t = node.tensors[name]
    if not isinstance(t, np.ndarray) or t.dtype.kind not in "iu" or t.dtype.itemsize > 8:
        _fail(node, f"tensor {name!r} must be an integer array, not "
                    f"{getattr(t, 'dtype', type(t).__name__)}")
    if tuple(t.shape) != tuple(shape):
        _fail(node, f"tensor {name!r} has shape {tuple(t.shape)}; expected {tuple(shape)}")
    return t


def _check_range(node, name, t, lo, hi, what):
    """Every element of ``t`` in ``lo..hi`` (Python integers; no arithmetic on ``t``)."""
    if t.size == 0 or (lo <= int(t.min()) and int(t.max()) <= hi):
        return
    tmin, tmax = int(t.min()), int(t.max())
    bad_value = tmin if tmin < lo else tmax
    idx = tuple(int(i) for i in np.argwhere(t == bad_value)[0])
    _fail(node, f"tensor {name!r}[{', '.join(map(str, idx))}] = {bad_value} is outside "
                f"{what} {lo}..{hi}")


def _plain(attrs):
    """Attributes with NumPy integers made Python integers (exact arithmetic on bounds)."""
    return {k: int(v) if isinstance(v, np.integer) else v for k, v in attrs.items()}


def _ints(a):
    """A 1-D integer array as a list of Python integers (exact, whatever its magnitude)."""
    return [int(v) for v in np.asarray(a).reshape(-1)]


def _weight_sums(w):
    """Per output column, the sums of the negative and of the positive weights (Python ints).

    ``w`` is range-checked first (at most 16 bits, at most 2^20 rows), so int64 sums are exact."""
    flat = w.reshape(-1, w.shape[-1])
    return (_ints(np.minimum(flat, 0).sum(0, dtype=np.int64)),
            _ints(np.maximum(flat, 0).sum(0, dtype=np.int64)))


def _requant_bounds(node, acc_lo, acc_hi, mult, bias):
    """Check the accumulator and requantization product fit (§9); return the output range.

    ``acc_lo``, ``acc_hi``: per-channel lists of Python integers. All arithmetic is on Python
    integers, so no bound can wrap around."""
    acc_bits, mult_bits = int(node.attrs["acc_bits"]), int(node.attrs["mult_bits"])
    if acc_bits + mult_bits > GOLDEN_BITS:
        _fail(node, f"acc_bits+mult_bits={acc_bits + mult_bits} exceeds {GOLDEN_BITS}, the widest "
                    "product the golden model computes exactly (int64 with 2 bits of margin)")
    lo, hi = signed_range(acc_bits)
    for o, (a_lo, a_hi) in enumerate(zip(acc_lo, acc_hi)):
        if a_lo < lo or a_hi > hi:
            _fail(node, f"accumulator of channel {o} reaches {a_lo}..{a_hi}, "
                        f"which overflows the declared acc_bits={acc_bits} ({lo}..{hi})")
    _check_range(node, "mult", mult, *signed_range(mult_bits), f"the signed {mult_bits}-bit range")
    if (mult == 0).any():
        _fail(node, f"tensor 'mult'[{int(np.argmax(mult == 0))}] is 0; multipliers must be non-zero")
    n = acc_bits + mult_bits
    _check_range(node, "bias", bias, -(1 << (n - 1)) + 1, (1 << (n - 1)) - 1,
                 f"|bias| < 2^{n - 1} (acc_bits+mult_bits={n}):")
    shift = int(node.attrs["shift"])
    rnd = (1 << (shift - 1)) if shift else 0
    plo, phi = signed_range(n)
    p_min, p_max = None, None
    for o, (a_lo, a_hi, m, b) in enumerate(zip(acc_lo, acc_hi, _ints(mult), _ints(bias))):
        q_lo, q_hi = min(a_lo * m, a_hi * m) + b + rnd, max(a_lo * m, a_hi * m) + b + rnd
        if q_lo < plo or q_hi > phi:
            _fail(node, f"requantization acc*mult+bias of channel {o} reaches "
                        f"{q_lo}..{q_hi}, which overflows acc_bits+mult_bits={n} bits")
        p_min = q_lo if p_min is None else min(p_min, q_lo)
        p_max = q_hi if p_max is None else max(p_max, q_hi)
    out_lo, out_hi = signed_range(int(node.attrs["out_bits"]))
    return (max(out_lo, p_min >> shift), min(out_hi, p_max >> shift))


def _structure(node, ins):
    """Shape and spike levels of ``node``'s output from its attributes and its inputs, with
    every structural check (no tensor values). Returns ``(TensorInfo without bounds,
    {tensor name: expected shape})``."""
    a = node.attrs
    if node.op == "input":
        return TensorInfo((a["height"], a["width"], a["channels"]), None, None,
                          levels=a["max_value"]), {}

    if node.op in ("conv", "head") and not ins[0].is_spikes:
        _fail(node, f"input {node.inputs[0]!r} carries integers, not spikes; a synaptic layer "
                    "needs a neuron or the image before it")

    if node.op == "conv":
        H, W, C = ins[0].shape
        k, s, p, ci, co = a["kernel"], a["stride"], a["padding"], a["in_channels"], a["out_channels"]
        if ci != C:
            _fail(node, f"in_channels={ci} but input {node.inputs[0]!r} has {C} channels")
        if p >= k:
            _fail(node, f"padding={p} must be smaller than kernel={k}")
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        if Ho < 1 or Wo < 1:
            _fail(node, f"kernel={k}, stride={s}, padding={p} leave no output on a {H}x{W} grid")
        return (TensorInfo((Ho, Wo, co), None, None),
                {"weight": (k, k, ci, co), "mult": (co,), "bias": (co,)})

    if node.op == "lif":
        return TensorInfo(ins[0].shape, None, None, levels=1), {"theta": (ins[0].shape[2],)}

    if node.op == "multispike":
        return TensorInfo(ins[0].shape, None, None, levels=a["levels"]), {}

    if node.op == "add":
        if ins[0].shape != ins[1].shape:
            _fail(node, f"inputs {node.inputs[0]!r} {ins[0].shape} and {node.inputs[1]!r} "
                        f"{ins[1].shape} differ in shape")
        return TensorInfo(ins[0].shape, None, None), {}

    if node.op in ("sdsa_mask", "sdsa_linear"):
        for name, info in zip(node.inputs, ins):
            if info.shape != ins[0].shape:
                _fail(node, f"q, k, v shapes differ: {node.inputs[0]!r} {ins[0].shape}, "
                            f"{name!r} {info.shape}")
            if not info.is_spikes:
                _fail(node, f"input {name!r} carries integers, not spikes")
        C = ins[0].shape[2]
        if node.op == "sdsa_mask":
            for name, info in zip(node.inputs, ins):
                if info.levels != 1:
                    _fail(node, f"input {name!r} has spike levels 0..{info.levels}; the mask "
                                "form needs binary spikes (levels 0..1)")
            return TensorInfo(ins[0].shape, None, None, levels=1), {"theta": (C,)}
        if C % a["heads"]:
            _fail(node, f"heads={a['heads']} does not divide the {C} channels")
        return TensorInfo(ins[0].shape, None, None), {}

    if node.op == "pool":
        C = ins[0].shape[2]
        return TensorInfo((1, 1, C), None, None), {"mult": (C,), "bias": (C,)}

    if node.op == "head":
        H, W, C = ins[0].shape
        if (H, W) != (1, 1):
            _fail(node, f"input {node.inputs[0]!r} has {H}x{W} tokens; the head needs one "
                        "pooled token (1x1): put a 'pool' node before it")
        if a["in_channels"] != C:
            _fail(node, f"in_channels={a['in_channels']} but input {node.inputs[0]!r} has {C} channels")
        K = a["classes"]
        return TensorInfo((1, 1, K), None, None), {"weight": (C, K), "bias": (K,)}
    raise AssertionError(node.op)


def _bounds(node, ins, T, info, t):
    """The proven value range ``lo, hi`` of ``node``'s output (§9) from its tensors ``t``."""
    a = _plain(node.attrs)
    if node.op == "input":
        return 0, a["max_value"]

    if node.op == "conv":
        wb = a["weight_bits"]
        _check_range(node, "weight", t["weight"], *signed_range(wb), f"the signed {wb}-bit range")
        D = ins[0].levels
        neg, pos = _weight_sums(t["weight"])
        return _requant_bounds(node, [D * v for v in neg], [D * v for v in pos],
                               t["mult"], t["bias"])

    if node.op in ("lif", "sdsa_mask"):
        _check_range(node, "theta", t["theta"], 1, 1 << 40, "the allowed thresholds")
        if node.op == "lif":
            m = max(abs(ins[0].lo), abs(ins[0].hi))
            bound = 2 * m + 1 if a["leak"] >= 1 else T * m
            if bound >= 1 << (GOLDEN_BITS - 1):
                _fail(node, f"the membrane reaches +-{bound} (§9), beyond the signed {GOLDEN_BITS}-bit "
                            "range the golden model computes exactly")
        return 0, 1

    if node.op == "multispike":
        return 0, a["levels"]

    if node.op == "add":
        lo, hi = signed_range(a["out_bits"])
        return max(lo, ins[0].lo + ins[1].lo), min(hi, ins[0].hi + ins[1].hi)

    if node.op == "sdsa_linear":
        H, W, C = ins[0].shape
        d = C // a["heads"]
        return 0, d * H * W * ins[0].levels * ins[1].levels * ins[2].levels

    if node.op == "pool":
        H, W, C = ins[0].shape
        N = H * W
        return _requant_bounds(node, [N * ins[0].lo] * C, [N * ins[0].hi] * C, t["mult"], t["bias"])

    if node.op == "head":
        wb, acc_bits = a["weight_bits"], a["acc_bits"]
        _check_range(node, "weight", t["weight"], *signed_range(wb), f"the signed {wb}-bit range")
        blo, bhi = signed_range(acc_bits)
        _check_range(node, "bias", t["bias"], blo, bhi, f"the declared acc_bits={acc_bits} range")
        D = ins[0].levels
        neg, pos = _weight_sums(t["weight"])
        lo = [b + T * D * v for b, v in zip(_ints(t["bias"]), neg)]
        hi = [b + T * D * v for b, v in zip(_ints(t["bias"]), pos)]
        for j, (l_j, h_j) in enumerate(zip(lo, hi)):
            if l_j < blo or h_j > bhi:
                _fail(node, f"logit {j} reaches {l_j}..{h_j}, which overflows the "
                            f"declared acc_bits={acc_bits} ({blo}..{bhi})")
        return min(lo), max(hi)
    raise AssertionError(node.op)


def _walk(model, partial, values):
    T = model.time_steps
    if isinstance(T, bool) or not isinstance(T, _INT) or not 1 <= T <= 64:
        raise ModelError(f"time_steps is {_short(T)}; allowed: an integer 1..64")
    T = int(T)
    if not isinstance(model.nodes, list) or not model.nodes:
        raise ModelError("the model has no nodes; it needs an 'input' node first and a 'head' last")
    if len(model.nodes) > MAX_NODES:
        raise ModelError(f"the model has {len(model.nodes)} nodes; allowed: at most {MAX_NODES}")
    infos, shapes = {}, {}
    for i, node in enumerate(model.nodes):
        if not isinstance(node.name, str) or not NAME_RE.fullmatch(node.name) or ".." in node.name:
            raise ModelError(f"node #{i} has the name {_short(node.name)}; allowed: 1 to 128 "
                             "letters, digits and '_.:-', starting and ending with a letter, digit "
                             "or '_', no '..'")
        if not isinstance(node.op, str) or node.op not in OPS:
            _fail(node, f"unknown operator {_short(node.op)}; known: {', '.join(OPS)}")
        if node.name in infos:
            _fail(node, "duplicate node name")
        if (node.op == "input") != (i == 0):
            _fail(node, "the 'input' node must be the first node and appear exactly once")
        if (node.op == "head") != (i == len(model.nodes) - 1) and not (partial and node.op != "head"):
            _fail(node, "the 'head' node must be the last node and appear exactly once")
        n_in = OPS[node.op]["inputs"]
        if not isinstance(node.inputs, list) or len(node.inputs) != n_in:
            _fail(node, f"has inputs {_short(node.inputs)}; the operator takes a list of {n_in}")
        for name in node.inputs:
            if not isinstance(name, str) or name not in infos:
                _fail(node, f"input {_short(name)} is not the name of an earlier node")
        _check_attrs(node)
        if not isinstance(node.tensors, dict):
            _fail(node, f"tensors must be a mapping of tensor names to arrays, not {_short(node.tensors)}")
        extra = set(node.tensors) - set(OPS[node.op]["tensors"])
        if extra:
            _fail(node, f"unexpected tensor(s) {_short(sorted(map(str, extra)))}; the operator takes "
                        f"{list(OPS[node.op]['tensors']) or 'none'}")
        ins = [infos[n] for n in node.inputs]
        info, expected = _structure(node, ins)
        if values:
            tensors = {name: _tensor(node, name, shape) for name, shape in expected.items()}
            lo, hi = _bounds(node, ins, T, info, tensors)
            if lo < -(1 << (GOLDEN_BITS - 1)) or hi >= 1 << (GOLDEN_BITS - 1):
                _fail(node, f"values reach {lo}..{hi}, beyond the signed {GOLDEN_BITS}-bit range the "
                            "golden model computes exactly (int64 with 2 bits of margin)")
            info = TensorInfo(info.shape, lo, hi, info.levels)
        infos[node.name] = info
        shapes[node.name] = expected
    return infos, shapes


def infer(model, partial=False):
    """Validate ``model`` and return ``{node name: TensorInfo}`` (shapes and value bounds).

    Raises :class:`ModelError` on the first violation of the specification. ``partial=True``
    accepts a model under construction that does not end in its head yet. Every bound is
    computed with Python integers, and every value the golden model computes is proven to fit
    :data:`GOLDEN_BITS` signed bits, so an accepted model is computed exactly.
    """
    return _walk(model, partial, values=True)[0]


def tensor_shapes(model):
    """Check everything of ``model`` but its tensors (names, operators, connections,
    attributes, spike kinds, shapes) and return ``{node name: {tensor name: shape}}``, the
    shapes the tensors must have. The model loader calls it before reading any tensor."""
    return _walk(model, False, values=False)[1]


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
