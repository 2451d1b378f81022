"""``spikeforge import`` and ``spikeforge export``: the command line of the NIR conversion
(:mod:`spikeforge.nir_import`, :mod:`spikeforge.nir_export`), wired in :mod:`spikeforge.cli`."""

import json
import os

import numpy as np

from .datasets import dataset_names, load_dataset
from .datasets.record import input_record
from .modelfile import load_model, save_model
from .nir_export import export_model, write_graph
from .nir_import import DEFAULT_DT, NIRError, evaluate_float, import_graph, read_graph
from .options import COUNT, Number, check_output_file
from .sim.model import run_model

__all__ = ["add_import_arguments", "run_import", "add_export_arguments", "run_export"]


def add_import_arguments(parser):
    """Arguments of ``spikeforge import GRAPH.nir -o MODEL.sfm``."""
    parser.add_argument("graph", help="NIR graph file (nir.write / an exporter's .nir)")
    parser.add_argument("-o", "--output", required=True, help="model file to write (.sfm)")
    parser.add_argument("--dataset", default="digits", metavar="NAME", choices=dataset_names(),
                        help="dataset of the network: " + ", ".join(dataset_names()) + " (default: digits)")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder holding the dataset files (default $SPIKEFORGE_DATA_ROOT, else "
                             "~/.cache/spikeforge/datasets; digits and mnist-5k need none)")
    parser.add_argument("--download", action="store_true",
                        help="fetch missing dataset files from their official URLs (MD5-checked; never done "
                             "unless asked)")
    parser.add_argument("--calibration-images", type=COUNT, default=256,
                        help="training images used to choose the integer scales (default 256)")
    parser.add_argument("--eval-images", type=COUNT, default=None,
                        help="test images for the float vs integer accuracy (default: all)")
    parser.add_argument("--weight-bits", type=Number(int, low=2, high=16), default=8, help="weight width (default 8)")
    parser.add_argument("--out-bits", type=Number(int, low=2, high=32), default=16,
                        help="width of the neurons' integer drive (default 16)")
    parser.add_argument("--time-steps", type=Number(int, low=1, high=64), default=4,
                        help="time steps T the network runs for (default 4)")
    parser.add_argument("--input-scale", type=Number(float, positive=True), default=None,
                        help="float value of one input step as the NIR graph sees it "
                             "(default 1/max_value: pixels scaled to 0..1)")
    parser.add_argument("--dt", type=Number(float, positive=True), default=DEFAULT_DT,
                        help=f"time step of the NIR neuron equations in seconds (default {DEFAULT_DT:g}, "
                             "snnTorch's export convention)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _positive(name, value):
    if value is not None and (isinstance(value, bool) or value < 1):
        raise NIRError(f"--{name} is {value}; allowed: a positive integer")


def run_import(args):
    """``spikeforge import``: write the model, print float vs integer accuracy. Returns 0."""
    _positive("calibration-images", args.calibration_images)
    _positive("eval-images", args.eval_images)
    check_output_file(args.output, "-o")
    graph = read_graph(args.graph)
    train = load_dataset(args.dataset, "train", data_root=args.data_root, download=args.download)
    test = load_dataset(args.dataset, "test", data_root=args.data_root, download=args.download)
    if train.time_steps is not None:
        raise NIRError(f"dataset {args.dataset!r} holds event frames; import takes still-image "
                       "datasets (direct encoding)")
    calib = np.asarray(train.images[:args.calibration_images], dtype=np.int64)
    meta = dict(train.metadata, split="test", source_graph=os.path.basename(args.graph),
                input=input_record(test, "test"))
    model, report = import_graph(graph, calib, max_value=train.max_value, time_steps=args.time_steps,
                                 weight_bits=args.weight_bits, out_bits=args.out_bits,
                                 input_scale=args.input_scale, dt=args.dt, metadata=meta)
    n = len(test.labels) if args.eval_images is None else min(args.eval_images, len(test.labels))
    x, y = np.asarray(test.images[:n], dtype=np.int64), np.asarray(test.labels[:n])
    input_scale = 1.0 / train.max_value if args.input_scale is None else args.input_scale
    scores, _ = evaluate_float(graph, x, args.time_steps, input_scale, args.dt)
    fpred = scores.argmax(1)
    ipred = run_model(model, x).classes
    report.update(images=n, float_accuracy=float((fpred == y).mean()),
                  integer_accuracy=float((ipred == y).mean()),
                  agreement=float((fpred == ipred).mean()))
    model.metadata["accuracy"] = report["integer_accuracy"]
    model.metadata["nir_import"] = report
    save_model(model, args.output)
    if args.json:
        print(json.dumps(dict(model=args.output, **report), indent=2))
        return 0
    print(f"imported {args.graph} -> {args.output} ({len(model.nodes)} nodes, T={args.time_steps})")
    for r in report["neurons"]:
        print(f"  {r['node']:12} {r['type']:8} beta {r['beta']:.4f} -> shift {r['leak_shift']} "
              f"(error {r['leak_error']:.4f}); theta {r['theta']} (threshold error "
              f"{r['threshold_error']:.2e}); weight error {r['weight_error']:.3f}")
    print(f"accuracy on {n} {args.dataset} test images: float (NIR) {report['float_accuracy']:.4f}, "
          f"integer (golden) {report['integer_accuracy']:.4f}, agreement {report['agreement']:.4f}")
    return 0


def add_export_arguments(parser):
    """Arguments of ``spikeforge export MODEL.sfm -o GRAPH.nir``."""
    parser.add_argument("model", help="spikeforge model file (.sfm)")
    parser.add_argument("-o", "--output", required=True, help="NIR graph to write (.nir)")
    parser.add_argument("--dt", type=Number(float, positive=True), default=DEFAULT_DT,
                        help=f"time step of the NIR neuron equations in seconds (default {DEFAULT_DT:g})")


def run_export(args):
    """``spikeforge export``: write the NIR graph of a model. Returns 0."""
    if not args.dt > 0:
        raise NIRError(f"--dt is {args.dt}; allowed: a positive time step in seconds")
    check_output_file(args.output, "-o")
    model = load_model(args.model)
    graph = export_model(model, dt=args.dt)
    write_graph(graph, args.output)
    print(f"exported {args.model} -> {args.output} ({len(graph.nodes)} NIR nodes, "
          f"T={model.time_steps}; the graph takes integer pixel values)")
    return 0
