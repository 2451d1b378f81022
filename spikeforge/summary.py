"""Human- and machine-readable summaries of a model: layers, shapes, widths, memory bits."""

import numpy as np

from .graph import OPS, bits_for_range, infer, input_encoding, input_shape

__all__ = ["tensor_storage_bits", "summarize"]


def tensor_storage_bits(node, tname):
    """``(width, count)`` a tensor of ``node`` occupies in memory at its declared width."""
    t = node.tensors[tname]
    a = node.attrs
    if tname == "weight":
        width = a["weight_bits"]
    elif tname == "mult":
        width = a["mult_bits"]
    else:
        width = bits_for_range(int(t.min()), int(t.max())) if t.size else 1
    return width, int(t.size)


def summarize(model):
    """A JSON-ready description of ``model`` (validated first)."""
    infos = infer(model)
    layers, total_bits, total_params = [], 0, 0
    for node in model.nodes:
        info = infos[node.name]
        tensors = {}
        for tname in OPS[node.op]["tensors"]:
            width, count = tensor_storage_bits(node, tname)
            tensors[tname] = {"shape": list(node.tensors[tname].shape), "bits": width,
                              "memory_bits": width * count}
            total_bits += width * count
            if tname == "weight":
                total_params += count
        layers.append({
            "name": node.name, "op": node.op, "inputs": list(node.inputs),
            "output_shape": list(info.shape),
            "output": (f"spikes 0..{info.levels}" if info.is_spikes
                       else f"int{info.bits} ({info.lo}..{info.hi})"),
            "attrs": {k: (int(v) if isinstance(v, (int, np.integer)) else v)
                      for k, v in node.attrs.items()},
            "tensors": tensors,
        })
    return {
        "time_steps": model.time_steps,
        "input_shape": list(input_shape(model)),        # (T, H, W, C) for frames (spec §4)
        "input_encoding": input_encoding(model),
        "classes": int(model.head.attrs["classes"]),
        "layers": layers,
        "weights": total_params,
        "memory_bits": total_bits,
        "metadata": model.metadata,
    }
