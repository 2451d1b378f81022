"""Neuron stage (spec §5 requantization, §6.1 LIF, §6.2 multi-level spikes): P lanes of
requantization followed by a time-multiplexed neuron array over a membrane memory.

Each lane is a :class:`~.lif_lane.LifLane` (every stage combinational), the component the
accelerator engine's EW lanes are built on.

Golden function: :func:`spikeforge.sim.golden.lif_array`.
"""

import types

import numpy as np
from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..graph import bits_for_range, lif_membrane_bits, signed_range
from .lif_lane import LifLane
from .params import check_choice, check_int, check_int_array, field_bits

__all__ = ["LifArray", "MODES"]

MODES = ("lif", "multispike", "pass")


class LifArray(wiring.Component):
    """Requantize P accumulators per beat, then fire LIF neurons, multi-level spikes, or pass.

    Beats arrive in the order time step ``t`` (outer), token ``n``, tile (inner), exactly as
    :class:`SparseAdd` emits them for ``tokens`` output positions: channel of lane ``l`` of
    tile ``j`` is ``j * P + l``; lanes past C output 0. The unit counts beats itself;
    ``T = time_steps`` passes of ``tokens * tiles`` beats make one image, and the membrane of
    every neuron is taken as 0 at ``t = 0`` (no clearing pass needed between images).

    Per lane, channel ``c`` (§5, §6): ``x = sat(rshift_round(acc * mult[c] + bias[c], shift),
    out_bits)``, then

    - ``mode="lif"``: ``U = (V >> leak) + x``, spike ``U >= theta[c]``, hard or soft reset,
      ``V`` kept in a membrane memory of ``tokens * tiles`` words of P lanes;
    - ``mode="multispike"``: ``clamp(rshift_round(x, ms_shift), 0, levels)``;
    - ``mode="pass"``: ``x`` itself (signed ``out_bits``), e.g. for the residual stream.

    Parameters
    ----------
    channels, tokens, lanes, time_steps : int
    in_lo, in_hi : int
        Proven accumulator bounds (§9); the input and product widths derive from them.
    mult, bias : int arrays ``[C]``; shift, out_bits : int
        Requantization (§5).
    mode : str
        One of :data:`MODES`.
    theta : int array ``[C]`` (``>= 1``); leak : int; reset : ``"hard"`` or ``"soft"``
        LIF parameters (mode ``"lif"``).
    levels, ms_shift : int
        Multi-level spike parameters (mode ``"multispike"``).

    Members
    -------
    i : ``In(stream.Signature(in_layout))``
        ``acc`` (P lanes of signed ``in_bits``), ``tile``, ``last`` (as SparseAdd's output;
        ``tile`` and ``last`` are not used: position is counted internally).
    o : ``Out(stream.Signature(out_layout))``
        ``data`` (P lanes), ``tile``, ``last`` (last tile of a token). Latency 2 cycles,
        throughput one beat per cycle; ``i.ready`` is ``~o.valid | o.ready``.
    """

    #: The lane component (a broken one in tests/formal/broken_units.py).
    lif_lane = LifLane

    def __init__(self, *, channels, tokens, lanes, time_steps, in_lo, in_hi, mult, bias, shift,
                 out_bits, mode="lif", theta=None, leak=1, reset="hard", levels=1, ms_shift=0):
        name = type(self).__name__
        self.channels = check_int(name, "channels", channels, 1, 4096)
        self.tokens = check_int(name, "tokens", tokens, 1, 1 << 20)
        self.lanes = check_int(name, "lanes", lanes, 1, 1024)
        self.time_steps = check_int(name, "time_steps", time_steps, 1, 64)
        self.in_lo = check_int(name, "in_lo", in_lo, -(1 << 47))
        self.in_hi = check_int(name, "in_hi", in_hi, self.in_lo)
        self.shift = check_int(name, "shift", shift, 0, 47)
        self.out_bits = check_int(name, "out_bits", out_bits, 2, 32)
        self.mode = check_choice(name, "mode", mode, MODES)
        self.mult = check_int_array(name, "mult", mult, (self.channels,), -(1 << 23), (1 << 23) - 1)
        self.bias = check_int_array(name, "bias", bias, (self.channels,), -(1 << 62), 1 << 62)
        self.leak = check_int(name, "leak", leak, 0, 16)
        self.reset = check_choice(name, "reset", reset, ("hard", "soft"))
        self.levels = check_int(name, "levels", levels, 1, 255)
        self.ms_shift = check_int(name, "ms_shift", ms_shift, 0, 31)
        if self.mode == "lif":
            if theta is None:
                raise ValueError(f"{name}: mode 'lif' needs theta (an integer array [{channels}] >= 1)")
            self.theta = check_int_array(name, "theta", theta, (self.channels,), 1, 1 << 40)
        else:
            self.theta = None
        self.tiles = -(-self.channels // self.lanes)
        self.in_bits = bits_for_range(self.in_lo, self.in_hi)
        self.rnd = rnd = (1 << (self.shift - 1)) if self.shift else 0
        ends = [self.in_lo * self.mult, self.in_hi * self.mult]
        p_lo = int((np.minimum(*ends) + self.bias).min()) + rnd
        p_hi = int((np.maximum(*ends) + self.bias).max()) + rnd
        self.prod_bits = bits_for_range(min(p_lo, 0), max(p_hi, 0))
        out_lo, out_hi = signed_range(self.out_bits)
        self.x_lo, self.x_hi = max(out_lo, p_lo >> self.shift), min(out_hi, p_hi >> self.shift)
        self.x_lo, self.x_hi = min(self.x_lo, self.x_hi), max(self.x_lo, self.x_hi)
        self.v_bits = lif_membrane_bits(types.SimpleNamespace(lo=self.x_lo, hi=self.x_hi),
                                        self.leak, self.time_steps)
        self.in_layout = data.StructLayout({
            "acc": data.ArrayLayout(signed(self.in_bits), self.lanes),
            "tile": unsigned(field_bits(self.tiles)), "last": 1})
        lane_shape = {"lif": unsigned(1), "multispike": unsigned(self.levels.bit_length()),
                      "pass": signed(self.out_bits)}[self.mode]
        self.out_layout = data.StructLayout({
            "data": data.ArrayLayout(lane_shape, self.lanes),
            "tile": unsigned(field_bits(self.tiles)), "last": 1})
        super().__init__({"i": In(stream.Signature(self.in_layout)),
                          "o": Out(stream.Signature(self.out_layout))})

    # cost model ---------------------------------------------------------------------------
    def cycles(self, images=1):
        """Cycles without stalls, first input to last output transfer: one per beat + 2."""
        return images * self.time_steps * self.tokens * self.tiles + 2

    def memory_bits(self):
        """Membrane memory (mode ``"lif"``): ``tokens * tiles`` words of ``P * v_bits``."""
        return self.tokens * self.tiles * self.lanes * self.v_bits if self.mode == "lif" else 0

    def logic_estimate(self):
        """Rough LUT/FF: P multipliers (``in_bits x mult_bits`` as LUT adders if no DSP),
        rounding/saturation and the neuron per lane; pipeline registers."""
        mb = max(bits_for_range(int(self.mult.min()), int(self.mult.max())), 2)
        per_lane = self.in_bits * mb + 2 * self.prod_bits + 3 * self.v_bits
        ff = self.lanes * (self.in_bits + self.out_bits + 2) + 3 * 16
        return {"lut": self.lanes * per_lane, "ff": ff}

    # hardware ---------------------------------------------------------------------------
    def _lane_consts(self, values, lane, fill):
        vals = [int(values[j * self.lanes + lane]) if j * self.lanes + lane < self.channels else fill
                for j in range(self.tiles)]
        shape = signed(bits_for_range(min(min(vals), 0), max(max(vals), 0)))
        return Array(Const(v, shape) for v in vals)

    def lane_unit(self, lane, v_bits):
        """The :class:`LifLane` of ``lane`` (every stage combinational), its widths derived from
        this unit's value bounds and ``v_bits``, the membrane width."""
        rnd, lanes_c = self.rnd, [c for c in range(self.channels) if c % self.lanes == lane]
        add = [int(self.bias[c]) + rnd for c in lanes_c] + [rnd]
        ends = [a * int(self.mult[c]) + int(self.bias[c]) + rnd for c in lanes_c for a in (self.in_lo, self.in_hi)]
        theta_max = int(self.theta.max()) if self.theta is not None else 1
        v_lo, v_hi = signed_range(v_bits)
        mult_lo, mult_hi = min(int(self.mult.min()), 0), max(int(self.mult.max()), 0)
        return self.lif_lane(
            a_bits=self.in_bits, mult_bits=max(bits_for_range(mult_lo, mult_hi), 2),
            addend_bits=bits_for_range(min(min(add), 0), max(max(add), 0)),
            z_bits=max(bits_for_range(min(ends + [rnd, 0]), max(ends + [rnd, 0])), self.out_bits),
            y_bits=self.out_bits, theta_bits=theta_max.bit_length(), v_bits=v_bits,
            w_bits=bits_for_range(v_lo - theta_max, v_hi), spike_bits=self.levels.bit_length(),
            shift_bits=max(self.shift.bit_length(), 1), leak_bits=max(self.leak.bit_length(), 1),
            ms_shift_bits=max(self.ms_shift.bit_length(), 1), levels_bits=self.levels.bit_length())

    def lane_consts(self, unit):
        """This unit's constants, as the value of ``unit.k``."""
        out_lo, out_hi = signed_range(self.out_bits)
        ms_rnd = (1 << (self.ms_shift - 1)) if self.ms_shift else 0
        if ms_rnd >> (self.out_bits + 1):  # (y + ms_rnd) >> ms_shift is 0 for every y then, as with 0
            ms_rnd = 0
        return unit.k_layout.const({
            "rq": 1, "shift": self.shift, "sat_mask": out_lo, "sat_lo": out_lo, "sat_hi": out_hi,
            "leak": self.leak, "soft": int(self.reset == "soft"), "ms_rnd": ms_rnd,
            "ms_shift": self.ms_shift, "levels": self.levels})

    def elaborate(self, platform):
        m = Module()
        P, tiles = self.lanes, self.tiles
        depth = self.tokens * tiles

        tile = Signal(range(tiles))
        token = Signal(range(self.tokens))
        step = Signal(range(self.time_steps))
        pos = Signal(range(depth))

        advance = ~self.o.valid | self.o.ready
        m.d.comb += self.i.ready.eq(advance)

        s1_valid = Signal()
        s1_acc = Signal(self.in_layout.members["acc"])
        s1_tile = Signal(range(tiles))
        s1_first = Signal()  # t == 0: the membrane is 0
        s1_last = Signal()

        vw = self.v_bits
        if self.mode == "lif":
            m.submodules.membrane = mem = memory.Memory(shape=unsigned(P * vw), depth=depth, init=[])
            wp = mem.write_port()
            rd = mem.read_port(transparent_for=(wp,))
            m.d.comb += [rd.addr.eq(pos), rd.en.eq(advance)]

        with m.If(advance):
            m.d.sync += s1_valid.eq(self.i.valid)
            with m.If(self.i.valid):
                m.d.sync += [s1_acc.eq(self.i.payload.acc), s1_tile.eq(tile),
                             s1_first.eq(step == 0), s1_last.eq(tile == tiles - 1)]
                m.d.sync += pos.eq(Mux(pos == depth - 1, 0, pos + 1))
                with m.If(tile == tiles - 1):
                    m.d.sync += tile.eq(0)
                    with m.If(token == self.tokens - 1):
                        m.d.sync += token.eq(0)
                        m.d.sync += step.eq(Mux(step == self.time_steps - 1, 0, step + 1))
                    with m.Else():
                        m.d.sync += token.eq(token + 1)
                with m.Else():
                    m.d.sync += tile.eq(tile + 1)

        # Stage 2 (combinational from stage 1 and the membrane read), into the output register.
        s1_pos = Signal(range(depth))
        with m.If(advance & self.i.valid):
            m.d.sync += s1_pos.eq(pos)
        out_data = Signal(self.out_layout.members["data"])
        v_next = Signal(unsigned(P * vw))
        for lane in range(P):
            unit = m.submodules[f"lane{lane}"] = self.lane_unit(lane, vw)
            k = unit.k
            m.d.comb += [unit.a.eq(s1_acc[lane]), unit.mult.eq(self._lane_consts(self.mult, lane, 0)[s1_tile]),
                         unit.addend.eq(self._lane_consts(self.bias + self.rnd, lane, self.rnd)[s1_tile]),
                         unit.first.eq(s1_first), k.eq(self.lane_consts(unit))]
            pad = Const(0)
            if (tiles - 1) * P + lane >= self.channels:
                pad = s1_tile == tiles - 1
            if self.mode == "pass":
                m.d.comb += out_data[lane].eq(Mux(pad, 0, unit.y_pre))
            elif self.mode == "multispike":
                m.d.comb += out_data[lane].eq(Mux(pad, 0, unit.ms))
            else:
                m.d.comb += [unit.theta.eq(self._lane_consts(self.theta, lane, 1)[s1_tile]),
                             unit.v.eq(rd.data[lane * vw:(lane + 1) * vw].as_signed()),
                             out_data[lane].eq(~pad & unit.fire),
                             v_next[lane * vw:(lane + 1) * vw].eq(unit.v_next)]
        if self.mode == "lif":
            m.d.comb += [wp.addr.eq(s1_pos), wp.data.eq(v_next), wp.en.eq(advance & s1_valid)]

        with m.If(advance):
            m.d.sync += self.o.valid.eq(s1_valid)
            with m.If(s1_valid):
                m.d.sync += [self.o.payload.data.eq(out_data), self.o.payload.tile.eq(s1_tile),
                             self.o.payload.last.eq(s1_last)]
        return m
