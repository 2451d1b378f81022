"""Inference on a board through its host link, checked image by image against the golden model.

:func:`run_images` is what ``spikeforge run`` does with a real board and what the simulated
board's testbench (:mod:`spikeforge.boards.sim_board_bench`) does with the simulated one.
"""

import numpy as np

from ..sim.model import run_model
from .hostlink import model_hash, pixel_bits

__all__ = ["run_images", "merge_runs", "board_mismatch"]


def run_images(link, model, images, labels, *, progress=None):
    """Send ``images`` through ``link`` (a :class:`~spikeforge.boards.runtime.HostLink`; up to its
    ``window`` in flight, :meth:`~spikeforge.boards.runtime.HostLink.infer_many`) and compare with
    the golden model and ``labels``: the class, and the logits when the link asks for them
    (``link.logits``; ``logits_match`` counts the images whose answer equals the golden model's,
    the class alone without logits). Returns the summary dict; ``progress(i, line)`` is called
    per image. Used by ``spikeforge run`` and the simulated-board test."""
    golden = run_model(model, images)
    rows = []

    def done(i, answer):
        logits, cls, cycles = answer
        ok = bool((logits is None or np.array_equal(logits, golden.logits[i])) and cls == int(golden.classes[i]))
        rows.append(dict(index=i, cls=cls, label=int(labels[i]), golden_cls=int(golden.classes[i]),
                         logits_match=ok, cycles=cycles, logits=None if logits is None else [int(v) for v in logits]))
        if progress:
            what = "ok" if ok else ("MISMATCH " + (f"class {cls} vs {int(golden.classes[i])}" if logits is None else
                                                   str(list(logits)) + " vs " + str(list(golden.logits[i]))))
            progress(i, f"image {i}: class {cls} (label {int(labels[i])}, golden {int(golden.classes[i])}) "
                        f"{what}, {cycles} cycles")

    link.infer_many(images, progress=done)
    n = len(rows)
    st = link.stats
    return {
        "images": n,
        "accuracy": sum(r["cls"] == r["label"] for r in rows) / n if n else float("nan"),
        "golden_accuracy": sum(r["golden_cls"] == r["label"] for r in rows) / n if n else float("nan"),
        "logits_match": sum(r["logits_match"] for r in rows),
        "latency_s": st.latency(),
        "images_per_second": st.throughput(),
        "board_cycles_mean": float(np.mean(st.board_cycles)) if st.board_cycles else None,
        "window": link.window, "logits": link.logits,
        "retries": st.retries, "timeouts": st.timeouts,
        "nacks": {getattr(k, "name", str(k)): v for k, v in st.nacks.items()},
        "bad_replies": st.bad_replies, "stale_replies": st.stale_replies,
        "results": rows,
    }


def merge_runs(first, rest, link):
    """One summary of two :func:`run_images` calls on the same ``link``, one after the other
    (the link's counters are cumulative, so they come from the second)."""
    rows = first["results"] + [dict(r, index=r["index"] + first["images"]) for r in rest["results"]]
    n = len(rows)
    return dict(rest, images=n, results=rows,
                accuracy=sum(r["cls"] == r["label"] for r in rows) / n,
                golden_accuracy=sum(r["golden_cls"] == r["label"] for r in rows) / n,
                logits_match=sum(r["logits_match"] for r in rows))


def board_mismatch(info, model, program):
    """One line saying how the board (its INFO) differs from what ``program`` (compiled from
    ``model`` with the run's lanes) expects, or None when it fits."""
    ours = model_hash(model).hex()
    if info.model_hash.hex() != ours:
        return (f"the board was flashed with another model: model hash {info.model_hash.hex()} on the board, "
                f"{ours} in this model file; flash the bitstream built from this model (or give run the model "
                "the board was built from)")
    img = program.image
    want = {"input shape": img.stacked_shape, "max value": int(img.levels), "classes": program.classes,
            "lanes": program.lanes, "pixel bits": pixel_bits(int(img.levels))}
    got = {"input shape": info.shape, "max value": info.max_value, "classes": info.classes, "lanes": info.lanes,
           "pixel bits": info.pixel_bits}
    bad = [f"{k} {got[k]} on the board, {want[k]} here" for k in want if got[k] != want[k]]
    if bad:
        return f"the board's build does not fit this run: {'; '.join(bad)} (check --lanes, or rebuild)"
    return None
