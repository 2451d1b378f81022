"""hdl/pack.py: one value laid out as a struct/array layout, with exact widths."""

import pytest
from amaranth.hdl import Const, signed, unsigned
from amaranth.lib import data

from spikeforge.hdl.pack import pack

LAYOUT = data.StructLayout({
    "w": data.ArrayLayout(signed(5), 3),
    "acc": data.ArrayLayout(data.ArrayLayout(unsigned(4), 2), 2),
    "word": unsigned(3),
    "bank": 1,
})
FIELDS = {"w": [-3, 7, -16], "acc": [[1, 2], [13, 15]], "word": 5, "bank": 1}


def _consts(fields):
    """FIELDS with each leaf a Const of its field's shape."""
    return {"w": [Const(v, signed(5)) for v in fields["w"]],
            "acc": [[Const(v, 4) for v in row] for row in fields["acc"]],
            "word": Const(fields["word"], 3), "bank": Const(fields["bank"], 1)}


def test_bits_are_the_layouts():
    packed = Const.cast(pack(LAYOUT, _consts(FIELDS)))
    assert len(packed) == LAYOUT.size
    assert packed.value == LAYOUT.const(FIELDS).as_value().value


def test_a_leaf_of_the_wrong_width_is_named():
    bad = _consts(FIELDS)
    bad["acc"][1][0] = Const(13, 5)
    with pytest.raises(ValueError, match=r"value\.acc\[1\]\[0\] is 5 bits wide; allowed: exactly 4"):
        pack(LAYOUT, bad)


def test_missing_field_and_wrong_length_are_named():
    bad = _consts(FIELDS)
    del bad["bank"]
    with pytest.raises(ValueError, match=r"has fields \['acc', 'w', 'word'\]; allowed: exactly"):
        pack(LAYOUT, bad)
    bad = _consts(FIELDS)
    bad["w"] = bad["w"][:2]
    with pytest.raises(ValueError, match=r"value\.w has 2 elements; allowed: 3"):
        pack(LAYOUT, bad)
