"""Storage of a model's constants in bits (weights at ``weight_bits``, others at their width).

A rough budget for the FPGA memories (iCE40UP5K: 120 kbit EBR + 1 Mbit SPRAM): ``mult`` at
``mult_bits``, ``bias`` and ``theta`` at the smallest signed width of their values.
"""

from ..graph import bits_for_range

__all__ = ["memory_bits"]


def memory_bits(model):
    """``{"weights": bits, "constants": bits, "total": bits}`` of ``model``'s tensors."""
    weights = constants = 0
    for node in model.nodes:
        for name, t in node.tensors.items():
            if name == "weight":
                weights += t.size * node.attrs["weight_bits"]
            elif name == "mult":
                constants += t.size * node.attrs["mult_bits"]
            elif t.size:
                constants += t.size * bits_for_range(int(t.min()), int(t.max()))
    return dict(weights=weights, constants=constants, total=weights + constants)
