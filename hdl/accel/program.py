"""Compile a model into the accelerator's program: passes over shared memories.

The accelerator of ``docs/accelerator.md`` is one engine of P lanes. This module decides
everything the hardware does for a given model and lane count, as plain data:

- the **memory map**: every node's output tensor gets a region in the spike memory (one row
  of all channels per (t, token)), the integer memory (one word of P lanes per
  (t, token, tile)) or the image memory;
- the **passes**: each a loop nest of one of three kinds (synaptic ``SYN``, element-wise
  ``EW``, reduction over tokens ``RED``) with its constants;
- the **initial memory contents**: weights (P lanes per word) and per-tile constants.

The same program drives the Python executor (:mod:`.execute`, the analytic cycle model) and
the Amaranth engine (:mod:`.engine`). Nothing here is approximate: layouts and constants are
exact re-encodings of the model's integers.
"""

import dataclasses

import numpy as np

from ...graph import bits_for_range, infer, input_encoding
from .weight_stream import sdram_image, sdram_map
from .placement import (SPRAM_BITS, SPRAM_WORDS, MappingError, MemoryMap, allocate, check_limits, int_lane_bits,
                        memory_map, weight_lane_bits)

__all__ = ["Pass", "Program", "MemoryMap", "compile_model", "MappingError", "SYN", "EW", "RED",
           "SPRAM_WORDS", "SPRAM_BITS", "int_lane_bits", "weight_lane_bits"]

SYN, EW, RED = "syn", "ew", "red"


@dataclasses.dataclass
class Tensor:
    """Where a node's output lives. ``space``: "spike", "int", "image" or "logits"."""
    name: str
    space: str
    T: int
    H: int
    W: int
    C: int
    base: int = 0
    levels: int = 0            # spike tensors
    lo: int = 0                # int tensors: value bounds
    hi: int = 0
    requant: object = None     # int tensors holding raw accumulators: the conv node to apply
    frames: bool = False       # the image of a frames model (§4): T rows of frames, not one image

    @property
    def N(self):
        return self.H * self.W

    @property
    def sample_shape(self):
        """The image's input sample: ``(H, W, C)``, or ``(T, H, W, C)`` for frames (§4)."""
        return (self.T, self.H, self.W, self.C) if self.frames else (self.H, self.W, self.C)

    @property
    def stacked_shape(self):
        """``(H, W, C)``, or for frames the ``T`` frames stacked as one ``(T*H) x W x C`` image:
        the order of the pixels stream and of the host link's IMAGE payload (frame by frame,
        each row-major with channels fastest), and the shape a board's INFO reports."""
        return (self.T * self.H, self.W, self.C)

    @property
    def values(self):
        """Pixel values of one input sample (``T * H * W * C`` for frames)."""
        return self.T * self.N * self.C


@dataclasses.dataclass
class Pass:
    """One loop nest of the engine. Fields unused by a kind keep their defaults."""
    kind: str
    node: str
    # SYN -----------------------------------------------------------------------------------
    src: str = ""              # event source tensor (spike or image rows)
    src2: str = ""             # kv: the V tensor (weight rows)
    dst: str = ""
    wsrc: str = "wmem"         # "wmem" | "vrow" (K^T V) | "kv" (Q KV)
    accsel: str = "tile"       # "tile" | "channel" (K^T V: accumulator row per event channel)
    heads: int = 0             # > 0: events only touch the tiles of their head (d = C / heads)
    T: int = 1                 # position loop over time steps (1 when rows run over t)
    t_rows: int = 1            # rows loop over t (head: logits sum over T)
    Hi: int = 1                # input grid
    Wi: int = 1
    Ho: int = 1                # output positions
    Wo: int = 1
    kh: int = 1
    kw: int = 1
    stride: int = 1
    pad: int = 0
    tiles: int = 1             # output tiles ceil(Co / P)
    w_base: int = 0            # weight word base (wmem) or KV base (imem)
    tap_stride: int = 0        # weight words per kernel tap (Ci * tiles)
    t_stride: int = 0          # weight words per time step (Q KV: C * tiles)
    ch_stride: int = 1         # weight words per input channel (tiles)
    acc_words: int = 1         # accumulator words per position
    # EW / RED -----------------------------------------------------------------------------
    op: str = ""               # EW: lif | multispike | add | and | pass | out ; RED: pool | mask
    a: str = ""                # operand tensors
    b: str = ""
    b_broadcast: bool = False  # operand b read at token 0 for every token (the V1 mask)
    requant: bool = False      # apply (mult, bias, shift, sat) to operand a (EW) / the sum (RED)
    shift: int = 0
    sat_bits: int = 0
    add_bits: int = 0          # saturation of the residual add
    leak: int = 0
    soft: bool = False
    levels: int = 1            # multispike
    ms_shift: int = 0
    c_base: int = 0            # constants word base (one word per tile)
    N: int = 1                 # tokens


@dataclasses.dataclass
class Program:
    lanes: int
    model: object
    tensors: dict
    passes: list
    weights: np.ndarray        # [words, P] int
    consts: np.ndarray         # [words, P, 3] int: mult, bias, theta
    spike_rows: int
    spike_slots: int           # channel slots per bank word: ceil(C_max / P)
    spike_planes: int          # bits per slot
    int_words: int
    image: Tensor
    logits: Tensor
    widths: dict               # lane widths: weight, int, acc, mult, bias, theta
    classes: int
    memory: MemoryMap = MemoryMap()
    compact: bool = False      # the area-built engine (docs/accelerator.md, "Two builds")
    sdram_image = sdram_image  # the sdram mapping's SDRAM contents (weight_stream.sdram_image)

    def weight_image(self):
        """The 16-bit words a host loads into the weight SPRAM (``memory.kind == "spram"``).

        Stored word ``j`` holds weight words ``j * pack .. j * pack + pack - 1``, the lowest
        first; each weight word is its P lanes of ``weight`` bits (lane 0 lowest), two's
        complement.
        """
        if self.memory.kind != "spram":
            raise ValueError("weight_image: this program keeps its weights in block RAM "
                             "(initialised by the bitstream); nothing to load")
        wb = weight_lane_bits(self.widths)
        pack, P = self.memory.weight_pack, self.lanes
        out = np.zeros(self.memory.weight_words, np.uint16)
        mask = (1 << wb) - 1
        for i, row in enumerate(self.weights):
            word = 0
            for ln, v in enumerate(row):
                word |= (int(v) & mask) << (ln * wb)
            out[i // pack] |= np.uint16(word << ((i % pack) * P * wb))
        return out


def _ceil_div(a, b):
    return -(-a // b)


def compile_model(model, lanes, *, memory="bram", sprams=4, desc_word_bits=None, compact=False, window_words=None):
    """Map ``model`` onto an engine of ``lanes`` lanes; raises :class:`MappingError`.

    ``memory``: ``"bram"`` (every target), ``"spram"`` (the iCE40UP5K's ``sprams`` single-port
    RAMs hold the integer memory and the weights; :class:`MemoryMap`) or ``"sdram"``.
    ``desc_word_bits``: read each pass descriptor in pieces of this many bits (small block
    RAM budgets); default: whole (block RAM) or 16 (SPRAM mapping).
    ``compact``: build the engine for area (small devices; its own timing rules) rather than
    for clock rate.
    ``window_words``: the sdram mapping's window half (:func:`.weight_stream.sdram_map`).
    """
    P = lanes
    if not isinstance(P, int) or P < 1 or P & (P - 1) or P > 64:
        raise MappingError(f"lanes is {lanes!r}; allowed: a power of two 1..64")
    if memory not in ("bram", "spram", "sdram"):
        raise MappingError(f"memory mapping {memory!r}; allowed: 'bram', 'spram', 'sdram'")
    infos = infer(model)
    T = model.time_steps
    tensors, passes = {}, []
    weights, consts = [], []

    def spike_tensor(name, info, t=T):
        H, W, C = info.shape
        tt = Tensor(name, "spike", t, H, W, C, levels=info.levels)
        tensors[name] = tt
        return tt

    def int_tensor(name, H, W, C, lo, hi, t=T, requant=None):
        tt = Tensor(name, "int", t, H, W, C, lo=lo, hi=hi, requant=requant)
        tensors[name] = tt
        return tt

    def add_consts(C, mult=None, bias=None, theta=None):
        base = len(consts)
        for tile in range(_ceil_div(C, P)):
            word = np.zeros((P, 3), np.int64)
            word[:, 0] = 1  # padding lanes: mult 1, bias 0, theta 1 (they never fire)
            word[:, 2] = 1
            for lane in range(P):
                c = tile * P + lane
                if c < C:
                    word[lane] = [1 if mult is None else mult[c], 0 if bias is None else bias[c],
                                  1 if theta is None else theta[c]]
            consts.append(word)
        return base

    def add_weights(w):  # w [k, k, Ci, Co] -> words ((tap * Ci + ci) * tiles + tile)
        base = len(weights)
        kh, kw, ci, co = w.shape
        tiles = _ceil_div(co, P)
        padded = np.zeros((kh, kw, ci, tiles * P), np.int64)
        padded[..., :co] = w
        weights.extend(padded.reshape(kh * kw * ci * tiles, P))
        return base

    consumers = {}
    for node in model.nodes:
        for name in node.inputs:
            consumers.setdefault(name, []).append(node)

    def materialize(raw):
        """An EW pass that requantizes a raw convolution accumulator into its own tensor
        (needed where one pass would have to requantize two operands)."""
        name = raw.name + "#q"
        if name not in tensors:
            conv = raw.requant
            lo, hi = infos[conv.name].lo, infos[conv.name].hi
            q = int_tensor(name, raw.H, raw.W, raw.C, lo, hi, t=raw.T)
            p = Pass(EW, name, op="pass", a=raw.name, dst=q.name, T=raw.T, N=raw.N,
                     tiles=_ceil_div(raw.C, P))
            _attach_requant(p, conv, add_consts, raw.C, None)
            passes.append(p)
        return tensors[name]

    image = None
    logits = None
    for node in model.nodes:
        a, info = node.attrs, infos[node.name]
        H, W, C = info.shape
        if node.op == "input":
            frames = input_encoding(model) == "frames"  # the image memory holds T frames (§4)
            image = Tensor(node.name, "image", T if frames else 1, H, W, C, levels=a["max_value"],
                           frames=frames)
            tensors[node.name] = image
        elif node.op == "conv":
            src = tensors[node.inputs[0]]
            if src.space not in ("spike", "image"):
                raise MappingError(f"node {node.name!r}: input must be spikes or the image")
            w = node.tensors["weight"]
            k, co = a["kernel"], a["out_channels"]
            tiles = _ceil_div(co, P)
            flat = w.reshape(-1, co)
            acc_lo = int((src.levels * np.minimum(flat, 0).sum(0)).min())
            acc_hi = int((src.levels * np.maximum(flat, 0).sum(0)).max())
            dst = int_tensor(node.name, H, W, co, acc_lo, acc_hi, requant=node)
            passes.append(Pass(SYN, node.name, src=src.name, dst=dst.name, T=T,
                               Hi=src.H, Wi=src.W, Ho=H, Wo=W, kh=k, kw=k, stride=a["stride"],
                               pad=a["padding"], tiles=tiles, w_base=add_weights(w),
                               tap_stride=a["in_channels"] * tiles, ch_stride=tiles,
                               acc_words=tiles))
        elif node.op in ("lif", "multispike"):
            src = tensors[node.inputs[0]]
            if src.space != "int":
                raise MappingError(f"node {node.name!r}: neuron input must be an integer tensor")
            dst = spike_tensor(node.name, info, t=src.T)
            rq = src.requant
            theta = node.tensors.get("theta")
            p = Pass(EW, node.name, op=node.op, a=src.name, dst=dst.name, T=src.T, N=src.N,
                     tiles=_ceil_div(C, P), leak=a.get("leak", 0), soft=a.get("reset") == "soft",
                     levels=a.get("levels", 1), ms_shift=a.get("shift", 0) if node.op == "multispike" else 0)
            _attach_requant(p, rq, add_consts, C, theta)
            passes.append(p)
        elif node.op == "add":
            ta, tb = (tensors[n] for n in node.inputs)
            if ta.requant is None and tb.requant is not None:
                ta, tb = tb, ta
            if tb.requant is not None:
                tb = materialize(tb)
            dst = int_tensor(node.name, H, W, C, info.lo, info.hi)
            p = Pass(EW, node.name, op="add", a=ta.name, b=tb.name, dst=dst.name, T=T, N=H * W,
                     tiles=_ceil_div(C, P), add_bits=a["out_bits"])
            _attach_requant(p, ta.requant, add_consts, C, None)
            passes.append(p)
        elif node.op == "sdsa_linear":
            q, k, v = (tensors[n] for n in node.inputs)
            heads = a["heads"]
            tiles = _ceil_div(C, P)
            N = H * W
            kv_hi = N * k.levels * v.levels
            kv = int_tensor(node.name + "#kv", 1, C, C, 0, kv_hi)  # [T, C rows, tiles]
            passes.append(Pass(SYN, node.name + "#kv", src=k.name, src2=v.name, dst=kv.name,
                               wsrc="vrow", accsel="channel", heads=heads, T=T, Hi=N, Wi=1,
                               Ho=1, Wo=1, kh=N, kw=1, tiles=tiles, ch_stride=tiles,
                               acc_words=C * tiles))
            dst = int_tensor(node.name, H, W, C, 0, info.hi)
            passes.append(Pass(SYN, node.name, src=q.name, src2=kv.name, dst=dst.name, wsrc="kv", heads=heads,
                               T=T, Hi=N, Wi=1, Ho=N, Wo=1, tiles=tiles,
                               t_stride=C * tiles, ch_stride=tiles, acc_words=tiles))
        elif node.op == "sdsa_mask":
            q, k, v = (tensors[n] for n in node.inputs)
            mask = spike_tensor(node.name + "#mask", type(info)((1, 1, C), 0, 1, 1))
            passes.append(Pass(RED, node.name + "#mask", op="mask", a=k.name, b=v.name,
                               dst=mask.name, T=T, N=H * W, tiles=_ceil_div(C, P),
                               leak=a["leak"], soft=a["reset"] == "soft",
                               c_base=add_consts(C, theta=node.tensors["theta"])))
            dst = spike_tensor(node.name, info)
            passes.append(Pass(EW, node.name, op="and", a=q.name, b=mask.name, b_broadcast=True,
                               dst=dst.name, T=T, N=H * W, tiles=_ceil_div(C, P)))
        elif node.op == "pool":
            src = tensors[node.inputs[0]]
            if src.requant is not None:
                src = materialize(src)
            dst = int_tensor(node.name, 1, 1, C, info.lo, info.hi)
            p = Pass(RED, node.name, op="pool", a=src.name, dst=dst.name, T=T, N=src.N,
                     tiles=_ceil_div(C, P), requant=True, shift=a["shift"], sat_bits=a["out_bits"],
                     c_base=add_consts(C, node.tensors["mult"], node.tensors["bias"]))
            passes.append(p)
        elif node.op == "head":
            src = tensors[node.inputs[0]]
            w = node.tensors["weight"][None, None]
            K = a["classes"]
            tiles = _ceil_div(K, P)
            raw = int_tensor(node.name + "#acc", 1, 1, K, -(1 << 40), 1 << 40, t=1)
            passes.append(Pass(SYN, node.name + "#acc", src=src.name, dst=raw.name, T=1,
                               t_rows=T, tiles=tiles, w_base=add_weights(w), ch_stride=tiles,
                               tap_stride=node.attrs["in_channels"] * tiles, acc_words=tiles))
            logits = Tensor(node.name, "logits", 1, 1, 1, K, lo=info.lo, hi=info.hi)
            tensors[node.name] = logits
            passes.append(Pass(EW, node.name, op="out", a=raw.name, dst=node.name, T=1, N=1,
                               tiles=tiles, c_base=add_consts(K, bias=node.tensors["bias"])))
        else:
            raise MappingError(f"node {node.name!r}: operator {node.op!r} is not supported by the "
                               "accelerator")

    # Accumulator bounds of the synaptic passes, for the accumulator and integer lane widths.
    for p in passes:
        if p.kind == SYN and p.node.endswith("#acc"):
            head = model.head
            D = tensors[head.inputs[0]].levels
            wt = head.tensors["weight"]
            lo = int((T * D * np.minimum(wt, 0).sum(0)).min())
            hi = int((T * D * np.maximum(wt, 0).sum(0)).max())
            tensors[p.dst].lo, tensors[p.dst].hi = lo, hi

    spike_levels = [t.levels for t in tensors.values() if t.space == "spike"]
    cmax = max([t.C for t in tensors.values() if t.space == "spike"] + [1])
    int_lo = min([t.lo for t in tensors.values() if t.space == "int"] + [0])
    int_hi = max([t.hi for t in tensors.values() if t.space == "int"] + [0])
    consts_arr = np.array(consts, np.int64).reshape(-1, P, 3) if consts else np.zeros((0, P, 3), np.int64)
    weights_arr = np.array(weights, np.int64).reshape(-1, P) if weights else np.zeros((0, P), np.int64)
    widths = dict(
        weight=_weight_bits(model, weights_arr),
        int=bits_for_range(int_lo, int_hi),
        mult=bits_for_range(int(consts_arr[..., 0].min(initial=0)), int(consts_arr[..., 0].max(initial=1))),
        bias=bits_for_range(int(consts_arr[..., 1].min(initial=0)), int(consts_arr[..., 1].max(initial=0))),
        theta=bits_for_range(0, int(consts_arr[..., 2].max(initial=1))),
    )
    widths["acc"] = widths["int"]
    mmap = (sdram_map(passes, P, weight_lane_bits(widths), window_words, compact) if memory == "sdram"
            else memory_map(memory, P, widths, len(weights_arr), sprams))
    if desc_word_bits is not None:
        if not isinstance(desc_word_bits, int) or desc_word_bits < 0:
            raise MappingError(f"desc_word_bits is {desc_word_bits!r}; allowed: 0 (whole) or a width in bits")
        mmap = dataclasses.replace(mmap, desc_word_bits=desc_word_bits)
    spike_rows, int_words = allocate(passes, tensors, P, mmap)
    check_limits(model, tensors, passes, spike_rows, int_words, P)
    for p in passes:
        if p.wsrc == "kv":  # Q KV reads its "weights" from the KV tensor, wherever it landed
            p.w_base = tensors[p.src2].base
    return Program(lanes=P, model=model, tensors=tensors, passes=passes, memory=mmap,
                   weights=weights_arr, consts=consts_arr, spike_rows=spike_rows,
                   spike_slots=_ceil_div(cmax, P),
                   spike_planes=max(int(max(spike_levels + [1])).bit_length(), 1),
                   int_words=int_words, image=image, logits=logits, widths=widths,
                   classes=model.head.attrs["classes"], compact=bool(compact))


def _weight_bits(model, weights):
    """The weight lane width: the widest ``weight_bits`` the model file declares for the
    weights in the weight memory (conv and head nodes), checked against the weights."""
    declared = [int(n.attrs["weight_bits"]) for n in model.nodes if n.op in ("conv", "head")]
    bits = max(declared, default=2)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    w_lo, w_hi = int(weights.min(initial=0)), int(weights.max(initial=0))
    if w_lo < lo or w_hi > hi:
        raise MappingError(f"weights span {w_lo}..{w_hi}, outside the declared weight_bits={bits} "
                           f"range {lo}..{hi}")
    return bits


def _attach_requant(p, conv, add_consts, C, theta):
    """Operand ``a`` of an EW pass is a raw convolution accumulator: requantize it on read."""
    if conv is None:
        p.c_base = add_consts(C, theta=theta)
        return
    p.requant = True
    p.shift = conv.attrs["shift"]
    p.sat_bits = conv.attrs["out_bits"]
    p.c_base = add_consts(C, conv.tensors["mult"], conv.tensors["bias"], theta)
