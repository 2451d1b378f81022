"""The SYN scan stage's logic: the lowest set bit of a spike row, without a carry chain.

The scan stage takes one event per cycle, the row's lowest set bit: its index comes from a
tree of 4-way priority selections (:func:`lsb_groups`, then :func:`lsb_index`), and the row
less that bit with an "at most one bit left" flag are split in two halves of a few LUT levels
(:func:`lsb_partials`, registered, then :func:`lsb_combine`). Golden definitions: the tests
(tests/accel/test_scan_logic.py) compare every function with its arithmetic definition.
"""

from amaranth.hdl import Cat, Const, Mux

__all__ = ["lsb_groups", "lsb_index", "lsb_partials", "lsb_combine", "popcount_flags"]


def lsb_groups(bits):
    """First level of :func:`lsb_index`: (any set, index of the lowest) per 4 bits."""
    return _lsb_reduce([(bits[i], Const(0, 0)) for i in range(len(bits))], levels=1)


def lsb_index(nodes):
    """Index of the lowest set bit from :func:`lsb_groups` (any value when no bit is set: the
    engine reads it for an event only): a tree of 4-way priority selections, log4(width)
    levels of a few LUTs each, with no carry chain."""
    return _lsb_reduce(nodes)[0][1]


def _lsb_reduce(nodes, levels=None):
    zero = Const(0, 1)
    while len(nodes) > 1 and levels != 0:
        levels = None if levels is None else levels - 1
        nxt = []
        for g in range(0, len(nodes), 4):
            grp = nodes[g:g + 4]
            width = len(grp[0][1])
            grp += [(zero, Const(0, width))] * (4 - len(grp))
            (a0, i0), (a1, i1), (a2, i2), (a3, i3) = grp
            low = Mux(a0, i0, Mux(a1, i1, Mux(a2, i2, i3)))
            high = Cat(~a0 & (a1 | ~a2), ~a0 & ~a1)
            nxt.append((a0 | a1 | a2 | a3, Cat(low, high)))
        nodes = nxt
    return nodes


def lsb_partials(bits):
    """First half of the lowest-bit split of ``bits`` (:func:`lsb_combine`), per group of 4
    bits: for each bit the OR of the bits below it in its group; whether any bit of the group
    is set; whether at least two are."""
    low, anys, twos = [], [], []
    for g in range(0, len(bits), 4):
        grp = [bits[i] for i in range(g, min(g + 4, len(bits)))]
        for k in range(len(grp)):
            low.append(Cat(*grp[:k]).any() if k else Const(0, 1))
        anys.append(Cat(*grp).any())
        twos.append(popcount_flags(Cat(*grp))[0] if len(grp) > 1 else Const(0, 1))
    return Cat(*low), Cat(*anys), Cat(*twos)


def lsb_combine(bits, low, anys, twos):
    """Second half: (``bits`` less its lowest set bit, at least two bits set) from
    :func:`lsb_partials`' values: a bit stays when a lower bit of its group or any lower
    group is set."""
    rest = []
    for i in range(len(bits)):
        g = i // 4
        below = Cat(low[i], *(anys[h] for h in range(g))).any()
        rest.append(bits[i] & below)
    two = twos.any() | popcount_flags(anys)[0] if len(anys) > 1 else twos.any()
    return Cat(*rest), two


def popcount_flags(bits):
    """(at least two, at least three) bits of ``bits`` set: a tree of saturating counts."""
    zero = Const(0, 1)
    nodes = [(bits[i], zero, zero) for i in range(len(bits))]
    while len(nodes) > 1:
        nxt = []
        for i in range(0, len(nodes) - 1, 2):
            (a1, t1, h1), (a2, t2, h2) = nodes[i], nodes[i + 1]
            nxt.append((a1 | a2, t1 | t2 | (a1 & a2), h1 | h2 | (t1 & a2) | (a1 & t2)))
        if len(nodes) % 2:
            nxt.append(nodes[-1])
        nodes = nxt
    return nodes[0][1], nodes[0][2]


