"""Run a whole model through the golden operators, with the counts of §10 of the spec."""

import dataclasses

import numpy as np

from ..graph import check_inputs, infer, input_encoding
from . import golden

__all__ = ["GoldenResult", "run_model", "execute", "E_AC_PJ", "E_MAC_PJ"]

E_AC_PJ = 0.9   # 45 nm, 32-bit float accumulate, as used by the spike-driven transformer papers
E_MAC_PJ = 4.6  # 45 nm, 32-bit float multiply-accumulate


@dataclasses.dataclass
class GoldenResult:
    """Outputs of :func:`run_model` for a batch of ``B`` images."""
    logits: np.ndarray            # [B, K] int64
    classes: np.ndarray           # [B]
    tensors: dict                 # node name -> [B, T, H, W, C] (only with record=True)
    membranes: dict               # lif node name -> U before reset (only with record=True)
    syn_adds: dict                # node name -> [B] synaptic additions (§10)
    neuron_updates: dict          # node name -> int (same for every image)
    sops: dict                    # node name -> [B] value-weighted synaptic operations
    firing: dict                  # spike node name -> [B] firing rate
    dense_macs: dict              # synaptic node name -> dense MAC count per image

    def lower_bound_cycles(self, lanes):
        """``sum over nodes ceil(syn_adds / P) + ceil(neuron_updates / P)`` per image (§10)."""
        total = 0
        for name, upd in self.neuron_updates.items():
            adds = self.syn_adds.get(name, 0)
            total = total + -(-np.asarray(adds) // lanes) + -(-upd // lanes)
        return np.broadcast_to(np.asarray(total, np.int64), self.classes.shape)

    def energy_pj(self, first_conv):
        """The papers' 45 nm estimate per image: first layer as dense MACs, the rest as ACs."""
        e = 0.0
        for name, sops in self.sops.items():
            if name == first_conv:
                e = e + E_MAC_PJ * self.dense_macs[name]
            else:
                e = e + E_AC_PJ * sops
        return np.broadcast_to(np.asarray(e, np.float64), self.classes.shape)


def _events(x):
    """Bit-plane events per image (set bits), and the value sum, of an unsigned tensor."""
    x = np.asarray(x, np.int64)
    B = x.shape[0]
    flat = x.reshape(B, -1)
    pop = np.zeros_like(flat)
    v = flat.copy()
    while v.any():
        pop += v & 1
        v >>= 1
    return pop, flat


def execute(model, images, record=False, nodes=None, infos=None, values=None):
    """Run ``nodes`` (default all) of ``model`` on ``images [B, H, W, C]`` (a frames model,
    §4: ``[B, T, H, W, C]``).

    Returns the :class:`GoldenResult`; for a prefix of nodes without a head, ``logits`` and
    ``classes`` are ``None`` and every tensor is recorded.
    """
    infos = infos if infos is not None else infer(model)
    nodes = model.nodes if nodes is None else nodes
    T = model.time_steps
    images = np.asarray(images, dtype=np.int64)
    B = images.shape[0]
    vals, membranes = dict(values or {}), {}
    syn_adds, updates, sops, firing, dense = {}, {}, {}, {}, {}
    logits = None
    for node in nodes:
        a, t = node.attrs, node.tensors
        xs = [vals[n] for n in node.inputs]
        out_elems = T * int(np.prod(infos[node.name].shape))
        if node.op == "input":
            images = check_inputs(model, images)
            if input_encoding(model) == "frames":
                y = images  # X[t] = frames[t]
            else:
                y = np.broadcast_to(images[:, None], (B, T, *images.shape[1:]))  # X[t] = image
        elif node.op == "conv":
            k, s, p = a["kernel"], a["stride"], a["padding"]
            if k == 1 and s == 1 and p == 0:
                acc = golden.spike_linear(xs[0], t["weight"])
            else:
                acc = golden.spike_conv2d(xs[0], t["weight"], s, p)
            y = golden.requantize(acc, t["mult"], t["bias"], a["shift"], a["out_bits"])
            _, _, H, W, _ = xs[0].shape
            reach = golden.conv_reach(H, W, k, s, p)[None, None, :, :, None]
            x64 = np.asarray(xs[0], np.int64)
            pop, _ = _events(x64)
            co = a["out_channels"]
            syn_adds[node.name] = (pop.reshape(x64.shape) * reach).reshape(B, -1).sum(1) * co
            sops[node.name] = (x64 * reach).reshape(B, -1).sum(1) * co
            dense[node.name] = out_elems * k * k * a["in_channels"]
            updates[node.name] = out_elems
        elif node.op == "lif":
            y, u = golden.lif(xs[0], t["theta"], a["leak"], a["reset"])
            if record:
                membranes[node.name] = u
            updates[node.name] = out_elems
        elif node.op == "multispike":
            y = golden.multispike(xs[0], a["levels"], a["shift"])
            updates[node.name] = out_elems
        elif node.op == "add":
            y = golden.residual_add(xs[0], xs[1], a["out_bits"])
            updates[node.name] = out_elems
        elif node.op == "sdsa_mask":
            y, kv, mask = golden.sdsa_mask(*xs, t["theta"], a["leak"], a["reset"])
            if record:
                membranes[node.name] = kv
            syn_adds[node.name] = (np.asarray(xs[1]) & np.asarray(xs[2])).reshape(B, -1).sum(1)
            sops[node.name] = syn_adds[node.name]
            C = infos[node.name].shape[2]
            updates[node.name] = T * C + out_elems
        elif node.op == "sdsa_linear":
            y = golden.sdsa_linear(*xs, a["heads"])
            q, k, v = (np.asarray(x_, np.int64) for x_ in xs)
            H, W, C = infos[node.name].shape
            h = a["heads"]
            d = C // h

            k_ev, v_ev = (_events(x_)[0].reshape(B, T, H * W, h, d).sum(-1) for x_ in (k, v))
            kv_pairs = (k_ev * v_ev).reshape(B, -1).sum(1)
            q_events = _events(q)[0].sum(1)
            syn_adds[node.name] = kv_pairs + q_events * d
            kval = k.reshape(B, T, H * W, h, d).sum(-1)
            vval = v.reshape(B, T, H * W, h, d).sum(-1)
            sops[node.name] = (kval * vval).reshape(B, -1).sum(1) + q.reshape(B, -1).sum(1) * d
            updates[node.name] = out_elems
        elif node.op == "pool":
            y = golden.token_pool(xs[0], t["mult"], t["bias"], a["shift"], a["out_bits"])
            updates[node.name] = T * int(np.prod(infos[node.inputs[0]].shape)) + out_elems
        elif node.op == "head":
            logits = golden.head_linear(xs[0], t["weight"], t["bias"])
            pop, flat = _events(xs[0])
            K = a["classes"]
            syn_adds[node.name] = pop.sum(1) * K
            sops[node.name] = flat.sum(1) * K
            dense[node.name] = T * a["in_channels"] * K
            updates[node.name] = K
            y = logits
        else:  # pragma: no cover - infer() rejects unknown operators
            raise AssertionError(node.op)
        if infos[node.name].is_spikes and node.op != "input":
            firing[node.name] = (np.asarray(y).reshape(B, -1) > 0).mean(1)
        vals[node.name] = y
    return GoldenResult(
        logits=logits,
        classes=None if logits is None else golden.classify(logits),
        tensors=vals if record or logits is None else {},
        membranes=membranes, syn_adds=syn_adds, neuron_updates=updates, sops=sops,
        firing=firing, dense_macs=dense)


def run_model(model, images, record=False, batch_size=256, progress=None):
    """Run the golden model on ``images [B, H, W, C]`` (frames: ``[B, T, H, W, C]``) in
    batches; returns a GoldenResult.

    With ``record=True`` every node's output tensor and every LIF membrane is kept.
    ``progress`` is an optional callable receiving the number of images done.
    """
    infos = infer(model)
    images = np.asarray(images)
    parts = []
    for start in range(0, len(images), batch_size):
        parts.append(execute(model, images[start:start + batch_size], record=record, infos=infos))
        if progress:
            progress(min(start + batch_size, len(images)))
    if len(parts) == 1:
        return parts[0]

    def cat(dicts):
        return {k: np.concatenate([np.broadcast_to(d[k], (len(p.classes),) + np.shape(d[k])[1:])
                                   for d, p in zip(dicts, parts)]) for k in dicts[0]}

    return GoldenResult(
        logits=np.concatenate([p.logits for p in parts]),
        classes=np.concatenate([p.classes for p in parts]),
        tensors=cat([p.tensors for p in parts]) if record else {},
        membranes=cat([p.membranes for p in parts]) if record else {},
        syn_adds=cat([p.syn_adds for p in parts]),
        neuron_updates=parts[0].neuron_updates,
        sops=cat([p.sops for p in parts]),
        firing=cat([p.firing for p in parts]),
        dense_macs=parts[0].dense_macs)
