"""Integer evaluation of a :class:`spikeforge.Model` in PyTorch ``int64`` operations.

An implementation of ``docs/spec.md`` independent of the NumPy golden model: synaptic layers
are computed literally as bit-plane sums of shifted weights (§5), divisions as floor
divisions, and every tensor is ``int64`` ``[B, T, H, W, C]``. :func:`evaluate` must agree
exactly with :func:`spikeforge.sim.model.run_model`.
"""

import dataclasses

import numpy as np
import torch

from ..graph import check_inputs, infer

__all__ = ["IntegerResult", "evaluate"]

_SPIKE_OPS = ("lif", "multispike", "sdsa_mask")


@dataclasses.dataclass
class IntegerResult:
    logits: np.ndarray      # [B, K] int64
    classes: np.ndarray     # [B]
    firing: dict            # spike node name -> [B] firing rate mean(S > 0)
    tensors: dict           # node name -> [B, T, H, W, C] int64 (record=True only)


def _t(a):
    return torch.as_tensor(np.array(a, dtype=np.int64))


def _rshift_round(a, s):
    """Half-up division by ``2**s`` (§1), via floor division."""
    if s == 0:
        return a
    return torch.div(a + (1 << (s - 1)), 1 << s, rounding_mode="floor")


def _sat(a, bits):
    return torch.clamp(a, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _requant(acc, node):
    a, t = node.attrs, node.tensors
    return _sat(_rshift_round(acc * _t(t["mult"]) + _t(t["bias"]), a["shift"]), a["out_bits"])


def _synapses(x, weight, levels):
    """``sum_b bit_b(x) @ (weight << b)`` over the bit planes of ``x`` (values ``0..levels``)."""
    acc = None
    for b in range(int(levels).bit_length()):
        plane = torch.bitwise_and(torch.bitwise_right_shift(x, b), 1)
        part = plane @ torch.bitwise_left_shift(weight, b)
        acc = part if acc is None else acc + part
    return acc


def _conv(x, node, levels):
    a = node.attrs
    k, s, p = a["kernel"], a["stride"], a["padding"]
    w = _t(node.tensors["weight"]).reshape(k * k * a["in_channels"], a["out_channels"])
    B, T, H, W, C = x.shape
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    xp = torch.nn.functional.pad(x, (0, 0, p, p, p, p))
    cols = [xp[:, :, ky:ky + s * (Ho - 1) + 1:s, kx:kx + s * (Wo - 1) + 1:s, :]
            for ky in range(k) for kx in range(k)]
    patches = torch.cat(cols, dim=-1)                       # [B, T, Ho, Wo, k*k*Ci], (ky, kx, ci)
    return _requant(_synapses(patches, w, levels), node)


def _lif(x, theta, leak, reset):
    """LIF over axis 1 (§6.1)."""
    v = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        u = torch.bitwise_right_shift(v, leak) + x[:, t]
        s = (u >= theta).long()
        v = u * (1 - s) if reset == "hard" else u - s * theta
        out.append(s)
    return torch.stack(out, dim=1)


def _sdsa_linear(q, k, v, heads):
    B, T, H, W, C = q.shape
    d = C // heads

    def split(a):  # [B, T, heads, N, d]
        return a.reshape(B, T, H * W, heads, d).transpose(2, 3)

    kv = split(k).transpose(-1, -2) @ split(v)             # [B, T, h, d, d]: sum_n k[n,i] v[n,j]
    out = split(q) @ kv                                     # [B, T, h, N, d]
    return out.transpose(2, 3).reshape(B, T, H, W, C)


def _run(model, infos, images):
    T = model.time_steps
    vals, firing = {}, {}
    logits = None
    B = images.shape[0]
    for node in model.nodes:
        a, tn = node.attrs, node.tensors
        xs = [vals[n] for n in node.inputs]
        op = node.op
        if op == "input":
            frames = node.attrs.get("encoding", "direct") == "frames"
            y = images if frames else images[:, None].expand(B, T, *images.shape[1:])
        elif op == "conv":
            y = _conv(xs[0], node, infos[node.inputs[0]].levels)
        elif op == "lif":
            y = _lif(xs[0], _t(tn["theta"]), a["leak"], a["reset"])
        elif op == "multispike":
            y = torch.clamp(_rshift_round(xs[0], a["shift"]), 0, a["levels"])
        elif op == "add":
            y = _sat(xs[0] + xs[1], a["out_bits"])
        elif op == "sdsa_mask":
            q, k, v = xs
            kv = (k & v).sum(dim=(2, 3))                    # [B, T, C]
            mask = _lif(kv, _t(tn["theta"]), a["leak"], a["reset"])
            y = q & mask[:, :, None, None, :]
        elif op == "sdsa_linear":
            y = _sdsa_linear(*xs, a["heads"])
        elif op == "pool":
            y = _requant(xs[0].sum(dim=(2, 3), keepdim=True), node)
        elif op == "head":
            s = xs[0].reshape(B, T, -1)
            per_t = _synapses(s, _t(tn["weight"]), infos[node.inputs[0]].levels)
            logits = _t(tn["bias"]) + per_t.sum(dim=1)
            y = logits
        else:
            raise ValueError(f"node {node.name!r}: operator {op!r} is not supported")
        if op in _SPIKE_OPS:
            firing[node.name] = (y.reshape(B, -1) > 0).double().mean(dim=1).numpy()
        vals[node.name] = y
    return logits, firing, vals


@torch.no_grad()
def evaluate(model, images, record=False, batch_size=256):
    """Run ``model`` on integer ``images [B, H, W, C]`` (a frames model, §4: ``[B, T, H, W, C]``);
    returns an :class:`IntegerResult`.

    ``record=True`` keeps every node's output ``[B, T, H, W, C]`` in ``.tensors``.
    """
    infos = infer(model)
    images = check_inputs(model, images)
    logits, firing, tensors = [], {}, {}
    for start in range(0, len(images), batch_size):
        lg, fr, vals = _run(model, infos, _t(images[start:start + batch_size]))
        logits.append(lg.numpy())
        for k, v in fr.items():
            firing.setdefault(k, []).append(v)
        if record:
            for k, v in vals.items():
                tensors.setdefault(k, []).append(v.numpy())
    logits = np.concatenate(logits) if logits else np.zeros((0, model.head.attrs["classes"]), np.int64)
    return IntegerResult(
        logits=logits, classes=np.argmax(logits, axis=-1),
        firing={k: np.concatenate(v) for k, v in firing.items()},
        tensors={k: np.concatenate(v) for k, v in tensors.items()})
