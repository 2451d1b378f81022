"""The model configuration of the PyTorch spike-driven transformer family, and the training
configuration file of ``spikeforge train --config`` (no torch needed here).

:class:`ModelConfig` is a frozen dataclass; :meth:`ModelConfig.from_json` / :meth:`to_json`
read and write it. Every invalid combination raises :class:`ValueError` at construction, with
the offending value and what is allowed.

**The training configuration file** (docs/training.md) is one JSON object whose keys are the
:class:`ModelConfig` fields plus the training keys :data:`TRAINING_KEYS` (``epochs``, ``seed``,
``batch_size``, ``lr``); each key ``KEY`` is also the ``train`` option ``--KEY`` with ``-``
for ``_``. The file is checked against the JSON Schema ``configs/train.schema.json`` (with
jschon) before any value is used: types, ranges, enumerations, unknown keys; duplicate keys and
NaN/Infinity are refused while parsing. Every error is one line naming the file and the key.
"""

import dataclasses
import difflib
import functools
import json
import math
import pathlib
import warnings

from ..datasets import dataset_spec
from ..graph import ENCODINGS

__all__ = ["ModelConfig", "WEIGHT_BITS", "ATTENTIONS", "RESETS", "DEFAULT_EPOCHS", "DEFAULT_SEED",
           "TRAINING_KEYS", "TRAINING_DEFAULTS", "DATASET_KEYS", "config_schema", "allowed_text", "check_config",
           "read_config_file", "effective_config", "dataset_keys"]

DEFAULT_SEED = 2
DEFAULT_EPOCHS = 60
#: keys of a training configuration beyond the model's, with their defaults
TRAINING_DEFAULTS = {"epochs": DEFAULT_EPOCHS, "seed": DEFAULT_SEED, "batch_size": 64, "lr": 5e-3, "dataset": "digits"}
TRAINING_KEYS = tuple(TRAINING_DEFAULTS)
#: model keys the dataset gives (null in a configuration: the dataset's); no option sets them
DATASET_KEYS = ("image", "max_value", "classes", "encoding")
SCHEMA_PATH = pathlib.Path(__file__).parent / "configs" / "train.schema.json"
#: older names of a key, kept as option aliases (``--bits``) and suggested for unknown keys
ALIASES = {"weight_bits": ("bits",)}

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
    ``encoding``: the input encoding of spec §4, ``"direct"`` (one image at every time step) or
    ``"frames"`` (``time_steps`` frames per sample: the event datasets).
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
    encoding: str = "direct"
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
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding is {self.encoding!r}; allowed: {', '.join(ENCODINGS)}")
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
        """The keys and values (a direct model leaves ``encoding`` out: the training metadata of
        direct models stays what it was before frames input existed, and ``from_dict`` reads
        it back as direct)."""
        d = dataclasses.asdict(self)
        d["image"] = list(self.image)
        if d["encoding"] == "direct":
            del d["encoding"]
        return d

    def to_json(self):
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown configuration key(s) {sorted(unknown)}; allowed: {sorted(known)}")
        # null image, max_value, classes: the dataset's (dataset_keys fills them; here the digits')
        return cls(**{k: v for k, v in d.items() if not (k in DATASET_KEYS and v is None)})

    @classmethod
    def from_json(cls, path):
        """The model part of a training configuration file (:func:`read_config_file`; its
        training keys are checked and left out)."""
        d = read_config_file(path)
        return cls.from_dict({k: v for k, v in d.items() if k not in TRAINING_KEYS})

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


# --- the training configuration file ------------------------------------------------------

@functools.cache
def config_schema():
    """The JSON Schema of a training configuration (``configs/train.schema.json``)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validator():
    with warnings.catch_warnings():  # jschon's URI checks call a deprecated rfc3986 helper
        warnings.simplefilter("ignore", DeprecationWarning)
        from jschon import JSON, JSONSchema, create_catalog

        create_catalog("2020-12", name="spikeforge-train-config")
        return JSON, JSONSchema(config_schema(), catalog="spikeforge-train-config")


def allowed_text(key):
    """What key ``key`` allows, in words (the error messages and docs/training.md use it)."""
    p = config_schema()["properties"][key]
    if "const" in p:
        return f"{json.dumps(p['const'])} only"
    if "enum" in p:
        return "one of " + ", ".join(map(json.dumps, p["enum"]))
    types = p["type"] if isinstance(p["type"], list) else [p["type"]]
    null = " or null" if "null" in types else ""
    if "boolean" in types:
        return "true or false"
    if "array" in types:
        items = p["items"]
        return (f"a list of {p['minItems']} integers {items['minimum']}..{items['maximum']}{null} "
                "(height, width, channels: the dataset's)")
    what = "an integer" if "integer" in types else "a number"
    if "exclusiveMinimum" in p:
        return f"{what} > {p['exclusiveMinimum']:g} and <= {p['maximum']:g}{null}"
    return f"{what} {p['minimum']}..{p['maximum']}{null}"


def _unknown_key_message(source, unknown):
    known = list(config_schema()["properties"])
    parts = []
    for key in unknown:
        alias = [k for k, names in ALIASES.items() if str(key).replace("-", "_") in names]
        guess = alias or difflib.get_close_matches(str(key).replace("-", "_"), known, 1, 0.5)
        parts.append(f"{key!r}" + (f" (did you mean {guess[0]!r}?)" if guess else ""))
    return (f"{source}: unknown configuration key{'s' if len(unknown) > 1 else ''} {', '.join(parts)}; allowed: "
            f"{', '.join(known)} (docs/training.md)")


def check_config(d, source="configuration"):
    """``d`` (a dict of a training configuration) checked against the schema: a copy with the
    integer keys as ``int``; ``ValueError`` in one line naming ``source`` and the key otherwise.
    Cross-key rules (heads divides channels, ...) are :class:`ModelConfig`'s."""
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a JSON object of keys and values, got {type(d).__name__}")
    for key, value in d.items():  # before the schema: jschon cannot test infinity for "integer"
        if key in config_schema()["properties"] and _non_finite(value):
            raise ValueError(f"{source}: {key} is {json.dumps(value)}; allowed: {allowed_text(key)}")
    JSON, schema = _validator()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = schema.evaluate(JSON(d))
    if not result.valid:
        errors = result.output("basic")["errors"]
        for e in errors:
            if e["keywordLocation"] == "/additionalProperties":
                unknown = e["error"] if isinstance(e["error"], list) else sorted(set(d) - set(config_schema()
                                                                                             ["properties"]))
                raise ValueError(_unknown_key_message(source, unknown))
        for e in errors:
            if e["instanceLocation"].count("/") == 1 and e["instanceLocation"] != "":
                key = e["instanceLocation"][1:].replace("~1", "/").replace("~0", "~")
                raise ValueError(f"{source}: {key} is {json.dumps(d[key])}; allowed: {allowed_text(key)}")
        raise ValueError(f"{source}: does not match the training configuration schema "
                         f"({errors[-1]['keywordLocation']}: {errors[-1]['error']})")
    out = {}
    for key, value in d.items():
        types = config_schema()["properties"][key].get("type")
        if isinstance(value, float) and types in ("integer", ["integer", "null"]):
            value = int(value)  # 2.0 is an integer to JSON Schema
        out[key] = value
    return out


def _non_finite(value):
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(_non_finite(v) for v in value.values())
    return False


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"key {key!r} appears twice")
        seen[key] = value
    return seen


def _no_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def read_config_file(path):
    """The checked dict of training configuration file ``path`` (:func:`check_config`);
    ``ValueError`` (one line, the path, the key) for anything else."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except UnicodeDecodeError:
        raise ValueError(f"--config {path}: not a text file (UTF-8 JSON expected)") from None
    except OSError as e:
        raise ValueError(f"--config {path}: cannot read it: {(e.strerror or str(e)).lower()}; check the path") from None
    try:
        d = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"--config {path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except ValueError as e:
        raise ValueError(f"--config {path}: {e}") from None
    except RecursionError:
        raise ValueError(f"--config {path}: nested too deeply; a flat JSON object of keys is expected") from None
    return check_config(d, f"--config {path}")


def dataset_keys(d, dataset, where="configuration", dataset_where=None):
    """``{image, max_value, classes}`` for training on ``dataset``: the dataset's, where ``d``
    (configuration keys; None or missing: the dataset's) leaves them open. ``ValueError`` in one
    line (``where`` first; ``dataset_where`` for the dataset when it came from elsewhere) for an
    event dataset, an image or class count other than the
    dataset's, or a ``max_value`` beyond its stored values."""
    spec = dataset_spec(dataset)
    shape = list(spec.shape())
    out = {"image": shape, "max_value": spec.default_max_value, "classes": len(spec.classes),
           "encoding": "frames" if spec.kind == "events" else "direct"}
    stored_max = 255 if spec.stored_max is None else spec.stored_max  # event counts: up to 255
    for key in DATASET_KEYS:
        given = d.get(key)
        if given is None:
            continue
        if key == "max_value":
            if given > stored_max:
                raise ValueError(f"{where}: max_value is {given}; dataset {dataset} stores values 0..{stored_max}"
                                 f": allowed 1..{stored_max} or null")
        elif (list(given) if key == "image" else given) != out[key]:
            raise ValueError(f"{where}: {key} is {json.dumps(given)}; dataset {dataset} has {json.dumps(out[key])} "
                             f"(allowed: {json.dumps(out[key])} or null)")
        out[key] = given
    return out


def effective_config(cfg, training):
    """Every key of a training configuration, schema order: ``cfg`` (a :class:`ModelConfig`)
    and ``training`` (values of :data:`TRAINING_KEYS`)."""
    d = {**cfg.to_dict(), "encoding": cfg.encoding,
         **{k: training.get(k, v) for k, v in TRAINING_DEFAULTS.items()}}
    for k, v in d.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"{k} is {v}; allowed: {allowed_text(k)}")
    return {k: d[k] for k in config_schema()["properties"]}
