"""NIR export: a spikeforge model -> a NIR graph, for the operators NIR has (docs/import.md).

The graph computes the integer model in float, in the integer units of the model: the input is
the integer image (pixel values, not scaled), a ``conv`` is a ``Conv2d`` whose weights and bias
carry its requantization (``weight * mult / 2^S``, ``bias / 2^S``), ``lif`` is ``LIF`` with
``beta = 2^-leak`` (snnTorch's convention ``tau = dt / (1 - beta)``, ``r = tau / dt``, so the
input gain is 1) or ``IF`` for ``leak = 0``, threshold ``theta - 1/2`` (NIR fires on
``v > v_th``), ``add`` is an identity ``Scale`` fed by two edges (NIR sums the edges into a
node), ``pool`` a ``Conv2d`` over the whole grid, ``head`` a ``Flatten`` and an ``Affine``
whose per-step bias is ``bias / T``. What the float graph does not carry: the rounding and
saturation of the requantization, and the floor of the leak shift.

Refused, naming the node: ``multispike`` and soft-reset ``lif`` (NIR's neurons reset to
``v_reset``, they neither subtract nor emit multi-level spikes) and the spike-driven attention
``sdsa_mask`` / ``sdsa_linear`` (no NIR primitive).
"""


import numpy as np

from .graph import infer
from .modelfile import atomic_output
from .nir_import import DEFAULT_DT, NIRError, _nir

__all__ = ["export_model", "write_graph"]

_SUPPORTED = "input, conv, lif (hard reset), add, pool, head"


def _refuse(node, why):
    raise NIRError(f"node {node.name!r} ({node.op}): {why}; NIR export supports {_SUPPORTED}")


def export_model(model, dt=DEFAULT_DT):
    """Return a ``nir.NIRGraph`` computing ``model`` in float (see the module docstring)."""
    nir = _nir()
    infos = infer(model)
    T = model.time_steps
    nodes, edges = {}, []

    def typed(node, shape_in, shape_out):
        node.input_type = {"input": np.array(shape_in)}
        node.output_type = {"output": np.array(shape_out)}
        return node

    def chw(name):
        H, W, C = infos[name].shape
        return (C, H, W)

    for node in model.nodes:
        a, t = node.attrs, node.tensors
        if node.op == "input":
            shape = (a["channels"], a["height"], a["width"])
            nodes[node.name] = nir.Input(input_type={"input": np.array(shape)})
            continue
        src = node.inputs[0]
        if node.op == "conv":
            scale = t["mult"] / 2.0 ** a["shift"]
            w = t["weight"].transpose(3, 2, 0, 1) * scale[:, None, None, None]
            _, H, W = chw(src)
            nodes[node.name] = typed(nir.Conv2d(
                input_shape=(H, W), weight=w.astype(np.float64), stride=a["stride"],
                padding=a["padding"], dilation=1, groups=1,
                bias=(t["bias"] / 2.0 ** a["shift"]).astype(np.float64)), chw(src), chw(node.name))
        elif node.op == "lif":
            if a["reset"] != "hard":
                _refuse(node, "soft reset (subtract theta) has no NIR neuron; NIR's LIF and IF "
                              "reset to v_reset")
            shape = chw(node.name)
            thr = np.broadcast_to((t["theta"] - 0.5).reshape(-1, 1, 1), shape).astype(np.float64)
            zeros = np.zeros(shape)
            if a["leak"] == 0:
                neuron = nir.IF(r=np.ones(shape), v_threshold=thr, v_reset=zeros)
            else:
                tau = np.full(shape, dt / (1 - 2.0 ** -a["leak"]))
                neuron = nir.LIF(tau=tau, r=tau / dt, v_leak=zeros.copy(), v_threshold=thr,
                                 v_reset=zeros.copy())
            nodes[node.name] = typed(neuron, shape, shape)
        elif node.op == "add":
            shape = chw(node.name)
            nodes[node.name] = typed(nir.Scale(scale=np.ones(shape[0])), shape, shape)
        elif node.op == "pool":
            C, H, W = chw(src)
            scale = t["mult"] / 2.0 ** a["shift"]
            w = np.zeros((C, C, H, W))
            w[np.arange(C), np.arange(C)] = scale[:, None, None]
            nodes[node.name] = typed(nir.Conv2d(
                input_shape=(H, W), weight=w, stride=1, padding=0, dilation=1, groups=1,
                bias=(t["bias"] / 2.0 ** a["shift"]).astype(np.float64)), (C, H, W), (C, 1, 1))
        elif node.op == "head":
            C, K = t["weight"].shape
            flat = node.name + ".flatten"
            if flat in nodes or node.name + ".output" in nodes:
                _refuse(node, f"the names {flat!r} / '.output' are taken by other nodes")
            nodes[flat] = typed(nir.Flatten(input_type={"input": np.array(chw(src))}, start_dim=0,
                                            end_dim=-1), chw(src), (C,))
            edges.append((src, flat))
            nodes[node.name] = typed(nir.Affine(weight=t["weight"].T.astype(np.float64),
                                                bias=(t["bias"] / T).astype(np.float64)), (C,), (K,))
            edges.append((flat, node.name))
            out = node.name + ".output"
            nodes[out] = nir.Output(output_type={"output": np.array((K,))})
            edges.append((node.name, out))
            continue
        elif node.op in ("sdsa_mask", "sdsa_linear"):
            _refuse(node, "spike-driven attention has no NIR primitive")
        elif node.op == "multispike":
            _refuse(node, "multi-level spikes have no NIR neuron")
        else:
            _refuse(node, "no NIR equivalent")
        for name in node.inputs:
            edges.append((name, node.name))
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata={
        "generator": "spikeforge.nir_export", "time_steps": T, "dt": dt,
        "input": "integer image values (spec §4), direct encoding"})
    return graph


def write_graph(graph, path):
    """``nir.write`` to ``path`` atomically (a temporary file in the same folder, then rename)."""
    nir = _nir()
    with atomic_output(path) as tmp:
        nir.write(tmp, graph)
