"""Build model graphs: derived widths, calibration, and random spike-driven transformers.

:class:`ModelBuilder` appends nodes and derives every declared width (``acc_bits``,
``mult_bits``) from the actual constants, so a built model always validates. The quant
exporter uses it, and :func:`random_model` (the public helper for tests and benchmarks) uses
it to make small valid models of every shape the specification allows.
"""

import numpy as np

from .graph import Model, Node, bits_for_range, infer
from .sim.model import execute

__all__ = ["ModelBuilder", "random_model", "random_config", "random_images", "ATTENTION_VARIANTS", "SDRAM_CONFIG"]

ATTENTION_VARIANTS = ("mask", "linear", "qsd")


def _i64(a):
    return np.asarray(a, dtype=np.int64)


class ModelBuilder:
    """Append nodes to a model; widths are derived, each node is checked as it is added.

    With ``calibration`` images the builder also evaluates every node as it is added, so
    :meth:`values` gives a node's output for choosing the next node's constants.
    """

    def __init__(self, time_steps, calibration=None, metadata=None):
        self.model = Model(time_steps, [], dict(metadata or {}))
        self._calib = None if calibration is None else _i64(calibration)
        self._vals = {}
        self.infos = {}

    def _add(self, name, op, inputs, attrs, tensors):
        node = Node(name, op, list(inputs), attrs, {k: _i64(v) for k, v in tensors.items()})
        self.model.nodes.append(node)
        try:
            self.infos = infer(self.model, partial=True)
        except Exception:
            self.model.nodes.pop()
            raise
        if self._calib is not None:
            res = execute(self.model, self._calib, nodes=[node], infos=self.infos,
                          values=self._vals, record=True)
            self._vals[name] = res.tensors[name]
        return name

    def values(self, name):
        """Output of node ``name`` on the calibration images, ``[B, T, H, W, C]``."""
        return self._vals[name]

    def info(self, name):
        return self.infos[name]

    def input(self, name, height, width, channels, max_value, encoding="direct"):
        """The input node (§4); ``encoding="direct"`` leaves the attribute out (the default, as
        in every model file written before frames input existed)."""
        attrs = dict(height=height, width=width, channels=channels, max_value=max_value)
        if encoding != "direct":
            attrs["encoding"] = encoding
        return self._add(name, "input", [], attrs, {})

    @staticmethod
    def _requant_attrs(acc_lo, acc_hi, mult, bias, shift, out_bits):
        mult, bias = _i64(mult), _i64(bias)
        acc_bits = max(2, bits_for_range(int(acc_lo.min()), int(acc_hi.max())))  # 2: the spec's minimum
        mult_bits = max(2, bits_for_range(int(mult.min()), int(mult.max())))
        rnd = (1 << (shift - 1)) if shift else 0
        p = np.concatenate([acc_lo * mult, acc_hi * mult]) + np.concatenate([bias, bias]) + rnd
        babs = int(np.abs(bias).max()) if bias.size else 0
        bias_bits = bits_for_range(-babs, babs)  # the spec's |bias| < 2^(acc_bits+mult_bits-1)
        while bits_for_range(int(p.min()), int(p.max())) > acc_bits + mult_bits \
                or bias_bits > acc_bits + mult_bits:
            acc_bits += 1
        return dict(acc_bits=acc_bits, mult_bits=mult_bits, shift=shift, out_bits=out_bits)

    def conv(self, name, source, weight, mult, bias, shift, out_bits, weight_bits,
             stride=1, padding=0):
        weight = _i64(weight)
        k, _, ci, co = weight.shape
        D = self.infos[source].levels
        flat = weight.reshape(-1, co)
        acc_lo, acc_hi = D * np.minimum(flat, 0).sum(0), D * np.maximum(flat, 0).sum(0)
        attrs = dict(kernel=k, stride=stride, padding=padding, in_channels=ci, out_channels=co,
                     weight_bits=weight_bits,
                     **self._requant_attrs(acc_lo, acc_hi, mult, bias, shift, out_bits))
        return self._add(name, "conv", [source], attrs,
                         dict(weight=weight, mult=mult, bias=bias))

    def lif(self, name, source, theta, leak=1, reset="hard"):
        C = self.infos[source].shape[2]
        return self._add(name, "lif", [source], dict(leak=leak, reset=reset),
                         dict(theta=np.broadcast_to(_i64(theta), (C,)).copy()))

    def multispike(self, name, source, levels, shift):
        return self._add(name, "multispike", [source], dict(levels=levels, shift=shift), {})

    def add(self, name, a, b, out_bits):
        return self._add(name, "add", [a, b], dict(out_bits=out_bits), {})

    def sdsa_mask(self, name, q, k, v, theta=1, leak=1, reset="hard"):
        C = self.infos[q].shape[2]
        return self._add(name, "sdsa_mask", [q, k, v], dict(leak=leak, reset=reset),
                         dict(theta=np.broadcast_to(_i64(theta), (C,)).copy()))

    def sdsa_linear(self, name, q, k, v, heads):
        return self._add(name, "sdsa_linear", [q, k, v], dict(heads=heads), {})

    def pool(self, name, source, mult, bias, shift, out_bits):
        info = self.infos[source]
        H, W, C = info.shape
        acc_lo = np.full(C, H * W * info.lo, np.int64)
        acc_hi = np.full(C, H * W * info.hi, np.int64)
        return self._add(name, "pool", [source],
                         self._requant_attrs(acc_lo, acc_hi, mult, bias, shift, out_bits),
                         dict(mult=mult, bias=bias))

    def head(self, name, source, weight, bias, weight_bits):
        weight, bias = _i64(weight), _i64(bias)
        info = self.infos[source]
        T, D = self.model.time_steps, info.levels
        lo = bias + T * D * np.minimum(weight, 0).sum(0)
        hi = bias + T * D * np.maximum(weight, 0).sum(0)
        attrs = dict(in_channels=weight.shape[0], classes=weight.shape[1],
                     weight_bits=weight_bits, acc_bits=max(2, bits_for_range(int(lo.min()), int(hi.max()))))
        return self._add(name, "head", [source], attrs, dict(weight=weight, bias=bias))

    def build(self):
        infer(self.model)
        return self.model


# --- random models -------------------------------------------------------------------------

def _calibrated_shift(x, target):
    """Smallest shift bringing the 99th percentile of |x| down to about ``target``."""
    m = float(np.percentile(np.abs(x), 99)) if x.size else 0.0
    shift = 0
    while m / (1 << shift) > target and shift < 40:
        shift += 1
    return shift


def _threshold(x, firing):
    """Per-channel threshold firing about ``firing`` of the time on calibration inputs ``x``."""
    C = x.shape[-1]
    flat = x.reshape(-1, C)
    theta = np.percentile(flat, 100 * (1 - firing), axis=0)
    return np.maximum(1, np.ceil(theta)).astype(np.int64)


def random_model(seed=0, *, image=(8, 8, 1), max_value=16, time_steps=2, channels=16,
                 blocks=1, heads=2, levels=1, weight_bits=4, attention="linear",
                 patch=2, embed_kernel=None, mlp_ratio=2, classes=10, out_bits=12,
                 leak=1, reset="hard", firing=0.25, calibration=None, encoding="direct"):
    """A small spike-driven transformer with random weights and calibrated constants.

    The graph follows the family of the spec: convolutional patch embedding, ``blocks``
    transformer blocks with membrane shortcuts (attention ``"mask"`` (V1), ``"linear"`` (V2)
    or ``"qsd"`` (multi-level Q-SDSA)), a spiking MLP, token pooling and a linear head.
    ``levels`` > 1 uses multi-level spike neurons (``multispike``) in place of LIF outside the
    attention. Constants are calibrated on ``calibration`` images (random ones by default) so
    that neurons fire about ``firing`` of the time. ``encoding="frames"`` takes ``time_steps``
    frames per sample (§4) in place of one still image.
    """
    if attention not in ATTENTION_VARIANTS:
        raise ValueError(f"attention is {attention!r}; allowed: {', '.join(ATTENTION_VARIANTS)}")
    if channels % heads:
        raise ValueError(f"heads={heads} does not divide channels={channels}")
    rng = np.random.default_rng(seed)
    H, W, Ci = image
    if calibration is None:
        frames = (time_steps,) if encoding == "frames" else ()
        calibration = rng.integers(0, max_value + 1, size=(16, *frames, H, W, Ci))
    b = ModelBuilder(time_steps, calibration,
                     metadata=dict(generator="spikeforge.builder.random_model", seed=seed))
    wlo, whi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    mult_hi = 1 << 7

    def weights(*shape):
        return rng.integers(wlo, whi + 1, size=shape)

    def conv(name, src, co, k=1, stride=1, padding=0):
        ci = b.info(src).shape[2]
        w = weights(k, k, ci, co)
        mult = rng.integers(mult_hi // 2, mult_hi, size=co) * rng.choice([-1, 1, 1, 1], size=co)
        bias = np.zeros(co, np.int64)
        # Calibrate the shift on the accumulator of the calibration images.
        probe = b.conv(name + "__probe", src, w, mult, bias, 0, 32, weight_bits, stride, padding)
        x = b.values(probe)
        b.model.nodes.pop()
        b._vals.pop(probe)
        shift = _calibrated_shift(x, 1 << (out_bits - 3))
        bias = rng.integers(-(1 << max(0, shift - 1)), (1 << max(0, shift - 1)) + 1, size=co)
        return b.conv(name, src, w, mult, bias, shift, out_bits, weight_bits, stride, padding)

    def neuron(name, src, binary=False):
        x = b.values(src)
        if levels == 1 or binary:
            return b.lif(name, src, _threshold(x, firing), leak=leak, reset=reset)
        pos = x[x > 0]
        target = float(np.percentile(pos, 90)) / levels if pos.size else 1.0
        shift = max(0, int(np.floor(np.log2(max(target, 1.0)))))
        return b.multispike(name, src, levels, shift)

    pk = embed_kernel or patch
    x = b.input("image", H, W, Ci, max_value, encoding)
    x = conv("embed", x, channels, k=pk, stride=patch, padding=(pk - patch + 1) // 2 if pk > patch else 0)
    for i in range(blocks):
        p = f"block{i}."
        binary = attention == "mask"
        s = neuron(p + "attn_in", x)
        q = neuron(p + "q_spk", conv(p + "q", s, channels), binary)
        k = neuron(p + "k_spk", conv(p + "k", s, channels), binary)
        v = neuron(p + "v_spk", conv(p + "v", s, channels), binary)
        if attention == "mask":
            a = b.sdsa_mask(p + "attn", q, k, v, theta=1, leak=1)
        else:
            raw = b.sdsa_linear(p + "attn", q, k, v, heads)
            if attention == "linear" and levels == 1:
                a = b.lif(p + "attn_spk", raw, _threshold(b.values(raw), firing), leak=1)
            else:
                lv = 4 if attention == "qsd" else levels
                pos = b.values(raw)
                top = float(np.percentile(pos[pos > 0], 90)) if (pos > 0).any() else 1.0
                shift = max(0, int(np.floor(np.log2(max(top / lv, 1.0)))))
                a = b.multispike(p + "attn_spk", raw, lv, shift)
        x = b.add(p + "attn_res", x, conv(p + "proj", a, channels), out_bits)
        s = neuron(p + "mlp_in", x)
        hdn = neuron(p + "mlp_hidden_spk", conv(p + "mlp_hidden", s, channels * mlp_ratio))
        x = b.add(p + "mlp_res", x, conv(p + "mlp_out", hdn, channels), out_bits)
    Ht, Wt, _ = b.info(x).shape
    mult = rng.integers(mult_hi // 2, mult_hi, size=channels)
    shift = max(0, (Ht * Wt * mult_hi - 1).bit_length() - 1)
    pooled = b.pool("pool", x, mult, np.zeros(channels, np.int64), shift, out_bits)
    s = neuron("head_in", pooled)
    b.head("head", s, weights(channels, classes), rng.integers(-8, 9, size=classes), weight_bits)
    return b.build()


#: A random model with more weights than the ECP5-85F's block RAM holds (2,100,736 4-bit weights,
#: 8.4 Mbit against 3.8 Mbit) whose every pass fits the sdram mapping's window half at 8 lanes
#: (issue 21): 4 blocks of 256 channels, V1 mask attention (no KV tensor in the integer memory),
#: MLP ratio 2 (the largest pass, mlp_hidden, 131,072 weights). ``random_model(**SDRAM_CONFIG)``.
SDRAM_CONFIG = dict(seed=21, image=(8, 8, 1), channels=256, blocks=4, heads=8, mlp_ratio=2, weight_bits=4,
                    time_steps=2, attention="mask")


def random_config(seed):
    """``(kwargs of random_model, lanes)``: the shapes, bit widths, variants, time steps, depth
    and lane count of the random model ``seed`` of the differential tests
    (tests/accel/test_engine.py) and of ``spikeforge verify --random-models``: small models,
    every attention variant (``seed % 3``), frames input (§4) for every fifth seed (``seed % 5 == 4``;
    no random draw, so the other keys of a seed stay those of before), lanes from 1 to 32."""
    rng = np.random.default_rng(seed)
    attention = ATTENTION_VARIANTS[seed % 3]
    heads = int(rng.choice([1, 2]))
    patch = int(rng.choice([1, 2]))
    size = int(rng.choice([4, 6])) if patch == 1 else int(rng.choice([4, 6, 8]))
    return dict(
        image=(size if patch == 1 else size, size, int(rng.choice([1, 2]))),
        attention=attention, levels=int(rng.choice([1, 2, 3])), time_steps=int(rng.integers(1, 4)),
        channels=heads * int(rng.choice([2, 3, 4])), heads=heads, blocks=int(rng.choice([1, 1, 2])),
        patch=patch, embed_kernel=int(rng.choice([patch, 3, 5])) if patch < 3 else None,
        weight_bits=int(rng.choice([2, 4, 8])), mlp_ratio=int(rng.choice([1, 2])),
        classes=int(rng.integers(2, 11)), leak=int(rng.integers(0, 3)),
        reset=str(rng.choice(["hard", "soft"])), out_bits=int(rng.choice([10, 12, 14])),
        encoding="frames" if seed % 5 == 4 else "direct",
    ), int(rng.choice([1, 2, 4, 8, 16, 32]))


def random_images(n, shape=(8, 8, 1), seed=0, max_value=16):
    """``n`` random images ``[n, *shape]`` in 0..``max_value`` (the differential tests' inputs;
    ``shape``: :func:`~spikeforge.graph.input_shape` of the model, ``(T, H, W, C)`` for frames)."""
    return np.random.default_rng(seed).integers(0, max_value + 1, (n, *shape))
