# amaranth: UnusedElaboratable=no
"""Spike-driven self-attention (spec §8.1 mask form, §8.2 linear / QSD form).

Golden functions: :func:`spikeforge.sim.golden.spike_attention_mask`,
:func:`spikeforge.sim.golden.spike_attention_linear`.
"""

from amaranth.hdl import Array, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph import bits_for_range
from ..sim.golden import spike_event_encoder
from .event_encoder import SpikeEventEncoder
from .params import check_choice, check_int, check_int_array

__all__ = ["SpikeAttentionMask", "SpikeAttentionLinear"]


class SpikeAttentionMask(wiring.Component):
    """V1 mask attention (§8.1) for binary spikes, one token per cycle.

    Per time step: ``tokens`` beats of ``(k, v)`` (phase 1) count ``kv[c] += k[c] & v[c]``;
    one cycle updates the C mask neurons (LIF over time, state across ``time_steps``, 0 at
    ``t = 0``); then ``tokens`` beats of ``q`` (phase 2) give ``q & mask``.

    Parameters
    ----------
    channels, tokens, time_steps : int
    theta : int array ``[C]`` (>= 1); leak : int; reset : ``"hard"`` or ``"soft"``

    Members
    -------
    kv : ``In(stream.Signature(StructLayout{k: C, v: C}))``
        Ready only in phase 1.
    q : ``In(stream.Signature(unsigned(C)))``
        Ready only in phase 2 while the output register is free.
    o : ``Out(stream.Signature(unsigned(C)))``
        ``q & mask``, one beat per q beat, latency 1.
    """

    def __init__(self, *, channels, tokens, time_steps, theta, leak=1, reset="hard"):
        name = type(self).__name__
        self.channels = check_int(name, "channels", channels, 1, 4096)
        self.tokens = check_int(name, "tokens", tokens, 1, 1 << 20)
        self.time_steps = check_int(name, "time_steps", time_steps, 1, 64)
        self.theta = check_int_array(name, "theta", theta, (self.channels,), 1, 1 << 40)
        self.leak = check_int(name, "leak", leak, 0, 16)
        self.reset = check_choice(name, "reset", reset, ("hard", "soft"))
        m = self.tokens
        bound = 2 * m + 1 if self.leak >= 1 else self.time_steps * m
        self.v_bits = bits_for_range(-bound, bound)
        C = self.channels
        super().__init__({
            "kv": In(stream.Signature(data.StructLayout({"k": C, "v": C}))),
            "q": In(stream.Signature(unsigned(C))),
            "o": Out(stream.Signature(unsigned(C))),
        })

    def cycles(self):
        """Cycles of one image without stalls, first kv transfer to last output:
        ``T * (2 N + 1) + 1``."""
        return self.time_steps * (2 * self.tokens + 1) + 1

    def memory_bits(self):
        return 0

    def logic_estimate(self):
        cw = self.tokens.bit_length()
        return {"lut": self.channels * (cw + 2 * self.v_bits + 2),
                "ff": self.channels * (cw + self.v_bits + 2) + 24}

    def elaborate(self, platform):
        m = Module()
        C, N, T = self.channels, self.tokens, self.time_steps
        kv = [Signal(range(N + 1), name=f"kv_{c}") for c in range(C)]
        vmem = [Signal(signed(self.v_bits), name=f"v_{c}") for c in range(C)]
        mask = Signal(C)
        phase = Signal(2)  # 0: kv, 1: mask update, 2: q
        count = Signal(range(N))
        step = Signal(range(T))

        m.d.comb += self.kv.ready.eq(phase == 0)
        with m.If(self.kv.valid & self.kv.ready):
            for c in range(C):
                m.d.sync += kv[c].eq(kv[c] + (self.kv.payload.k[c] & self.kv.payload.v[c]))
            m.d.sync += count.eq(Mux(count == N - 1, 0, count + 1))
            with m.If(count == N - 1):
                m.d.sync += phase.eq(1)

        with m.If(phase == 1):
            for c in range(C):
                u = Signal(signed(self.v_bits + 1), name=f"u_{c}")
                theta = int(self.theta[c])
                m.d.comb += u.eq(Mux(step == 0, 0, vmem[c] >> self.leak) + kv[c])
                fire = u >= theta
                m.d.sync += [mask[c].eq(fire), kv[c].eq(0),
                             vmem[c].eq(Mux(fire, 0 if self.reset == "hard" else u - theta, u))]
            m.d.sync += phase.eq(2)

        m.d.comb += self.q.ready.eq((phase == 2) & (~self.o.valid | self.o.ready))
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(self.q.payload & mask)]
            m.d.sync += count.eq(Mux(count == N - 1, 0, count + 1))
            with m.If(count == N - 1):
                m.d.sync += [phase.eq(0), step.eq(Mux(step == T - 1, 0, step + 1))]
        return m


class SpikeAttentionLinear(wiring.Component):
    """Linear attention ``A = Q (K^T V)`` per head (§8.2), binary or multi-level spikes.

    Phase 1, one token per cycle: ``KV[i, j] += k_i * v_j`` for every channel pair of a head,
    as ANDs of bit planes shifted by ``bk + bv`` (``C * d`` accumulators of
    ``bits(N Dk Dv)``). Phase 2: each ``q`` vector goes through a :class:`SpikeEventEncoder`;
    every event ``(i, b)`` adds the KV row ``i << b`` to the d lanes of ``i``'s head, one event
    per cycle, and the vector's last event emits the C-lane ``A`` row. KV is cleared after the
    ``tokens``-th q vector of the step.

    Parameters
    ----------
    channels, heads, tokens : int
        C (divisible by ``heads``), h, N.
    levels_q, levels_k, levels_v : int
        Spike levels Dq, Dk, Dv (1 for binary).

    Members
    -------
    kv : ``In(stream.Signature(StructLayout{k: C x bits(Dk), v: C x bits(Dv)}))``
        Ready only in phase 1.
    q : ``In(stream.Signature(ArrayLayout(unsigned(bits(Dq)), C)))``
        Ready in phase 2 (up to ``tokens`` vectors).
    o : ``Out(stream.Signature(ArrayLayout(unsigned(a_bits), C)))``
        One A row per q vector.
    """

    def __init__(self, *, channels, heads, tokens, levels_q=1, levels_k=1, levels_v=1):
        name = type(self).__name__
        self.channels = check_int(name, "channels", channels, 1, 4096)
        self.heads = check_int(name, "heads", heads, 1, self.channels)
        if self.channels % self.heads:
            raise ValueError(f"{name}: heads={self.heads} does not divide channels={self.channels}; "
                             "allowed: a divisor of channels")
        self.tokens = check_int(name, "tokens", tokens, 1, 1 << 20)
        self.levels_q = check_int(name, "levels_q", levels_q, 1, 255)
        self.levels_k = check_int(name, "levels_k", levels_k, 1, 255)
        self.levels_v = check_int(name, "levels_v", levels_v, 1, 255)
        self.d = self.channels // self.heads
        self.kv_max = self.tokens * self.levels_k * self.levels_v
        self.a_max = self.d * self.kv_max * self.levels_q
        self.kv_bits = self.kv_max.bit_length()
        self.a_bits = self.a_max.bit_length()
        C = self.channels
        self.encoder = SpikeEventEncoder(channels=C, levels=self.levels_q)
        super().__init__({
            "kv": In(stream.Signature(data.StructLayout({
                "k": data.ArrayLayout(unsigned(self.levels_k.bit_length()), C),
                "v": data.ArrayLayout(unsigned(self.levels_v.bit_length()), C)}))),
            "q": In(stream.Signature(data.ArrayLayout(unsigned(self.levels_q.bit_length()), C))),
            "o": Out(stream.Signature(data.ArrayLayout(unsigned(self.a_bits), C))),
        })

    def cycles(self, q):
        """Cycles of one time step without stalls for ``q [N, C]``, first kv transfer to
        last output: ``N + 2 + sum max(1, popcount planes of q[n])`` (N kv beats, the
        encoder's load cycle, one event per cycle, the output register)."""
        return self.tokens + 2 + len(spike_event_encoder(q, self.levels_q))

    def memory_bits(self):
        return 0

    def logic_estimate(self):
        pairs = self.channels * self.d
        pk, pv = self.levels_k.bit_length(), self.levels_v.bit_length()
        enc = self.encoder.logic_estimate()
        return {"lut": pairs * (self.kv_bits + pk * pv) + self.channels * (self.a_bits + self.d * 2)
                + enc["lut"],
                "ff": pairs * self.kv_bits + 2 * self.channels * self.a_bits + enc["ff"] + 32}

    def elaborate(self, platform):
        m = Module()
        C, N, d = self.channels, self.tokens, self.d
        m.submodules.encoder = enc = self.encoder
        kvr = [[Signal(range(self.kv_max + 1), name=f"kv_{i}_{jl}") for jl in range(d)]
               for i in range(C)]
        acc = [Signal(range(self.a_max + 1), name=f"a_{j}") for j in range(C)]
        phase_q = Signal()
        count_kv = Signal(range(N))
        count_q_in = Signal(range(N + 1))
        count_q_out = Signal(range(N))

        # Phase 1: K^T V by ANDs of bit planes.
        m.d.comb += self.kv.ready.eq(~phase_q)
        k, v = self.kv.payload.k, self.kv.payload.v
        pk, pv = self.levels_k.bit_length(), self.levels_v.bit_length()
        with m.If(self.kv.valid & self.kv.ready):
            for i in range(C):
                h0 = (i // d) * d
                for jl in range(d):
                    terms = [(k[i][bk] & v[h0 + jl][bv]) << (bk + bv)
                             for bk in range(pk) for bv in range(pv)]
                    total = terms[0]
                    for t in terms[1:]:
                        total = total + t
                    m.d.sync += kvr[i][jl].eq(kvr[i][jl] + total)
            m.d.sync += count_kv.eq(Mux(count_kv == N - 1, 0, count_kv + 1))
            with m.If(count_kv == N - 1):
                m.d.sync += phase_q.eq(1)

        # Phase 2: q vectors through the event encoder; KV rows added per event.
        take = phase_q & (count_q_in < N)
        m.d.comb += [enc.i.valid.eq(self.q.valid & take),
                     enc.i.payload.spikes.eq(self.q.payload),
                     self.q.ready.eq(enc.i.ready & take)]
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += count_q_in.eq(count_q_in + 1)

        ev = enc.o.payload
        m.d.comb += enc.o.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(enc.o.valid & enc.o.ready):
            for j in range(C):
                hh, jl = divmod(j, d)
                row = Array(kvr[hh * d + il][jl] for il in range(d))
                # bounds that are always true (head 0, last head) are left out: Verilator
                # lint flags a constant comparison (UNSIGNED)
                in_head = ~ev.empty
                if hh > 0:
                    in_head = in_head & (ev.channel >= hh * d)
                if hh * d + d < C:
                    in_head = in_head & (ev.channel < hh * d + d)
                add = Mux(in_head, row[(ev.channel - hh * d)[:max(1, (d - 1).bit_length())]] << ev.plane, 0)
                total = acc[j] + add
                with m.If(ev.last):
                    m.d.sync += [self.o.payload[j].eq(total), acc[j].eq(0)]
                with m.Else():
                    m.d.sync += acc[j].eq(total)
            with m.If(ev.last):
                m.d.sync += [self.o.valid.eq(1),
                             count_q_out.eq(Mux(count_q_out == N - 1, 0, count_q_out + 1))]
                with m.If(count_q_out == N - 1):
                    m.d.sync += [phase_q.eq(0), count_q_in.eq(0)]
                    m.d.sync += [kvr[i][jl].eq(0) for i in range(C) for jl in range(d)]
        return m
