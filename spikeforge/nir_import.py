"""NIR import: a feed-forward spiking network in NIR -> a spikeforge integer model (docs/import.md).

A NIR graph (the ``nir`` package, 1.0.x) of Conv2d, Linear, Affine, Flatten, SumPool2d,
AvgPool2d and Scale nodes between LIF / IF / CubaLIF neurons (with residual sums: several
edges into one node add up) is lowered to the operators of ``docs/spec.md``:

- every chain of linear nodes between two spiking layers (or the image and a spiking layer)
  is folded into one ``conv`` (a Linear after a Flatten is a convolution whose kernel covers the
  whole grid; pooling and Scale fold into the weights), followed by the requantization that
  produces the neuron's integer drive (§5);
- several paths into one neuron become one ``conv`` each and ``add`` nodes (§7);
- the neuron becomes ``lif`` (§6.1): leak ``beta`` -> the nearest shift ``k`` (``beta ~ 2^-k``),
  threshold ``v_th`` -> ``floor(v_th / s) + 1`` in the neuron's integer unit ``s`` (NIR fires on
  ``v > v_th``), hard reset to 0;
- the output: a Linear/Affine read-out of a 1x1 spike vector becomes the ``head`` (logits summed
  over time), a spiking output layer is read out by its spike counts (an identity ``head``).

Constants come from post-training quantization: weights are rounded per output channel to
``weight_bits``, the scale ``s`` of each neuron is set from the largest drive seen on the
calibration images. Anything else is refused with one line naming the node and its type.

The float reference (:func:`evaluate_float`) runs the NIR graph itself in NumPy, node by node
and time step by time step (direct encoding, forward-Euler steps of ``dt``).
"""

import dataclasses
import math
import os

import numpy as np

from .builder import ModelBuilder
from .graph import ModelError
from .options import COUNT, Number, check_output_file

__all__ = ["NIRError", "read_graph", "evaluate_float", "import_graph", "add_import_arguments",
           "run_import", "DEFAULT_DT"]

DEFAULT_DT = 1e-4  # snnTorch's NIR convention: tau = dt / (1 - beta), r = tau / dt
MAX_KERNEL, MAX_PADDING = 15, 7  # spec limits of `conv` (spikeforge.graph.OPS)


class NIRError(ModelError):
    """A NIR graph that cannot be imported; one line naming the node, its type and why."""


def _nir():
    try:
        import nir
    except ImportError:
        raise NIRError("the 'nir' package is not installed; install it with "
                       'pip install "spikeforge[nir]"') from None
    return nir


def read_graph(path):
    """Read a NIR file with ``nir.read``; errors become one-line :class:`NIRError`."""
    nir = _nir()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise NIRError(f"NIR graph {path!r} does not exist")
    try:
        return nir.read(path)
    except Exception as e:  # h5py / nir raise many types for a bad file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NIRError(f"cannot read NIR graph {path!r}: {msg}") from None


def _kind(node):
    return type(node).__name__


def _fail(key, node, message):
    raise NIRError(f"node {key!r} ({_kind(node)}): {message}")


def _arr(x):
    if hasattr(x, "detach"):  # a torch tensor left in a graph by an exporter
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(key, node, name, value):
    """A square (int or equal pair) kernel/stride/padding as one int."""
    if isinstance(value, str):
        _fail(key, node, f"{name}={value!r} as a string is not supported; give integers")
    v = np.atleast_1d(np.asarray(value)).astype(np.int64).ravel()
    if v.size == 0 or (v != v[0]).any():
        _fail(key, node, f"{name}={tuple(int(a) for a in v)} is not square; spikeforge "
                         "convolutions have one kernel size, stride and padding for both axes")
    return int(v[0])


# --- graph structure -------------------------------------------------------------------------

_LINEAR = ("Conv2d", "Linear", "Affine", "Flatten", "SumPool2d", "AvgPool2d", "Scale")
_NEURONS = ("LIF", "IF", "CubaLIF")


@dataclasses.dataclass
class _Graph:
    nodes: dict
    order: list        # topological order of node keys
    preds: dict        # key -> list of predecessor keys
    input: str
    output: str


def _structure(graph):
    """Check node types and edges; return the graph in topological order."""
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"the NIR file holds a single {_kind(graph)} node, not a graph; import needs "
                       "a NIRGraph with Input and Output nodes")
    nodes = dict(graph.nodes)
    for key, node in nodes.items():
        if isinstance(node, nir.NIRGraph):
            _fail(key, node, "nested subgraphs (recurrent layers such as RLeaky) have no "
                             "spikeforge form; spikeforge runs feed-forward networks")
        kind = _kind(node)
        if kind not in _LINEAR + _NEURONS + ("Input", "Output"):
            _fail(key, node, f"the operator has no spikeforge mapping; supported: "
                             f"{', '.join(_LINEAR + _NEURONS)}, Input, Output")
    preds = {k: [] for k in nodes}
    succs = {k: [] for k in nodes}
    for edge in graph.edges:
        a, b = edge[0], edge[1]
        for k in (a, b):
            if k not in nodes:
                raise NIRError(f"edge {a!r} -> {b!r} names an unknown node {k!r}")
        preds[b].append(a)
        succs[a].append(b)
    inputs = [k for k, n in nodes.items() if _kind(n) == "Input"]
    outputs = [k for k, n in nodes.items() if _kind(n) == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRError(f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
                       "import needs exactly one of each")
    order, seen, temp = [], set(), set()

    def visit(k):
        if k in seen:
            return
        if k in temp:
            _fail(k, nodes[k], "it lies on a cycle (a recurrent connection); spikeforge runs "
                               "feed-forward networks")
        temp.add(k)
        for p in preds[k]:
            visit(p)
        temp.discard(k)
        seen.add(k)
        order.append(k)

    for k in nodes:
        visit(k)
    for k in order:
        if k != inputs[0] and not preds[k]:
            _fail(k, nodes[k], "has no input edge")
        if k != outputs[0] and not succs[k]:
            _fail(k, nodes[k], "its output is not used (no edge leaves it)")
    return _Graph(nodes, order, preds, inputs[0], outputs[0])


def _input_shape(key, node, image_shape):
    """NIR input shape -> ``(C, H, W), flat``; ``image_shape`` is the dataset's ``(H, W, C)``."""
    H, W, C = image_shape
    t = node.input_type.get("input") if isinstance(node.input_type, dict) else None
    if t is None:
        _fail(key, node, "has no input_type; the importer needs the input shape")
    shape = tuple(int(v) for v in np.asarray(t).ravel())
    if len(shape) == 4 and shape[0] == 1:
        shape = shape[1:]
    if shape == (C, H, W):
        return (C, H, W), False
    if shape == (H, W) and C == 1:
        return (C, H, W), False
    if shape == (C * H * W,):
        return (C, H, W), True
    _fail(key, node, f"input shape {shape} does not match the dataset's images "
                     f"(C, H, W) = {(C, H, W)} (or their flattened {C * H * W} values)")


# --- float reference evaluator ---------------------------------------------------------------

def _conv_np(x, w, b, stride, padding):
    """x [B, Ci, H, W], w [Co, Ci, k, k] -> [B, Co, H', W'] (cross-correlation as in torch)."""
    k = w.shape[-1]
    if padding:
        x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    out = np.einsum("bihwyx,oiyx->bohw", win, w, optimize=True)
    return out + b.reshape(1, -1, 1, 1)


def _param(p, x):
    """Broadcast a neuron/scale parameter to ``x [B, ...]`` (a (C,) vector on [B, C, H, W])."""
    p = _arr(p)
    if p.ndim == 1 and x.ndim == 4 and p.size == x.shape[1]:
        return p.reshape(-1, 1, 1)
    return p


def _apply_linear(key, node, x):
    kind = _kind(node)
    if kind == "Conv2d":
        w = _arr(node.weight)
        if w.ndim != 4:
            _fail(key, node, f"weight has shape {w.shape}; expected [Co, Ci, k, k]")
        s = _pair(key, node, "stride", node.stride)
        p = _pair(key, node, "padding", node.padding)
        b = _arr(node.bias) if node.bias is not None else np.zeros(w.shape[0])
        return _conv_np(x, w, np.broadcast_to(b, (w.shape[0],)), s, p)
    if kind in ("Linear", "Affine"):
        y = x @ _arr(node.weight).T
        return y + _arr(node.bias) if kind == "Affine" else y
    if kind == "Flatten":
        return x.reshape(x.shape[0], -1)
    if kind in ("SumPool2d", "AvgPool2d"):
        k = _pair(key, node, "kernel_size", node.kernel_size)
        s = _pair(key, node, "stride", node.stride)
        p = _pair(key, node, "padding", node.padding)
        C = x.shape[1]
        w = np.zeros((C, C, k, k))
        w[np.arange(C), np.arange(C)] = 1.0 / (k * k) if kind == "AvgPool2d" else 1.0
        return _conv_np(x, w, np.zeros(C), s, p)
    if kind == "Scale":
        return x * _param(node.scale, x)
    raise AssertionError(kind)


def _neuron_params(key, node, dt):
    """Per-neuron discrete-time form: ``U = beta V + gain I + const``; fire on ``U > thr``;
    ``alpha`` (CubaLIF synaptic decay) and ``syn_gain``. Parameters as float arrays."""
    kind = _kind(node)
    if kind == "IF":
        r = _arr(node.r)
        return dict(beta=np.ones_like(r), gain=r, const=np.zeros_like(r),
                    thr=_arr(node.v_threshold), reset=_reset(node), alpha=None, syn_gain=None)
    tau = _arr(node.tau_mem if kind == "CubaLIF" else node.tau)
    r, v_leak = _arr(node.r), _arr(node.v_leak)
    if (tau <= 0).any():
        _fail(key, node, f"time constant {float(tau.min())} is not positive")
    out = dict(beta=1 - dt / tau, gain=dt * r / tau, const=dt / tau * v_leak,
               thr=_arr(node.v_threshold), reset=_reset(node), alpha=None, syn_gain=None)
    if kind == "CubaLIF":
        tau_syn = _arr(node.tau_syn)
        if (tau_syn <= 0).any():
            _fail(key, node, f"synaptic time constant {float(tau_syn.min())} is not positive")
        out["alpha"] = 1 - dt / tau_syn
        out["syn_gain"] = dt / tau_syn * _arr(node.w_in)
    return out


def _reset(node):
    v = getattr(node, "v_reset", None)
    return np.zeros(1) if v is None else _arr(v)


def evaluate_float(graph, images, time_steps, input_scale, dt=DEFAULT_DT, record=False):
    """Run the NIR graph in float64 on integer ``images [B, H, W, C]`` (direct encoding).

    Returns ``(scores [B, K], trace)``: scores are the outputs summed over the time steps;
    ``trace`` (with ``record=True``) maps each neuron to ``{"drive": ..., "spikes": ...}``, each
    ``[T, B, ...]``: the per-step drive ``gain * I + const`` (the value its integer requantized
    input represents) and the output spikes.
    """
    g = graph if isinstance(graph, _Graph) else _structure(graph)
    images = np.asarray(images)
    B, H, W, C = images.shape
    x0 = images.astype(np.float64).transpose(0, 3, 1, 2) * input_scale
    _, flat = _input_shape(g.input, g.nodes[g.input], (H, W, C))
    if flat:
        x0 = x0.reshape(B, -1)
    params = {k: _neuron_params(k, n, dt) for k, n in g.nodes.items() if _kind(n) in _NEURONS}
    state, syn = {}, {}
    drives = {k: [] for k in params}
    spikes = {k: [] for k in params}
    total = None
    for _t in range(time_steps):
        vals = {}
        for k in g.order:
            node = g.nodes[k]
            kind = _kind(node)
            if kind == "Input":
                vals[k] = x0
                continue
            ins = [vals[p] for p in g.preds[k]]
            x = ins[0]
            for other in ins[1:]:
                x = x + other
            if kind == "Output":
                total = x if total is None else total + x
                vals[k] = x
            elif kind in _LINEAR:
                vals[k] = _apply_linear(k, node, x)
            else:
                p = params[k]
                if p["alpha"] is not None:
                    cur = _param(p["alpha"], x) * syn.get(k, 0.0) + _param(p["syn_gain"], x) * x
                    syn[k] = cur
                    x = cur
                drive = _param(p["gain"], x) * x + _param(p["const"], x)
                u = _param(p["beta"], x) * state.get(k, 0.0) + drive
                s = u > _param(p["thr"], x)
                state[k] = np.where(s, _param(p["reset"], x), u)
                vals[k] = s.astype(np.float64)
                if record:
                    drives[k].append(drive)
                    spikes[k].append(vals[k])
    scores = total.reshape(B, -1)
    if not record:
        return scores, {}
    return scores, {k: {"drive": np.stack(drives[k]), "spikes": np.stack(spikes[k])} for k in params}


# --- lowering: folding linear chains into convolutions ---------------------------------------

@dataclasses.dataclass
class _Term:
    """A linear map from a spike source (the image or a neuron) to a node's output:
    a convolution ``weight [k, k, Ci, Co]`` with ``bias``, ``stride``, ``padding``."""
    source: str
    weight: np.ndarray
    bias: np.ndarray
    stride: int
    padding: int
    src_shape: tuple   # (C, H, W) of the source
    shape: tuple       # (C, H, W) of the output
    flat: bool


def _identity(source, shape, flat):
    C = shape[0]
    return _Term(source, np.eye(C)[None, None], np.zeros(C), 1, 0, shape, shape, flat)


def _out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def _compose(key, node, t, w2, b2, k2, s2, p2):
    """``t`` followed by the convolution ``w2 [k2, k2, Cm, Co]``: one convolution."""
    C, H, W = t.shape
    Ho, Wo = _out_size(H, k2, s2, p2), _out_size(W, k2, s2, p2)
    if Ho < 1 or Wo < 1:
        _fail(key, node, f"kernel {k2}, stride {s2}, padding {p2} leave no output on {H}x{W}")
    k1, s1, p1 = t.weight.shape[0], t.stride, t.padding
    if p2:
        # Folding is exact only if every padded position of this layer's input would have been
        # computed from padding alone (and without bias) by the folded layers before it.
        _, Hs, _ = t.src_shape
        outside = [j for j in range(-p2, 0)] + [j for j in range(H, H + p2)]
        reach = [(j * s1 - p1, j * s1 - p1 + k1 - 1) for j in outside]
        if np.any(t.bias) or any(lo < Hs and hi >= 0 for lo, hi in reach):
            _fail(key, node, f"zero padding {p2} after another linear layer without a neuron "
                             "between them cannot be folded into one spikeforge convolution")
    k, s, p = k1 + (k2 - 1) * s1, s1 * s2, p1 + p2 * s1
    _, Hs, Ws = t.src_shape
    if (_out_size(Hs, k, s, p), _out_size(Ws, k, s, p)) != (Ho, Wo):
        _fail(key, node, "the folded convolution would not keep the output size "
                         f"{Ho}x{Wo}; use a neuron between these linear layers")
    Ci, Co = t.weight.shape[2], w2.shape[3]
    w = np.zeros((k, k, Ci, Co))
    for a in range(k2):
        for b in range(k2):
            w[a * s1:a * s1 + k1, b * s1:b * s1 + k1] += np.einsum("yxim,mo->yxio", t.weight, w2[a, b])
    bias = b2 + np.einsum("abmo,m->o", w2, t.bias)
    if k > MAX_KERNEL or p > MAX_PADDING or p >= k:
        _fail(key, node, f"the folded convolution has kernel {k}, padding {p}; spikeforge allows "
                         f"kernel <= {MAX_KERNEL}, padding <= {MAX_PADDING} and padding < kernel")
    return _Term(t.source, w, bias, s, p, t.src_shape, (Co, Ho, Wo), t.flat)


def _lower_linear(key, node, terms):
    """Apply linear node ``node`` to a sum of terms; returns the new terms."""
    kind = _kind(node)
    C, H, W = terms[0].shape
    flat = terms[0].flat
    if kind == "Flatten":
        full = node.start_dim in (0, -3) and node.end_dim in (-1, 2)
        if not full and not flat:
            _fail(key, node, f"start_dim={node.start_dim}, end_dim={node.end_dim} does not "
                             "flatten a whole C x H x W tensor; only a full flatten is supported")
        return [dataclasses.replace(t, flat=True) for t in terms]
    if kind == "Scale":
        s = _arr(node.scale).ravel()
        if s.size == 1:
            s = np.full(C, s[0])
        elif s.size == C * H * W and flat:
            s3 = s.reshape(C, H, W)
            if not np.allclose(s3, s3[:, :1, :1]):
                _fail(key, node, "a scale that varies over positions has no spikeforge form")
            s = s3[:, 0, 0]
        elif s.size != C or (flat and H * W > 1):
            _fail(key, node, f"scale has {s.size} values for a {C}x{H}x{W} tensor"
                             f"{' (flattened)' if flat else ''}; expected 1, one per channel "
                             "or, flattened, one per value")
        return [dataclasses.replace(t, weight=t.weight * s, bias=t.bias * s) for t in terms]
    if kind in ("Linear", "Affine"):
        w = _arr(node.weight)
        if not flat:
            _fail(key, node, f"it reads a {C}x{H}x{W} tensor that is not flattened; put a "
                             "Flatten before a Linear layer")
        if w.ndim != 2 or w.shape[1] != C * H * W:
            _fail(key, node, f"weight has shape {w.shape}; its input has {C * H * W} values")
        if H != W:
            _fail(key, node, f"it reads a flattened {H}x{W} grid; spikeforge folds a Linear into "
                             "a square convolution")
        O = w.shape[0]
        w2 = w.reshape(O, C, H, W).transpose(2, 3, 1, 0)
        b2 = _arr(node.bias) if kind == "Affine" else np.zeros(O)
        k2, s2, p2 = H, 1, 0
    elif kind == "Conv2d":
        if flat:
            _fail(key, node, "it reads a flattened tensor")
        w = _arr(node.weight)
        if w.ndim != 4 or w.shape[1] != C:
            _fail(key, node, f"weight has shape {w.shape}; its input has {C} channels")
        if _pair(key, node, "dilation", node.dilation) != 1:
            _fail(key, node, "dilation is not 1; spikeforge convolutions are not dilated")
        if int(node.groups) != 1:
            _fail(key, node, f"groups={node.groups}; spikeforge convolutions are dense (groups=1)")
        if w.shape[2] != w.shape[3]:
            _fail(key, node, f"kernel {w.shape[2]}x{w.shape[3]} is not square")
        w2 = w.transpose(2, 3, 1, 0)
        b2 = _arr(node.bias) if node.bias is not None else np.zeros(w.shape[0])
        b2 = np.broadcast_to(b2, (w.shape[0],)).astype(np.float64)
        k2, s2, p2 = w.shape[2], _pair(key, node, "stride", node.stride), _pair(key, node, "padding", node.padding)
    else:  # pooling
        if flat:
            _fail(key, node, "it reads a flattened tensor")
        k2 = _pair(key, node, "kernel_size", node.kernel_size)
        s2, p2 = _pair(key, node, "stride", node.stride), _pair(key, node, "padding", node.padding)
        if p2:
            _fail(key, node, f"padding={p2}; only unpadded pooling is supported")
        w2 = np.zeros((k2, k2, C, C))
        w2[:, :, np.arange(C), np.arange(C)] = 1.0 / (k2 * k2) if kind == "AvgPool2d" else 1.0
        b2 = np.zeros(C)
    out = []
    for i, t in enumerate(terms):
        out.append(_compose(key, node, t, w2, b2 if i == 0 else np.zeros_like(b2), k2, s2, p2))
    if kind in ("Linear", "Affine"):
        out = [dataclasses.replace(t, flat=True) for t in out]
    return out


def _lower(g, image_shape):
    """Terms reaching every neuron and the output; spike sources with their shapes."""
    shape, flat = _input_shape(g.input, g.nodes[g.input], image_shape)
    sources = {g.input: (shape, flat)}
    terms = {g.input: [_identity(g.input, shape, flat)]}
    reaching = {}
    for k in g.order:
        node = g.nodes[k]
        kind = _kind(node)
        if kind == "Input":
            continue
        ins = [t for p in g.preds[k] for t in terms[p]]
        shapes = {(t.shape, t.flat) for t in ins}
        if len(shapes) > 1:
            _fail(k, node, f"its inputs differ in shape: {sorted(s for s, _ in shapes)}")
        if kind in _LINEAR:
            terms[k] = _lower_linear(k, node, ins)
        else:  # neuron or output
            reaching[k] = ins
            if kind != "Output":
                sources[k] = (ins[0].shape, ins[0].flat)
                terms[k] = [_identity(k, ins[0].shape, ins[0].flat)]
    return reaching, sources


# --- quantization ----------------------------------------------------------------------------

def _per_channel(key, node, value, C, name):
    v = _arr(value).ravel()
    if v.size == 1:
        return np.full(C, v[0])
    if v.size == C:
        return v
    if v.size % C == 0:
        v3 = v.reshape(C, -1)
        if np.allclose(v3, v3[:, :1]):
            return v3[:, 0]
        _fail(key, node, f"{name} varies over positions; spikeforge neurons have per-channel "
                         "parameters")
    _fail(key, node, f"{name} has {v.size} values for {C} channels")


def _quantize_term(t, gain, const, s_in, s_v, weight_bits, mult_bits):
    """Weights rounded per output channel; requantization to the neuron's integer unit s_v."""
    w = t.weight * gain
    bias = t.bias * gain + const
    qmax = (1 << (weight_bits - 1)) - 1
    amax = np.abs(w).reshape(-1, w.shape[3]).max(0)
    s_w = np.where(amax > 0, amax / qmax, 1.0)
    wq = np.clip(np.rint(w / s_w), -qmax - 1, qmax).astype(np.int64)
    m = s_w * s_in / s_v
    top = float(np.abs(m).max())
    shift = 0
    while shift < 40 and top * 2 ** (shift + 1) <= (1 << (mult_bits - 1)) - 1:
        shift += 1
    mult = np.rint(m * 2 ** shift).astype(np.int64)
    mult[mult == 0] = 1
    bq = np.rint(bias / s_v * 2 ** shift).astype(np.int64)
    err = np.abs(wq * s_w - w).max() / max(float(np.abs(w).max()), 1e-30)
    return wq, mult, bq, shift, float(err)


def import_graph(graph, calibration, *, max_value, time_steps, weight_bits=8, out_bits=16,
                 input_scale=None, dt=DEFAULT_DT, mult_bits=16, metadata=None):
    """Quantize NIR ``graph`` into a spikeforge model.

    ``calibration``: integer images ``[B, H, W, C]`` in ``0..max_value``; the NIR graph sees
    ``image * input_scale`` (default ``1 / max_value``: pixels scaled to 0..1). Returns
    ``(model, report)``; ``report`` lists each neuron's leak, threshold and scale and the
    approximation errors of the mapping.
    """
    if not isinstance(weight_bits, int) or not 2 <= weight_bits <= 16:
        raise NIRError(f"weight_bits is {weight_bits!r}; allowed: 2..16")
    if not isinstance(out_bits, int) or not 4 <= out_bits <= 32:
        raise NIRError(f"out_bits is {out_bits!r}; allowed: 4..32")
    if not isinstance(time_steps, int) or not 1 <= time_steps <= 64:
        raise NIRError(f"time_steps is {time_steps!r}; allowed: 1..64")
    if not dt > 0:
        raise NIRError(f"dt is {dt!r}; allowed: a positive time step in seconds")
    calibration = np.asarray(calibration)
    if calibration.ndim != 4 or len(calibration) == 0:
        raise NIRError(f"calibration images have shape {calibration.shape}; expected [B, H, W, C], B >= 1")
    input_scale = 1.0 / max_value if input_scale is None else float(input_scale)
    if not input_scale > 0:
        raise NIRError(f"input_scale is {input_scale!r}; allowed: a positive float")
    g = _structure(graph)
    image_shape = tuple(calibration.shape[1:])
    reaching, sources = _lower(g, image_shape)
    # Refuse what the neurons cannot express before spending time on calibration.
    nparams = {}
    for k in g.order:
        node = g.nodes[k]
        if _kind(node) not in _NEURONS:
            continue
        C = sources[k][0][0]
        p = _neuron_params(k, node, dt)
        pc = {n: _per_channel(k, node, p[n], C, n) for n in ("beta", "gain", "const", "thr", "reset")}
        if p["alpha"] is not None:
            alpha = _per_channel(k, node, p["alpha"], C, "alpha")
            if np.abs(alpha).max() > 1e-6:
                _fail(k, node, f"synaptic decay alpha = 1 - dt/tau_syn = {float(alpha.max()):.4g} "
                               f"(dt={dt:g}); spec §6.1 has no synaptic current state, only "
                               "tau_syn = dt (alpha = 0) maps")
            pc["gain"] = pc["gain"] * _per_channel(k, node, p["syn_gain"], C, "w_in")
        if np.abs(pc["reset"]).max() > 0:
            _fail(k, node, f"v_reset = {float(np.abs(pc['reset']).max()):g}; spec §6.1 resets to 0")
        if (pc["thr"] <= 0).any():
            _fail(k, node, f"v_threshold {float(pc['thr'].min()):g} is not positive")
        beta = pc["beta"]
        if (beta < 0).any() or (beta > 1 + 1e-9).any():
            _fail(k, node, f"leak factor beta = 1 - dt/tau = {float(beta.min()):.4g} "
                           f"(dt={dt:g}) is outside 0..1")
        if np.ptp(beta) > 1e-9:
            _fail(k, node, "the leak differs between channels; spec §6.1 has one leak shift per layer")
        nparams[k] = pc
    out_node = g.nodes[g.output]
    out_terms = reaching[g.output]
    readout = _plan_readout(g, out_node, out_terms, sources)

    _, trace = evaluate_float(g, calibration, time_steps, input_scale, dt, record=True)
    b = ModelBuilder(time_steps, calibration, metadata=dict(metadata or {}))
    H, W, C = image_shape
    names = {g.input: b.input(str(g.input), H, W, C, max_value)}
    report = {"neurons": [], "readout": None}
    for k in g.order:
        if k not in nparams:
            continue
        node, pc = g.nodes[k], nparams[k]
        thr = pc["thr"]
        beta = float(pc["beta"][0])
        leak = 16 if beta <= 2.0 ** -16 else int(min(16, max(0, round(-math.log2(beta)))))
        d = np.abs(trace[k]["drive"]).max() if trace[k]["drive"].size else 0.0
        top = max(float(d), 2 * float(thr.max()))
        s_v = top / (1 << (out_bits - 2))
        theta = np.floor(thr / s_v).astype(np.int64) + 1
        parts, werr = [], []
        for i, t in enumerate(reaching[k]):
            s_in = input_scale if t.source == g.input else 1.0
            wq, mult, bq, shift, err = _quantize_term(
                t, pc["gain"], pc["const"] if i == 0 else 0.0, s_in, s_v, weight_bits, mult_bits)
            werr.append(err)
            name = f"{k}.syn" if len(reaching[k]) == 1 else f"{k}.syn{i}"
            parts.append(b.conv(name, names[t.source], wq.astype(np.int64), mult, bq, shift,
                                out_bits, weight_bits, t.stride, t.padding))
        x = parts[0]
        for i, other in enumerate(parts[1:], 1):
            x = b.add(f"{k}.sum{i}", x, other, out_bits)
        names[k] = b.lif(str(k), x, theta, leak=leak, reset="hard")
        report["neurons"].append(dict(
            node=str(k), type=_kind(node), beta=beta, leak_shift=leak,
            leak_error=abs(2.0 ** -leak - beta), scale=s_v,
            threshold=[float(v) for v in np.unique(thr)][:4],
            theta=[int(v) for v in np.unique(theta)][:4],
            threshold_error=float(np.max(np.abs(theta * s_v - thr) / thr)),
            weight_error=max(werr), synapses=len(parts)))
    kind, src, term = readout
    if kind == "count":
        Cs = sources[src][0][0]
        b.head(str(g.output), names[src], np.eye(Cs, dtype=np.int64), np.zeros(Cs, np.int64), 2)
        report["readout"] = dict(kind="spike count", source=str(src), classes=Cs)
    else:
        w = term.weight[0, 0]
        qmax = (1 << (weight_bits - 1)) - 1
        amax = float(np.abs(w).max())
        s_w = amax / qmax if amax > 0 else 1.0
        wq = np.clip(np.rint(w / s_w), -qmax - 1, qmax).astype(np.int64)
        bq = np.rint(time_steps * term.bias / s_w).astype(np.int64)
        b.head(str(g.output), names[src], wq, bq, weight_bits)
        report["readout"] = dict(kind="linear", source=str(src), classes=int(w.shape[1]),
                                 weight_error=float(np.abs(wq * s_w - w).max() / max(amax, 1e-30)))
    return b.build(), report


def _plan_readout(g, out_node, terms, sources):
    """How the output becomes the spikeforge head: ("count", neuron, None) or ("linear", neuron, term)."""
    if len(terms) != 1:
        _fail(g.output, out_node, f"{len(terms)} paths reach the output; the spikeforge head "
                                  "reads one layer")
    t = terms[0]
    if t.source == g.input:
        _fail(g.output, out_node, "the output is computed from the image without a spiking "
                                  "layer; the spikeforge head reads spikes")
    C, H, W = t.shape
    Cs, Hs, Ws = sources[t.source][0]
    if (Hs, Ws) != (1, 1):
        _fail(g.output, out_node, f"the output reads a {Cs}x{Hs}x{Ws} spiking layer "
                                  f"{t.source!r}; the spikeforge head reads one token: end with a "
                                  "Flatten + Linear + neuron layer (1x1) before the read-out")
    if t.weight.shape[:2] == (1, 1) and np.array_equal(t.weight[0, 0], np.eye(Cs)) and not np.any(t.bias):
        return ("count", t.source, None)
    return ("linear", t.source, t)


# --- command line (wired into spikeforge.cli by the lead) -------------------------------------

def add_import_arguments(parser):
    """Arguments of ``spikeforge import GRAPH.nir -o MODEL.sfm``."""
    parser.add_argument("graph", help="NIR graph file (nir.write / an exporter's .nir)")
    parser.add_argument("-o", "--output", required=True, help="model file to write (.sfm)")
    parser.add_argument("--dataset", default="digits", help="dataset of the network (default: digits)")
    parser.add_argument("--data-root", default=None, help="folder of the dataset files")
    parser.add_argument("--calibration-images", type=COUNT, default=256,
                        help="training images used to choose the integer scales (default 256)")
    parser.add_argument("--eval-images", type=COUNT, default=None,
                        help="test images for the float vs integer accuracy (default: all)")
    parser.add_argument("--weight-bits", type=Number(int, low=2, high=16), default=8, help="weight width (default 8)")
    parser.add_argument("--out-bits", type=Number(int, low=2, high=32), default=16,
                        help="width of the neurons' integer drive (default 16)")
    parser.add_argument("--time-steps", type=Number(int, low=1, high=64), default=4,
                        help="time steps T the network runs for (default 4)")
    parser.add_argument("--input-scale", type=Number(float, positive=True), default=None,
                        help="float value of one input step as the NIR graph sees it "
                             "(default 1/max_value: pixels scaled to 0..1)")
    parser.add_argument("--dt", type=Number(float, positive=True), default=DEFAULT_DT,
                        help=f"time step of the NIR neuron equations in seconds (default {DEFAULT_DT:g}, "
                             "snnTorch's export convention)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _positive(name, value):
    if value is not None and (isinstance(value, bool) or value < 1):
        raise NIRError(f"--{name} is {value}; allowed: a positive integer")


def run_import(args):
    """``spikeforge import``: write the model, print float vs integer accuracy. Returns 0."""
    import json

    from .datasets import input_record, load_dataset
    from .modelfile import save_model
    from .sim.model import run_model

    _positive("calibration-images", args.calibration_images)
    _positive("eval-images", args.eval_images)
    check_output_file(args.output, "-o")
    graph = read_graph(args.graph)
    train = load_dataset(args.dataset, "train", data_root=args.data_root)
    test = load_dataset(args.dataset, "test", data_root=args.data_root)
    if train.time_steps is not None:
        raise NIRError(f"dataset {args.dataset!r} holds event frames; import takes still-image "
                       "datasets (direct encoding)")
    calib = np.asarray(train.images[:args.calibration_images], dtype=np.int64)
    meta = dict(train.metadata, split="test", source_graph=os.path.basename(args.graph),
                input=input_record(test, "test"))
    model, report = import_graph(graph, calib, max_value=train.max_value, time_steps=args.time_steps,
                                 weight_bits=args.weight_bits, out_bits=args.out_bits,
                                 input_scale=args.input_scale, dt=args.dt, metadata=meta)
    n = len(test.labels) if args.eval_images is None else min(args.eval_images, len(test.labels))
    x, y = np.asarray(test.images[:n], dtype=np.int64), np.asarray(test.labels[:n])
    input_scale = 1.0 / train.max_value if args.input_scale is None else args.input_scale
    scores, _ = evaluate_float(graph, x, args.time_steps, input_scale, args.dt)
    fpred = scores.argmax(1)
    ipred = run_model(model, x).classes
    report.update(images=n, float_accuracy=float((fpred == y).mean()),
                  integer_accuracy=float((ipred == y).mean()),
                  agreement=float((fpred == ipred).mean()))
    model.metadata["accuracy"] = report["integer_accuracy"]
    model.metadata["nir_import"] = report
    save_model(model, args.output)
    if args.json:
        print(json.dumps(dict(model=args.output, **report), indent=2))
        return 0
    print(f"imported {args.graph} -> {args.output} ({len(model.nodes)} nodes, T={args.time_steps})")
    for r in report["neurons"]:
        print(f"  {r['node']:12} {r['type']:8} beta {r['beta']:.4f} -> shift {r['leak_shift']} "
              f"(error {r['leak_error']:.4f}); theta {r['theta']} (threshold error "
              f"{r['threshold_error']:.2e}); weight error {r['weight_error']:.3f}")
    print(f"accuracy on {n} {args.dataset} test images: float (NIR) {report['float_accuracy']:.4f}, "
          f"integer (golden) {report['integer_accuracy']:.4f}, agreement {report['agreement']:.4f}")
    return 0
