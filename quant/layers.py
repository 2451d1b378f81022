"""Quantized building blocks: conv + BN + requantization, attention, MLP, head.

Float tensors are ``[T, B, C, H, W]``. Every synaptic layer is a convolution with LSQ
weights, a BatchNorm and the fake requantization to the common fixed point
(``frac_bits``, ``act_bits``, see :mod:`spikeforge.quant`); the exporter folds each of them
into one ``conv`` node of the spec.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .functional import fake_quant, round_half_up
from .lsq import LSQWeight
from .neurons import LIF, MultiSpike

__all__ = ["QConvBN", "SpikeAttention", "SpikeMLP", "Block", "PoolHead", "make_neuron", "stream_add"]


def _tb(x):
    return x.flatten(0, 1)


def _untb(x, T):
    return x.unflatten(0, (T, -1))


class QConvBN(nn.Module):
    """Conv (LSQ weights, no bias) + BatchNorm + fake requantization to ``int(act_bits)``.

    ``in_scale`` is the real value of one input unit (``1/max_value`` for the image, 1 for
    spike counts); it is folded into the exported multiplier.
    """

    def __init__(self, ci, co, kernel=1, stride=1, padding=0, *, bits, frac_bits, act_bits,
                 in_scale=1.0):
        super().__init__()
        self.stride, self.padding, self.in_scale = stride, padding, in_scale
        self.frac_bits, self.act_bits = frac_bits, act_bits
        self.weight = nn.Parameter(torch.empty(co, ci, kernel, kernel))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.quant = LSQWeight(bits, co)
        self.bn = nn.BatchNorm2d(co)

    def forward(self, x):
        T = x.shape[0]
        w = self.quant(self.weight)
        x = _tb(x) * self.in_scale
        if w.shape[2] == 1 and self.stride == 1 and self.padding == 0:
            z = torch.einsum("nchw,oc->nohw", x, w[:, :, 0, 0])   # faster than a 1x1 conv on CPU
        else:
            z = F.conv2d(x, w, None, self.stride, self.padding)
        return _untb(fake_quant(self.bn(z), self.frac_bits, self.act_bits), T)


def make_neuron(cfg, channels, levels, in_frac):
    """The spike neuron of a configuration: LIF for ``levels == 1``, else multi-level."""
    if levels == 1:
        return LIF(channels, cfg.theta, in_frac, cfg.leak, cfg.reset, cfg.learn_threshold)
    return MultiSpike(levels, in_frac, in_frac)


class SpikeAttention(nn.Module):
    """Spike-driven self-attention: V1 mask, V2 linear or QSD multi-level, plus projection.

    ``forward`` takes the spikes of the attention-input neuron and returns the projection
    output on the residual fixed point.
    """

    def __init__(self, cfg):
        super().__init__()
        C, fb, ab = cfg.channels, cfg.frac_bits, cfg.act_bits
        kw = dict(bits=cfg.weight_bits, frac_bits=fb, act_bits=ab)
        self.variant, self.heads = cfg.attention, cfg.heads
        self.q, self.k, self.v = (QConvBN(C, C, **kw) for _ in range(3))
        lv = cfg.qkv_levels
        self.q_spk, self.k_spk, self.v_spk = (make_neuron(cfg, C, lv, fb) for _ in range(3))
        theta, shift = cfg.attention_scale()
        if self.variant == "mask":
            self.attn_spk = LIF(C, cfg.mask_theta, 0, 1, "hard", learn=False)
        elif cfg.attn_levels == 1:
            self.attn_spk = LIF(C, theta, 0, cfg.leak, cfg.reset, cfg.learn_threshold)
        else:
            self.attn_spk = MultiSpike(cfg.attn_levels, 0, shift)
        self.proj = QConvBN(C, C, **kw)

    def forward(self, s):
        q = self.q_spk(self.q(s))
        k = self.k_spk(self.k(s))
        v = self.v_spk(self.v(s))
        if self.variant == "mask":
            kv = (k * v).sum(dim=(3, 4))                    # [T, B, C]
            a = q * self.attn_spk(kv)[..., None, None]
        else:
            T, B, C, H, W = q.shape
            h, d = self.heads, C // self.heads

            def split(x):
                return x.reshape(T, B, h, d, H * W)

            qh, kh, vh = split(q), split(k), split(v)
            kv = kh @ vh.transpose(-1, -2)                  # [T, B, h, d(i), d(j)]
            a = (qh.transpose(-1, -2) @ kv).transpose(-1, -2).reshape(T, B, C, H, W)
            a = self.attn_spk(a)
        return self.proj(a)


class SpikeMLP(nn.Module):
    """Spiking MLP: 1x1 conv to ``mlp_ratio * C``, neuron, 1x1 conv back to the stream."""

    def __init__(self, cfg):
        super().__init__()
        C, hid = cfg.channels, cfg.channels * cfg.mlp_ratio
        kw = dict(bits=cfg.weight_bits, frac_bits=cfg.frac_bits, act_bits=cfg.act_bits)
        self.hidden = QConvBN(C, hid, **kw)
        self.hidden_spk = make_neuron(cfg, hid, cfg.levels, cfg.frac_bits)
        self.out = QConvBN(hid, C, **kw)

    def forward(self, s):
        return self.out(self.hidden_spk(self.hidden(s)))


def stream_add(a, b, cfg):
    """Membrane shortcut (§7): ``sat(a + b)`` on the common fixed point."""
    scale = float(1 << cfg.frac_bits)
    lo, hi = -(1 << (cfg.act_bits - 1)) / scale, ((1 << (cfg.act_bits - 1)) - 1) / scale
    return torch.clamp(a + b, lo, hi)


class Block(nn.Module):
    """Transformer block with membrane shortcuts: each branch starts with its own neuron."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.attn_in = make_neuron(cfg, cfg.channels, cfg.levels, cfg.frac_bits)
        self.attn = SpikeAttention(cfg)
        self.mlp_in = make_neuron(cfg, cfg.channels, cfg.levels, cfg.frac_bits)
        self.mlp = SpikeMLP(cfg)

    def forward(self, x):
        x = stream_add(x, self.attn(self.attn_in(x)), self.cfg)
        return stream_add(x, self.mlp(self.mlp_in(x)), self.cfg)


class PoolHead(nn.Module):
    """Mean over tokens + BatchNorm (folded into the ``pool`` node), neuron, linear head.

    The head's LSQ step is one per tensor and its bias is quantized to the grid
    ``step / T``, so the float logits are ``step / T`` times the integer logits (§8.4).
    """

    def __init__(self, cfg):
        super().__init__()
        C, self.cfg = cfg.channels, cfg
        self.bn = nn.BatchNorm2d(C)
        self.neuron = make_neuron(cfg, C, cfg.levels, cfg.frac_bits)
        self.weight = nn.Parameter(torch.empty(cfg.classes, C))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.bias = nn.Parameter(torch.zeros(cfg.classes))
        self.quant = LSQWeight(cfg.weight_bits, cfg.classes, per_channel=False)

    def forward(self, x):
        T = x.shape[0]
        p = _tb(x).mean(dim=(2, 3), keepdim=True)
        p = _untb(fake_quant(self.bn(p), self.cfg.frac_bits, self.cfg.act_bits), T)
        s = self.neuron(p).mean(0).flatten(1)              # [B, C]
        w = self.quant(self.weight)
        step = self.quant.step.abs().clamp(min=1e-8) / T
        b = round_half_up(self.bias / step) * step
        return s @ w.t() + b
