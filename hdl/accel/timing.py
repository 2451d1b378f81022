"""The engine's builds and timing rules: pipeline depths, pass setup and drain cycles
(docs/accelerator.md, "Two builds").

Layer L1 (pure Python, no Amaranth): the one place these numbers are defined. A
:class:`Build` holds every option that makes the engine's fast or compact build (its
register stages, queue and memory styles); the engine (:mod:`.engine`) builds its pipelines
from it, and the program executor (:mod:`.execute`) counts cycles with its :meth:`Build.rules`,
so the RTL and the analytic cycle model cannot drift apart.
"""

import dataclasses

__all__ = ["Build", "FAST", "COMPACT", "build_of", "PRODUCT_LATENCY", "TIMING", "TIMING_COMPACT",
           "timing_of", "SYN_DECODE_STAGES"]

#: SYN decode stages (D0, D1, D2) between the scan stage and the issue stage: an item emitted
#: in cycle s can be taken by the issue stage from cycle s + 3.
SYN_DECODE_STAGES = 3

#: Cycles from a :class:`.product.RegisteredProduct`'s operands to its product (its input and
#: output registers).
PRODUCT_LATENCY = 2


@dataclasses.dataclass(frozen=True)
class Build:
    """The options of one engine build. Fields with ``regs`` in their name are register stages
    (each a cycle of latency where the timing rules say so); the booleans are structure
    without a cycle cost of their own."""
    #: ``Program.compact`` of the programs this build runs
    compact: bool
    #: EW/RED stages (1..9, docs/accelerator.md) that end in a register (stage 9's register
    #: holds the memory write port inputs)
    ew_registered: tuple
    #: further registers around the requantization multiplier (stage 4): the fast build
    #: registers its operands and its product once more, for the route between a lane and the
    #: DSP column (the :class:`.product.RegisteredProduct`'s own two registers)
    ew_mult_regs: int
    #: further registers after the EW memory reads (stage 1): the fast build registers the
    #: words twice, for the route from a block RAM column to the lanes
    ew_read_regs: int
    #: further registers in front of the EW memory reads: the fast build registers the
    #: addresses twice, once next to the loop counters and again in a copy per lane group
    ew_addr_regs: int
    #: registers between the SYN accumulator's adder and the block RAM write (stage W): the
    #: fast build writes a registered sum a cycle later; its drain waits one more cycle
    acc_write_regs: int
    #: cycles between the SYN row generator's tap and its spike row read: the fast build
    #: registers the row address next to the generator, then copies it per lane group
    syn_read_regs: int
    #: registers between the spike row's read and the SYN row FIFO: the fast build registers
    #: the row next to its memories, then again with the first half of its rest and flag
    #: (the scan stage then takes the row less its lowest bit ready-made)
    syn_fetch_regs: int
    #: stage X between the SYN issue stage and its memory reads (the fast build): the address
    #: copies per lane group take the issue stage's registers; the drain waits a cycle more
    syn_issue_regs: int
    #: items of the queue between the SYN decode stages and the issue stage (0: no queue, the
    #: decode stages hold on a ready chain from the issue stage)
    syn_queue: int
    #: control registers, memory addresses and write enables copied per lane group (with more
    #: than ``plan.LANES_PER_COPY`` lanes) and fed with next values; the lane-wide memories
    #: split per lane group (else one register each, addresses from the stage registers)
    lane_copies: bool
    #: the SYN accumulators in block RAM (else as the synthesis tool likes: distributed RAM)
    acc_block_ram: bool
    #: the result stage shifts the logits a cycle after each beat, under per-group copies
    logit_shift_regs: bool
    #: the spike memories are written a whole row word at a time (read-modify-write through a
    #: third read port, with the writes in flight forwarded) where a word holds more than one
    #: slot: block RAMs without a write enable per slot (the ECP5's) then store a word in one
    #: block, not one block per bit. Else one write enable per slot (the iCE40's 256 x 16 mode
    #: has a bit mask). No cycle cost: the read is the write's own, on a port of its own.
    spike_word_writes: bool

    @property
    def int_write_regs(self):
        """The integer memory's write port inputs are registered (EW stage 9's register), so
        the SYN drain's writes go through that register too."""
        return 9 in self.ew_registered

    def ew_write_cycle(self):
        """Cycles from an EW/RED element's issue to its memory write."""
        return 1 + len(self.ew_registered) + self.ew_mult_regs + self.ew_read_regs + self.ew_addr_regs

    def syn_fifo_rows(self):
        """Rows of the SYN row FIFO, which are also the generator's credits: they cover the
        round trip (issue, read, fetch registers, FIFO, the pop seen a cycle later) so that the
        generator never waits for the scan stage's decision of the same cycle."""
        return 3 + self.syn_fetch_regs + self.syn_read_regs

    def syn_row_latency(self):
        """Cycles from the SYN generator's tap of an in-grid row to the row's FIFO push: the
        issue register, the read registers, the fetch registers. The generator holds
        ``syn_row_latency() + 2`` credits (:meth:`syn_fifo_rows`: rows in flight and in the
        FIFO), the round trip to a pop seen by the generator."""
        return 1 + self.syn_read_regs + self.syn_fetch_regs

    def syn_in_flight(self):
        """Items the SYN scan stage may have emitted and the issue stage not yet taken, and
        whether the scan stage sees a take in its own cycle: with a queue, the decode stages
        never stall and a registered count of the items in them and in the queue holds the scan
        stage (a take is seen a cycle later); without one, the decode stages hold on a ready
        chain from the issue stage (a take frees a place in the same cycle)."""
        if self.syn_queue:
            return self.syn_queue, False
        return SYN_DECODE_STAGES, True

    def syn_drain_delay(self):
        """Cycles a SYN drain's first read waits for the last accumulator write in flight."""
        return 2 + self.acc_write_regs + self.syn_issue_regs

    def rules(self):
        """The timing rules (cycles) of this build."""
        return dict(
            pass_setup=3,     # load a one-word pass descriptor, start the loops (+1 per further word)
            syn_row=1,        # a row with no event costs one cycle in the event stage
            syn_tap=1,        # the row generator visits one kernel tap (in the grid or not) per cycle
            syn_drain=self.syn_drain_delay(),  # a drain blocks the next position end for this
                              # many cycles + accumulator words
            ew_latency=self.ew_write_cycle() - 2,  # EW/RED: pipeline depth less the 2
                              # overlapped cycles, paid once per pass (tiles follow without a gap)
            last_flush=2,     # passes end 2 cycles before their last write, except the last pass
            red_epilogue=0,   # RED: the epilogue is pipelined behind the next (tile, t)
        )


#: The fast build (clock rate): every stage registered, copies per lane group.
FAST = Build(compact=False, ew_registered=(1, 2, 3, 4, 5, 6, 7, 8, 9), ew_mult_regs=PRODUCT_LATENCY,
             ew_read_regs=1, ew_addr_regs=1, acc_write_regs=1, syn_read_regs=2, syn_fetch_regs=2,
             syn_issue_regs=1, syn_queue=4, lane_copies=True, acc_block_ram=True, logit_shift_regs=True,
             spike_word_writes=True)
#: The compact build (area, small devices): a shorter EW pipeline, no read, fetch or issue
#: registers in the SYN pipeline, no queue.
COMPACT = Build(compact=True, ew_registered=(2, 3, 4, 5, 7), ew_mult_regs=0, ew_read_regs=0,
                ew_addr_regs=0, acc_write_regs=0, syn_read_regs=0, syn_fetch_regs=0, syn_issue_regs=0,
                syn_queue=0, lane_copies=False, acc_block_ram=False, logit_shift_regs=False,
                spike_word_writes=False)


def build_of(prog):
    """The build of the engine for ``prog`` (``Program.compact``)."""
    return COMPACT if prog.compact else FAST


#: Timing rules of the fast build (cycles).
TIMING = FAST.rules()
#: The compact build's.
TIMING_COMPACT = COMPACT.rules()


def timing_of(prog):
    """The timing rules of the engine built for ``prog``."""
    return TIMING_COMPACT if prog.compact else TIMING
