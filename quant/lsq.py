"""LSQ (learned step size) weight quantizers: symmetric signed range, zero point 0.

A ``b``-bit weight is the integer ``w_int`` in ``[-2**(b-1), 2**(b-1) - 1]`` (the spec's signed
range, §1) times a learned positive step ``s``: one step per output channel for synaptic
layers (it folds into the per-channel ``mult`` of §5), one per tensor for the head (the head
has no per-class multiplier, §8.4). Step gradients use LSQ's scale ``1 / sqrt(n * Qp)``.
"""

import math

import torch
from torch import nn

from .functional import grad_scale, round_half_up

__all__ = ["LSQWeight", "qrange"]


def qrange(bits):
    """``(Qn, Qp)``: the signed ``bits``-bit integer range."""
    if bits < 2:
        raise ValueError(f"weight bits is {bits}; allowed: >= 2")
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


class LSQWeight(nn.Module):
    """Quantize a weight tensor whose dimension 0 is the output channel.

    ``per_channel=False`` uses one step for the whole tensor.
    """

    def __init__(self, bits, channels, per_channel=True):
        super().__init__()
        self.bits = bits
        self.qn, self.qp = qrange(bits)
        self.per_channel = per_channel
        self.step = nn.Parameter(torch.ones(channels if per_channel else 1))
        self.register_buffer("initialized", torch.tensor(False))

    def _view(self, w):
        return self.step.view(-1, *([1] * (w.dim() - 1))) if self.per_channel else self.step

    def init_from(self, w):
        """LSQ initialisation ``s = 2 mean|w| / sqrt(Qp)`` (per channel)."""
        with torch.no_grad():
            a = w.abs().flatten(1).mean(1) if self.per_channel else w.abs().mean().reshape(1)
            self.step.copy_(torch.clamp(2 * a / math.sqrt(self.qp), min=1e-6))
            self.initialized.fill_(True)

    def integer(self, w):
        """The integer weights (float tensor of integers) for the current step."""
        s = self.steps()
        s = s.view(-1, *([1] * (w.dim() - 1))) if self.per_channel else s
        return torch.clamp(torch.floor(w.detach() / s + 0.5), self.qn, self.qp)

    def steps(self):
        """The positive step(s) actually used (``[Co]`` or ``[1]``)."""
        return self.step.detach().abs().clamp(min=1e-8)

    def forward(self, w):
        if not bool(self.initialized):
            self.init_from(w)
        n = w[0].numel() if self.per_channel else w.numel()
        g = 1.0 / math.sqrt(n * self.qp)
        s = grad_scale(self.step.abs().clamp(min=1e-8), g)
        s = s.view(-1, *([1] * (w.dim() - 1))) if self.per_channel else s
        q = torch.clamp(w / s, self.qn, self.qp)
        return round_half_up(q) * s
