"""Planning figures for the shared-engine accelerator of docs/accelerator.md (no RTL yet).

Counts the cycles the planned schedule needs (one cycle per event, at least one per stored
row read, one per P elements for element-wise nodes) from the golden model's spikes, and
prints the ratio to the spec's lower bound (§10) for P = 1..32. Used to check the plan
against the 1.5x efficiency target before the hardware exists; the RTL's analytic model will
replace it.
"""

import numpy as np
from spikeforge.builder import random_model
from spikeforge.sim.model import run_model
from spikeforge.graph import infer


def pop(x):
    x = np.asarray(x, np.int64)
    p = np.zeros_like(x)
    while x.any():
        p += x & 1
        x = x >> 1
    return p


def cdiv(a, q):
    return -(-a // q)


def engine_cycles(model, res, P, b=0):
    infos = infer(model)
    T = model.time_steps
    tot = 0
    per = {}
    for node in model.nodes[1:]:
        a = node.attrs
        H, W, C = infos[node.name].shape
        x = res.tensors[node.inputs[0]][b] if node.inputs else None
        if node.op == "conv":
            k, s, p = a["kernel"], a["stride"], a["padding"]
            ev = pop(x).sum(-1)  # [T,H,W]
            Hi, Wi = ev.shape[1:]
            c = 0
            for t in range(T):
                for oy in range(H):
                    for ox in range(W):
                        r = 0
                        for ky in range(k):
                            for kx in range(k):
                                y, xx = oy * s + ky - p, ox * s + kx - p
                                if 0 <= y < Hi and 0 <= xx < Wi:
                                    r += max(1, ev[t, y, xx])
                        c += r * cdiv(C, P)
            cyc = c
        elif node.op == "head":
            ev = pop(x).sum(-1).reshape(T)
            cyc = sum(max(1, e) for e in ev) * cdiv(a["classes"], P)
        elif node.op in ("lif", "multispike", "add"):
            cyc = T * H * W * cdiv(C, P)
        elif node.op == "pool":
            Hi, Wi, _ = infos[node.inputs[0]].shape
            cyc = T * cdiv(C, P) * (Hi * Wi + 1)
        elif node.op == "sdsa_linear":
            q, k, v = (res.tensors[n][b] for n in node.inputs)
            h = a["heads"]
            d = C // h
            N = H * W
            kp = pop(k).reshape(T, N, C)
            qp = pop(q).reshape(T, N, h, d).sum(-1)
            kv = sum(max(1, kp[t, :, i].sum()) for t in range(T) for i in range(C)) * cdiv(d, P)
            qkv = sum(max(1, qp[t, n, j]) for t in range(T) for n in range(N) for j in range(h)) * cdiv(d, P)
            cyc = kv + qkv
        elif node.op == "sdsa_mask":
            N = H * W
            cyc = T * cdiv(C, P) * N + T * cdiv(C, P) + T * N * cdiv(C, P)
        per[node.name] = cyc
        tot += cyc + 4
    return tot, per


def main():
    for att in ["linear", "mask", "qsd"]:
        m = random_model(
            0, channels=32, blocks=2, heads=2, time_steps=2, attention=att, levels=4 if att == "qsd" else 1, firing=0.15
        )
        x = np.random.default_rng(0).integers(0, 17, (3, 8, 8, 1))
        from spikeforge.data import load_digits_split

        x = load_digits_split("test")[0][:3]
        res = run_model(m, x, record=True)
        for P in [1, 2, 4, 8, 16, 32]:
            cyc, per = engine_cycles(m, res, P)
            lb = int(res.lower_bound_cycles(P)[0])
            print(att, P, cyc, lb, round(cyc / lb, 2))


if __name__ == "__main__":
    main()
