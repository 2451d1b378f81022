"""The golden model: one pure NumPy function per operator of ``docs/spec.md``.

Every function is named as the hardware unit that implements it and is bit-exact by
construction: all arithmetic is on ``int64`` arrays whose bounds (§9) stay far below 2^63.
Activation tensors have shape ``[B, T, H, W, C]`` (batch, time steps, token grid, channels).
"""

import numpy as np

__all__ = [
    "rshift_round", "sat", "bit_planes",
    "spike_conv2d", "spike_linear", "requantize",
    "lif_step", "lif", "multispike", "residual_add",
    "sdsa_mask", "sdsa_linear", "token_pool", "head_linear", "classify",
    "conv_reach", "exact_matmul",
]


def rshift_round(a, shift):
    """Divide by ``2**shift`` rounding half up (§1); arithmetic shift right for negatives."""
    a = np.asarray(a, dtype=np.int64)
    if shift == 0:
        return a
    return (a + (1 << (shift - 1))) >> shift


def sat(a, bits):
    """Saturate to the signed ``bits``-bit range (§1)."""
    return np.clip(a, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def bit_planes(x, levels):
    """Split unsigned ``x`` (values ``0..levels``) into bit planes, shape ``[nbits, *x.shape]``."""
    nbits = int(levels).bit_length()
    x = np.asarray(x, dtype=np.int64)
    return np.stack([(x >> b) & 1 for b in range(nbits)])


def exact_matmul(a, b):
    """Integer ``a @ b``, exact. Uses float64 BLAS when every partial sum provably stays below
    2^53 (where doubles represent integers exactly), int64 otherwise."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.size and b.size:
        bound = int(np.abs(a).max()) * int(np.abs(b).sum(axis=-2).max())
        if bound < (1 << 53):
            return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
    return a @ b


def spike_conv2d(x, weight, stride=1, padding=0):
    """Accumulator of a k x k convolution over spikes (§5), zero padding.

    ``x``: ``[B, T, H, W, Ci]`` unsigned; ``weight``: ``[k, k, Ci, Co]`` signed.
    Returns ``[B, T, H', W', Co]`` int64. Equal to the bit-plane sum of shifted weight rows.
    """
    x = np.asarray(x, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.int64)
    k = weight.shape[0]
    B, T, H, W, _ = x.shape
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding), (0, 0)))
    acc = np.zeros((B, T, Ho, Wo, weight.shape[3]), dtype=np.int64)
    for ky in range(k):
        for kx in range(k):
            window = xp[:, :, ky:ky + stride * (Ho - 1) + 1:stride,
                        kx:kx + stride * (Wo - 1) + 1:stride, :]
            acc += exact_matmul(window, weight[ky, kx])
    return acc


def spike_linear(x, weight):
    """Accumulator of a linear / 1x1 layer over spikes (§5): ``x @ weight``.

    ``weight`` is ``[Ci, Co]`` (or a ``[1, 1, Ci, Co]`` kernel).
    """
    weight = np.asarray(weight, dtype=np.int64)
    if weight.ndim == 4:
        weight = weight[0, 0]
    return exact_matmul(x, weight)


def requantize(acc, mult, bias, shift, out_bits):
    """Per-channel requantization (§5): ``sat(rshift_round(acc * mult + bias, shift), out_bits)``."""
    acc = np.asarray(acc, dtype=np.int64)
    return sat(rshift_round(acc * np.asarray(mult, np.int64) + np.asarray(bias, np.int64), shift),
               out_bits)


def lif_step(v, x, theta, leak, reset="hard"):
    """One LIF time step (§6.1). Returns ``(spike, u, v_next)``.

    ``v``: membrane after the previous step; ``x``: input; ``theta``: per-channel threshold
    (broadcast on the last axis).
    """
    u = (np.asarray(v, np.int64) >> leak) + np.asarray(x, np.int64)
    s = u >= theta
    if reset == "hard":
        v_next = np.where(s, 0, u)
    else:
        v_next = u - s * np.asarray(theta, np.int64)
    return s.astype(np.int64), u, v_next


def lif(x, theta, leak, reset="hard"):
    """LIF over the time axis (axis 1) of ``x [B, T, ...]`` (§6.1).

    Returns ``(spikes, membrane)``, membrane being ``U`` before reset at each step.
    """
    x = np.asarray(x, dtype=np.int64)
    spikes = np.empty_like(x)
    membrane = np.empty_like(x)
    v = np.zeros_like(x[:, 0])
    for t in range(x.shape[1]):
        spikes[:, t], membrane[:, t], v = lif_step(v, x[:, t], theta, leak, reset)
    return spikes, membrane


def multispike(x, levels, shift):
    """Multi-level spike neuron (§6.2): ``clamp(rshift_round(x, shift), 0, levels)``."""
    return np.clip(rshift_round(x, shift), 0, levels)


def residual_add(a, b, out_bits):
    """Membrane shortcut (§7): ``sat(a + b, out_bits)``."""
    return sat(np.asarray(a, np.int64) + np.asarray(b, np.int64), out_bits)


def sdsa_mask(q, k, v, theta, leak=1, reset="hard"):
    """V1 mask attention (§8.1). Returns ``(out, kv, mask)``.

    ``kv [B, T, C]`` = popcount over tokens of ``k AND v``; ``mask`` the LIF over time of kv.
    """
    q, k, v = (np.asarray(a, np.int64) for a in (q, k, v))
    B, T, H, W, C = q.shape
    kv = (k & v).reshape(B, T, H * W, C).sum(axis=2)
    mask, _ = lif(kv, theta, leak, reset)
    return q & mask[:, :, None, None, :], kv, mask


def sdsa_linear(q, k, v, heads):
    """Linear attention (§8.2): ``A = Q (K^T V)`` per head and time step, integers."""
    q, k, v = (np.asarray(a, np.int64) for a in (q, k, v))
    B, T, H, W, C = q.shape
    d = C // heads
    shape = (B, T, H * W, heads, d)
    qh, kh, vh = (a.reshape(shape).transpose(0, 1, 3, 2, 4) for a in (q, k, v))  # B T h N d
    kv = exact_matmul(kh.transpose(0, 1, 2, 4, 3), vh)  # B T h d d
    a = exact_matmul(qh, kv)  # B T h N d
    return a.transpose(0, 1, 3, 2, 4).reshape(B, T, H, W, C)


def token_pool(x, mult, bias, shift, out_bits):
    """Token pooling (§8.3): sum over tokens, then requantize. Returns ``[B, T, 1, 1, C]``."""
    x = np.asarray(x, np.int64)
    p = x.sum(axis=(2, 3), keepdims=True)
    return requantize(p, mult, bias, shift, out_bits)


def head_linear(s, weight, bias):
    """Classification head (§8.4): ``bias + sum_t s[t] @ weight``. Returns ``[B, K]``."""
    s = np.asarray(s, np.int64)
    B, T = s.shape[:2]
    return np.asarray(bias, np.int64) + exact_matmul(s.reshape(B, T, -1), weight).sum(1)


def classify(logits):
    """Class of each row of ``logits``: the largest, ties to the lowest index (§8.4)."""
    return np.argmax(np.asarray(logits), axis=-1)


def conv_reach(H, W, k, stride, padding):
    """``[H, W]`` count of output positions each input position reaches (§10)."""
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1

    def axis(n, no):
        reach = np.zeros(n, np.int64)
        for o in range(no):
            for kk in range(k):
                i = o * stride + kk - padding
                if 0 <= i < n:
                    reach[i] += 1
        return reach

    return np.outer(axis(H, Ho), axis(W, Wo))


# ---------------------------------------------------------------------------------------
# Hardware units (spikeforge.hdl): one golden function per unit, same name in snake case.
# They define the unit's stream contents (event order, beat layout) in terms of the
# operator functions above.
# ---------------------------------------------------------------------------------------

__all__ += ["spike_event_encoder"]


def spike_event_encoder(spikes, levels):
    """Events of ``SpikeEventEncoder`` for a sequence of spike vectors ``spikes [n, C]``.

    Returns a list of ``(channel, plane, empty, last, vector_index)``: one per set bit of
    every value (bit planes, §5), ascending channel then plane; a vector with no set bit gives
    one ``(0, 0, 1, 1, index)`` beat. ``sum(w[ch] << plane)`` over a vector's events is
    ``spike_linear`` of that vector.
    """
    spikes = np.asarray(spikes, dtype=np.int64)
    if spikes.ndim == 1:
        spikes = spikes[None]
    planes = bit_planes(spikes, levels)  # [nbits, n, C]
    events = []
    for n in range(spikes.shape[0]):
        vec = [(int(c), int(b)) for c in range(spikes.shape[1]) for b in range(planes.shape[0])
               if planes[b, n, c]]
        if not vec:
            events.append((0, 0, 1, 1, n))
        for j, (c, b) in enumerate(vec):
            events.append((c, b, 0, int(j == len(vec) - 1), n))
    return events

__all__ += ["sparse_add", "conv_window_scan"]


def conv_window_scan(H, W, k, stride, padding):
    """Gather addressing of a k x k convolution (§5): for every output position, row-major,
    the in-grid input positions of its window as ``(token, tap, end)`` with
    ``token = y * W + x``, ``tap = ky * k + kx`` (row-major over the window) and ``end`` on
    the last tap of the position. Zero padding: taps outside the grid are skipped."""
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    out = []
    for oy in range(Ho):
        for ox in range(Wo):
            taps = [((oy * stride + ky - padding) * W + ox * stride + kx - padding, ky * k + kx)
                    for ky in range(k) for kx in range(k)
                    if 0 <= oy * stride + ky - padding < H and 0 <= ox * stride + kx - padding < W]
            out += [(tok, tap, int(j == len(taps) - 1)) for j, (tok, tap) in enumerate(taps)]
    return out


def sparse_add(beats, weight, lanes):
    """Output beats of ``SparseAdd`` for event ``beats`` ``(tap, channel, plane, empty, end)``.

    ``weight`` ``[k, k, Ci, Co]`` (or ``[Ci, Co]``). Per group (ended by ``end``), the sum of
    ``weight[tap, channel] << plane`` over its non-empty events (§5 bit-plane accumulation),
    zero-padded to ``tiles * lanes`` channels, as ``tiles`` beats ``(tile, last, acc[lanes])``.
    """
    w = np.asarray(weight, np.int64)
    if w.ndim == 2:
        w = w[None, None]
    k, _, ci, co = w.shape
    w = w.reshape(k * k, ci, co)
    tiles = -(-co // lanes)
    acc = np.zeros(tiles * lanes, np.int64)
    out = []
    for tap, ch, plane, empty, end in beats:
        if not empty:
            acc[:co] += w[tap, ch] << plane
        if end:
            out += [(t, int(t == tiles - 1), [int(a) for a in acc[t * lanes:(t + 1) * lanes]])
                    for t in range(tiles)]
            acc[:] = 0
    return out

__all__ += ["lif_array"]


def lif_array(acc, *, mode, mult, bias, shift, out_bits, theta=None, leak=1, reset="hard",
              levels=1, ms_shift=0):
    """Outputs of ``LifArray`` for accumulators ``acc [T, N, C]`` of one image: requantize
    (§5), then ``mode`` ``"lif"`` (§6.1, state across T), ``"multispike"`` (§6.2) or
    ``"pass"`` (the requantized integers). Returns ``[T, N, C]``."""
    x = requantize(acc, mult, bias, shift, out_bits)
    if mode == "pass":
        return x
    if mode == "multispike":
        return multispike(x, levels, ms_shift)
    spikes, _ = lif(x[None], theta, leak, reset)
    return spikes[0]

__all__ += ["spike_attention_mask", "spike_attention_linear"]


def spike_attention_mask(q, k, v, theta, leak=1, reset="hard"):
    """Output of ``SpikeAttentionMask`` for ``q, k, v [T, N, C]`` binary: ``q AND mask``
    (``sdsa_mask``, §8.1). Returns ``[T, N, C]``."""
    T, N, C = np.shape(q)
    out, _, _ = sdsa_mask(*(np.asarray(a, np.int64).reshape(1, T, N, 1, C) for a in (q, k, v)),
                          theta, leak, reset)
    return out.reshape(T, N, C)


def spike_attention_linear(q, k, v, heads):
    """Output of ``SpikeAttentionLinear``: ``A = Q (K^T V)`` per head (``sdsa_linear``, §8.2)
    for ``q, k, v [T, N, C]``. Returns ``[T, N, C]``."""
    T, N, C = np.shape(q)
    return sdsa_linear(*(np.asarray(a, np.int64).reshape(1, T, N, 1, C) for a in (q, k, v)),
                       heads).reshape(T, N, C)


def registered_product(a, b):
    """The fast engine's requantization multiplier (``hdl/accel/product.py``): the exact
    signed product ``a * b`` (the unit delivers it two cycles after its operands)."""
    return np.asarray(a, np.int64) * np.asarray(b, np.int64)
