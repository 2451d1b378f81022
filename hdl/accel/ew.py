"""The EW / RED pass pipeline: element-wise and reduction passes (docs/accelerator.md).

Two parts, each a function of the stages it builds, connected here by name.
"""

from .ew_lanes import ew_lanes
from .ew_loops import ew_loops

__all__ = ["elaborate_ew"]


def elaborate_ew(eng, m, lc, desc, start, done, banks, rmw, im_a, im_b, im_w, cm_r, tile, syn):
    """One element per cycle through a 9-stage pipeline; tiles follow each other without
    a gap, so a pass costs ``tiles * N * T`` issue cycles plus the pipeline depth once.
    ``rmw``: the spike banks' third read ports (whole-word spike writes), or ``None``.
    ``tile``: the result stage's tile shift input (the out pass's logits, :class:`.logits.Logits`).

    ===== =====================================================================
    stage work (the element issued in cycle 0)
    ===== =====================================================================
    0     loop counters and running pointers; memory read addresses
    1     memory words registered as read; constants
    2     operand lanes (spike slot select or integer lane)
    3     RED running sum; the addend (bias + rounding, or the logit bias)
    4     requantization product (the fast build: operands and product registered again)
    5     product (or operand) + addend
    6     arithmetic shift
    7     saturation (requantization)
    8     ``y - theta``, the residual sum, the multispike rounding, ``y AND b``
    9     neuron (the membrane loop alone), residual saturation, memory write
          (the fast build registers the write port inputs: the write is a cycle later;
          with whole-word spike writes, the row read for them on ``rmw`` is merged here)
    ===== =====================================================================

    Stages 4..8 and the neuron of stage 9 are each lane's :class:`~..lif_lane.LifLane`
    (``product``, ``sum``, ``shift``, ``sat``, ``pre``), the lane :class:`~..lif_array.LifArray`
    is built on, with the pass's constants on its port ``k``; the membrane register, the
    residual sum and the writes stay in ``ew_lanes.py``.
    """
    s0 = ew_loops(eng=eng, m=m, lc=lc, desc=desc, banks=banks, cm_r=cm_r, im_a=im_a, im_b=im_b, syn=syn)
    ew_lanes(eng=eng, m=m, lc=lc, desc=desc, active=s0["active"], active_next=s0["active_next"],
             banks=banks, rmw=rmw, cm_r=cm_r, ctl_at=s0["ctl_at"], ctl_lanes=s0["ctl_lanes"], done=done,
             f_add=s0["f_add"],
             f_and=s0["f_and"], f_lif=s0["f_lif"], f_mask=s0["f_mask"], f_ms=s0["f_ms"], f_out=s0["f_out"],
             f_red=s0["f_red"], f_rq=s0["f_rq"], f_soft=s0["f_soft"], f_spk=s0["f_spk"], im_a=im_a, im_b=im_b,
             im_w=im_w, tile=tile, loop_active=s0["loop_active"], run=s0["run"], sel_active=s0["sel_active"],
             spread=s0["spread"], start=start, syn=syn)
