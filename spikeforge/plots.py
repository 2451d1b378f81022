"""Pictures of a model's evaluation, its accelerator and its build, as PNG files.

One function per group of pictures; each writes its PNG files into ``out_dir`` (created when
missing), every file atomically, and returns their paths:

- :func:`plot_eval`: ``eval_spike_raster.png`` (the spikes of one image in every spiking
  layer), ``eval_firing_rate.png`` (firing rate per spiking layer), ``eval_confusion.png``;
- :func:`plot_info`: ``info_memory.png`` (parameter memory per node and the accelerator's
  memories), ``info_logic.png`` (the analytic logic and memory estimate against the device),
  ``info_cycles.png`` (cycles per node against the lower bound of spec §10);
- :func:`plot_build`: ``build_utilization.png`` (a build report's resources against the device);
- :func:`plot_lanes`: ``lanes.png`` (cycles/image and images/s against lanes,
  ``benchmarks/accel_lanes.py --plot``);
- :func:`plot_sweep`: ``sweep.png`` (a design sweep's LUTs against images/s with its Pareto
  front, and fmax per placement seed, ``spikeforge sweep``).

The ``figures_*`` functions return the matplotlib figures instead (for a notebook). Drawing
uses matplotlib's Agg canvas and never pyplot, so no display is needed and no global backend
is changed. matplotlib is the ``plot`` extra; without it every function raises
:class:`PlotError` with a one-line message saying how to install it.
"""

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .graph import input_encoding
from .modelfile import atomic_write

__all__ = ["PlotError", "check_plot_dir", "figures_eval", "plot_eval", "figures_info", "plot_info",
           "figures_build", "plot_build", "figures_lanes", "plot_lanes",
           "figures_sweep", "plot_sweep", "pareto_front", "save_figures"]

INSTALL_HINT = 'pip install "spikeforge[plot]"'


class PlotError(RuntimeError):
    """A picture cannot be made (matplotlib missing, output folder not writable, bad report);
    the message is one line."""


# --- common ----------------------------------------------------------------------------------

def _figure_class():
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(f"plots need matplotlib, which is not installed; install it with {INSTALL_HINT}") from None
    return Figure


def _new_figure(width, height):
    return _figure_class()(figsize=(width, height), layout="constrained")


def check_plot_dir(out_dir):
    """Check that pictures can be made into ``out_dir``: matplotlib is installed and the folder
    exists or can be created, and can be written. Returns it as a :class:`~pathlib.Path`.

    Meant to be called before a long computation whose results are plotted; every ``plot_*``
    function calls it first. Raises :class:`PlotError` (one line) otherwise.
    """
    _figure_class()
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise PlotError(f"cannot write plots to {path}: it is a file, not a folder; name a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PlotError(f"cannot create the plot folder {path}: a part of that path is a file, "
                        "not a folder; name another folder") from None
    except PermissionError:
        raise PlotError(f"cannot create the plot folder {path}: permission denied; "
                        "name a folder you can write") from None
    except OSError as e:
        raise PlotError(f"cannot create the plot folder {path}: {(e.strerror or str(e)).lower()}; "
                        "name another folder") from None
    try:  # os.access is not enough (root, read-only file systems): try a file
        fd, probe = tempfile.mkstemp(dir=path, prefix=".tmp-plot-probe-")
        os.close(fd)
        os.unlink(probe)
    except PermissionError:
        raise PlotError(f"cannot write plots to {path}: permission denied; name a folder you can write") from None
    except OSError as e:
        raise PlotError(f"cannot write plots to {path}: {(e.strerror or str(e)).lower()}; "
                        "name another folder") from None
    return path


def save_figures(figures, out_dir, dpi=100):
    """Write ``figures`` (``{file stem: Figure}``) as ``out_dir/STEM.png``, each atomically;
    returns the paths in the same order."""
    from . import __version__

    out = check_plot_dir(out_dir)
    paths = []
    for stem, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": f"spikeforge {__version__}"})
        path = out / f"{stem}.png"
        try:
            atomic_write(path, buf.getvalue())
        except OSError as e:
            raise PlotError(f"cannot write {path}: {(e.strerror or str(e)).lower()}") from None
        paths.append(path)
    return paths


def _label_bars(ax, bars, texts, at=None):
    """Put ``texts`` just right of horizontal ``bars`` (or of the x positions ``at``)."""
    at = at if at is not None else [bar.get_x() + bar.get_width() for bar in bars]
    for bar, text, x in zip(bars, texts, at):
        ax.annotate(text, (x, bar.get_y() + bar.get_height() / 2),
                    xytext=(5, 0), textcoords="offset points", va="center", fontsize=8)


def _thousands(n):
    return f"{n:,.0f}"


# --- eval ------------------------------------------------------------------------------------

def _check_eval_inputs(model, images, labels):
    images, labels = np.asarray(images), np.asarray(labels)
    want = "T, H, W, C" if input_encoding(model) == "frames" else "H, W, C"  # spec §4
    if images.ndim != 2 + want.count(",") or len(images) == 0:
        raise ValueError(f"images have shape {images.shape}; expected [B >= 1, {want}]")
    if labels.shape != (len(images),):
        raise ValueError(f"labels have shape {labels.shape}; expected ({len(images)},), one per image")
    K = int(model.head.attrs["classes"])
    if labels.min() < 0 or labels.max() >= K:
        raise ValueError(f"labels span {labels.min()}..{labels.max()}; the model has classes 0..{K - 1}")
    return images, labels.astype(np.int64), K


def confusion(labels, classes, K):
    """``[K, K]`` counts: row = true class, column = predicted class."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(labels, classes, labels=np.arange(K))


def figures_eval(model, images, labels, result=None, image_index=0):
    """The evaluation pictures of ``model`` on ``images [B, H, W, C]`` with ``labels [B]``.

    ``result``: the outputs of an evaluation already run on these images (``classes`` and
    ``firing``, as :func:`~spikeforge.sim.model.run_model` returns; default: run the golden
    model). The raster shows image ``image_index`` (run again through the golden model,
    recording its tensors). Returns ``{"eval_spike_raster", "eval_firing_rate",
    "eval_confusion": Figure}``.
    """
    from .graph import infer
    from .sim.model import run_model

    images, labels, K = _check_eval_inputs(model, images, labels)
    if not 0 <= image_index < len(images):
        raise ValueError(f"image_index is {image_index}; allowed 0..{len(images) - 1}")
    _figure_class()
    if result is None:
        result = run_model(model, images)
    classes = np.asarray(result.classes)
    one = run_model(model, images[image_index:image_index + 1], record=True)
    infos = infer(model)
    spiking = [n.name for n in model.nodes if n.name in result.firing]
    return {
        "eval_spike_raster": _raster_figure(model, infos, spiking, one, image_index,
                                            int(labels[image_index]), int(one.classes[0])),
        "eval_firing_rate": _firing_figure(spiking, result.firing, len(images)),
        "eval_confusion": _confusion_figure(confusion(labels, classes, K), K),
    }


def _raster_figure(model, infos, spiking, one, index, label, predicted):
    T = model.time_steps
    strip = 0.32 + 0.09 * T
    fig = _new_figure(8.5, 1.0 + strip * len(spiking))
    axes = fig.subplots(len(spiking), 1, squeeze=False)[:, 0]
    for ax, name in zip(axes, spiking):
        s = np.asarray(one.tensors[name][0]).reshape(T, -1)  # [T, tokens x channels]
        H, W, C = infos[name].shape
        levels = infos[name].levels
        ax.imshow(s, aspect="auto", interpolation="nearest", cmap="Greys", vmin=0, vmax=max(1, levels),
                  extent=(-0.5, s.shape[1] - 0.5, T - 0.5, -0.5))
        N = s.shape[1]
        if T <= 8:
            ax.set_yticks(range(T), [f"t{t}" for t in range(T)], fontsize=6)
        else:
            ax.set_yticks([0, T - 1], ["t0", f"t{T - 1}"], fontsize=6)
        ax.tick_params(axis="y", length=0, pad=1)
        for t in range(1, T):
            ax.axhline(t - 0.5, color="tab:blue", lw=0.4, alpha=0.6)
        if 1 < H * W <= 64:
            for tok in range(1, H * W):
                ax.axvline(tok * C - 0.5, color="tab:blue", lw=0.4, alpha=0.35)
        ax.set_xticks([0, N - 1])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
        ax.tick_params(axis="x", labelsize=7, pad=1, length=2)
        rate = 100 * float((s > 0).mean())
        graded = f", values 0..{levels}" if levels > 1 else ""
        ax.text(1.005, 0.5, f"{rate:.1f}%\n{H}x{W}x{C}{graded}", transform=ax.transAxes, fontsize=7,
                va="center", ha="left")
    axes[-1].set_xlabel("neuron = token x channels + channel (blue lines: token boundaries)", fontsize=8)
    fig.suptitle(f"Spikes of image {index} (label {label}, predicted {predicted}) in every spiking layer\n"
                 f"rows: time steps t0..t{T - 1}; dark = spike (graded: darker = more); "
                 "right: share of outputs spiking, layer shape H x W x C", fontsize=9)
    return fig


def _firing_figure(spiking, firing, n):
    fig = _new_figure(7.5, 1.2 + 0.28 * len(spiking))
    ax = fig.subplots()
    rates = np.array([100 * float(np.mean(firing[name])) for name in spiking])
    spread = np.array([100 * float(np.std(firing[name])) for name in spiking])
    y = np.arange(len(spiking))
    bars = ax.barh(y, rates, xerr=spread if n > 1 else None, color="tab:blue",
                   error_kw={"ecolor": "0.35", "capsize": 2, "lw": 0.8})
    ax.set_yticks(y, spiking, fontsize=8)
    ax.invert_yaxis()
    _label_bars(ax, bars, [f"{r:.1f}%" for r in rates], at=rates + (spread if n > 1 else 0))
    ax.set_xlim(0, max(5.0, float((rates + spread).max()) * 1.2))
    ax.set_xlabel("outputs that are spikes (%), mean over the images"
                  + ("; whisker: 1 std. dev." if n > 1 else ""))
    ax.set_title(f"Firing rate per spiking layer ({n} image{'s' if n > 1 else ''})", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _confusion_figure(cm, K):
    fig = _new_figure(5.2, 4.6)
    ax = fig.subplots()
    im = ax.imshow(cm, cmap="Blues", interpolation="nearest")
    n, correct = int(cm.sum()), int(np.trace(cm))
    if K <= 20:
        for i in range(K):
            for j in range(K):
                if cm[i, j]:
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if cm[i, j] > cm.max() / 2 else "black")
    ticks = np.arange(K) if K <= 20 else np.arange(0, K, max(1, K // 10))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"Confusion matrix: {correct}/{n} correct ({100 * correct / n:.2f}%)", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="images")
    return fig


def plot_eval(model, images, labels, out_dir, result=None, image_index=0, dpi=100):
    """Write the pictures of :func:`figures_eval` into ``out_dir``; returns their paths."""
    check_plot_dir(out_dir)
    return save_figures(figures_eval(model, images, labels, result, image_index), out_dir, dpi)


# --- info ------------------------------------------------------------------------------------

def node_cycles(analysis):
    """``{model node: cycles per image}`` from an analytic report's ``cycles_per_pass`` (a
    node's passes, ``node#...``, summed)."""
    out = {}
    for name, c in analysis["cycles_per_pass"].items():
        node = name.split("#")[0]
        out[node] = out.get(node, 0.0) + c
    return out


def node_lower_bound(golden, lanes):
    """``{model node: mean over images of ceil(syn_adds / P) + ceil(neuron_updates / P)}``:
    spec §10's lower bound split over the nodes (the terms of ``lower_bound_cycles``)."""
    out = {}
    for name, upd in golden.neuron_updates.items():
        adds = np.asarray(golden.syn_adds.get(name, 0))
        out[name] = float(np.mean(-(-adds // lanes) + -(-upd // lanes)))
    return out


def figures_info(model, lanes, target=None, images=None, analysis=None):
    """The accelerator pictures of ``model`` at ``lanes`` lanes on device ``target`` (``None``:
    no device, the logic picture shows the estimate alone).

    ``images``: the images the cycle counts are taken on (default: the first 16 test images,
    as :func:`~spikeforge.hdl.accel.report.analyze`); ``analysis``: that report when already
    computed on these images (it must be for ``lanes``). Returns ``{"info_memory",
    "info_logic", "info_cycles": Figure}``.
    """
    from .hdl.accel.report import analyze, compile_for_target
    from .sim.model import run_model
    from .summary import summarize

    _figure_class()
    if images is None:
        from .data import load_digits_split

        images = load_digits_split("test")[0][:16]
    images = np.asarray(images)
    if analysis is None:
        analysis = analyze(compile_for_target(model, lanes, target), target=target, images=images)
    elif analysis["lanes"] != lanes or analysis["images"] != len(images):
        raise ValueError(f"the analysis given is for {analysis['lanes']} lanes and {analysis['images']} images, "
                         f"not {lanes} lanes and {len(images)} images")
    golden = run_model(model, images)
    summary = summarize(model)
    return {
        "info_memory": _memory_figure(summary, analysis),
        "info_logic": _logic_figure(analysis),
        "info_cycles": _cycles_figure(model, analysis, node_cycles(analysis), node_lower_bound(golden, lanes)),
    }


_TENSOR_COLORS = {"weight": "tab:blue", "mult": "tab:orange", "bias": "tab:green", "theta": "tab:red"}
_MEM_COLORS = {"bram": "tab:blue", "spram": "tab:purple", "logic": "tab:gray"}


def _memory_figure(summary, analysis):
    layers = [layer for layer in summary["layers"] if layer["tensors"]]
    engine = analysis["memories"]
    fig = _new_figure(11, 1.4 + 0.26 * max(len(layers), len(engine)))
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.15, 1])

    y = np.arange(len(layers))
    left = np.zeros(len(layers))
    kinds = [k for k in _TENSOR_COLORS if any(k in layer["tensors"] for layer in layers)]
    kinds += sorted({k for layer in layers for k in layer["tensors"]} - set(kinds))
    for kind in kinds:
        bits = np.array([layer["tensors"].get(kind, {}).get("memory_bits", 0) for layer in layers]) / 1000
        ax.barh(y, bits, left=left, label=kind, color=_TENSOR_COLORS.get(kind))
        left += bits
    ax.set_yticks(y, [layer["name"] for layer in layers], fontsize=8)
    ax.invert_yaxis()
    _label_bars(ax, ax.patches[-len(layers):], [f"{v:.1f}" for v in left])
    ax.set_xlim(0, left.max() * 1.15)
    ax.set_xlabel("kbit (1000 bits) at the declared widths")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Parameters per node: {summary['memory_bits'] / 1000:.1f} kbit in all\n"
                 "(nodes without parameters left out)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)

    y2 = np.arange(len(engine))
    bits = np.array([m["bits"] for m in engine]) / 1000
    colors = [_MEM_COLORS.get(m["kind"], "tab:blue") for m in engine]
    bars = ax2.barh(y2, bits, color=colors, hatch=None)
    for bar, m in zip(bars, engine):
        if m["rom"]:
            bar.set_hatch("//")
            bar.set_edgecolor("white")
    ax2.set_yticks(y2, [m["name"] for m in engine], fontsize=8)
    ax2.invert_yaxis()

    def where(m):
        if m["kind"] == "spram":
            return f"{m['copies']} SPRAM"
        if m["kind"] == "logic" or m.get("bram_blocks") == 0:
            return "logic"
        return f"{m['bram_blocks']} BRAM" if "bram_blocks" in m else "block RAM"

    _label_bars(ax2, bars, [f"{m['depth']}x{m['width']}" + (f" x{m['copies']}" if m["copies"] > 1 and
                                                               m["kind"] != "spram" else "")
                            + f": {where(m)}" for m in engine])
    ax2.set_xlim(0, bits.max() * 1.6)
    ax2.set_xlabel("kbit (depth x width x copies)")
    from matplotlib.patches import Patch

    used = sorted({m["kind"] for m in engine}, key=list(_MEM_COLORS).index)
    handles = [Patch(color=_MEM_COLORS[k], label={"bram": "block RAM", "spram": "SPRAM", "logic": "logic"}[k])
               for k in used] + [Patch(facecolor="0.6", hatch="//", edgecolor="white", label="ROM")]
    ax2.legend(handles=handles, fontsize=8, loc="lower right")
    dev = analysis.get("device")
    where_all = (f"{dev['bram_blocks']}/{dev['available']['bram']} block RAMs"
                 + (f", {dev['spram_blocks']}/{dev['available']['spram']} SPRAMs" if dev["available"].get("spram")
                    else "") + f" of {dev['name']}") if dev else "no device given"
    ax2.set_title(f"Accelerator memories, {analysis['lanes']} lane{'s' if analysis['lanes'] > 1 else ''}: "
                  f"{analysis['memory_bits']['total'] / 1000:.1f} kbit\n({where_all})", fontsize=10)
    ax2.grid(axis="x", alpha=0.3)
    return fig


def _utilization(ax, rows, title, estimate_label=None):
    """Horizontal bars of ``rows`` ``[(label, used, available, estimate or None)]`` in % of
    the device, annotated "used / available"; a line at 100%."""
    rows = [r for r in rows if r[2]]
    y = np.arange(len(rows))
    pct = np.array([100 * r[1] / r[2] for r in rows])
    colors = ["tab:red" if p > 100 else "tab:green" if p <= 80 else "tab:orange" for p in pct]
    bars = ax.barh(y, pct, color=colors)
    est = [(i, 100 * r[3] / r[2]) for i, r in enumerate(rows) if r[3] is not None]
    if est:
        ax.plot([e[1] for e in est], [e[0] for e in est], "D", color="black", ms=5,
                label=estimate_label or "estimate")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_yticks(y, [r[0] for r in rows], fontsize=9)
    ax.invert_yaxis()
    ends = [max(p, 100 * r[3] / r[2] if r[3] is not None else 0) for r, p in zip(rows, pct)]
    _label_bars(ax, bars, [f"{_thousands(r[1])} / {_thousands(r[2])} ({p:.0f}%)" for r, p in zip(rows, pct)],
                at=ends)
    ax.axvline(100, color="black", lw=1, ls="--")
    top = max([110.0, *pct, *(e[1] for e in est)])
    ax.set_xlim(0, top * 1.45)
    ax.set_xlabel("% of the device (dashed: all of it; orange: over 80%, red: over 100%)")
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)


def _logic_figure(analysis):
    est = analysis["logic_estimate"]
    P = analysis["lanes"]
    lanes = f"{P} lane{'s' if P > 1 else ''}"
    dev = analysis.get("device")
    if dev is None:
        fig = _new_figure(7, 2.4)
        ax = fig.subplots()
        rows = [("LUTs", est["lut"]), ("flip-flops", est["ff"]), ("multipliers", est["multipliers"])]
        bars = ax.barh(np.arange(3), [r[1] for r in rows], color="tab:blue")
        ax.set_xscale("log")
        ax.set_yticks(np.arange(3), [r[0] for r in rows])
        ax.invert_yaxis()
        _label_bars(ax, bars, [_thousands(r[1]) for r in rows])
        ax.set_xlim(1, max(r[1] for r in rows) * 8)
        ax.set_xlabel("count (log scale)")
        ax.set_title(f"Logic of the engine, {lanes} (analytic estimate, no device given)\n"
                     f"one engine runs every node: the logic is shared, not per node", fontsize=10)
        return fig
    avail = dev["available"]
    from .devices import DEVICES

    ice40 = DEVICES[dev["name"]].family == "ice40"
    rows = []
    if ice40:
        rows.append(("logic cells\n(LUT4 + FF)", est["cells"], avail["lut"], None))
    else:
        rows.append(("LUTs", est["lut"], avail["lut"], None))
    rows += [("flip-flops", est["ff"], avail["ff"], None),
             ("block RAMs", dev["bram_blocks"], avail["bram"], None),
             ("SPRAMs", dev["spram_blocks"], avail.get("spram", 0), None),
             ("multipliers", est["multipliers"], avail["dsp"], None)]
    fig = _new_figure(7.5, 3.0)
    ax = fig.subplots()
    fits = "fits" if analysis.get("fits") else "does NOT fit"
    _utilization(ax, rows, f"{dev['name']}, {lanes}: the analytic estimate {fits}\n"
                           "(one engine runs every node: logic is shared, not per node)")
    return fig


def _cycles_figure(model, analysis, cycles, bound):
    names = [n.name for n in model.nodes if cycles.get(n.name, 0) or bound.get(n.name, 0)]
    fig = _new_figure(8.5, 1.6 + 0.24 * len(names))
    ax = fig.subplots()
    y = np.arange(len(names))
    c = np.array([cycles.get(n, 0.0) for n in names])
    b = np.array([bound.get(n, 0.0) for n in names])
    ax.barh(y - 0.2, c, height=0.4, color="tab:blue", label="accelerator (analytic model)")
    ax.barh(y + 0.2, b, height=0.4, color="tab:gray", label="lower bound, spec §10")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("cycles per image (mean over the images)")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    P = analysis["lanes"]
    cyc = analysis["cycles_per_image"]["mean"]
    ax.set_title(f"Cycles per node, {P} lane{'s' if P > 1 else ''}, {analysis['images']} images: "
                 f"{_thousands(cyc)} per image, bound {_thousands(analysis['lower_bound_cycles'])} "
                 f"(ratio {analysis['ratio_to_bound']:.3f})\n"
                 "bound per node: ceil(synaptic additions / P) + ceil(neuron updates / P); the engine "
                 "requantizes a conv's\noutput in the pass of the neuron after it, so a conv can cost "
                 "less than its bound share", fontsize=9)
    return fig


def plot_info(model, lanes, target, out_dir, images=None, analysis=None, dpi=100):
    """Write the pictures of :func:`figures_info` into ``out_dir``; returns their paths."""
    check_plot_dir(out_dir)
    return save_figures(figures_info(model, lanes, target, images, analysis), out_dir, dpi)


# --- build -----------------------------------------------------------------------------------

def _load_report(report):
    if isinstance(report, dict):
        return report, "the build report"
    path = Path(report)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PlotError(f"build report {path} does not exist; give the build_report.json of a "
                        "`spikeforge build`") from None
    except IsADirectoryError:
        raise PlotError(f"build report {path} is a folder; give its build_report.json") from None
    except OSError as e:
        raise PlotError(f"cannot read the build report {path}: {(e.strerror or str(e)).lower()}") from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise PlotError(f"build report {path} is not JSON ({e}); give the build_report.json of a "
                        "`spikeforge build`") from None
    if not isinstance(data, dict):
        raise PlotError(f"build report {path} holds a {type(data).__name__}, not a JSON object")
    return data, f"build report {path}"


def figures_build(report):
    """The picture of a build report (the dict :func:`~spikeforge.boards.build.build_board`
    returns, or the path of its ``build_report.json``): ``{"build_utilization": Figure}``."""
    _figure_class()
    r, what = _load_report(report)
    try:
        res = r["resources"]
        board, device, lanes = r["board"], r["device"], r["lanes"]
        clock, fmax, met = r["clock"]["mhz"], r["fmax_mhz"], r["timing_met"]
        for k, v in res.items():
            int(v["used"]), int(v["available"])
    except KeyError as e:
        raise PlotError(f"{what} has no {e} entry; give the build_report.json of a `spikeforge build`") from None
    except (TypeError, ValueError):
        raise PlotError(f"{what} has a malformed 'resources' entry; give the build_report.json of a "
                        "`spikeforge build`") from None
    placed = r.get("placed") or {}
    pre = r.get("precheck") or {}
    est = pre.get("logic_estimate") or {}
    ice40 = "logic_cells" in placed or device.startswith("ice40")
    names = {"lut": "LUT4 (Yosys)" if ice40 else "LUTs (Yosys)", "ff": "flip-flops", "bram": "block RAMs",
             "spram": "SPRAMs", "dsp": "DSPs"}
    estimates = {"lut": est.get("lut"), "ff": est.get("ff"), "bram": pre.get("bram_blocks"),
                 "spram": pre.get("spram_blocks"), "dsp": est.get("multipliers")}
    rows = []
    if "logic_cells" in placed:
        rows.append(("logic cells\n(placed)", placed["logic_cells"]["used"], placed["logic_cells"]["available"],
                     est.get("cells")))
    elif "lut" in placed:
        rows.append(("LUTs (placed)", placed["lut"]["used"], placed["lut"]["available"], None))
    for k, v in res.items():
        rows.append((names.get(k, k), int(v["used"]), int(v["available"]), estimates.get(k)))
    fig = _new_figure(8, 1.6 + 0.42 * len(rows))
    ax = fig.subplots()
    timing = (f"fmax {fmax:.1f} MHz, timing {'met' if met else 'FAILED'}" if fmax is not None
              else "no fmax reported")
    _utilization(ax, rows, f"Build for {board} ({device}), {lanes} lane{'s' if lanes != 1 else ''}, "
                           f"{clock:g} MHz: {timing}", estimate_label="pre-check estimate")
    return {"build_utilization": fig}


def plot_build(report, out_dir, dpi=100):
    """Write the picture of :func:`figures_build` into ``out_dir``; returns its path in a list."""
    check_plot_dir(out_dir)
    return save_figures(figures_build(report), out_dir, dpi)


# --- lanes (benchmarks/accel_lanes.py) -----------------------------------------------------

def figures_lanes(rows, clock_mhz, title=""):
    """Cycles/image and images/s against lanes from ``benchmarks/accel_lanes.py``'s rows
    (``lanes``, ``predicted_cycles``, ``lower_bound_cycles``, ``measured_cycles`` or ``None``);
    images/s at ``clock_mhz``, from the measured cycles where there are some. Returns
    ``{"lanes": Figure}``."""
    _figure_class()
    if not rows:
        raise ValueError("no rows to plot")
    if not clock_mhz > 0:
        raise ValueError(f"clock is {clock_mhz} MHz; it must be positive")
    rows = sorted(rows, key=lambda r: r["lanes"])
    P = np.array([r["lanes"] for r in rows])
    measured = [r.get("measured_cycles") for r in rows]
    have_measured = all(m is not None for m in measured)
    pred = np.array([r["predicted_cycles"] for r in rows], float)
    bound = np.array([r["lower_bound_cycles"] for r in rows], float)
    fig = _new_figure(10, 4)
    ax, ax2 = fig.subplots(1, 2)
    if have_measured:
        ax.plot(P, measured, "o-", color="tab:blue", label="measured (Verilog simulation)")
        ax.plot(P, pred, "x--", color="tab:orange", label="analytic model")
    else:
        ax.plot(P, pred, "o-", color="tab:orange", label="analytic model")
    ax.plot(P, bound, "s:", color="tab:gray", label="lower bound, spec §10")
    for a in (ax, ax2):
        a.set_xscale("log", base=2)
        a.set_xticks(P, [str(p) for p in P])
        a.minorticks_off()
        a.set_xlabel("lanes (P)")
        a.grid(alpha=0.3)
    ax.set_yscale("log")
    ax.set_ylabel("cycles per image")
    ax.legend(fontsize=8)
    ax.set_title("Cycles per image", fontsize=10)
    cycles = np.array(measured if have_measured else pred, float)
    ips = clock_mhz * 1e6 / cycles
    ax2.plot(P, ips, "o-", color="tab:blue" if have_measured else "tab:orange",
             label="measured" if have_measured else "analytic model")
    ax2.plot(P, ips[0] * P / P[0], "--", color="tab:gray", label=f"linear from {P[0]} lane{'s' if P[0] > 1 else ''}")
    for p, v in zip(P, ips):
        ax2.annotate(_thousands(v), (p, v), xytext=(0, 6), textcoords="offset points", ha="center", fontsize=7)
    ax2.set_yscale("log")
    ax2.set_ylabel(f"images per second at {clock_mhz:g} MHz")
    ax2.legend(fontsize=8)
    ax2.set_title(f"Images per second at {clock_mhz:g} MHz (compute only, no host link)", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    return {"lanes": fig}


def plot_lanes(rows, out_dir, clock_mhz, title="", dpi=100):
    """Write the picture of :func:`figures_lanes` into ``out_dir``; returns its path in a list."""
    check_plot_dir(out_dir)
    return save_figures(figures_lanes(rows, clock_mhz, title), out_dir, dpi)


def pareto_front(points):
    """The points ``(cost, value)`` that no other point beats (lower or equal cost and higher or
    equal value, one of them strictly), sorted by cost."""
    front = []
    for c, v in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or v > front[-1][1]:
            front.append((c, v))
    return front


def figures_sweep(table):
    """A sweep's table (``spikeforge sweep``'s ``sweep.json``, a dict with ``rows``): LUTs
    against images/s at the requested clock for the builds that met timing (the Pareto front
    drawn, the lane count by each point), and fmax per placement seed for every build (a line
    per lane count and clock; the requested clock dashed). Returns ``{"sweep": Figure}``."""
    _figure_class()
    rows = [r for r in table.get("rows", []) if r.get("luts") is not None]
    if not rows:
        raise ValueError("no point of the sweep was built (every one failed or was refused): nothing to plot")
    fig = _new_figure(11, 4.2)
    ax, ax2 = fig.subplots(1, 2)
    met = [r for r in rows if r["timing_met"]]
    for r in rows:
        ok = r["timing_met"]
        ax.plot(r["luts"], r["images_per_s"], "o" if ok else "x", color="tab:blue" if ok else "tab:red",
                alpha=0.8)
        ax.annotate(f"{r['lanes']}L {r['clock_mhz']:g} MHz", (r["luts"], r["images_per_s"]), xytext=(4, 4),
                    textcoords="offset points", fontsize=7)
    front = pareto_front([(r["luts"], r["images_per_s"]) for r in met])
    if len(front) > 1:
        ax.step([c for c, _ in front], [v for _, v in front], where="post", color="tab:blue", alpha=0.5,
                label="Pareto front (timing met)")
    ax.plot([], [], "o", color="tab:blue", label="timing met")
    if len(met) < len(rows):
        ax.plot([], [], "x", color="tab:red", label="timing failed")
    ax.set_xlabel("LUTs (Yosys)")
    ax.set_ylabel("images per second (compute, at the requested clock)")
    ax.set_title("LUTs against images/s", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    groups = {}
    for r in rows:
        groups.setdefault((r["lanes"], r["clock_mhz"]), []).append(r)
    for (lanes, clock), rs in sorted(groups.items()):
        rs = sorted(rs, key=lambda r: r["seed"])
        line, = ax2.plot([r["seed"] for r in rs], [r["fmax_mhz"] or 0 for r in rs], "o-",
                         label=f"{lanes} lane{'' if lanes == 1 else 's'} at {clock:g} MHz")
        ax2.axhline(clock, ls="--", lw=0.8, color=line.get_color())
    seeds = sorted({r["seed"] for r in rows})
    ax2.set_xticks(seeds, [str(x) for x in seeds])
    ax2.set_xlabel("nextpnr placement seed")
    ax2.set_ylabel("fmax (MHz)")
    ax2.set_title("fmax per seed (dashed: requested clock)", fontsize=10)
    ax2.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(f"spikeforge sweep on {table.get('board', '?')}: {len(rows)} build{'' if len(rows) == 1 else 's'}",
                 fontsize=10)
    return {"sweep": fig}


def plot_sweep(table, out_dir, dpi=100):
    """Write the picture of :func:`figures_sweep` into ``out_dir``; returns its path in a list."""
    check_plot_dir(out_dir)
    return save_figures(figures_sweep(table), out_dir, dpi)
