"""Property tests: every golden operator against the slow loops of tests/reference.py."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
from spikeforge.sim import golden

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def conv_case(draw):
    k = draw(st.integers(1, 3))
    stride = draw(st.integers(1, 2))
    pad = draw(st.integers(0, k - 1))
    H = draw(st.integers(max(1, k - 2 * pad), 5))
    W = draw(st.integers(max(1, k - 2 * pad), 5))
    T, Ci, Co = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    D = draw(st.sampled_from([1, 4, 16]))
    wb = draw(st.sampled_from([2, 4, 8]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    density = draw(st.sampled_from([0.0, 0.3, 1.0]))
    x = rng.integers(0, D + 1, (1, T, H, W, Ci)) * (rng.random((1, T, H, W, Ci)) < density)
    extreme = draw(st.booleans())
    lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
    w = rng.choice([lo, hi], (k, k, Ci, Co)) if extreme else rng.integers(lo, hi + 1, (k, k, Ci, Co))
    return x, w, stride, pad


@SETTINGS
@given(conv_case())
def test_spike_conv2d_matches_bitplane_loop(case):
    x, w, stride, pad = case
    got = golden.spike_conv2d(x, w, stride, pad)
    assert got.tolist() == [ref.conv(x[0].tolist(), w.tolist(), stride, pad)]


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 5))
def test_spike_linear_is_the_1x1_conv(seed, ci, co):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 5, (2, 2, 3, 2, ci))
    w = rng.integers(-8, 8, (1, 1, ci, co))
    assert np.array_equal(golden.spike_linear(x, w), golden.spike_conv2d(x, w, 1, 0))


@SETTINGS
@given(st.lists(st.integers(-2**20, 2**20), min_size=1, max_size=20),
       st.integers(-2**11, 2**11), st.integers(-2**15, 2**15), st.integers(0, 12),
       st.integers(2, 16))
def test_requantize_rounds_half_up_and_saturates(accs, mult, bias, shift, bits):
    got = golden.requantize(np.array(accs), mult, bias, shift, bits)
    assert got.tolist() == [ref.requantize(a, mult, bias, shift, bits) for a in accs]


def test_rshift_round_ties_go_up():
    assert golden.rshift_round(np.array([5, -5, 3, -3, 7, -7]), 1).tolist() == [3, -2, 2, -1, 4, -3]


@SETTINGS
@given(st.lists(st.integers(-300, 300), min_size=1, max_size=8), st.integers(1, 200),
       st.integers(0, 3), st.sampled_from(["hard", "soft"]))
def test_lif_matches_scalar_loop(xs, theta, leak, reset):
    x = np.array(xs).reshape(1, len(xs), 1)
    spikes, u = golden.lif(x, np.array([theta]), leak, reset)
    want_s, want_u = ref.lif(xs, theta, leak, reset)
    assert spikes[0, :, 0].tolist() == want_s
    assert u[0, :, 0].tolist() == want_u


def test_lif_equality_fires_and_state_carries():
    # theta 4, leak 1: 3 -> U=3 no spike, then U = 1 + 3 = 4 fires (equality), hard reset.
    s, u = golden.lif(np.array([[3, 3, 3]]), 4, 1, "hard")
    assert s.tolist() == [[0, 1, 0]] and u.tolist() == [[3, 4, 3]]


@SETTINGS
@given(st.lists(st.integers(-5000, 5000), min_size=1, max_size=30), st.integers(1, 8),
       st.integers(0, 8))
def test_multispike_matches_scalar_loop(xs, levels, shift):
    got = golden.multispike(np.array(xs), levels, shift)
    assert got.tolist() == [ref.multispike(x, levels, shift) for x in xs]


def test_multispike_is_qsd_attention_requant():
    a = np.arange(0, 400)
    assert np.array_equal(golden.multispike(a, 4, 6), np.minimum(4, (a + 32) >> 6))


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 4))
def test_sdsa_linear_matches_quadratic_order(seed, heads, d, N, levels):
    rng = np.random.default_rng(seed)
    C = heads * d
    q, k, v = (rng.integers(0, levels + 1, (1, 1, N, 1, C)) for _ in range(3))
    got = golden.sdsa_linear(q, k, v, heads)
    want = ref.sdsa_linear_one(q[0, 0, :, 0].tolist(), k[0, 0, :, 0].tolist(),
                               v[0, 0, :, 0].tolist(), heads)
    assert got[0, 0, :, 0].tolist() == want


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.integers(1, 5), st.integers(1, 4))
def test_sdsa_mask_matches_loop(seed, T, N, C):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.integers(0, 2, (1, T, N, 1, C)) for _ in range(3))
    theta = rng.integers(1, 4, C)
    out, kv, mask = golden.sdsa_mask(q, k, v, theta, 1, "hard")
    for c in range(C):
        counts = [sum(int(k[0, t, n, 0, c] & v[0, t, n, 0, c]) for n in range(N)) for t in range(T)]
        m, _ = ref.lif(counts, int(theta[c]), 1, "hard")
        assert kv[0, :, c].tolist() == counts
        for t in range(T):
            for n in range(N):
                assert out[0, t, n, 0, c] == (q[0, t, n, 0, c] & m[t])


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 4))
def test_token_pool_and_head(seed, T, C):
    rng = np.random.default_rng(seed)
    x = rng.integers(-2000, 2000, (1, T, 3, 2, C))
    mult, bias = rng.integers(-100, 100, C), rng.integers(-50, 50, C)
    got = golden.token_pool(x, mult, bias, 5, 10)
    for t in range(T):
        for c in range(C):
            p = sum(int(x[0, t, y, xx, c]) for y in range(3) for xx in range(2))
            assert got[0, t, 0, 0, c] == ref.requantize(p, int(mult[c]), int(bias[c]), 5, 10)
    s = rng.integers(0, 3, (1, T, 1, 1, C))
    w, b = rng.integers(-8, 8, (C, 4)), rng.integers(-9, 9, 4)
    logits = golden.head_linear(s, w, b)
    for j in range(4):
        assert logits[0, j] == int(b[j]) + sum(int(s[0, t, 0, 0, c]) * int(w[c, j])
                                               for t in range(T) for c in range(C))


def test_classify_ties_go_to_lowest_index():
    assert golden.classify(np.array([[3, 7, 7, 1], [5, 5, 5, 5], [-1, -2, -1, -3]])).tolist() == [1, 0, 0]


@SETTINGS
@given(st.lists(st.tuples(st.integers(-2**12, 2**12), st.integers(-2**12, 2**12)), min_size=1),
       st.integers(2, 14))
def test_residual_add_saturates(pairs, bits):
    a, b = np.array(pairs).T
    got = golden.residual_add(a, b, bits)
    assert got.tolist() == [ref.sat(int(x) + int(y), bits) for x, y in pairs]


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.sampled_from([1, 2**20, 2**28]))
def test_exact_matmul_is_exact_on_both_paths(seed, scale):
    # 2**28: products reach 2**56, beyond float64's exact integers; int64 must be used.
    rng = np.random.default_rng(seed)
    a = rng.integers(-scale, scale + 1, (3, 4), dtype=np.int64)
    b = rng.integers(-scale, scale + 1, (4, 2), dtype=np.int64)
    want = [[sum(int(a[i, k]) * int(b[k, j]) for k in range(4)) for j in range(2)] for i in range(3)]
    assert golden.exact_matmul(a, b).tolist() == want
