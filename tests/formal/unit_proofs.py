"""Bounded-proof harnesses for the units of ``spikeforge.hdl`` and the engine's stage components
(used by test_formal_units.py).

Every harness wraps one unit with free inputs (the solver picks every input bit and the reset
on every cycle) and

- *assumes* the stream rules on the unit's input streams and the declared input value
  ranges (spike values ``<= levels``, accumulators within ``in_lo..in_hi``, each event at most
  once per group: the premises of the §9 bounds);
- *asserts* the stream rules on the output stream, and compares the output with a shadow
  model kept in the harness at full width (no truncation anywhere): each output beat equals
  the exact value, the shadow values stay within the §9 bounds the unit derives its widths
  from, and no beat appears that has no input behind it. A too-narrow accumulator, membrane or
  counter in the unit shows as an output that differs from the exact value.

The shadows are written independently of the units (plain registers and full-width
arithmetic, no pipelining) and read only ports.
"""

from amaranth.asserts import AnyConst
from amaranth.hdl import (Array, Assert, Assume, Cat, Const, Elaboratable, Module, Mux, ResetSignal, Signal, Value,
                          signed)

from spikeforge.graph import bits_for_range
from spikeforge.sim.formal import free_inputs, in_range, past, stream_rules

__all__ = ["EncoderProof", "SparseAddProof", "ConvWindowProof", "LifArrayProof",
           "AttentionMaskProof", "AttentionLinearProof", "LogitsProof", "LifLaneProof", "WindowWalkProof",
           "SequencerProof", "SynDrainProof", "EwNestProof", "RowFifoProof", "SynDecodeProof",
           "SynFetchProof", "EwOperandsProof", "SynIssueProof"]



def _guarded(lo, hi):
    """Shadow width for values asserted to stay in ``lo..hi``: two bits more than the bound
    needs, so one step cannot wrap a shadow value back inside without the bound assertion
    failing first (no step adds more than the bound's magnitude)."""
    return signed(bits_for_range(min(lo, 0), max(hi, 0)) + 2)


def _const_shape(values):
    return signed(max(abs(int(v)) for v in values).bit_length() + 1)


def _fire(s):
    return s.valid & s.ready


class _Harness(Elaboratable):
    """A proof harness: the unit ``dut`` as a submodule with free inputs (:func:`free_inputs`),
    the stream rules assumed on its input streams (``inputs``) and asserted on its output
    streams (``outputs``: port -> name in the messages), then ``environment`` (the
    assumptions a proof makes in every mode; may return keyword arguments for ``check``) and
    ``check`` (the properties). ``shadow=False`` keeps only the stream rules and the
    environment (for the mutants of a handshake)."""

    inputs = ()
    outputs = {}

    def __init__(self, dut, *, shadow=True):
        self.dut = dut
        self.shadow = shadow

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        m.submodules.dut = dut
        free_inputs(m, dut)
        for name in self.inputs:
            stream_rules(m, getattr(dut, name), assume=True, name=name)
        for port, name in self.outputs.items():
            stream_rules(m, getattr(dut, port), name=name)
        env = self.environment(m, dut) or {}
        if self.shadow:
            self.check(m, dut, **env)
        return m

    def environment(self, m, dut):
        return None

    def check(self, m, dut):
        raise NotImplementedError


class _Proof(_Harness):
    """A unit with input streams ``inputs`` and one output stream ``o``."""

    inputs = ("i",)
    outputs = {"o": "o"}


class _Fifo:
    """Expected output beats: pushed when an input is taken, compared when an output is."""

    def __init__(self, m, width, depth, name):
        self.m, self.depth, self.name = m, depth, name
        self.slots = [Signal(width, name=f"{name}_slot{j}") for j in range(depth)]
        self.count = Signal(range(depth + 2), name=f"{name}_count")

    def connect(self, push, value, pop, actual):
        m, count = self.m, self.count
        nxt = count + push - pop
        m.d.comb += [
            Assert(~pop | (count > 0), f"{self.name}: output beat with no input behind it"),
            Assert(nxt <= self.depth, f"{self.name}: more than {self.depth} beats in flight"),
        ]
        with m.If(pop & (count > 0)):
            m.d.comb += Assert(actual == self.slots[0], f"{self.name}: output differs from the exact value")
        with m.If(pop):
            m.d.sync += [self.slots[j].eq(self.slots[j + 1]) for j in range(self.depth - 1)]
        with m.If(push):
            with m.Switch(count - pop):
                for j in range(self.depth):
                    with m.Case(j):
                        m.d.sync += self.slots[j].eq(value)
        m.d.sync += count.eq(nxt)


# -- SpikeEventEncoder ------------------------------------------------------------------------

class EncoderProof(_Proof):
    """Events are exactly the set bits of the accepted vector, lowest (channel, plane) first,
    each once; ``last`` on the final one; ``empty`` only for an all-zero vector; every event
    carries its vector's tag. Covers the encoder's :class:`~spikeforge.hdl.row_scan.RowScan`
    in the mode given (``fast``: the engine's fast build's, else its compact build's)."""

    def check(self, m, dut):
        C, D, planes = dut.channels, dut.levels, dut.planes
        n = C * planes
        with m.If(dut.i.valid):
            m.d.comb += [Assume(dut.i.payload.spikes[c] <= D) for c in range(C)]
        packed = Cat(dut.i.payload.spikes[c][b] for c in range(C) for b in range(planes))
        remaining = Signal(n)  # set bits of the vector in flight not yet sent as events
        tag = Signal(Value.cast(dut.i.payload.tag).shape(), name="shadow_tag")  # its tag
        inflight = Signal(range(3))
        ev = dut.o.payload
        onehot = Signal(n)
        m.d.comb += onehot.eq(Const(1, 1) << (ev.channel * planes + ev.plane))
        take, give = _fire(dut.i), _fire(dut.o)
        nxt = inflight + take - (give & ev.last)
        m.d.comb += [
            Assert(~dut.o.valid | (inflight == 1), "o: event with no vector in flight"),
            Assert(nxt <= 1, "i: vector taken while another one is being sent"),
        ]
        with m.If(dut.o.valid):
            m.d.comb += Assert(Value.cast(ev.tag) == tag, "o: tag is not its vector's")
            with m.If(ev.empty):
                m.d.comb += [Assert(remaining == 0, "o: empty beat for a vector with spikes"),
                             Assert(ev.last, "o: empty beat without last")]
            with m.Else():
                m.d.comb += [
                    Assert((ev.channel < C) & (ev.plane < planes), "o: channel/plane out of range"),
                    Assert((remaining & onehot) != 0, "o: event for a bit that is not set or was sent"),
                    Assert((remaining & (onehot - 1)) == 0, "o: events out of order"),
                    Assert(ev.last == ((remaining & ~onehot) == 0), "o: last flag wrong"),
                ]
        with m.If(give):
            m.d.sync += remaining.eq(remaining & ~onehot)
        with m.If(take):
            m.d.sync += [remaining.eq(packed), tag.eq(dut.i.payload.tag)]
        m.d.sync += inflight.eq(nxt)


# -- SparseAdd ----------------------------------------------------------------------------------

class SparseAddProof(_Proof):
    """Output sums equal the exact per-group sums of ``weight << plane`` and stay within the
    unit's weight-derived bound ``acc_lo..acc_hi`` (§9), given that each (tap, channel, plane)
    event comes at most once per group (a convolution window) and ``levels = 2^b - 1`` (so any
    set of planes of one channel is a value ``<= levels``)."""

    once_per_group = True  # the premise of the bound; False shows the bound assertion is live

    def check(self, m, dut):
        assert (dut.levels + 1) & dut.levels == 0, "levels must be 2^b - 1 for this harness"
        k2, ci, co, P, tiles = dut.kernel ** 2, dut.in_channels, dut.out_channels, dut.lanes, dut.tiles
        planes = dut.levels.bit_length()
        w = dut.weight.reshape(k2 * ci, co)
        ev = dut.i.payload
        # environment: events in range, each (tap, channel, plane) at most once per group
        seen = Signal(k2 * ci * planes)
        onehot = Signal(len(seen))
        m.d.comb += onehot.eq(Const(1, 1) << ((ev.tag.tap * ci + ev.channel) * planes + ev.plane))
        with m.If(dut.i.valid & ~ev.empty):
            m.d.comb += [Assume(ev.tag.tap < k2), Assume(ev.channel < ci), Assume(ev.plane < planes)]
            if self.once_per_group:
                m.d.comb += Assume((seen & onehot) == 0)
        take = _fire(dut.i)
        group_end = take & ev.last & ev.tag.end
        with m.If(take & ~ev.empty):
            m.d.sync += seen.eq(seen | onehot)
        with m.If(group_end):
            m.d.sync += seen.eq(0)

        shape = _guarded(dut.acc_lo, dut.acc_hi)
        sums = [Signal(shape, name=f"sum_{c}") for c in range(co)]
        expect = [Signal(shape, name=f"expect_{c}") for c in range(co)]
        row = ev.tag.tap * ci + ev.channel
        for c in range(co):
            table = Array(Const(int(v), _const_shape(w[:, c])) for v in w[:, c])
            new = sums[c] + Mux(ev.empty, 0, table[row] << ev.plane)
            m.d.comb += [Assert(sums[c] >= dut.acc_lo, f"sum {c} below the §9 bound"),
                         Assert(sums[c] <= dut.acc_hi, f"sum {c} above the §9 bound")]
            with m.If(take):
                m.d.sync += sums[c].eq(Mux(group_end, 0, new))
            with m.If(group_end):
                m.d.sync += expect[c].eq(new)

        pending = Signal()  # a group's sums are being sent
        out_tile = Signal(range(tiles))
        give = _fire(dut.o)
        m.d.comb += [Assert(~dut.o.valid | pending, "o: beat with no finished group"),
                     Assert(~(take & pending), "i: event taken while sums are being sent")]
        with m.If(dut.o.valid):
            m.d.comb += [Assert(dut.o.payload.tile == out_tile, "o: tile out of order"),
                         Assert(dut.o.payload.last == (out_tile == tiles - 1), "o: last flag wrong")]
            for t in range(tiles):
                with m.If(out_tile == t):
                    for lane in range(P):
                        c = t * P + lane
                        want = expect[c] if c < co else 0
                        m.d.comb += Assert(dut.o.payload.acc[lane] == want,
                                           "o: acc differs from the exact sum (overflow?)")
            for lane in range(P):
                in_range(m, dut.o.payload.acc[lane], dut.acc_lo, dut.acc_hi, name=f"o.acc[{lane}]")
        with m.If(give):
            m.d.sync += out_tile.eq(Mux(dut.o.payload.last, 0, out_tile + 1))
            with m.If(dut.o.payload.last):
                m.d.sync += pending.eq(0)
        with m.If(group_end):
            m.d.sync += [pending.eq(1), out_tile.eq(0)]


# -- ConvWindowScan -----------------------------------------------------------------------------

class ConvWindowProof(_Proof):
    """Each pass emits exactly ``golden.conv_window_scan`` (token, tap, end) with ``last`` on
    its final beat; the beat counter stays below the number of taps; starts only between
    passes."""

    def check(self, m, dut):
        from spikeforge.sim.golden import conv_window_scan

        scan = conv_window_scan(dut.height, dut.width, dut.kernel, dut.stride, dut.padding)
        count = Signal(range(len(scan) + 1))
        active = Signal()
        fields = list(zip(*scan))
        want_tok, want_tap, want_end = (Array(Const(v, range(max(f) + 1)) for v in f) for f in fields)
        o = dut.o.payload
        m.d.comb += [Assert(~dut.o.valid | active, "o: beat outside a pass"),
                     Assert(~(_fire(dut.i) & active), "i: start taken during a pass"),
                     Assert(count < len(scan), "beat counter beyond the number of taps")]
        with m.If(dut.o.valid):
            m.d.comb += [
                Assert(o.token == want_tok[count], "o: token differs from the golden scan"),
                Assert(o.tap == want_tap[count], "o: tap differs from the golden scan"),
                Assert(o.end == want_end[count], "o: end differs from the golden scan"),
                Assert(o.last == (count == len(scan) - 1), "o: last flag wrong"),
            ]
        with m.If(_fire(dut.o)):
            m.d.sync += count.eq(count + 1)
            with m.If(o.last):
                m.d.sync += [count.eq(0), active.eq(0)]
        with m.If(_fire(dut.i)):
            m.d.sync += [count.eq(0), active.eq(1)]


# -- WindowWalk (the engine's SYN generator loop nest) -------------------------------------------

class WindowWalkProof(_Harness):
    """The walk visits the nested loop order exactly: with any bounds (held from a cycle
    before ``run`` rises, ``one``/``two`` true to ``n1``) and any ``step`` and ``run``, each
    counter equals a shadow nest of plain full-width counters, stays within its bound; the
    end flags, the stepping level (one-hot) and ``wrap`` are exactly those of the shadow."""

    def check(self, m, dut):
        n = len(dut.names)
        bnd = [dut.bounds[k] for k in dut.names]
        run_p = past(m, dut.run, name="run_p")
        bounds_p = past(m, dut.bounds.as_value(), name="bounds_p")
        rst_p = past(m, ResetSignal(), name="rst_p")
        started = Signal()  # a cycle out of reset has passed
        m.d.sync += started.eq(1)
        for b in bnd:
            m.d.comb += [Assume(b.one == (b.n1 == 0)), Assume(b.two == (b.n1 == 1))]
        # bounds held while the walk runs and in the cycle before it starts
        with m.If(started & ~rst_p & (dut.run | run_p)):
            m.d.comb += Assume(dut.bounds.as_value() == bounds_p)
        with m.If(~started | rst_p):
            m.d.comb += Assume(~dut.run)
        # after the last iteration the user stops stepping until the next walk (the engine:
        # ``gen_on`` falls on ``wrap``; ``run`` falls at the pass's end)
        wrapped = Signal()
        with m.If(~dut.run):
            m.d.sync += wrapped.eq(0)
        with m.Elif(dut.wrap):
            m.d.sync += wrapped.eq(1)
        m.d.comb += Assume(~(wrapped & dut.step))
        shadow = [Signal(w + 1, name=f"shadow_{k}") for k, w in zip(dut.names, dut.widths)]
        at_end = [shadow[j] == bnd[j].n1 for j in range(n)]
        adv = Signal(n)
        for j in range(n):
            below = Cat(*at_end[:j]).all() if j else Const(1)
            m.d.comb += adv[j].eq(below & (~at_end[j] if j < n - 1 else Const(1)))
        with m.If(~dut.run):
            m.d.sync += [s.eq(0) for s in shadow]
        with m.Elif(dut.step):
            for j in range(n):
                below = Cat(*at_end[:j]).all() if j else Const(1)
                with m.If(below):
                    m.d.sync += shadow[j].eq(Mux(at_end[j] & (j < n - 1), 0, shadow[j] + 1))
        with m.If(started & ~rst_p & dut.run & ~wrapped):
            for j, k in enumerate(dut.names):
                m.d.comb += [
                    Assert(dut.count[k] == shadow[j], f"count[{k}] differs from the nested loop order"),
                    Assert(shadow[j] <= bnd[j].n1, f"count[{k}] beyond its bound"),
                    Assert(dut.last[j] == at_end[j], f"last[{k}] wrong"),
                    Assert(dut.cum[j] == Cat(*at_end[:j + 1]).all(), f"cum[{k}] wrong"),
                    Assert(dut.adv[j] == adv[j], f"adv[{k}]: wrong level steps"),
                ]
            m.d.comb += Assert(dut.wrap == (dut.step & Cat(*at_end).all()), "wrap wrong")


# -- LifArray -----------------------------------------------------------------------------------

class LifArrayProof(_Proof):
    """Every output beat equals requantization + LIF / multispike / pass computed at full
    width (§5, §6) with the membrane state of each (token, channel) across the time steps; the
    LIF membrane ``U`` stays within the §9 bound; at most 2 beats in flight (latency 2)."""

    def check(self, m, dut):
        P, tiles, C, N, T = dut.lanes, dut.tiles, dut.channels, dut.tokens, dut.time_steps
        depth = N * tiles
        with m.If(dut.i.valid):
            for lane in range(P):
                in_range(m, dut.i.payload.acc[lane], dut.in_lo, dut.in_hi, assume=True, name=f"i.acc[{lane}]")
        take = _fire(dut.i)
        tile, pos, step = Signal(range(tiles)), Signal(range(depth)), Signal(range(T))
        with m.If(take):
            m.d.sync += [tile.eq(Mux(tile == tiles - 1, 0, tile + 1)), pos.eq(Mux(pos == depth - 1, 0, pos + 1))]
            with m.If(pos == depth - 1):
                m.d.sync += step.eq(Mux(step == T - 1, 0, step + 1))

        def lane_table(values, lane, fill):
            vals = [int(values[j * P + lane]) if j * P + lane < C else fill for j in range(tiles)]
            return Array(Const(v, _const_shape(vals)) for v in vals)

        out_lo, out_hi = -(1 << (dut.out_bits - 1)), (1 << (dut.out_bits - 1)) - 1
        if dut.leak >= 1:
            # §9 says |U| < 2^A; U = -2^A is reachable (x = -2^(A-1) repeatedly), still A+1 bits
            u_lo, u_hi = -(1 << dut.out_bits), (1 << dut.out_bits) - 1
        else:
            u_lo, u_hi = -T * (1 << (dut.out_bits - 1)), T * (1 << (dut.out_bits - 1))
        rnd = (1 << (dut.shift - 1)) if dut.shift else 0
        # exact range of acc * mult + bias + rnd over the assumed inputs (padding lanes: rnd)
        ends = [int(v) for c in range(C) for a in (dut.in_lo, dut.in_hi)
                for v in (a * int(dut.mult[c]) + int(dut.bias[c]) + rnd,)] + [rnd]
        prod_shape = signed(bits_for_range(min(min(ends), 0), max(max(ends), 0)))
        expected = Signal(dut.out_layout)
        m.d.comb += [expected.tile.eq(tile), expected.last.eq(tile == tiles - 1)]
        for lane in range(P):
            pad = Signal(name=f"pad_{lane}")
            m.d.comb += pad.eq(tile * P + lane >= C)
            prod = Signal(prod_shape, name=f"prod_{lane}")
            x = Signal(signed(dut.out_bits + 1), name=f"x_{lane}")
            m.d.comb += prod.eq(dut.i.payload.acc[lane] * lane_table(dut.mult, lane, 0)[tile]
                                + lane_table(dut.bias, lane, 0)[tile] + rnd)
            q = prod >> dut.shift
            m.d.comb += x.eq(Mux(q > out_hi, out_hi, Mux(q < out_lo, out_lo, q)))
            if dut.mode == "pass":
                m.d.comb += expected.data[lane].eq(Mux(pad, 0, x))
            elif dut.mode == "multispike":
                r = (1 << (dut.ms_shift - 1)) if dut.ms_shift else 0
                s = (x + r) >> dut.ms_shift
                m.d.comb += expected.data[lane].eq(Mux(pad | (s < 0), 0, Mux(s > dut.levels, dut.levels, s)))
            else:
                vmem = [Signal(_guarded(u_lo, u_hi), name=f"v_{p}_{lane}") for p in range(depth)]
                theta = lane_table(dut.theta, lane, 1)[tile]
                u = Signal(_guarded(u_lo, u_hi), name=f"u_{lane}")
                fire = Signal(name=f"fire_{lane}")
                m.d.comb += [u.eq(Mux(step == 0, 0, Array(vmem)[pos] >> dut.leak) + x),
                             fire.eq(~pad & (u >= theta)),
                             expected.data[lane].eq(fire)]
                with m.If(take & ~pad):
                    m.d.comb += [Assert(u >= u_lo, f"U[{lane}] below the §9 bound"),
                                 Assert(u <= u_hi, f"U[{lane}] above the §9 bound")]
                vnext = Mux(fire, 0 if dut.reset == "hard" else u - theta, u)
                with m.If(take):
                    with m.Switch(pos):
                        for p in range(depth):
                            with m.Case(p):
                                m.d.sync += vmem[p].eq(vnext)
        fifo = _Fifo(m, len(expected.as_value()), 2, "o")
        fifo.connect(take, expected.as_value(), _fire(dut.o), dut.o.payload.as_value())
        m.d.comb += Assert(~dut.o.valid | (fifo.count > 0), "o: valid with no beat in flight")


# -- SpikeAttentionMask ----------------------------------------------------------------------------

class AttentionMaskProof(_Proof):
    """Phase protocol (N kv beats, then N q beats, per time step) and ``o = q & mask`` with the
    mask neuron computed at full width; ``0 <= kv <= N`` and the mask membrane within the §9 /
    unit bound."""

    inputs = ("kv", "q")

    def check(self, m, dut):
        C, N, T = dut.channels, dut.tokens, dut.time_steps
        bound = 2 * N + 1 if dut.leak >= 1 else T * N
        take_kv, take_q = _fire(dut.kv), _fire(dut.q)
        q_phase = Signal()
        count = Signal(range(N + 1))
        step = Signal(range(T))
        m.d.comb += [Assert(~(take_kv & q_phase), "kv: taken during the q phase"),
                     Assert(~(take_q & ~q_phase), "q: taken during the kv phase"),
                     Assert(count < N, "token counter beyond N")]
        kvs = [Signal(_guarded(0, N), name=f"kv_{c}") for c in range(C)]
        vmem = [Signal(_guarded(-bound, bound), name=f"v_{c}") for c in range(C)]
        mask = Signal(C)
        done = take_kv & (count == N - 1)
        for c in range(C):
            new = kvs[c] + (dut.kv.payload.k[c] & dut.kv.payload.v[c])
            u = Signal(_guarded(-bound, bound), name=f"u_{c}")
            theta = int(dut.theta[c])
            m.d.comb += [u.eq(Mux(step == 0, 0, vmem[c] >> dut.leak) + new),
                         Assert((kvs[c] >= 0) & (kvs[c] <= N), f"kv[{c}] outside 0..N")]
            fire = u >= theta
            with m.If(done):
                m.d.comb += Assert((u >= -bound) & (u <= bound), f"U[{c}] outside the membrane bound")
                m.d.sync += [kvs[c].eq(0), mask[c].eq(fire),
                             vmem[c].eq(Mux(fire, 0 if dut.reset == "hard" else u - theta, u))]
            with m.Elif(take_kv):
                m.d.sync += kvs[c].eq(new)
        with m.If(take_kv | take_q):
            m.d.sync += count.eq(Mux(count == N - 1, 0, count + 1))
            with m.If(count == N - 1):
                m.d.sync += q_phase.eq(~q_phase)
        with m.If(take_q & (count == N - 1)):
            m.d.sync += step.eq(Mux(step == T - 1, 0, step + 1))
        fifo = _Fifo(m, C, 1, "o")
        fifo.connect(take_q, dut.q.payload & mask, _fire(dut.o), dut.o.payload)
        m.d.comb += Assert(~dut.o.valid | (fifo.count > 0), "o: valid with no q beat behind it")


# -- SpikeAttentionLinear ------------------------------------------------------------------------

class AttentionLinearProof(_Proof):
    """Phase protocol and ``A = q (K^T V)`` per head at full width, for each q vector; KV
    within ``0..N Dk Dv`` and A within ``0..d N Dq Dk Dv`` (§9)."""

    inputs = ("kv", "q")
    in_flight = 2

    def check(self, m, dut):
        C, N, d = dut.channels, dut.tokens, dut.d
        k, v, q = dut.kv.payload.k, dut.kv.payload.v, dut.q.payload
        with m.If(dut.kv.valid):
            m.d.comb += [Assume((k[c] <= dut.levels_k) & (v[c] <= dut.levels_v)) for c in range(C)]
        with m.If(dut.q.valid):
            m.d.comb += [Assume(q[c] <= dut.levels_q) for c in range(C)]
        take_kv, take_q, give = _fire(dut.kv), _fire(dut.q), _fire(dut.o)
        # q phase: after N kv beats, until N q vectors are taken (the rows may still be in the
        # unit: the next kv beats must then not change them, which the exact check covers)
        q_phase = Signal()
        kv_count, q_in = Signal(range(N)), Signal(range(N))
        m.d.comb += [Assert(~(take_kv & q_phase), "kv: taken during the q phase"),
                     Assert(~(take_q & ~q_phase), "q: taken outside the q phase")]
        KV = [[Signal(_guarded(0, dut.kv_max), name=f"kv_{i}_{j}") for j in range(C)] for i in range(C)]
        for i in range(C):
            for j in range(C):
                if i // d != j // d:
                    continue
                m.d.comb += Assert((KV[i][j] >= 0) & (KV[i][j] <= dut.kv_max), f"KV[{i}][{j}] outside 0..N Dk Dv")
                with m.If(take_kv):
                    m.d.sync += KV[i][j].eq(Mux(kv_count == 0, 0, KV[i][j]) + k[i] * v[j])
        with m.If(take_kv):
            m.d.sync += kv_count.eq(Mux(kv_count == N - 1, 0, kv_count + 1))
            with m.If(kv_count == N - 1):
                m.d.sync += q_phase.eq(1)
        with m.If(take_q):
            m.d.sync += q_in.eq(Mux(q_in == N - 1, 0, q_in + 1))
            with m.If(q_in == N - 1):
                m.d.sync += q_phase.eq(0)
        expected = Signal(dut.signature.members["o"].signature.members["payload"].shape)
        for j in range(C):
            h0 = (j // d) * d
            a = Signal(_guarded(0, dut.a_max), name=f"a_{j}")
            total = Const(0, _guarded(0, dut.a_max))
            for i in range(h0, h0 + d):
                total = total + q[i] * KV[i][j]
            m.d.comb += a.eq(total)
            with m.If(take_q):
                m.d.comb += Assert((a >= 0) & (a <= dut.a_max), f"A[{j}] outside 0..d N Dq Dk Dv")
            m.d.comb += expected[j].eq(a)
        fifo = _Fifo(m, len(expected.as_value()), self.in_flight, "o")
        fifo.connect(take_q, expected.as_value(), give, dut.o.payload.as_value())
        m.d.comb += Assert(~dut.o.valid | (fifo.count > 0), "o: valid with no q vector behind it")


# -- engine stages ----------------------------------------------------------------------------------

class LogitsProof(_Harness):
    """The engine's result stage (:class:`spikeforge.hdl.accel.logits.Logits`), with the
    environment the engine gives it (assumed): the tile strobe's copies all equal, exactly
    ``ceil(K / P)`` tiles per image while ``send`` is low, ``send`` raised only once they are
    all in and held until the class beat moves.

    Asserted: the stream rules on ``result``; ``K`` beats carrying the logits shifted in, in
    class order, then the class with ``last``, which is the index of the largest logit, the
    lowest one on ties (docs/spec.md; the shadow is a plain comparison chain, not the stage's
    precomputed one); a beat offered every cycle of ``send`` in the compact build, every
    cycle but the one after a beat in the fast build (docs/accelerator.md). ``shadow=False``
    keeps only the stream rules (with the same environment)."""

    outputs = {"result": "o"}

    def environment(self, m, dut):
        K, P = dut.classes, dut.lanes
        tiles = -(-K // P)
        tile, send, res = dut.tile, dut.send, dut.result
        give = _fire(res)
        # the environment (the engine's out pass and sequencer)
        shift = Signal()
        loaded = Signal(range(tiles + 1))   # tiles shifted in for this image
        sent = Signal(range(K + 1))         # beats moved for this image
        sending = Signal()                  # send was high, the class beat has not moved
        class_beat = give & (sent == K)
        m.d.comb += [
            shift.eq(tile.en.any()),
            Assume((tile.en == 0) | (tile.en == (1 << P) - 1)),
            Assume(~shift | ((loaded < tiles) & ~send)),
            Assume(~send | (loaded == tiles)),
            Assume(~sending | send),
        ]
        m.d.sync += sending.eq(send & ~class_beat)
        with m.If(shift):
            m.d.sync += loaded.eq(loaded + 1)
        with m.If(give):
            m.d.sync += sent.eq(sent + 1)
        with m.If(class_beat):
            m.d.sync += [loaded.eq(0), sent.eq(0)]
        return dict(shift=shift, loaded=loaded, sent=sent, give=give)

    def check(self, m, dut, *, shift, loaded, sent, give):
        K, P = dut.classes, dut.lanes
        tiles = -(-K // P)
        tile, send, res = dut.tile, dut.send, dut.result
        # the logits shifted in, by class
        expect = [Signal(signed(dut.logit_bits), name=f"expect{k}") for k in range(tiles * P)]
        with m.If(shift):
            with m.Switch(loaded):
                for t in range(tiles):
                    with m.Case(t):
                        m.d.sync += [expect[t * P + ln].eq(tile.value[ln]) for ln in range(P)]
        # the class: the first index of the largest
        best, best_idx = expect[0], Const(0, range(K))
        for k in range(1, K):
            better = expect[k] > best
            best, best_idx = Mux(better, expect[k], best), Mux(better, k, best_idx)
        value = res.payload.value
        with m.If(res.valid):
            with m.If(sent < K):
                m.d.comb += [Assert(~res.payload.last, "o: last before the class beat"),
                             Assert(value == Array(expect)[sent], "o: logit differs from the one shifted in")]
            with m.Else():
                m.d.comb += [Assert(res.payload.last, "o: class beat without last"),
                             Assert(value == best_idx, "o: class is not the argmax (first index on ties)")]
        # the beat timing of the build
        after_beat = past(m, give & ~ResetSignal(), name="after_beat")
        offered = send if dut.shift_group is None else send & ~after_beat
        m.d.comb += Assert(res.valid == offered, "o: beat timing differs from the build's")


# -- LifLane (the engine's EW lanes, LifArray's lanes) --------------------------------------------

class LifLaneProof(_Harness):
    """One :class:`spikeforge.hdl.lif_lane.LifLane` with its registers as configured (the
    engine's builds: tests/formal/test_formal_units.py ``STAGE_PROOFS``), free inputs every
    cycle and the environment the engine gives it (assumed): the constants held, a saturation
    width ``s`` with ``sat_lo = sat_mask = -2^(s-1)``, ``sat_hi = 2^(s-1) - 1``, ``ms_rnd =
    2^(ms_shift-1)``, ``levels >= 1``, ``leak >= 1``; without ``rq``: shift 0 and a sum within
    the saturation bounds (the compiler's rule); the membrane ``v`` within ``±(2^s + 1)``
    (§9 with a leak), ``first`` zeroing it.

    Asserted, once the pipeline holds values of the free inputs: ``y`` (after the ``sat``
    stage) and ``y_pre``, ``fire``, ``v_next``, ``ms`` (after ``pre``) equal the requantization
    and neuron computed at full width from the inputs of the matching earlier cycles, each
    input read at the lane's documented stage (``a``, ``mult``; ``addend``; ``theta``; ``v``,
    ``first``). A lane that fires at ``U > theta``, or is too narrow anywhere, fails."""

    def check(self, m, dut):
        k = dut.k
        L_prod, L_sat, L_pre = dut.latency("product"), dut.latency("sat"), dut.latency("pre")
        age = Signal(range(L_pre + 2), reset_less=True)  # cycles run (saturating)
        m.d.sync += age.eq(Mux(age == L_pre + 1, age, age + 1))
        was_k = past(m, k.as_value(), name="past_k")
        with m.If(age > 0):
            m.d.comb += Assume(k.as_value() == was_k)
        sat_ok = 0
        for s in range(2, dut.y_bits + 1):
            sat_ok = sat_ok | (k.sat_lo == -(1 << (s - 1)))
        m.d.comb += [Assume(sat_ok), Assume(k.sat_hi == -k.sat_lo - 1), Assume(k.sat_mask == k.sat_lo),
                     Assume(k.ms_rnd == (Const(1, dut.y_bits + 1) << k.ms_shift) >> 1),
                     Assume(k.levels >= 1), Assume(k.leak >= 1)]

        def delayed(value, n, name):
            for j in range(n):
                value = past(m, value, name=f"{name}_d{j}")
            return value

        def requant(n):
            """The exact y of the inputs ``n`` cycles back (``n`` = the sat stage's latency)."""
            a, mult = delayed(dut.a, n, f"a{n}"), delayed(dut.mult, n, f"mult{n}")
            addend = delayed(dut.addend, n - L_prod, f"addend{n}")
            z = Signal(signed(dut.a_bits + dut.mult_bits + dut.addend_bits + 2), name=f"z_exact{n}")
            m.d.comb += z.eq(Mux(k.rq, a * mult, a) + addend)
            sh = z >> k.shift
            m.d.comb += Assume(k.rq | ((k.shift == 0) & (z >= k.sat_lo) & (z <= k.sat_hi)))
            return Mux(k.rq, Mux(sh > k.sat_hi, k.sat_hi, Mux(sh < k.sat_lo, k.sat_lo, sh)), sh)

        y_exp = Signal(signed(dut.y_bits + 1), name="y_exact")
        m.d.comb += y_exp.eq(requant(L_sat))
        with m.If(age >= L_sat):
            m.d.comb += Assert(dut.y == y_exp, "y differs from the exact requantization")
        # the neuron, on the values of the pre stage's cycle
        y = Signal(signed(dut.y_bits + 1), name="y_pre_exact")
        m.d.comb += y.eq(requant(L_pre))
        theta = delayed(dut.theta, L_pre - L_sat, "theta")
        bound = 2 * (-k.sat_lo) + 1
        m.d.comb += Assume((dut.v >= -bound) & (dut.v <= bound))
        wide = signed(dut.v_bits + dut.theta_bits + 4)
        u, v_next = Signal(wide, name="u_exact"), Signal(wide, name="v_next_exact")
        fire = Signal(name="fire_exact")
        ms = Signal(signed(dut.y_bits + 3), name="ms_exact")
        m.d.comb += [u.eq(Mux(dut.first, 0, dut.v >> k.leak) + y), fire.eq(u >= theta),
                     v_next.eq(Mux(fire, Mux(k.soft, u - theta, 0), u)), ms.eq((y + k.ms_rnd) >> k.ms_shift)]
        with m.If(age >= L_pre):
            m.d.comb += [
                Assert(dut.y_pre == y, "y_pre differs from the exact requantization"),
                Assert(dut.fire == fire, "fire differs from U >= theta"),
                Assert(dut.v_next == v_next, "v_next differs from the exact membrane"),
                Assert(dut.ms == Mux(ms < 0, 0, Mux(ms > k.levels, k.levels, ms)),
                       "ms differs from the exact multi-level spike"),
            ]


# -- Sequencer (the engine's top-level control) ---------------------------------------------------

class SequencerProof(_Harness):
    """The engine's :class:`spikeforge.hdl.accel.sequencer.Sequencer` with the environment the
    engine gives it (assumed): the stream rules on ``pixels`` and ``weights``; a descriptor
    memory of any constant words (``AnyConst``) read a cycle after the address, the pass's
    kind (``syn_pass``) and ``last_pass`` read from bits 0 and 1 of its descriptor, only the
    last pass's flag set; ``syn_done``/``ew_done`` only while a pass of that kind runs (from
    the cycle after its start), no ``event`` while an image loads or the result is sent,
    ``result_done`` only while ``send``.

    Asserted against a shadow of the phases (load, setup, run, out): ``pixels`` and
    ``weights`` ready exactly while an image loads, each weight beat written at once to its
    address; an image word written exactly when its last channel's pixel is taken, at the
    word's address (in range), with the word's pixels, each word once per image and all of
    them by the last pixel; descriptor reads in range and only in the setup; each pass started
    ``desc_words + 2`` cycles after the image or the previous pass ended, with the descriptor
    register holding that pass's words of the table, ``pc`` its index, the start of its kind;
    passes in table order; ``send`` exactly after the last pass's done until ``result_done``,
    with ``cycles`` and ``events`` the cycles and events counted by the shadow (no counter
    wraps)."""

    @property
    def inputs(self):
        return ("pixels", "weights") if "weights" in self.dut.signature.members else ("pixels",)

    def check(self, m, dut):
        C, pb, V, npass = dut.channels, dut.pixel_bits, dut.values, dut.passes
        nw, dw = dut.desc_words, dut.desc_word_bits
        assert nw * dw >= 2, "the harness reads the kind and last flags from bits 0 and 1"
        words = V // C
        weights = "weights" in dut.signature.members
        # the descriptor memory: any constant words, a synchronous read
        table = [Signal(dw, name=f"desc_word{j}") for j in range(npass * nw)]
        m.d.comb += [t.eq(AnyConst(dw)) for t in table]
        entry = [Cat(*table[p * nw:(p + 1) * nw]) for p in range(npass)]
        m.d.comb += [Assume(entry[p][1] == (p == npass - 1)) for p in range(npass)]
        read_addr = past(m, dut.desc_read.addr, name="desc_read_addr")
        with m.If(past(m, dut.desc_read.en, name="desc_read_en")):
            m.d.comb += Assume(dut.desc_read.data == Array(table)[read_addr])
        m.d.comb += [Assume(dut.syn_pass == dut.desc_bits[0]), Assume(dut.last_pass == dut.desc_bits[1])]

        # the shadow: phases, pass index, counts
        LOAD, SETUP, RUN, OUT = range(4)
        phase = Signal(range(4))
        spc = Signal(range(npass))
        kind = Signal()                             # the running pass is SYN
        wait = Signal(range(nw + 3))                # cycles of the setup so far
        n_pix = Signal(range(V))                    # pixels taken of this image
        word = Signal(C * pb)                       # the last C pixels taken
        written = Signal(words)                     # image words written for this image
        elapsed, evs = Signal(16), Signal(16)       # cycles and events since the last pixel
        cycles_at, events_at = Signal(16), Signal(16)
        m.d.comb += [Assume(~dut.syn_done | ((phase == RUN) & kind)), Assume(~dut.ew_done | ((phase == RUN) & ~kind)),
                     Assume(~dut.event | (phase == SETUP) | (phase == RUN)), Assume(~dut.result_done | dut.send)]

        # image and weight load
        take = _fire(dut.pixels)
        full = Cat(word[pb:], dut.pixels.payload) if C > 1 else dut.pixels.payload
        last_ch = (n_pix % C) == C - 1
        onehot = Signal(words)
        iw = dut.img_write
        m.d.comb += [
            onehot.eq(Const(1, words) << iw.addr),
            Assert(dut.pixels.ready == (phase == LOAD), "pixels: ready differs from 'an image loads'"),
            Assert(iw.en == (take & last_ch), "img_write: enable differs from 'a word's last pixel taken'"),
        ]
        with m.If(iw.en):
            m.d.comb += [Assert(iw.addr == n_pix // C, "img_write: address is not the word's"),
                         Assert(iw.addr < words, "img_write: address out of range"),
                         Assert(iw.data == full, "img_write: data is not the word's pixels"),
                         Assert((written & onehot) == 0, "img_write: word written twice in one image")]
            m.d.sync += written.eq(written | onehot)
        if weights:
            ww, wp = dut.weight_write, dut.weights.payload
            m.d.comb += [Assert(dut.weights.ready == (phase == LOAD), "weights: ready differs from 'an image loads'"),
                         Assert(ww.en == _fire(dut.weights), "weight_write: enable differs from a weight beat taken")]
            with m.If(ww.en):
                m.d.comb += [Assert(ww.addr == wp.addr, "weight_write: address differs from the beat's"),
                             Assert(ww.data == wp.data, "weight_write: data differs from the beat's")]
        with m.If(take):
            m.d.sync += [n_pix.eq(n_pix + 1), word.eq(full)]
            with m.If(n_pix == V - 1):
                m.d.comb += Assert((written | Mux(iw.en, onehot, 0)) == (1 << words) - 1,
                                   "img_write: an image word not written by the last pixel")
                m.d.sync += [n_pix.eq(0), written.eq(0), phase.eq(SETUP), wait.eq(0), spc.eq(0), elapsed.eq(1),
                             evs.eq(0)]

        # passes
        start = dut.start_syn | dut.start_ew
        dr = dut.desc_read
        m.d.comb += [Assert(~dr.en | (phase == SETUP), "desc_read: read outside a pass's setup"),
                     Assert(~dr.en | (dr.addr < npass * nw), "desc_read: address out of range"),
                     Assert(dut.pc < npass, "pc beyond the passes"),
                     Assert(start == ((phase == SETUP) & (wait == nw + 1)),
                            "start differs from 'desc_words + 2 cycles after the previous end'")]
        with m.If((phase == SETUP) | (phase == RUN)):
            m.d.sync += [elapsed.eq(elapsed + 1), evs.eq(evs + dut.event)]
            m.d.comb += Assert(dut.pc == spc, "pc is not the running pass's index")
        with m.If(phase == SETUP):
            m.d.sync += wait.eq(wait + 1)
        with m.If(start):
            m.d.comb += [Assert(dut.desc_bits == Array(entry)[spc], "desc_bits differ from the pass's table entry"),
                         Assert(dut.start_syn == Array(entry)[spc][0], "start of the wrong kind"),
                         Assert(~(dut.start_syn & dut.start_ew), "both starts")]
            m.d.sync += [phase.eq(RUN), kind.eq(dut.start_syn)]
        with m.If(dut.syn_done | dut.ew_done):
            with m.If(spc == npass - 1):
                m.d.sync += [phase.eq(OUT), cycles_at.eq(elapsed), events_at.eq(evs)]
            with m.Else():
                m.d.sync += [phase.eq(SETUP), wait.eq(0), spc.eq(spc + 1)]
        m.d.comb += Assert(dut.send == (phase == OUT), "send differs from 'after the last pass, until sent'")
        with m.If(phase == OUT):
            m.d.comb += [Assert(dut.cycles == cycles_at, "cycles differ from the cycles counted"),
                         Assert(dut.events == events_at, "events differ from the events counted")]
            with m.If(dut.result_done):
                m.d.sync += phase.eq(LOAD)


# -- SynDrain (the SYN pipeline's bank handover and drain) ------------------------------------------

class SynDrainProof(_Harness):
    """The engine's :class:`spikeforge.hdl.accel.syn_drain.SynDrain` with the environment the
    engine gives it (assumed): ``acc_words`` in ``1 .. 2^count_bits``, held while the pass
    runs or a drain is left; ``dst_base`` held while the pass runs and in the cycle before;
    ``pos_end`` only while the pass runs and ``blk`` is low (the issue stage's stall); the pass
    ends only after its last drain's reads (the SYN pass's done rule).

    Asserted against a shadow (the banks, the destination pointer, the drain as a word
    counter): ``bank`` swaps exactly at each ``pos_end`` (0 while the pass does not run); each
    drain reads the words ``0 .. acc_words - 1`` of the bank its position accumulated into,
    once each, in order, one per cycle from ``delay`` cycles after ``pos_end``, and never the
    bank accumulating; a cycle after each read it writes the word to the position's
    destination (``acc_words`` words after the previous position's, the first at
    ``dst_base``) and clears it, in the bank accumulating only in the cycle after a position
    started there; ``busy``, ``blk`` (a drain left and not in its last read) and ``left``
    (cycles to its last read) exact; with ``next_values``, ``rd_next``, ``rd_bank_next`` and
    ``rd_word_next`` equal the next cycle's read."""

    def check(self, m, dut):
        D, A = dut.delay, dut.acc_words
        started = Signal()
        m.d.sync += started.eq(1)
        after = started & ~past(m, ResetSignal(), name="past_rst")   # a cycle out of reset has passed
        pend = Signal()                                    # a drain has words left
        wt = Signal(range(D + 1))                          # cycles to its first read
        k = Signal(dut.count_bits)                         # the next word it reads
        src = Signal()                                     # the bank it drains
        base = Signal(dut.addr_bits)                       # its position's destination
        bank, dst = Signal(), Signal(dut.addr_bits)        # the bank and destination accumulating
        m.d.comb += [Assume((A >= 1) & (A <= 1 << dut.count_bits)),
                     Assume(~dut.pos_end | (dut.active & ~dut.blk)),
                     Assume(dut.active | ~pend)]
        # (every past() here, outside the m.If blocks: a register updated every cycle)
        was_a, was_base = past(m, A, name="past_acc_words"), past(m, dut.dst_base, name="past_dst_base")
        with m.If(after & (dut.active | pend)):
            m.d.comb += Assume(A == was_a)
        with m.If(after & dut.active):
            m.d.comb += Assume(dut.dst_base == was_base)
        rd = pend & (wt == 0)
        last = rd & (k == A - 1)
        m.d.comb += [
            Assert(dut.bank == bank, "bank differs from 'swapped at each position end'"),
            Assert(dut.busy == pend, "busy differs from 'a drain has words left'"),
            Assert(dut.rd == rd, "rd differs from 'delay cycles after the position end, a word a cycle'"),
            Assert(dut.blk == (pend & ~last), "blk differs from 'a drain left and not in its last read'"),
            Assert(dut.left == Mux(pend, wt + A - k, 0), "left differs from the cycles to the last read"),
            Assert(~dut.pos_end | ~pend | last, "a position ended before the drain's last read (words not drained)"),
        ]
        with m.If(rd):
            m.d.comb += [Assert(dut.rd_word == k, "rd_word: not the next word in order"),
                         Assert(dut.rd_bank == src, "rd_bank: not the bank of the position drained"),
                         Assert(dut.rd_bank != dut.bank, "rd_bank: the drain reads the bank accumulating")]
        # the write a cycle after each read
        was_rd = past(m, rd & ~ResetSignal(), name="past_rd")
        was_dst, was_k = past(m, (base + k)[:dut.addr_bits], name="past_dst"), past(m, k, name="past_k")
        was_src, was_end = past(m, src, name="past_src"), past(m, dut.pos_end, name="past_pos_end")
        with m.If(started):
            m.d.comb += Assert(dut.wr == was_rd, "wr differs from 'a cycle after a read'")
        with m.If(dut.wr):
            m.d.comb += [
                Assert(dut.wr_addr == was_dst, "wr_addr: not the word's destination"),
                Assert(dut.clr_addr == was_k, "clr_addr: not the word read"),
                Assert(dut.wr_bank == was_src, "wr_bank: not the bank read"),
                Assert((dut.wr_bank != dut.bank) | was_end,
                       "a clear in the bank accumulating, after its position's first cycle"),
            ]
        if dut.next_values:
            was = [past(m, v, name=f"past_{n}") for n, v in (("rd_next", dut.rd_next),
                                                            ("rd_word_next", dut.rd_word_next),
                                                            ("rd_bank_next", dut.rd_bank_next))]
            with m.If(after):
                m.d.comb += Assert(dut.rd == was[0], "rd_next differs from the next cycle's rd")
                with m.If(dut.rd):
                    m.d.comb += [Assert(dut.rd_word == was[1], "rd_word_next differs from the next cycle's word"),
                                 Assert(dut.rd_bank == was[2], "rd_bank_next differs from the next cycle's bank")]
        # the shadow
        with m.If(rd):
            m.d.sync += k.eq(k + 1)
            with m.If(last):
                m.d.sync += pend.eq(0)
        with m.Elif(pend):
            m.d.sync += wt.eq(wt - 1)
        with m.If(dut.pos_end):
            m.d.sync += [pend.eq(1), wt.eq(D), k.eq(0), src.eq(bank), base.eq(dst), bank.eq(~bank), dst.eq(dst + A)]
        with m.If(~dut.active):
            m.d.sync += [bank.eq(0), dst.eq(dut.dst_base)]


# -- EwNest (the EW/RED pipeline's loop nest) --------------------------------------------------------

class EwNestProof(_Harness):
    """The engine's :class:`spikeforge.hdl.accel.ew_nest.EwNest` with any bounds (``one``/``two``
    true to ``n1``) and order (``red``), both held from a cycle before ``run`` rises, and any
    ``run`` and ``step`` (no step after ``end`` until ``run`` falls, as the engine's ``run``
    register does). Asserted against a plain nested loop at full width (``tile`` outermost;
    ``t`` then ``n`` innermost in an EW pass, ``n`` then ``t`` in a RED pass): each counter
    equal to the shadow's and within its bound, the end flags, the level each step advances
    (``s_in``, ``s_mid``, ``s_tile``), ``last_el``, and ``end`` exactly on the step of the last
    element; so every (tile, n, t) is visited once, in the pass's order."""

    def check(self, m, dut):
        levels = ("tile", "n", "t")
        run, step = dut.run, dut.step
        run_p = past(m, run, name="run_p")
        held = past(m, Cat(dut.bounds.as_value(), dut.red), name="held_p")
        rst_p = past(m, ResetSignal(), name="rst_p")
        started = Signal()
        m.d.sync += started.eq(1)
        for k in levels:
            b = dut.bounds[k]
            m.d.comb += [Assume(b.one == (b.n1 == 0)), Assume(b.two == (b.n1 == 1))]
        with m.If(started & ~rst_p & (run | run_p)):
            m.d.comb += Assume(Cat(dut.bounds.as_value(), dut.red) == held)
        with m.If(~started | rst_p):
            m.d.comb += Assume(~run)
        ended = Signal()
        with m.If(~run):
            m.d.sync += ended.eq(0)
        with m.Elif(dut.end):
            m.d.sync += ended.eq(1)
        m.d.comb += Assume(~(ended & step))
        shadow = {k: Signal(dut.widths[k] + 1, name=f"shadow_{k}") for k in levels}
        at_end = {k: Signal(name=f"at_end_{k}") for k in levels}
        m.d.comb += [at_end[k].eq(shadow[k] == dut.bounds[k].n1) for k in levels]
        inner = Mux(dut.red, at_end["n"], at_end["t"])
        middle = Mux(dut.red, at_end["t"], at_end["n"])
        with m.If(~run):
            m.d.sync += [s.eq(0) for s in shadow.values()]
        with m.Elif(step):
            for red, order in ((1, ("n", "t", "tile")), (0, ("t", "n", "tile"))):
                with m.If(dut.red == red):
                    below = Const(1)
                    for k in order:
                        with m.If(below):
                            m.d.sync += shadow[k].eq(Mux(at_end[k] & (k != "tile"), 0, shadow[k] + 1))
                        below = below & at_end[k]
        with m.If(started & ~rst_p & run & ~ended):
            for k in levels:
                m.d.comb += [Assert(getattr(dut, k) == shadow[k], f"{k} differs from the nested loop order"),
                             Assert(shadow[k] <= dut.bounds[k].n1, f"{k} beyond its bound"),
                             Assert(getattr(dut, f"last_{k}") == at_end[k], f"last_{k} wrong")]
            all_end = at_end["tile"] & inner & middle
            m.d.comb += [Assert(dut.last_el == all_end, "last_el wrong"),
                         Assert(dut.s_in == (step & ~inner), "s_in: wrong level steps"),
                         Assert(dut.s_mid == (step & inner & ~middle), "s_mid: wrong level steps"),
                         Assert(dut.s_tile == (step & inner & middle), "s_tile: wrong level steps"),
                         Assert(dut.end == (step & all_end), "end differs from 'the step of the last element'")]


# -- RowFifo (the SYN pipeline's row FIFO and credits) ------------------------------------------------

class RowFifoProof(_Harness):
    """The engine's :class:`spikeforge.hdl.accel.syn_fifo.RowFifo` with the environment the
    engine gives it (assumed): a read issued only while ``credits < depth`` (the generator's
    rule), a push only for a read in flight (one per issue, in order, any latency), a pop only
    while ``count > 0`` (the scan stage's input valid), ``clear`` only with the buffer empty,
    nothing in flight and no issue, push or pop (the pass has ended).

    Asserted: each popped head (``slots[rd_ptr]``) equals the oldest row pushed and not yet
    popped (a shadow queue), no pop without a row, ``count`` the rows in the buffer,
    ``credits`` those and the reads in flight, never more than ``depth`` (so a push never
    overwrites a row not yet popped), the pointers in range."""

    def check(self, m, dut):
        n = dut.depth
        width = len(dut.row.as_value())
        inflight = Signal(range(n + 2))         # reads issued, not pushed
        m.d.comb += [Assume(~dut.issue | (dut.credits < n)), Assume(~dut.push | (inflight > 0)),
                     Assume(~dut.pop | (dut.count > 0))]
        queue = _Fifo(m, width, n, "head")
        with m.If(dut.clear):
            m.d.comb += [Assume((queue.count == 0) & (inflight == 0)), Assume(~(dut.issue | dut.push | dut.pop))]
        head = Array(dut.slots[i].as_value() for i in range(n))[dut.rd_ptr]
        queue.connect(dut.push, dut.row.as_value(), dut.pop, head)
        m.d.sync += inflight.eq(inflight + dut.issue - dut.push)
        m.d.comb += [Assert(dut.count == queue.count, "count differs from the rows in the buffer"),
                     Assert(dut.credits == queue.count + inflight, "credits differ from the rows and reads in flight"),
                     Assert(dut.credits <= n, "credits beyond the depth"),
                     Assert((dut.rd_ptr < n) & (dut.wr_ptr < n), "pointer out of range")]


# -- SynDecode (the SYN pipeline's decode stages D0..D2) ----------------------------------------------

class SynDecodeProof(_Harness):
    """The engine's :class:`spikeforge.hdl.accel.syn_decode.SynDecode` with the environment the
    engine gives it (assumed): the scan's items by the stream rules, an event item with a set
    bit in its index tree; the descriptor held; the descriptor's arithmetic within the fields
    (the compiler's placement bounds: at least one tile, a head of at least one channel within
    the head-start table, the first tile's words and the head's last tile fit their fields);
    with a queue, ``o.ready`` high and ``free`` only for an item handed on.

    Asserted against a shadow computed from each input item at full width (the lowest set bit
    by a plain priority loop, channel and plane, the head's first channel from the table, its
    tile range, ``channel * tiles`` plus the first tile as the weight and accumulator words):
    each scan item gives exactly one decoded item, in order, equal to the shadow's (an item
    without an event: its flags, ``va`` and ``at_last``), never more than three in flight,
    ``empty`` exact; with a queue, ``held`` the items in flight and handed on, never more than
    the queue, so the queue never overflows; the stream rules on ``o``."""

    inputs = ("i",)
    outputs = {"o": "o"}

    def check(self, m, dut):
        i, o, desc = dut.i, dut.o, dut.desc
        started = Signal()
        m.d.sync += started.eq(1)
        was = past(m, desc.as_value(), name="past_desc")
        with m.If(started & ~past(m, ResetSignal(), name="past_rst")):
            m.d.comb += Assume(desc.as_value() == was)
        item = i.payload
        groups = [item.groups[k] for k in range(len(item.groups))]
        any_set = Cat(*(g.any for g in groups)).any()
        m.d.comb += Assume(~i.valid | item.empty | any_set)
        # the shadow: the lowest set bit by a plain priority loop, then the descriptor's arithmetic
        idx = Const(0, 16)
        for k in reversed(range(len(groups))):
            idx = Mux(groups[k].any, 4 * k + groups[k].low, idx)
        pb = Mux(desc.src_img, dut.image_plane_bits, dut.spike_plane_bits)
        c = Signal(16)
        b = Signal(16)
        m.d.comb += [c.eq(idx >> pb), b.eq(idx & ((Const(1, 16) << pb) - 1))]
        table = Array(Const(v, 16) for v in dut.head_starts)
        head = Signal(16)
        m.d.comb += head.eq(desc.h_base + c)
        lo = Mux(desc.heads_on, table[head], 0)
        shift = (dut.lanes - 1).bit_length()
        tile_lo = Signal(16)
        tile_hi = Signal(16)
        m.d.comb += [tile_lo.eq(Mux(desc.heads_on, lo >> shift, 0)),
                     tile_hi.eq(Mux(desc.heads_on, (lo + desc.hd - 1) >> shift, desc.tiles - 1))]
        ct_lo = Signal(24)
        m.d.comb += ct_lo.eq(c * desc.tiles + tile_lo)
        word = Mux(desc.accsel_ch, ct_lo, tile_lo)
        ev = ~item.empty
        with m.If(i.valid & ev):
            m.d.comb += [Assume(desc.tiles >= 1), Assume(~desc.heads_on | ((desc.hd >= 1) &
                                                                          (head < len(dut.head_starts)))),
                         Assume(ct_lo < (1 << dut.wb_bits)), Assume(word < (1 << dut.word_bits)),
                         Assume(tile_hi < (1 << dut.tile_bits)), Assume(c < (1 << dut.count_bits)),
                         Assume(b < (1 << dut.plane_bits))]
        lay = dut.out_layout
        exp = Signal(lay)
        m.d.comb += [exp.ev.eq(ev), exp.row_end.eq(item.last), exp.pos_last.eq(item.tag.last), exp.va.eq(item.tag.va),
                     exp.at_last.eq(~ev | (tile_lo == tile_hi)), exp.b.eq(b), exp.lo.eq(lo), exp.tile.eq(tile_lo),
                     exp.tile_hi.eq(tile_hi), exp.waddr.eq(item.tag.wb + ct_lo), exp.word.eq(word)]

        def norm(v):
            """An item as compared: all its fields for an event, else its flags, va and at_last."""
            keep = Cat(v.ev, v.row_end, v.pos_last, v.at_last, v.va)
            rest = Cat(v.b, v.lo, v.tile, v.tile_hi, v.waddr, v.word)
            return Cat(keep, Mux(v.ev, rest, 0))

        flight = _Fifo(m, len(norm(exp)), 3, "o")
        flight.connect(_fire(i), norm(exp), _fire(o), norm(o.payload))
        if dut.queue:
            NQ = dut.queue
            down = Signal(range(NQ + 2))        # items handed on, not yet taken by the consumer
            m.d.comb += [Assume(o.ready), Assume(~dut.free | (down > 0) | o.valid)]
            m.d.sync += down.eq(down + _fire(o) - dut.free)
            m.d.comb += [Assert(dut.held == flight.count + down, "held differs from the items in flight and handed on"),
                         Assert(down <= NQ, "more items handed on than the queue holds"),
                         Assert(dut.empty == ((flight.count == 0) & (down == 0)), "empty wrong")]
        else:
            m.d.comb += Assert(dut.empty == (flight.count == 0), "empty wrong")


# -- SynFetch (the SYN pipeline's row fetch) ------------------------------------------------------------

class SynFetchProof(_Harness):
    """The engine's :class:`spikeforge.hdl.accel.syn_fetch.SynFetch` with any issues, tags and
    read data on every cycle. Asserted against delay lines (the issue, its ``wb`` and ``last``
    ``latency`` cycles, its ``va`` from ``va_delay`` cycles after the issue, the row read
    ``1 + read_regs`` cycles after it): a push exactly ``latency`` cycles after each issue and
    at no other time (so rows stay in issue order and the generator's credits, which count
    ``latency`` cycles in flight, cover them), each pushed row with its issue's tag and the
    data read for it, ``single`` exactly 'at most one bit set', with ``fetch_regs`` ``rest``
    the bits less the lowest set one, and ``busy`` exactly while a row is in flight (the
    second read cycle excepted)."""

    def check(self, m, dut):
        L = dut.latency

        def line(value, n, name):
            regs = [Signal.like(value, name=f"{name}_{k}") for k in range(n)]
            prev = value
            for r in regs:
                m.d.sync += r.eq(prev)
                prev = r
            return regs

        issue = line(dut.issue, L, "issue")
        wb, last = line(dut.wb, L, "wb")[-1], line(dut.last, L, "last")[-1]
        va = line(dut.va, L - dut.va_delay, "va")[-1] if L > dut.va_delay else dut.va
        data = line(dut.data, dut.fetch_regs, "data")[-1] if dut.fetch_regs else dut.data
        row = dut.row
        m.d.comb += Assert(dut.push == issue[-1], "push differs from 'latency cycles after an issue'")
        in_flight = [s for k, s in enumerate(issue, start=1) if not (dut.read_regs and k == 2)]
        m.d.comb += Assert(dut.busy == Cat(*in_flight).any(), "busy differs from 'a row in flight'")
        with m.If(dut.push):
            m.d.comb += [Assert(row.wb == wb, "wb: not the issue's"), Assert(row.last == last, "last: not the issue's"),
                         Assert(row.bits == data, "bits: not the row read for the issue"),
                         Assert(row.single == ((data & (data - 1)) == 0), "single differs from 'at most one bit'")]
            if len(row.va):
                m.d.comb += Assert(row.va == va, "va: not the issue's")
            if dut.fetch_regs:
                m.d.comb += Assert(row.rest == (data & (data - 1))[:len(data)],
                                   "rest differs from the bits less the lowest")


# -- EwOperands (the EW/RED pipeline's operand stages 1..3 of a lane) ---------------------------------

class EwOperandsProof(_Harness):
    """The engine's :class:`spikeforge.hdl.accel.ew_operands.EwOperands` with any reads and
    controls on every cycle. Asserted against delay lines and a full-width running sum, each
    output in the cycle the build's registers give it (``read_regs`` and the registered
    stages among 1..3): ``theta`` the constants word's threshold, ``opa``/``opb`` the tile's
    spike slot or the integer lane as the stage-2 controls select, ``mult`` the multiplier,
    ``addend`` ``bias + rnd``, ``bias`` or 0, and ``opnd`` ``a`` (``a & b`` in a mask pass) or,
    in a reduction, the sum of those since the last ``first_n`` (modulo the operand width)."""

    def check(self, m, dut):
        r = {k: int(k in dut.registered) for k in (1, 2, 3)}
        t1 = dut.read_regs + r[1]
        t2, t3 = t1 + r[2], t1 + r[2] + r[3]
        n = [0]

        def late(value, k):
            for _ in range(k):
                n[0] += 1
                reg = Signal.like(value, name=f"late{n[0]}", reset_less=True)
                m.d.sync += reg.eq(value)
                value = reg
            return value

        age = Signal(range(t3 + 2))
        with m.If(age <= t3):
            m.d.sync += age.eq(age + 1)
        sb, mb, bb = dut.slot_bits, dut.mult_bits, dut.bias_bits
        word = late(dut.word, t1)
        m.d.comb += Assert((age <= t1) | (dut.theta == word[mb + bb:]), "theta: not the word's threshold")

        def operand(row, lane, is_int, name):
            row, lane = late(row, t2), late(lane, t2)
            tile, is_int = late(dut.tile, r[2]), late(is_int, r[2])
            slot = Signal(sb, name=f"{name}_slot")
            with m.Switch(tile):
                for s in range(dut.slots):
                    with m.Case(s):
                        m.d.comb += slot.eq(row[s * sb:(s + 1) * sb])
            return Mux(is_int, lane, slot)

        exp_a = Signal(signed(dut.operand_bits))
        exp_b = Signal(signed(dut.b_bits))
        m.d.comb += [exp_a.eq(operand(dut.rd_sa, dut.rd_ia, dut.a_int, "a")),
                     exp_b.eq(operand(dut.rd_sb, dut.rd_ib, dut.b_int, "b"))]
        with m.If(age > t2):
            m.d.comb += [Assert(dut.opa == exp_a, "opa differs from the selected operand"),
                         Assert(dut.opb == exp_b, "opb differs from the selected operand")]
        # stage 3, from the stage-3 controls of cycle t2
        word2 = late(dut.word, t2)
        mult, bias = word2[:mb].as_signed(), word2[mb:mb + bb].as_signed()
        rq, out, rnd = dut.rq, dut.out, dut.rnd
        exp_addend = Mux(rq, bias + rnd, Mux(out, bias, 0))
        cur = Mux(dut.mask, exp_a & exp_b, exp_a)
        acc = Signal(signed(dut.operand_bits + 8), reset_less=True)   # the running sum, at full width
        nxt = Mux(dut.red, Mux(dut.first_n, 0, acc) + cur, exp_a)
        m.d.sync += acc.eq(nxt)
        if r[3]:
            exp_opnd, exp_mult, exp_add = acc, late(mult, 1), late(exp_addend, 1)
        else:
            exp_opnd, exp_mult, exp_add = nxt, mult, exp_addend
        with m.If(age > t3):
            m.d.comb += [Assert(dut.opnd == exp_opnd[:dut.operand_bits].as_signed(),
                                "opnd differs from the operand or the running sum"),
                         Assert(dut.mult == exp_mult, "mult differs from the word's multiplier"),
                         Assert(dut.addend == exp_add, "addend differs from bias + rnd / bias / 0")]


# -- SynIssue (the SYN pipeline's issue stage E) ------------------------------------------------------

class SynIssueProof(_Harness):
    """The engine's :class:`spikeforge.hdl.accel.syn_issue.SynIssue` with any decoded items by
    the stream rules (``tile <= tile_hi``, ``at_last`` true to them, as the decode gives them)
    and any ``blk``. Asserted against a shadow that holds the taken item and its tile offset
    ``k``: the held item's fields, its tile, weight and accumulator words ``k`` after the
    item's and ``at_last`` exactly at ``tile_hi`` (so each event issues each tile of its range
    once, in order); ``issue``, ``pos_end`` and ``i.ready`` exact, the position's last cycle
    waiting while ``blk``; ``first`` and the event strobe only at the first tile."""

    inputs = ("i",)

    def check(self, m, dut):
        i, e = dut.i, dut.e
        item = i.payload
        m.d.comb += Assume(~i.valid | ((item.tile <= item.tile_hi) &
                                       (item.at_last == (~item.ev | (item.tile == item.tile_hi)))))
        held = Signal(dut.layout)
        k = Signal(len(e.tile) + 1)
        on = Signal()
        tile = held.tile + k
        at_last = ~held.ev | (tile == held.tile_hi)
        final = held.row_end & held.pos_last & at_last
        go = on & ~(final & dut.blk)
        issue = go & held.ev
        m.d.comb += [Assert(dut.valid == on, "valid differs from 'an item held'"),
                     Assert(dut.issue == issue, "issue differs from 'an event held and not waiting'"),
                     Assert(dut.pos_end == (go & final), "pos_end differs from the position's last cycle going"),
                     Assert(i.ready == (~on | (go & at_last)), "i.ready differs from 'none held or its last cycle'")]
        with m.If(on):
            m.d.comb += [Assert(tile <= held.tile_hi, "tile beyond the item's range"),
                         Assert(e.tile == tile[:len(e.tile)], "tile differs from the item's plus the tiles issued"),
                         Assert(e.at_last == at_last, "at_last differs from 'at tile_hi'"),
                         Assert(e.waddr == (held.waddr + k)[:len(e.waddr)], "waddr does not step with the tile"),
                         Assert(e.word == (held.word + k)[:len(e.word)], "word does not step with the tile"),
                         Assert(Cat(e.ev, e.row_end, e.pos_last, e.b, e.lo, e.tile_hi, e.va) ==
                                Cat(held.ev, held.row_end, held.pos_last, held.b, held.lo, held.tile_hi, held.va),
                                "the held item's fields changed"),
                         Assert(dut.first == (k == 0), "first differs from 'at the item's first tile'"),
                         Assert(dut.event == (issue & (k == 0)), "event differs from 'issued at its first tile'")]
        with m.If(_fire(i)):
            m.d.sync += [held.eq(item), k.eq(0), on.eq(1)]
        with m.Elif(issue & ~at_last):
            m.d.sync += k.eq(k + 1)
        with m.Elif(go & at_last):
            m.d.sync += on.eq(0)
