"""The spike-driven transformer of a :class:`~spikeforge.quant.config.ModelConfig`."""

import numpy as np
import torch
from torch import nn

from .config import ModelConfig
from .layers import Block, PoolHead, QConvBN, make_neuron, stream_add

__all__ = ["SpikeTransformer"]


class SpikeTransformer(nn.Module):
    """Patch embedding (optional 3x3 stem), position-embedding branch, ``blocks`` transformer blocks, pool and head.

    ``forward(images)`` takes integer images ``[B, H, W, C]`` (values ``0..max_value``, any
    numeric dtype), presents them at each of the ``T`` time steps (direct encoding, §4), or
    with ``cfg.encoding == "frames"`` frames ``[B, T, H, W, C]`` (``X[t] = frames[t]``), and
    returns float logits ``[B, classes]`` (the mean over time steps).
    """

    def __init__(self, cfg):
        super().__init__()
        if not isinstance(cfg, ModelConfig):
            raise TypeError(f"cfg must be a ModelConfig, not {type(cfg).__name__}")
        self.cfg = cfg
        kw = dict(bits=cfg.weight_bits, frac_bits=cfg.frac_bits, act_bits=cfg.act_bits)
        ci = cfg.image[2]
        in_scale = 1.0 / cfg.max_value
        if cfg.stem:
            self.stem = QConvBN(ci, cfg.stem, 3, 1, 1, in_scale=in_scale, **kw)
            self.stem_spk = make_neuron(cfg, cfg.stem, cfg.levels, cfg.frac_bits)
            ci, in_scale = cfg.stem, 1.0
        else:
            self.stem = self.stem_spk = None
        self.embed = QConvBN(ci, cfg.channels, cfg.kernel, cfg.patch, cfg.padding,
                             in_scale=in_scale, **kw)
        if cfg.pos_kernel:
            self.pos_in = make_neuron(cfg, cfg.channels, cfg.levels, cfg.frac_bits)
            self.pos = QConvBN(cfg.channels, cfg.channels, cfg.pos_kernel, 1, cfg.pos_kernel // 2, **kw)
        else:
            self.pos_in = self.pos = None
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.blocks))
        self.head = PoolHead(cfg)

    def encode(self, images):
        """``[B, H, W, C]`` pixels (frames: ``[B, T, H, W, C]``) -> ``[T, B, C, H, W]`` float."""
        if torch.is_tensor(images):
            x = images.detach().to(torch.float32)
        else:
            x = torch.from_numpy(np.array(images, dtype=np.float32))
        frames = self.cfg.encoding == "frames"
        want = ((self.cfg.time_steps,) if frames else ()) + tuple(self.cfg.image)
        if x.dim() != 1 + len(want) or tuple(x.shape[1:]) != want:
            raise ValueError(f"images have shape {tuple(x.shape)}; expected [B, "
                             f"{', '.join(map(str, want))}] ({self.cfg.encoding} input encoding)")
        if frames:
            return x.permute(1, 0, 4, 2, 3)  # X[t] = frames[t]
        x = x.permute(0, 3, 1, 2)
        return x.unsqueeze(0).expand(self.cfg.time_steps, *x.shape)

    def forward(self, images):
        x = self.encode(images)
        if self.stem is not None:
            x = self.stem_spk(self.stem(x))
        x = self.embed(x)
        if self.pos is not None:
            x = stream_add(x, self.pos(self.pos_in(x)), self.cfg)
        for block in self.blocks:
            x = block(x)
        return self.head(x)
