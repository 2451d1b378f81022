"""The engine's timing rules: pipeline depths, pass setup and drain cycles (docs/accelerator.md).

Layer L1 (pure Python, no Amaranth): the one place these numbers are defined. The engine
(:mod:`.engine` and its stages) builds its pipelines from them, and the program executor
(:mod:`.execute`) counts cycles with them, so the RTL and the analytic cycle model cannot
drift apart. Keys of the per-build dicts: ``Program.compact`` (``False``: the fast build,
``True``: the compact build of small devices).
"""

__all__ = ["EW_REGISTERED", "EW_MULT_REGS", "EW_READ_REGS", "EW_ADDR_REGS", "ACC_WRITE_REGS",
           "SYN_READ_REGS", "SYN_FETCH_REGS", "SYN_ISSUE_REGS", "SYN_QUEUE", "PRODUCT_LATENCY",
           "ew_write_cycle", "syn_fifo_rows", "syn_drain_delay", "TIMING", "TIMING_COMPACT",
           "timing_of"]

#: Cycles from a :class:`.product.RegisteredProduct`'s operands to its product (its input and
#: output registers).
PRODUCT_LATENCY = 2

#: EW/RED stages (1..9, docs/accelerator.md) that end in a register, per build (stage 9's
#: register holds the memory write port inputs). An element is written ``ew_write_cycle``
#: cycles after its issue: one for the memory read, one per register.
EW_REGISTERED = {False: (1, 2, 3, 4, 5, 6, 7, 8, 9), True: (2, 3, 4, 5, 7)}
#: Further registers around the requantization multiplier (stage 4): the fast build registers
#: its operands and its product once more, for the route between a lane and the DSP column
#: (the :class:`.product.RegisteredProduct`'s own two registers).
EW_MULT_REGS = {False: PRODUCT_LATENCY, True: 0}
#: Further registers after the memory reads (stage 1): the fast build registers the words
#: twice, for the route from a block RAM column to the lanes.
EW_READ_REGS = {False: 1, True: 0}
#: Further registers in front of the memory reads: the fast build registers the addresses
#: twice, once next to the loop counters and again in a copy per lane group (whose block RAMs
#: and LUT RAMs can be anywhere on the die).
EW_ADDR_REGS = {False: 1, True: 0}

#: Registers between the SYN accumulator's adder and the block RAM write (stage W): the fast
#: build writes a registered sum a cycle later (the route from a lane's adder to its block
#: RAM column is a path of its own). Its drain then waits one more cycle for the last write.
ACC_WRITE_REGS = {False: 1, True: 0}

#: Cycles between the SYN row generator's tap and its spike row read, per build: the fast
#: build registers the row address (the sum of the generator's registers) next to the
#: generator a cycle after the tap, then copies it per lane group; the compact build reads in
#: the tap's cycle. A cycle of pipeline fill per SYN pass each.
SYN_READ_REGS = {False: 2, True: 0}

#: Registers between the spike row's read and the SYN row FIFO: the fast build registers the
#: row twice (once next to the lane groups' memories that hold its bits, again next to the
#: FIFO, whose 'at most one set bit' flag and row-less-its-lowest-bit carry chain read all of
#: them); the compact build pushes the memory output itself. A cycle of pipeline fill each.
SYN_FETCH_REGS = {False: 2, True: 0}

#: Stage X between the SYN issue stage and its memory reads (the fast build): the address
#: copies per lane group take the issue stage's registers, so the reads happen a cycle after
#: the issue. The drain waits one more cycle for the last write.
SYN_ISSUE_REGS = {False: 1, True: 0}

#: Items of the fast build's queue between the SYN decode stages and its issue stage (the
#: compact build has none: its decode stages hold on a ready chain).
SYN_QUEUE = {False: 4, True: 0}


def ew_write_cycle(compact):
    """Cycles from an EW/RED element's issue to its memory write."""
    return (1 + len(EW_REGISTERED[compact]) + EW_MULT_REGS[compact] + EW_READ_REGS[compact]
            + EW_ADDR_REGS[compact])


def syn_fifo_rows(compact):
    """Rows of the SYN row FIFO, which are also the generator's credits: they cover the round
    trip (issue, read, fetch registers, FIFO, the pop seen a cycle later) so that the
    generator never waits for the scan stage's decision of the same cycle."""
    return 3 + SYN_FETCH_REGS[compact] + SYN_READ_REGS[compact]


def syn_drain_delay(compact):
    """Cycles a SYN drain's first read waits for the last accumulator write in flight."""
    return 2 + ACC_WRITE_REGS[compact] + SYN_ISSUE_REGS[compact]


def _timing(compact):
    return dict(
        pass_setup=3,       # load a one-word pass descriptor, start the loops (+1 per further word)
        syn_row=1,          # a row with no event costs one cycle in the event stage
        syn_tap=1,          # the row generator visits one kernel tap (in the grid or not) per cycle
        syn_drain=syn_drain_delay(compact),  # a drain blocks the next position end for this
                            # many cycles + accumulator words
        syn_drain_tail=7 + SYN_READ_REGS[compact] + SYN_FETCH_REGS[compact],  # pipeline fill
                            # (read, fetch, FIFO, scan, 3 decode stages) and flush
        ew_latency=ew_write_cycle(compact) - 2,  # EW/RED: pipeline depth less the 2 overlapped
                            # cycles, paid once per pass (tiles follow without a gap)
        last_flush=2,       # passes end 2 cycles before their last write, except the last pass
        red_epilogue=0,     # RED: the epilogue is pipelined behind the next (tile, t)
    )


#: Timing rules of the fast build (cycles).
TIMING = _timing(False)
#: The compact build (``Program.compact``, small devices): the same rules with a shorter EW
#: pipeline (EW_REGISTERED) and no read or fetch register in front of the SYN row FIFO.
TIMING_COMPACT = _timing(True)


def timing_of(prog):
    """The timing rules of the engine built for ``prog``."""
    return TIMING_COMPACT if prog.compact else TIMING
