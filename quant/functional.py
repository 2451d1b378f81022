"""Straight-through and surrogate-gradient primitives shared by the quantized modules.

Forward passes are exact integer-grid operations (the same roundings as ``docs/spec.md``);
backward passes are the usual estimators: identity for rounding (STE), a sigmoid surrogate
for the Heaviside spike.
"""

import torch

__all__ = ["round_half_up", "floor_ste", "grad_scale", "spike", "fake_quant", "SURROGATE_ALPHA"]

SURROGATE_ALPHA = 4.0


def round_half_up(x):
    """``floor(x + 1/2)`` (ties toward plus infinity, §1) with a straight-through gradient."""
    return x + (torch.floor(x + 0.5) - x).detach()


def floor_ste(x):
    """``floor(x)`` with a straight-through gradient."""
    return x + (torch.floor(x) - x).detach()


def grad_scale(x, scale):
    """Identity forward; gradient multiplied by ``scale`` (LSQ's step-size gradient scale)."""
    return (x - x * scale).detach() + x * scale


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, width):
        ctx.save_for_backward(u, width)
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        u, width = ctx.saved_tensors
        sg = torch.sigmoid(SURROGATE_ALPHA * u / width)
        g = grad * SURROGATE_ALPHA * sg * (1 - sg) / width
        gw = None
        if ctx.needs_input_grad[1]:
            gw = (-g * u / width).sum_to_size(width.shape)
        return g, gw


def spike(u, width):
    """Heaviside ``u >= 0`` (equality fires); sigmoid surrogate of width ``width`` backward."""
    return _Spike.apply(u, width.detach() if torch.is_tensor(width) else torch.tensor(width))


def fake_quant(x, frac_bits, bits):
    """Round ``x`` half up to the grid ``2**-frac_bits`` and saturate to signed ``bits`` bits.

    This is the float image of the spec's requantization output ``int(bits)``; gradient is
    straight-through inside the range and zero where it saturates.
    """
    scale = float(1 << frac_bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = round_half_up(x * scale)
    return torch.clamp(q, lo, hi) / scale
