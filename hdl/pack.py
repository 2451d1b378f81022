"""One value for a whole struct/array port, so that a component boundary is driven by ONE
assignment.

Driving a wide port field by field (``m.d.comb += [p.w[0].eq(a), p.w[1].eq(b), ...]``)
gives Verilog with one ``assign p[hi:lo] = ...;`` per field. Icarus Verilog compiles a net
assembled from part-select assignments into a strength-aware concatenation (``.concat8``)
that rebuilds and reduces the WHOLE net bit by bit whenever ANY part changes: the 344-bit
input payload of the engine's accumulate core (34 parts that change every cycle) made Icarus
6 times slower on the accelerator (issue 19). ``port.eq(pack(port.shape(), values))`` is
the same logic written as one ``assign port = {...};`` (a plain concatenation in Icarus), or
as separate ports of the submodule. tests/accel/test_icarus_nets.py lints the engine's
Verilog for such nets.
"""

from amaranth.hdl import Cat, Shape, Value
from amaranth.lib import data

__all__ = ["pack"]


def pack(layout, value, *, path="value"):
    """The bits of ``value`` laid out as ``layout``: for a :class:`~amaranth.lib.data.StructLayout`
    a dict with a value for every field, for an :class:`~amaranth.lib.data.ArrayLayout` a
    sequence of its ``length`` elements, else a value exactly as wide as the shape (no silent
    extension or truncation: a mismatch is an error naming the field)."""
    if isinstance(layout, data.StructLayout):
        if not isinstance(value, dict):
            raise TypeError(f"pack: {path} is {type(value).__name__}; allowed: a dict of the fields "
                            f"{', '.join(layout.members)}")
        if set(value) != set(layout.members):
            raise ValueError(f"pack: {path} has fields {sorted(value)}; allowed: exactly "
                             f"{sorted(layout.members)}")
        parts, pos = [], 0
        for name, field in sorted(layout, key=lambda item: item[1].offset):
            if field.offset != pos:  # a StructLayout is packed: fields follow each other
                raise ValueError(f"pack: field {path}.{name} starts at bit {field.offset}, not {pos}")
            parts.append(pack(field.shape, value[name], path=f"{path}.{name}"))
            pos += field.width
        return Cat(*parts)
    if isinstance(layout, data.ArrayLayout):
        items = list(value) if not isinstance(value, (dict, Value, int)) else None
        if items is None or len(items) != layout.length:
            got = len(items) if items is not None else type(value).__name__
            raise ValueError(f"pack: {path} has {got} elements; allowed: {layout.length}")
        return Cat(*[pack(layout.elem_shape, v, path=f"{path}[{i}]") for i, v in enumerate(items)])
    if isinstance(layout, data.Layout):
        raise TypeError(f"pack: {path} has layout {layout!r}; allowed: StructLayout, ArrayLayout or a shape")
    width = Shape.cast(layout).width
    v = Value.cast(value)
    if len(v) != width:
        raise ValueError(f"pack: {path} is {len(v)} bits wide; allowed: exactly {width} (its field's width)")
    return v
