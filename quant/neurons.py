"""Spiking neurons in float form that follow the integer neurons of the spec exactly.

Tensors are ``[T, B, C, H, W]``. Each neuron knows the fixed point of its input
(``in_frac``: the input's integer image is ``x * 2**in_frac``), so its forward pass performs
the integer arithmetic of §6 on that grid: the LIF leak is the arithmetic shift (floor), the
multi-level neuron rounds half up. Backward passes use a sigmoid surrogate (LIF) and a
clipped straight-through estimator (multi-level neuron).
"""

import torch
from torch import nn

from .functional import floor_ste, round_half_up, spike

__all__ = ["LIF", "MultiSpike"]


class LIF(nn.Module):
    """LIF of §6.1: ``U = (V >> leak) + X``, spike if ``U >= theta``, hard or soft reset.

    ``theta`` is per channel, in the input's real units; it is rounded to the input grid
    (at least one step) in every forward pass, so the exported integer threshold is
    ``round(theta * 2**in_frac)``. ``learn=False`` keeps it fixed.
    """

    def __init__(self, channels, theta=1.0, in_frac=0, leak=1, reset="hard", learn=True):
        super().__init__()
        self.in_frac, self.leak, self.reset = in_frac, leak, reset
        t = torch.full((channels,), float(theta))
        if learn:
            self.theta = nn.Parameter(t)
        else:
            self.register_buffer("theta", t)

    def integer_theta(self):
        """Per-channel integer threshold (``int64``), ``>= 1``."""
        scale = float(1 << self.in_frac)
        return torch.clamp(torch.floor(self.theta.detach() * scale + 0.5), min=1).long()

    def quantized_theta(self):
        scale = float(1 << self.in_frac)
        return torch.clamp(round_half_up(self.theta * scale), min=1.0) / scale

    def forward(self, x):
        T = x.shape[0]
        theta = self.quantized_theta().view(-1, *([1] * (x.dim() - 3)))
        width = theta.detach()
        scale = float(1 << self.in_frac)
        v = torch.zeros_like(x[0])
        out = []
        for t in range(T):
            u = floor_ste(v * (scale / (1 << self.leak))) / scale + x[t]
            s = spike(u - theta, width)
            v = u * (1 - s) if self.reset == "hard" else u - s * theta
            out.append(s)
        return torch.stack(out)


class MultiSpike(nn.Module):
    """Multi-level spike neuron of §6.2: ``S = clamp(rshift_round(X, shift), 0, levels)``.

    ``X = x * 2**in_frac`` is the integer input. With ``shift == in_frac`` this is QSD's
    ``round(clamp(x, 0, D))``. The gradient is passed straight through inside ``0..levels``.
    """

    def __init__(self, levels, in_frac=0, shift=0):
        super().__init__()
        self.levels, self.in_frac, self.shift = levels, in_frac, shift

    def forward(self, x):
        y = x * float(2.0 ** (self.in_frac - self.shift))
        return round_half_up(torch.clamp(y, 0, self.levels))
