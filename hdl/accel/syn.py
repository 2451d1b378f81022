"""The SYN pass pipeline: event-driven accumulation (docs/accelerator.md, "Pipelines").

Three parts, each a function of the stages it builds, connected here by name: what one
part passes to the next is its return value, nothing is kept on the engine.
"""

from .syn_accumulate import syn_accumulate
from .syn_front import syn_front
from .syn_scan import syn_scan

__all__ = ["elaborate_syn"]


def elaborate_syn(eng, m, lc, desc, start, done, banks, img_r, im_a, im_w, wm_r, amems, event):
    """Generator | read | fetch | FIFO | scan | D0 | D1 | D2 | queue | issue | I | R | A
    (| W in the fast build: Build.acc_write_regs).

    The generator walks (t, y', x', t_rows, ky, kx) one tap per cycle with running
    pointers (no multiplier): the read address is a time base plus a spatial pointer. The
    scan stage takes the lowest set bit of the current row each cycle; three decode
    stages turn its index into the head's tile range, ``channel * tiles`` and the weight
    and accumulator words; the issue stage sends one (event, tile) per cycle to the
    accumulator pipeline as the single event stage did, so the per-position timing
    rules are unchanged (docs/accelerator.md).
    """
    s0 = syn_front(eng=eng, m=m, lc=lc, desc=desc, banks=banks, img_r=img_r)
    s1 = syn_scan(eng=eng, m=m, desc=desc, count=s0["count"], event=event, fifo_bits=s0["fifo_bits"],
                  fifo_last=s0["fifo_last"], fifo_rest=s0["fifo_rest"], fifo_single=s0["fifo_single"],
                  fifo_va=s0["fifo_va"], fifo_wb=s0["fifo_wb"], pop=s0["pop"], rd_ptr=s0["rd_ptr"],
                  scan_active=s0["scan_active"])
    return syn_accumulate(eng=eng, m=m, lc=lc, desc=desc, active=s0["active"], amems=amems, bank=s1["bank"],
                          banks=banks, count=s0["count"], decode_empty=s1["decode_empty"],
                          done=done, dr_blk=s1["dr_blk"], dr_busy=s1["dr_busy"], e=s1["e"], e1_on=s1["e1_on"],
                          e_b=s1["e_b"], e_lo=s1["e_lo"], e_tile=s1["e_tile"], e_valid=s1["e_valid"],
                          ev_issue=s1["ev_issue"],
                          gen_active=s0["gen_active"], gen_on=s0["gen_on"], im_a=im_a, im_w=im_w,
                          issue_last=s0["issue_last"], item=s1["item"], next_item=s1["next_item"],
                          pos_end=s1["pos_end"], fetch_busy=s0["fetch_busy"],
                          scan_active=s0["scan_active"], start=start, syn_ra=s0["syn_ra"],
                          take=s1["take"], wm_r=wm_r)
