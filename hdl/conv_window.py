"""Convolution window addressing (spec §5): output positions in row-major order, and for each
the in-grid input positions of its k x k window (zero padding skips the others).

Golden function: :func:`spikeforge.sim.golden.conv_window_scan`.
"""

from amaranth.hdl import Array, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..sim.golden import conv_window_scan
from .params import check_int, field_bits

__all__ = ["ConvWindowScan"]


class ConvWindowScan(wiring.Component):
    """Stream of ``(token, tap, end, last)`` reads for one k x k convolution pass.

    One beat per in-grid tap, so a pass costs exactly the number of synaptic input positions
    (no cycles for padding). ``token = y * W + x`` addresses the input activation memory,
    ``tap = ky * k + kx`` goes into :class:`SparseAdd`'s event tag with ``end`` (last tap of an
    output position); ``last`` marks the last beat of the pass. A linear layer is ``k = 1``.

    Parameters
    ----------
    height, width : int
        Input grid H x W.
    kernel, stride, padding : int
        k >= 1, s >= 1, 0 <= p < k; the output grid must be at least 1 x 1.

    Members
    -------
    i : ``In(stream.Signature(0))``
        Start: each transfer starts one pass; ready while idle.
    o : ``Out(stream.Signature(layout))``
        Reads, valid from the cycle after the start, one per cycle while ``o.ready``.
    """

    def __init__(self, *, height, width, kernel=1, stride=1, padding=0):
        name = type(self).__name__
        self.height = check_int(name, "height", height, 1, 4096)
        self.width = check_int(name, "width", width, 1, 4096)
        self.kernel = check_int(name, "kernel", kernel, 1, 15)
        self.stride = check_int(name, "stride", stride, 1, 15)
        self.padding = check_int(name, "padding", padding, 0, self.kernel - 1)
        k, s, p = self.kernel, self.stride, self.padding
        self.out_height = (self.height + 2 * p - k) // s + 1
        self.out_width = (self.width + 2 * p - k) // s + 1
        if self.out_height < 1 or self.out_width < 1:
            raise ValueError(f"{name}: kernel={k}, stride={s}, padding={p} leave no output on a "
                             f"{self.height}x{self.width} grid; allowed: an output of at least 1x1")
        self.layout = data.StructLayout({
            "token": unsigned(field_bits(self.height * self.width)),
            "tap": unsigned(field_bits(k * k)),
            "end": 1,
            "last": 1,
        })
        super().__init__({"i": In(stream.Signature(0)), "o": Out(stream.Signature(self.layout))})

    def _ranges(self, n, n_out):
        k, s, p = self.kernel, self.stride, self.padding
        lo = [max(0, p - o * s) for o in range(n_out)]
        hi = [min(k - 1, n - 1 + p - o * s) for o in range(n_out)]
        return lo, hi

    # cost model ---------------------------------------------------------------------------
    def cycles(self):
        """Cycles of one pass without stalls, start transfer to last beat: ``1 + taps``."""
        return 1 + len(conv_window_scan(self.height, self.width, self.kernel, self.stride,
                                        self.padding))

    def memory_bits(self):
        return 0

    def logic_estimate(self):
        n = 4 * field_bits(max(self.out_height, self.out_width, self.kernel))
        return {"lut": 6 * n + 2 * len(self.layout.members) * 8, "ff": n + 1}

    # hardware ---------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        k, s, p = self.kernel, self.stride, self.padding
        Ho, Wo = self.out_height, self.out_width
        kylo, kyhi = self._ranges(self.height, Ho)
        kxlo, kxhi = self._ranges(self.width, Wo)
        kw = unsigned(field_bits(k))
        ky_lo, ky_hi = (Array(Const(v, kw) for v in t) for t in (kylo, kyhi))
        kx_lo, kx_hi = (Array(Const(v, kw) for v in t) for t in (kxlo, kxhi))

        oy, ox = Signal(range(Ho)), Signal(range(Wo))
        ky, kx = Signal(kw), Signal(kw)
        running = Signal()

        y = oy * s + ky - p
        x = ox * s + kx - p
        end_x = kx == kx_hi[ox]
        end = (ky == ky_hi[oy]) & end_x
        last_out = (oy == Ho - 1) & (ox == Wo - 1)
        m.d.comb += [
            self.i.ready.eq(~running),
            self.o.valid.eq(running),
            self.o.payload.token.eq(y * self.width + x),
            self.o.payload.tap.eq(ky * k + kx),
            self.o.payload.end.eq(end),
            self.o.payload.last.eq(end & last_out),
        ]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [running.eq(1), oy.eq(0), ox.eq(0), ky.eq(kylo[0]), kx.eq(kxlo[0])]
        with m.If(self.o.valid & self.o.ready):
            with m.If(~end_x):
                m.d.sync += kx.eq(kx + 1)
            with m.Elif(~end):
                m.d.sync += [ky.eq(ky + 1), kx.eq(kx_lo[ox])]
            with m.Elif(last_out):
                m.d.sync += running.eq(0)
            with m.Elif(ox == Wo - 1):
                m.d.sync += [ox.eq(0), oy.eq(oy + 1), kx.eq(kxlo[0]), ky.eq(ky_lo[oy + 1])]
            with m.Else():
                m.d.sync += [ox.eq(ox + 1), kx.eq(kx_lo[ox + 1]), ky.eq(ky_lo[oy])]
        return m
