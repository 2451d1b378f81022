# amaranth: UnusedElaboratable=no
"""Deliberately broken variants of the ``spikeforge.hdl`` units: each proof kind must catch
one. They change the real unit as little as possible: a subclass that narrows one width
while elaborating, that overrides one handshake signal after the unit's own logic (a later
``comb`` assignment wins in Amaranth), or that builds the unit on a row scan with one step
changed."""

from amaranth.hdl import Const, Signal

from spikeforge.hdl.accumulate_lanes import AccumulateLanes
from spikeforge.hdl.conv_window import ConvWindowScan
from spikeforge.hdl.event_encoder import SpikeEventEncoder
from spikeforge.hdl.accel.ew_nest import EwNest
from spikeforge.hdl.accel.ew_operands import EwOperands
from spikeforge.hdl.accel.logits import Logits
from spikeforge.hdl.accel.lsb import popcount_flags
from spikeforge.hdl.accel.sequencer import Sequencer
from spikeforge.hdl.accel.syn_decode import SynDecode
from spikeforge.hdl.accel.syn_drain import SynDrain
from spikeforge.hdl.accel.syn_fetch import SynFetch
from spikeforge.hdl.accel.syn_issue import SynIssue
from spikeforge.hdl.accel.syn_fifo import RowFifo
from spikeforge.hdl.lif_array import LifArray
from spikeforge.hdl.lif_lane import LifLane
from spikeforge.hdl.row_scan import RowScan
from spikeforge.hdl.sparse_add import SparseAdd
from spikeforge.hdl.spike_attention import SpikeAttentionLinear, SpikeAttentionMask
from spikeforge.hdl.window_walk import WindowWalk


class _Narrowed:
    """Mixin: elaborate with attribute ``_narrow`` reduced (by ``_by`` or halved), so the
    accumulator/membrane registers are one bit too narrow; the ports keep their width."""

    _narrow = None
    _by = 1
    _halve = False

    def elaborate(self, platform):
        saved = getattr(self, self._narrow)
        setattr(self, self._narrow, saved // 2 if self._halve else saved - self._by)
        try:
            return super().elaborate(platform)
        finally:
            setattr(self, self._narrow, saved)


# -- too narrow (overflow proofs) ---------------------------------------------------------------

class SparseAddNarrowAcc(_Narrowed, SparseAdd):
    """Accumulators one bit narrower than the §9 bound needs."""
    _narrow = "acc_bits"


class LifArrayNarrowMembrane(_Narrowed, LifArray):
    """Membrane memory and ``U`` one bit narrower than needed: two below the declared
    ``v_bits``, whose ``2 m + 1`` bound (leak >= 1) has one bit of slack over the reachable
    ``-2^A .. 2^A - 1``."""
    _narrow = "v_bits"
    _by = 2


class AttentionMaskNarrowMembrane(_Narrowed, SpikeAttentionMask):
    """Mask-neuron membrane registers one bit too narrow."""
    _narrow = "v_bits"


class AttentionLinearNarrowKV(_Narrowed, SpikeAttentionLinear):
    """K^T V accumulators sized for half the bound ``N Dk Dv``."""
    _narrow = "kv_max"
    _halve = True


# -- handshake bugs (stream-rule proofs) ------------------------------------------------------------

class RowScanIgnoresStall(RowScan):
    """Takes the next row while the last item is still waiting for ``o.ready``: the pending
    item is overwritten (payload changes while valid and not ready)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.payload.last)
        return m


class EncoderIgnoresStall(SpikeEventEncoder):
    """A SpikeEventEncoder built on :class:`RowScanIgnoresStall`."""

    row_scan = RowScanIgnoresStall


class RowScanLateSingle(RowScan):
    """The fast mode's ``single`` flag from the compact mode's count: "at most two bits in
    ``rest``" where it must be "at most one", so a row of three or more set bits ends one
    event early (the engine's fast build's scan stage with the wrong flag)."""

    def _step(self, pending, rest):
        nxt_pending, nxt_rest, _ = super()._step(pending, rest)
        return nxt_pending, nxt_rest, ~popcount_flags(rest)[1]


class EncoderScanLateSingle(SpikeEventEncoder):
    """A SpikeEventEncoder built on :class:`RowScanLateSingle`."""

    row_scan = RowScanLateSingle


class SparseAddGivesUp(SparseAdd):
    """Output ``valid`` withdrawn after a beat has waited one cycle for ``ready``."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        waited = Signal()
        m.d.sync += waited.eq(self.o.valid & ~self.o.ready)
        with m.If(waited & ~self.o.ready):
            m.d.comb += self.o.valid.eq(0)
        return m


class AccumulateLanesNoSecondForward(AccumulateLanes):
    """The fast build's core without its second forward: an addition whose read missed the
    write of the one two ahead (stage W) adds to the stale word, losing that addition (the
    engine's accumulate stage with ``fwd2`` dropped)."""

    def _operand(self, m, held, fwd, last, fwd2, last2):
        return super()._operand(m, held, fwd, last, None, None)


class SparseAddNoSecondForward(SparseAdd):
    """A SparseAdd built on :class:`AccumulateLanesNoSecondForward`."""

    accumulate = AccumulateLanesNoSecondForward


class ConvWindowRestartsWhileBusy(ConvWindowScan):
    """Start stream always ready: a start during a pass restarts the scan (its walk) under a
    stalled beat."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


class AttentionMaskIgnoresStall(SpikeAttentionMask):
    """q is taken whenever kv is not (ignores the output register and the phase)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.q.ready.eq(~self.kv.ready)
        return m


class LifArrayDropsBeats(LifArray):
    """Input always ready although the pipeline stalls with the output: beats are lost."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.i.ready.eq(1)
        return m


# -- engine stages ----------------------------------------------------------------------------------

class LogitsTieToLast(Logits):
    """The argmax keeps the last of equal logits (``>=``): the class of a tie is the highest
    index, not the lowest (docs/spec.md)."""

    def beats(self, a, b):
        return a >= b


class LogitsOffersWhileShifting(Logits):
    """The fast build offers a beat in the cycle it shifts the logits: a beat stalled there
    changes (the next logit arrives under it)."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.result.valid.eq(self.send)
        return m


# -- the neuron lane -------------------------------------------------------------------------------

class LifLaneFiresLate(LifLane):
    """Fires at ``U > theta`` instead of ``U >= theta`` (§6.1): an off-by-one threshold."""

    def fires(self, w):
        return ~w[-1] & (w != 0)


class LifArrayFiresLate(LifArray):
    """A LifArray built on :class:`LifLaneFiresLate`."""

    lif_lane = LifLaneFiresLate


class WindowWalkLateEnd(WindowWalk):
    """The engine's generator loop nest with its last-but-one flag a step late: a level's end
    flag rises one iteration after its last, so the level runs one iteration too many."""

    def _penultimate_after_step(self, count, n1):
        return count + 1 == n1


# -- the sequencer ---------------------------------------------------------------------------------

class SequencerEndsAfterFirstPass(Sequencer):
    """Reads every pass as the last (``last_pass`` taken as 1): the result is sent after the
    first pass's done, the later passes never run."""

    def elaborate(self, platform):
        saved = self.last_pass
        self.last_pass = Const(1)
        try:
            return super().elaborate(platform)
        finally:
            self.last_pass = saved


class SequencerWritesEveryPixel(Sequencer):
    """Writes the image word at every pixel, not only at a word's last channel: a word is
    written before it is complete, and twice."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.img_write.en.eq(self.pixels.valid & self.pixels.ready)
        return m


# -- the SYN drain ---------------------------------------------------------------------------------

class SynDrainHandsOverEarly(SynDrain):
    """Lets a position end one cycle before the drain's last read: the next drain starts over
    the running one, whose last word is never read (nor cleared)."""

    def _blocks(self, left):
        return left > 3


# -- the EW loop nest ------------------------------------------------------------------------------

class EwNestLateEnd(EwNest):
    """The EW/RED loop nest with its last-but-one flag a step late: a level's end flag rises
    one iteration after its last, so the level runs one iteration too many."""

    def _penultimate_after_step(self, count, n1):
        return count + 1 == n1


# -- the SYN row FIFO ------------------------------------------------------------------------------

class RowFifoCreditOnPush(RowFifo):
    """Returns a row's credit when it is pushed instead of when it is popped: the generator
    may issue more reads than the buffer has free slots, and a push overwrites a row."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.sync += self.credits.eq(self.credits + self.issue - self.push)
        return m


# -- the SYN decode --------------------------------------------------------------------------------

class SynDecodeHeadTooLong(SynDecode):
    """Ends a head's tile range at the tile of the channel after its last: a head that ends
    at a tile's last lane spans one tile too many."""

    def _last_tile(self, lo, hd):
        return self._first_tile(lo + hd)


# -- the SYN row fetch -----------------------------------------------------------------------------

class SynFetchSingleFromTwo(SynFetch):
    """Flags a row as single when at most two bits are set (the 'at least three' flag of the
    count tree instead of 'at least two'): the scan stage would end a row of two events after
    the first."""

    def _single(self, bits):
        return ~popcount_flags(bits)[1]


# -- the EW operand stages -------------------------------------------------------------------------

class EwOperandsMaskOr(EwOperands):
    """The mask pass's operand as ``a | b`` instead of ``a & b``."""

    def _masked(self, a, b):
        return a | b


# -- the SYN issue stage ---------------------------------------------------------------------------

class SynIssueLateLast(SynIssue):
    """Sets ``at_last`` a tile late: an event issues one tile past its head's range."""

    def _next_at_last(self, e):
        return e.tile == e.tile_hi
