"""Fold a trained :class:`SpikeTransformer` into an integer model of the spec and save it.

Each ``QConvBN`` becomes one ``conv`` node: with the LSQ step ``s[o]``, the BatchNorm (eval)
``k[o] = gamma / sqrt(var + eps)``, ``c[o] = beta - mean * k[o]`` and the input unit
``in_scale``, the layer computes ``y = k * in_scale * s * acc + c`` and its output integer is
``round_half_up(y * 2**F)``, so ``mult / 2**S ~ in_scale * s * k * 2**F`` and
``bias = round(c * 2**F * 2**S)``. ``S`` is the largest shift keeping every ``|mult|``
within ``mult_bits``. The ``pool`` node folds the mean over ``N`` tokens the same way
(``mult / 2**S ~ k / N``). Thresholds are ``round(theta * 2**F)``; the head's bias is
``round(b * T / step)``.
"""

import math

import numpy as np
import torch

from ..builder import ModelBuilder
from .neurons import LIF

__all__ = ["export_model", "fold_requant"]


def fold_requant(scale, offset, mult_bits):
    """``(mult, bias, shift)`` with ``mult / 2**shift ~ scale`` and ``bias / 2**shift ~ offset``.

    ``scale`` and ``offset`` are per-channel float arrays; ``mult`` fits signed ``mult_bits``
    and is never zero.
    """
    scale = np.asarray(scale, np.float64)
    offset = np.asarray(offset, np.float64)
    if not np.all(np.isfinite(scale)) or not np.all(np.isfinite(offset)):
        raise ValueError("cannot fold a non-finite scale or offset (was the model trained "
                         "with a diverging loss?)")
    top = (1 << (mult_bits - 1)) - 1
    m = float(np.abs(scale).max())
    shift = 47 if m == 0 else int(math.floor(math.log2(top / m)))
    shift = min(shift, 47)
    if shift < 0:
        raise ValueError(f"requantization scale {m:.3g} does not fit mult_bits={mult_bits} "
                         "at shift 0; allowed scales < 2**(mult_bits-1)")
    while True:
        mult = np.floor(scale * 2.0 ** shift + 0.5).astype(np.int64)
        if np.abs(mult).max() <= top:
            break
        shift -= 1
    mult[mult == 0] = 1
    bias = np.floor(offset * 2.0 ** shift + 0.5).astype(np.int64)
    return mult, bias, shift


def _bn(bn):
    k = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    c = bn.bias.detach().double() - bn.running_mean.double() * k
    return k.numpy(), c.numpy()


def _conv(b, name, src, layer, cfg):
    w = layer.quant.integer(layer.weight).long().permute(2, 3, 1, 0).numpy()  # [k, k, Ci, Co]
    k, c = _bn(layer.bn)
    scale = layer.in_scale * layer.quant.steps().double().numpy() * k * 2.0 ** cfg.frac_bits
    mult, bias, shift = fold_requant(scale, c * 2.0 ** cfg.frac_bits, cfg.mult_bits)
    return b.conv(name, src, w, mult, bias, shift, cfg.act_bits, cfg.weight_bits,
                  stride=layer.stride, padding=layer.padding)


def _neuron(b, name, src, neuron):
    if isinstance(neuron, LIF):
        return b.lif(name, src, neuron.integer_theta().numpy(), leak=neuron.leak, reset=neuron.reset)
    return b.multispike(name, src, neuron.levels, neuron.shift)


@torch.no_grad()
def export_model(net, metadata=None):
    """Return the integer :class:`spikeforge.Model` of ``net`` (evaluation mode statistics)."""
    cfg = net.cfg
    H, W, C = cfg.image
    b = ModelBuilder(cfg.time_steps, metadata=dict(metadata or {}))
    x = b.input("image", H, W, C, cfg.max_value, cfg.encoding)
    if net.stem is not None:
        x = _neuron(b, "stem_spk", _conv(b, "stem", x, net.stem, cfg), net.stem_spk)
    x = _conv(b, "embed", x, net.embed, cfg)
    if net.pos is not None:
        s = _neuron(b, "pos_in", x, net.pos_in)
        x = b.add("pos_res", x, _conv(b, "pos", s, net.pos, cfg), cfg.act_bits)
    for i, blk in enumerate(net.blocks):
        p = f"block{i}."
        att = blk.attn
        s = _neuron(b, p + "attn_in", x, blk.attn_in)
        q = _neuron(b, p + "q_spk", _conv(b, p + "q", s, att.q, cfg), att.q_spk)
        k = _neuron(b, p + "k_spk", _conv(b, p + "k", s, att.k, cfg), att.k_spk)
        v = _neuron(b, p + "v_spk", _conv(b, p + "v", s, att.v, cfg), att.v_spk)
        if att.variant == "mask":
            a = b.sdsa_mask(p + "attn", q, k, v, theta=att.attn_spk.integer_theta().numpy(),
                            leak=att.attn_spk.leak, reset=att.attn_spk.reset)
        else:
            a = _neuron(b, p + "attn_spk", b.sdsa_linear(p + "attn", q, k, v, att.heads),
                        att.attn_spk)
        x = b.add(p + "attn_res", x, _conv(b, p + "proj", a, att.proj, cfg), cfg.act_bits)
        s = _neuron(b, p + "mlp_in", x, blk.mlp_in)
        hdn = _neuron(b, p + "mlp_hidden_spk", _conv(b, p + "mlp_hidden", s, blk.mlp.hidden, cfg),
                      blk.mlp.hidden_spk)
        x = b.add(p + "mlp_res", x, _conv(b, p + "mlp_out", hdn, blk.mlp.out, cfg), cfg.act_bits)
    head = net.head
    Ht, Wt, _ = b.info(x).shape
    k, c = _bn(head.bn)
    mult, bias, shift = fold_requant(k / (Ht * Wt), c * 2.0 ** cfg.frac_bits, cfg.mult_bits)
    pooled = b.pool("pool", x, mult, bias, shift, cfg.act_bits)
    s = _neuron(b, "head_in", pooled, head.neuron)
    w = head.quant.integer(head.weight).long().t().numpy()               # [C, K]
    step = float(head.quant.steps()[0]) / cfg.time_steps
    hb = np.floor(head.bias.detach().double().numpy() / step + 0.5).astype(np.int64)
    b.head("head", s, w, hb, cfg.weight_bits)
    return b.build()
