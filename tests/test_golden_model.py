"""The whole-model golden runner: batch independence, recorded tensors and the counts of §10."""

import numpy as np
import pytest

import reference as ref
from spikeforge.builder import ATTENTION_VARIANTS, random_model
from spikeforge.sim.model import run_model

CASES = [(a, lv, T) for a in ATTENTION_VARIANTS for lv, T in ((1, 1), (1, 3), (3, 2))]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[0]}-D{c[1]}-T{c[2]}")
def case(request):
    attention, levels, T = request.param
    model = random_model(7, attention=attention, levels=levels, time_steps=T, channels=8,
                         heads=2, blocks=1)
    images = np.random.default_rng(1).integers(0, 17, (6, 8, 8, 1))
    return model, images, run_model(model, images, record=True, batch_size=4)


def test_images_do_not_interact(case):
    model, images, res = case
    for i in range(len(images)):
        one = run_model(model, images[i:i + 1])
        assert np.array_equal(one.logits[0], res.logits[i])


def test_conv_counts_match_event_loop(case):
    model, images, res = case
    for node in model.nodes:
        if node.op != "conv":
            continue
        x = res.tensors[node.inputs[0]] if node.inputs[0] in res.tensors else None
        if x is None:
            x = np.broadcast_to(images[:, None], (len(images), model.time_steps, *images.shape[1:]))
        a = node.attrs
        k, s, p, co = a["kernel"], a["stride"], a["padding"], a["out_channels"]
        for b in range(len(images)):
            T, H, W, C = x[b].shape
            Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
            adds = 0
            for t in range(T):
                for yo in range(Ho):
                    for xo in range(Wo):
                        for ky in range(k):
                            for kx in range(k):
                                y, xx = yo * s + ky - p, xo * s + kx - p
                                if 0 <= y < H and 0 <= xx < W:
                                    adds += sum(bin(int(v)).count("1") for v in x[b, t, y, xx]) * co
            assert res.syn_adds[node.name][b] == adds, node.name


def test_recorded_conv_outputs_match_reference(case):
    model, images, res = case
    node = next(n for n in model.nodes if n.name == "block0.q")
    x = res.tensors[node.inputs[0]][0]
    acc = ref.conv(x.tolist(), node.tensors["weight"].tolist(), 1, 0)
    a = node.attrs
    for t in range(model.time_steps):
        for y in range(len(acc[t])):
            for xx in range(len(acc[t][y])):
                for o in range(a["out_channels"]):
                    want = ref.requantize(acc[t][y][xx][o], int(node.tensors["mult"][o]),
                                          int(node.tensors["bias"][o]), a["shift"], a["out_bits"])
                    assert res.tensors[node.name][0, t, y, xx, o] == want


def test_firing_rates_and_bound_are_sane(case):
    model, images, res = case
    for name, rate in res.firing.items():
        assert ((0 <= rate) & (rate <= 1)).all(), name
    lb1, lb8 = res.lower_bound_cycles(1), res.lower_bound_cycles(8)
    total = sum(np.asarray(v) for v in res.syn_adds.values()) + sum(res.neuron_updates.values())
    assert np.array_equal(lb1, total)
    assert (lb8 < lb1).all() and (lb8 * 8 >= lb1).all()


def test_values_stay_within_inferred_bounds(case):
    from spikeforge.graph import infer

    model, images, res = case
    infos = infer(model)
    for node in model.nodes[1:-1]:
        y = res.tensors[node.name]
        assert infos[node.name].lo <= y.min() and y.max() <= infos[node.name].hi, node.name


def test_bad_images_are_refused():
    model = random_model(0, channels=8)
    with pytest.raises(ValueError, match=r"image values span 17..17; the model's input allows 0..16"):
        run_model(model, np.full((1, 8, 8, 1), 17))
    with pytest.raises(ValueError, match=r"images have shape \(4, 4, 1\)"):
        run_model(model, np.zeros((1, 4, 4, 1), np.int64))


def test_builder_handles_all_zero_weights():
    from spikeforge.builder import ModelBuilder

    b = ModelBuilder(1)
    x = b.input("image", 2, 2, 1, 16)
    y = b.conv("c", x, np.zeros((1, 1, 1, 2), np.int64), [1, 1], [0, 0], 0, 8, 2)
    assert b.info(y).lo == 0 and b.model.nodes[-1].attrs["acc_bits"] == 2
