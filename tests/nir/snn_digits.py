"""A tiny snnTorch conv-LIF network trained on the 8x8 digits and exported by snnTorch to NIR.

Used by the NIR tests (kept to seconds: one thread, fixed seeds, 3 epochs, T = 4).

snnTorch 1.0's ``export_to_nir`` ends with ``nir.NIRGraph.infer_types()``, which nir 1.0.8
cannot complete for snnTorch's scalar-parameter LIF nodes (it raises "type mismatch ...
1.input: []"); it stores Conv2d weights as torch tensors, which ``nir.write`` cannot save;
and its 0-d LIF parameters can neither be saved nor typed by ``nir.read``. We run snnTorch's
own exporter with ``infer_types`` disabled, fill in each node's input/output types from the
shapes torch reports, convert tensors to NumPy and broadcast LIF parameters to one value per
neuron: the nodes and parameters are snnTorch's.
"""

import warnings
from unittest import mock

import numpy as np

T = 4
BETA = 0.5


def build_and_train(epochs=3, seed=0, hidden=32, channels=8, readout="linear"):
    import snntorch as snn
    import snntorch.utils
    import torch

    from spikeforge.data import load_digits_split

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    layers = [
        torch.nn.Conv2d(1, channels, 3, padding=1),
        snn.Leaky(beta=BETA, init_hidden=True, reset_mechanism="zero"),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(channels * 16, hidden),
        snn.Leaky(beta=BETA, init_hidden=True, reset_mechanism="zero"),
        torch.nn.Linear(hidden, 10),
    ]
    if readout == "spikes":
        layers.append(snn.Leaky(beta=BETA, init_hidden=True, reset_mechanism="zero"))
    net = torch.nn.Sequential(*layers)
    xtr, ytr = load_digits_split("train")
    xte, yte = load_digits_split("test")

    def prep(x):
        return torch.tensor(np.asarray(x), dtype=torch.float32).permute(0, 3, 1, 2) / 16

    Xtr, Ytr = prep(xtr), torch.tensor(ytr)

    def forward(x):
        snntorch.utils.reset(net)
        return sum(net(x) for _ in range(T))

    opt = torch.optim.Adam(net.parameters(), 2e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(Xtr), generator=gen)
        for i in range(0, len(Xtr), 32):
            idx = perm[i:i + 32]
            out = forward(Xtr[idx])
            loss = torch.nn.functional.cross_entropy(out * (4.0 if readout == "spikes" else 1.0), Ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        scores = forward(prep(xte)).numpy()
    accuracy = float((scores.argmax(1) == yte).mean())
    return net, prep(xte[:1]), accuracy, scores


def export(net, sample):
    """snnTorch's NIR export (see the module docstring for the two work-arounds)."""
    import nir
    import torch
    from snntorch.export_nir import export_to_nir

    shapes = {}

    def hook(name):
        def record(module, inputs, output):
            shapes[name] = (tuple(inputs[0].shape[1:]), tuple(output.shape[1:]))
        return record

    hooks = [m.register_forward_hook(hook(name)) for name, m in net.named_children()]
    import snntorch.utils
    snntorch.utils.reset(net)
    with torch.no_grad():
        net(sample)
    for h in hooks:
        h.remove()
    with mock.patch.object(nir.NIRGraph, "infer_types", lambda self: None), warnings.catch_warnings():
        # snnTorch 1.0 still calls the deprecated nirtorch.extract_nir_graph
        warnings.filterwarnings("ignore", "nirtorch.extract_nir_graph is being deprecated",
                                DeprecationWarning)
        graph = export_to_nir(net, sample, ignore_dims=[0])
    for key, node in graph.nodes.items():
        for attr, value in list(vars(node).items()):
            if isinstance(value, torch.Tensor):
                value = value.detach().numpy()
                setattr(node, attr, value)
            if isinstance(node, nir.LIF) and key in shapes and attr in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
                # one value per neuron: nir.write cannot store snnTorch's 0-d arrays, and
                # nir.read's type inference takes the neuron shape from the parameters
                setattr(node, attr, np.broadcast_to(np.asarray(value, np.float64), shapes[key][1]).copy())
        if key in shapes:
            i, o = shapes[key]
            node.input_type = {"input": np.array(i)}
            node.output_type = {"output": np.array(o)}
            if isinstance(node, nir.Conv2d):
                node.input_shape = tuple(i[1:])
    snntorch.utils.reset(net)
    return graph
