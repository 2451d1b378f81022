"""QAT training on a dataset of the registry (default the 8x8 digits), export and evaluation.

:func:`train` is deterministic for a given ``seed`` (fixed torch / NumPy seeds, at most two
CPU threads, no data-loader workers). Augmentation: random shifts of up to one pixel (zero
filled), which keeps pixels integer. The optimiser is AdamW with a cosine schedule.
"""

import dataclasses

import numpy as np
import torch
from torch import nn

from .. import data
from ..datasets import dataset_spec, load_dataset
from ..datasets.record import input_record
from ..sim.model import run_model
from .config import DEFAULT_EPOCHS, DEFAULT_SEED, TRAINING_DEFAULTS, ModelConfig
from .export import export_model
from .network import SpikeTransformer

__all__ = ["TrainResult", "train", "float_accuracy", "DEFAULT_SEED", "DEFAULT_EPOCHS"]



@dataclasses.dataclass
class TrainResult:
    net: SpikeTransformer
    model: object               # the exported spikeforge.Model
    float_accuracy: float       # fake-quant PyTorch model, test split, percent
    golden_accuracy: float      # spikeforge.sim.model.run_model, test split, percent
    train_accuracy: float       # fake-quant, train split (no augmentation), percent


def _shift(x, rng):
    """Shift each image by -1..1 pixels in y and x, zero fill. ``x``: [B, H, W, C] tensor, or
    frames [B, T, H, W, C] (every frame of a sample by the same shift)."""
    B, H, W = x.shape[0], x.shape[-3], x.shape[-2]
    p = torch.nn.functional.pad(x, (0, 0, 1, 1, 1, 1))
    dy = rng.integers(0, 3, size=B)
    dx = rng.integers(0, 3, size=B)
    return torch.stack([p[i, ..., dy[i]:dy[i] + H, dx[i]:dx[i] + W, :] for i in range(B)])


@torch.no_grad()
def float_accuracy(net, images, labels, batch_size=512):
    """Accuracy in percent of the fake-quant model (evaluation mode)."""
    net.eval()
    correct = 0
    for s in range(0, len(images), batch_size):
        out = net(images[s:s + batch_size])
        correct += int((out.argmax(1).numpy() == np.asarray(labels[s:s + batch_size])).sum())
    return 100.0 * correct / max(1, len(images))


def train(cfg=None, *, epochs=DEFAULT_EPOCHS, seed=DEFAULT_SEED, batch_size=TRAINING_DEFAULTS["batch_size"],
          lr=TRAINING_DEFAULTS["lr"], weight_decay=1e-4, augment=True, progress=True, threads=2, log=None,
          dataset="digits", data_root=None, download=False, limit=None, eval_limit=None):
    """Train ``cfg`` (default :class:`ModelConfig`) on the train split of ``dataset`` (a name of
    :mod:`spikeforge.datasets`, read from ``data_root``, fetched only with ``download``), export it.

    ``cfg.image`` and ``cfg.classes`` must be the dataset's; its pixels are requantized to
    ``0..cfg.max_value``. ``limit``: train on the first ``limit`` training images only;
    ``eval_limit``: report accuracies on the first ``eval_limit`` test (and training) images only.
    Returns a :class:`TrainResult` with the exported model (metadata: configuration, dataset and
    its input record (:func:`~spikeforge.datasets.input_record`), split, seed, epochs,
    accuracies, weight bits). ``progress`` shows a tqdm bar; ``log`` is an optional callable
    receiving one line of text per epoch.
    """
    from tqdm import tqdm

    cfg = cfg if cfg is not None else ModelConfig()
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs is {epochs!r}; allowed: an integer >= 1")
    torch.set_num_threads(max(1, min(2, threads)))
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    spec = dataset_spec(dataset)
    enc = "frames" if spec.kind == "events" else "direct"
    if tuple(spec.shape()) != tuple(cfg.image) or len(spec.classes) != cfg.classes or cfg.encoding != enc:
        raise ValueError(f"configuration image {'x'.join(map(str, cfg.image))} with {cfg.classes} classes, "
                         f"{cfg.encoding} input encoding, does not match dataset {dataset} "
                         f"({'x'.join(map(str, spec.shape()))}, {len(spec.classes)} classes"
                         f", {'event frames: frames' if enc == 'frames' else 'still images: direct'} encoding)")
    # event data are binned into the model's T frames (spec §4)
    frames = {"time_steps": cfg.time_steps} if enc == "frames" else {}
    train_ds = load_dataset(dataset, "train", data_root=data_root, download=download, max_value=cfg.max_value,
                            limit=limit, **frames)
    test_ds = load_dataset(dataset, "test", data_root=data_root, download=download, max_value=cfg.max_value,
                           limit=eval_limit, **frames)
    xtr, ytr = train_ds.images, train_ds.labels
    xte, yte = test_ds.images, test_ds.labels
    xtr_t = torch.from_numpy(np.array(xtr, dtype=np.float32))
    ytr_t = torch.from_numpy(np.array(ytr, dtype=np.int64))
    net = SpikeTransformer(cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(xtr) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss()
    bar = tqdm(range(epochs), desc="train", unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        perm = torch.from_numpy(rng.permutation(len(xtr)))
        total, correct, loss_sum = 0, 0, 0.0
        for s in range(0, len(perm), batch_size):
            idx = perm[s:s + batch_size]
            if len(idx) < 2:
                continue
            xb, yb = xtr_t[idx], ytr_t[idx]
            if augment:
                xb = _shift(xb, rng)
            out = net(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += len(idx)
            correct += int((out.argmax(1) == yb).sum())
            loss_sum += float(loss.detach()) * len(idx)
        msg = f"epoch {epoch + 1}/{epochs} loss {loss_sum / total:.4f} train acc {100 * correct / total:.1f}%"
        bar.set_postfix_str(msg.split(" ", 2)[2])
        if log:
            log(msg)
    bar.close()
    facc = float_accuracy(net, xte, yte)
    tacc = float_accuracy(net, xtr[:eval_limit], ytr[:eval_limit])
    split = dict(rule=spec.splits, trained_on="train", evaluated_on="test")
    if spec.caveat:
        split["caveat"] = spec.caveat
    if dataset == "digits":
        split.update(seed=data.SPLIT_SEED, test_fraction=data.TEST_FRACTION)
    if limit is not None:
        split["train_images"] = int(len(ytr))
    if eval_limit is not None:
        split["test_images"] = int(len(yte))
    meta = dict(dataset=dataset, input=input_record(test_ds, "test"), split=split,
                seed=seed, epochs=epochs, config=cfg.to_dict(), weight_bits=cfg.weight_bits,
                trainer="spikeforge.quant.train",
                accuracy=dict(float_fake_quant=facc, train_float_fake_quant=tacc))
    model = export_model(net, meta)
    gacc = 100.0 * float((run_model(model, xte).classes == yte).mean())
    model.metadata["accuracy"]["golden"] = gacc
    return TrainResult(net, model, facc, gacc, tacc)
