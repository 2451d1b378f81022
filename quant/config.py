"""The model configuration of the PyTorch spike-driven transformer family.

:class:`ModelConfig` is a frozen dataclass; :meth:`ModelConfig.from_json` / :meth:`to_json`
read and write it. Every invalid combination raises :class:`ValueError` at construction, with
the offending value and what is allowed.
"""

import dataclasses
import json

__all__ = ["ModelConfig", "WEIGHT_BITS", "ATTENTIONS", "RESETS"]

WEIGHT_BITS = (2, 4, 8)
ATTENTIONS = ("mask", "linear", "qsd")
RESETS = ("hard", "soft")


def _positive(name, value, low=1, high=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} is {value}; allowed: {allowed}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and quantization of one spike-driven transformer.

    ``image``: (height, width, channels) of the input, ``max_value`` its largest pixel.
    ``patch``: stride of the patch-embedding convolution, ``embed_kernel`` its kernel (0 means
    ``patch``; a larger kernel is zero-padded by ``(embed_kernel - patch + 1) // 2``).
    ``stem``: channels of an optional 3x3 convolution + neuron before the patch embedding
    (0: none). ``pos_kernel``: kernel of the relative position embedding after the patch
    embedding, a membrane-shortcut branch ``x + conv(neuron(x))`` with same-size zero
    padding (0: none); without it the model cannot see where a token is.
    ``levels`` D: 1 is binary LIF neurons, D > 1 multi-level (QSD) neurons.
    ``attention``: ``"mask"`` (V1), ``"linear"`` (V2) or ``"qsd"`` (multi-level Q-SDSA).
    ``frac_bits`` / ``act_bits``: the common fixed point of every requantized tensor and of the
    residual stream (value = integer / 2**frac_bits, signed ``act_bits`` bits).
    ``attn_theta`` / ``attn_shift``: initial threshold of the V2 attention LIF and shift of
    the multi-level attention neuron, on the integer attention ``Q (K^T V)``; ``None`` derives
    them from the shapes (see :meth:`attention_scale`).
    """
    image: tuple = (8, 8, 1)
    max_value: int = 16
    classes: int = 10
    channels: int = 32
    blocks: int = 1
    heads: int = 2
    mlp_ratio: int = 1
    patch: int = 2
    embed_kernel: int = 3
    stem: int = 0
    pos_kernel: int = 3
    time_steps: int = 2
    levels: int = 1
    weight_bits: int = 4
    attention: str = "linear"
    leak: int = 1
    reset: str = "hard"
    theta: float = 1.0
    learn_threshold: bool = True
    frac_bits: int = 6
    act_bits: int = 12
    mult_bits: int = 16
    mask_theta: int = 1
    attn_theta: object = None
    attn_shift: object = None

    def __post_init__(self):
        image = tuple(self.image)
        object.__setattr__(self, "image", image)
        if len(image) != 3:
            raise ValueError(f"image is {image!r}; expected (height, width, channels)")
        for name, v in zip(("image height", "image width", "image channels"), image):
            _positive(name, v)
        _positive("max_value", self.max_value, 1, 65535)
        _positive("classes", self.classes, 2)
        _positive("channels", self.channels, 1, 4096)
        _positive("blocks", self.blocks, 0, 64)
        _positive("heads", self.heads)
        _positive("mlp_ratio", self.mlp_ratio, 1, 16)
        _positive("patch", self.patch)
        _positive("embed_kernel", self.embed_kernel, 0, 15)
        _positive("stem", self.stem, 0, 4096)
        _positive("pos_kernel", self.pos_kernel, 0, 15)
        if self.pos_kernel and self.pos_kernel % 2 == 0:
            raise ValueError(f"pos_kernel={self.pos_kernel} must be odd (same-size padding) or 0")
        _positive("time_steps", self.time_steps, 1, 64)
        _positive("levels", self.levels, 1, 255)
        _positive("leak", self.leak, 0, 16)
        _positive("frac_bits", self.frac_bits, 0, 16)
        _positive("act_bits", self.act_bits, 4, 32)
        _positive("mult_bits", self.mult_bits, 4, 24)
        _positive("mask_theta", self.mask_theta, 1)
        if self.channels % self.heads:
            raise ValueError(f"heads={self.heads} does not divide channels={self.channels}")
        H, W, _ = image
        if H % self.patch or W % self.patch:
            raise ValueError(f"patch={self.patch} does not divide the {H}x{W} image")
        if self.embed_kernel and self.embed_kernel < self.patch:
            raise ValueError(f"embed_kernel={self.embed_kernel} is smaller than patch={self.patch}; "
                             "allowed: 0 (= patch) or >= patch")
        if self.weight_bits not in WEIGHT_BITS:
            raise ValueError(f"weight_bits={self.weight_bits!r} is not supported; allowed: "
                             f"{', '.join(map(str, WEIGHT_BITS))}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention is {self.attention!r}; allowed: {', '.join(ATTENTIONS)}")
        if self.reset not in RESETS:
            raise ValueError(f"reset is {self.reset!r}; allowed: {', '.join(RESETS)}")
        if not self.theta > 0:
            raise ValueError(f"theta is {self.theta!r}; allowed: a positive number")
        if self.frac_bits >= self.act_bits - 1:
            raise ValueError(f"frac_bits={self.frac_bits} leaves no integer bits in "
                             f"act_bits={self.act_bits}; allowed: frac_bits <= act_bits - 2")
        if self.attn_theta is not None:
            _positive("attn_theta", self.attn_theta)
        if self.attn_shift is not None:
            _positive("attn_shift", self.attn_shift, 0, 31)

    @property
    def kernel(self):
        """Kernel of the patch embedding."""
        return self.embed_kernel or self.patch

    @property
    def padding(self):
        k = self.kernel
        return (k - self.patch + 1) // 2 if k > self.patch else 0

    @property
    def tokens(self):
        H, W, _ = self.image
        return (H // self.patch) * (W // self.patch)

    @property
    def qkv_levels(self):
        """Spike levels of q, k, v (the mask form needs binary spikes)."""
        return 1 if self.attention == "mask" else self.levels

    @property
    def attn_levels(self):
        """Levels of the attention neuron: LIF (1) for V2 binary, 4 for QSD, else ``levels``."""
        if self.attention == "qsd":
            return 4
        return self.levels if self.attention == "linear" else 1

    def attention_scale(self):
        """``(theta, shift)`` for the attention neuron on ``A = Q (K^T V)``.

        ``A`` reaches ``d * N * Dq * Dk * Dv``; the defaults put the threshold (or one spike
        level) at about 1/64 of that, the scale of the published 0.125 x threshold 0.5.
        """
        D = self.qkv_levels
        top = (self.channels // self.heads) * self.tokens * D ** 3
        theta = self.attn_theta if self.attn_theta is not None else max(1, round(top / 64))
        shift = self.attn_shift if self.attn_shift is not None else max(0, top.bit_length() - 7)
        return theta, shift

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["image"] = list(self.image)
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown configuration key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_json(cls, path):
        """Load a configuration from a JSON file (keys as the dataclass fields)."""
        with open(path, encoding="utf-8") as f:
            try:
                d = json.load(f)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(d, dict):
            raise ValueError(f"{path}: expected a JSON object, got {type(d).__name__}")
        return cls.from_dict(d)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)
