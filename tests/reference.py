"""Deliberately slow, obviously correct loops written from docs/spec.md, one scalar at a time.

Python integers only (no overflow), no NumPy arithmetic: these exist to check the vectorized
golden model, not to be fast.
"""


def rshift_round(a, s):
    return a if s == 0 else (a + (1 << (s - 1))) // (1 << s)


def sat(a, n):
    return max(-(1 << (n - 1)), min((1 << (n - 1)) - 1, a))


def conv(x, w, stride, pad):
    """x[T][H][W][Ci] (nested lists/arrays of ints), w[k][k][Ci][Co]; bit-plane events."""
    T, H, W, Ci = len(x), len(x[0]), len(x[0][0]), len(x[0][0][0])
    k, Co = len(w), len(w[0][0][0])
    Ho, Wo = (H + 2 * pad - k) // stride + 1, (W + 2 * pad - k) // stride + 1
    out = [[[[0] * Co for _ in range(Wo)] for _ in range(Ho)] for _ in range(T)]
    for t in range(T):
        for yo in range(Ho):
            for xo in range(Wo):
                for o in range(Co):
                    acc = 0
                    for ky in range(k):
                        for kx in range(k):
                            y, xx = yo * stride + ky - pad, xo * stride + kx - pad
                            if not (0 <= y < H and 0 <= xx < W):
                                continue
                            for i in range(Ci):
                                v = int(x[t][y][xx][i])
                                b = 0
                                while v >> b:
                                    if (v >> b) & 1:
                                        acc += int(w[ky][kx][i][o]) << b
                                    b += 1
                    out[t][yo][xo][o] = acc
    return out


def requantize(acc, mult, bias, shift, bits):
    return sat(rshift_round(acc * mult + bias, shift), bits)


def lif(xs, theta, leak, reset):
    """xs: list over t of ints for one neuron. Returns (spikes, U list)."""
    v, spikes, us = 0, [], []
    for x in xs:
        u = (v // (1 << leak)) + x
        s = 1 if u >= theta else 0
        if s:
            v = 0 if reset == "hard" else u - theta
        else:
            v = u
        spikes.append(s)
        us.append(u)
    return spikes, us


def multispike(x, levels, shift):
    return max(0, min(levels, rshift_round(x, shift)))


def sdsa_linear_one(q, k, v, heads):
    """q, k, v: [N][C] ints for one time step. Returns A [N][C] by the O(N^2) route."""
    N, C = len(q), len(q[0])
    d = C // heads
    out = [[0] * C for _ in range(N)]
    for h in range(heads):
        J = range(h * d, h * d + d)
        for n in range(N):
            for j in J:
                # (Q K^T) V, the other association order, on purpose.
                total = 0
                for m in range(N):
                    qk = sum(int(q[n][i]) * int(k[m][i]) for i in J)
                    total += qk * int(v[m][j])
                out[n][j] = total
    return out
