"""What every ``spikeforge`` subcommand shares: the error style, the numeric option checks,
the ``--lanes`` option, the output-path checks, the MODEL argument and the analytic model's
images.

**One error style.** Every user error is one line on stderr, ``spikeforge: error: ...``,
naming the option or the user's own path, what is wrong and what is allowed, and exit status
:data:`USER_ERROR` (2). That holds for argparse's own errors too (:class:`Parser`).

**One numeric check.** Every numeric option is parsed by a :class:`Number`: an integer or a
finite number (``inf`` and ``nan`` are refused), in its range, and the message names the
option (``argument --timeout: 'inf' is not a finite number; allowed: ...``). The same object
checks a value that did not come from argparse (:meth:`Number.check`).

**Outputs are checked first.** :func:`check_output_file` and :func:`check_output_dir` run
before any long work starts; they create a probe file in the folder that would receive the
output (then remove it), so a path that cannot be written fails in a second, not after a
training run or a synthesis.
"""

import argparse
import errno
import importlib.resources
import math
import os
import tempfile

from .boards.hostlink import BAUD_RATES
from .devices import TARGETS
from .modelfile import load_model

__all__ = ["CLIError", "USER_ERROR", "Parser", "Number", "LANES", "add_lanes_argument", "resolve_lanes",
           "SEED", "TIMEOUT", "RETRIES", "CLOCK", "BAUD", "BUILD_TIMEOUT", "WORKERS", "BAUD_RATES", "COUNT",
           "check_count", "add_cluster_arguments", "cluster_options",
           "check_output_file", "check_output_dir", "error_line", "os_error_message", "lanes_text",
           "check_plot_option", "TORCH_INSTALL", "require_torch", "default_model_path", "load_model_arg",
           "MODEL_HELP", "MODEL_SUFFIX", "shipped_model_names", "shipped_model_path",
           "add_dataset_arguments", "model_dataset_images", "ANALYSIS_IMAGES", "analysis_images"]

#: exit status of every user error (bad option, bad file, missing optional package)
USER_ERROR = 2


class CLIError(Exception):
    """A user error: printed as one line ``spikeforge: error: ...``, exit status 2."""


def error_line(message):
    """``spikeforge: error: MESSAGE`` with the message folded onto one line."""
    return "spikeforge: error: " + " ".join(str(message).split())


class Parser(argparse.ArgumentParser):
    """argparse with the one error style: one line, ``spikeforge: error:``, exit status 2
    (argparse's own would print the usage and prefix the subcommand: ``spikeforge build: error``)."""

    def error(self, message):
        self.exit(USER_ERROR, error_line(f"{message}; see `{self.prog} --help`") + "\n")


#: how to get the torch extra (the CPU build of the pinned version on the project machines)
TORCH_INSTALL = ('pip install "spikeforge[torch]" (from a clone: pip install -e ".[torch]"; '
                 'the CPU build: pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu)')


def require_torch(what):
    """Import PyTorch for ``what``, or :class:`CLIError` saying in one line how to install it."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CLIError(f"{what} needs PyTorch, which is not installed; install the torch extra: "
                       f"{TORCH_INSTALL}") from None


#: suffix of the model files shipped in ``spikeforge/models`` (selected by name: ``info mnist``)
MODEL_SUFFIX = ".sfm"


def _shipped_dir():
    return importlib.resources.files("spikeforge") / "models"


def shipped_model_names():
    """Names of the models shipped inside the package, sorted (``["default", "mnist"]``)."""
    folder = _shipped_dir()
    if not folder.is_dir():
        return []
    return sorted(f.name[:-len(MODEL_SUFFIX)] for f in folder.iterdir() if f.name.endswith(MODEL_SUFFIX))


def shipped_model_path(name="default"):
    """Path of the shipped model ``name`` (``spikeforge/models/NAME.sfm``; it may not exist)."""
    return os.fspath(_shipped_dir() / (name + MODEL_SUFFIX))


def default_model_path():
    """Path of the model shipped inside the package (``spikeforge/models/default.sfm``)."""
    return shipped_model_path("default")


#: help text of every MODEL argument
MODEL_HELP = (f"model file, or the name of a shipped model ({', '.join(shipped_model_names())}); "
              "default: the shipped model 'default'")


def _is_bare_name(text):
    """A MODEL argument that can only mean a shipped model: no folder part, no .sfm suffix."""
    seps = [os.sep] + ([os.altsep] if os.altsep else [])
    return bool(text) and not any(s in text for s in seps) and not text.endswith(MODEL_SUFFIX) \
        and text not in (".", "..")


def load_model_arg(path):
    """``(path, model)`` of a MODEL argument: a model file; else a bare name (no folder part, no
    ``.sfm``, no such file or folder here) is a shipped model, ``spikeforge/models/NAME.sfm``;
    None is the shipped model ``default``. :class:`CLIError` naming the argument (and listing
    the shipped names) when it is none of these."""
    if path is None:
        path = default_model_path()
        if not os.path.exists(path):
            raise CLIError(f"no MODEL given and the shipped default model is missing ({path}); "
                           "pass a model file, or train one with `spikeforge train -o MODEL`")
    elif not os.path.lexists(path) and _is_bare_name(path):
        names = shipped_model_names()
        if path not in names:
            listed = ", ".join(names) if names else "none (the package's models folder is missing)"
            raise CLIError(f"model {path!r} is neither a model file nor a shipped model; shipped models: "
                           f"{listed}; or give a path to a .sfm file")
        path = shipped_model_path(path)
    elif not os.path.isfile(path):
        what = "is a folder, not a model file" if os.path.isdir(path) else "does not exist"
        raise CLIError(f"model file {path} {what}; give a .sfm file or a shipped model's name "
                       f"({', '.join(shipped_model_names())}; none: default)")
    return path, load_model(path)


#: the test images the analytic model's cycle counts are taken on (info, generate, build)
# --- numbers -------------------------------------------------------------------------------

class Number:
    """A numeric option's type: ``kind`` (int or float), finite, within ``low``..``high``
    (``positive``: > 0), optionally a power of two or one of ``choices``.

    Used as ``type=`` of an argparse option (argparse then names the option in the message) and
    through :meth:`check` for values from elsewhere."""

    def __init__(self, kind=int, *, low=None, high=None, positive=False, power_of_two=False,
                 choices=None, unit=""):
        self.kind, self.low, self.high, self.positive = kind, low, high, positive
        self.power_of_two, self.choices, self.unit = power_of_two, choices, unit

    def allowed(self):
        if self.choices is not None:
            return "one of " + ", ".join(map(str, self.choices))
        what = "an integer" if self.kind is int else "a finite number"
        if self.power_of_two:
            what = "a power of two"
        unit = f" {self.unit}" if self.unit else ""
        if self.low is not None and self.high is not None:
            return f"{what} {self.low}..{self.high}{unit}"
        if self.positive:
            return f"{what} > 0{unit}" + (f" and <= {self.high}{unit}" if self.high is not None else "")
        if self.low is not None:
            return f"{what} >= {self.low}{unit}"
        if self.high is not None:
            return f"{what} <= {self.high}{unit}"
        return what

    def problem(self, value):
        """Why ``value`` (a parsed number) is not allowed, or None."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if self.kind is int and not isinstance(value, int):
            return f"{value!r} is not an integer"
        if not math.isfinite(value):
            return f"{value!r} is not a finite number"
        if self.choices is not None:
            return None if value in self.choices else f"{value:g} is not supported"
        if (self.positive and not value > 0) or (self.low is not None and value < self.low) \
                or (self.high is not None and value > self.high):
            return f"{value:g} is out of range"
        if self.power_of_two and value & (value - 1):
            return f"{value} is not a power of two"
        return None

    def parse(self, text):
        """The number in ``text``; ``ValueError`` (the message without the option) otherwise."""
        text = str(text).strip()
        try:
            value = int(text, 10) if self.kind is int else float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not {'an integer' if self.kind is int else 'a number'}; "
                             f"allowed: {self.allowed()}") from None
        if self.kind is float and not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number; allowed: {self.allowed()}")
        why = self.problem(value)
        if why:
            raise ValueError(f"{why}; allowed: {self.allowed()}")
        return value

    def __call__(self, text):
        try:
            return self.parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    def check(self, option, value):
        """``value`` when allowed; :class:`CLIError` naming ``option`` otherwise."""
        why = self.problem(value)
        if why:
            raise CLIError(f"{option}: {why}; allowed: {self.allowed()}")
        return value

    def __repr__(self):  # argparse shows the type's name in some messages
        return self.kind.__name__


#: the engine's lanes P (hdl/accel/program.py: compile_model accepts these)
LANES = Number(int, low=1, high=64, power_of_two=True)
#: random seeds (NumPy's generators take 0 .. 2**32 - 1)
SEED = Number(int, low=0, high=2**32 - 1)
#: seconds to wait for one reply of the board
TIMEOUT = Number(float, positive=True, high=3600, unit="s")
#: re-sends after a failed attempt
RETRIES = Number(int, low=0, high=100)
#: a count of images, at least one (the upper bound is the split's size: :func:`check_count`)
COUNT = Number(int, low=1)
#: the system clock of a board in MHz (the board's PLL range is checked against its target)
CLOCK = Number(float, positive=True, high=1000, unit="MHz")
#: seconds a whole build (or one simulator build or run) may take
BUILD_TIMEOUT = Number(float, positive=True, high=7 * 24 * 3600, unit="s")
#: processes of a local Dask cluster (``spikeforge sweep``/``verify``)
WORKERS = Number(int, low=1, high=1024)
#: the standard serial rates (:data:`spikeforge.boards.hostlink.BAUD_RATES`)
BAUD = Number(int, choices=BAUD_RATES)

#: lanes when neither ``--lanes`` nor a board gives them
DEFAULT_LANES = 8


def add_lanes_argument(parser, what="the engine's parallel adder lanes P"):
    """The one ``--lanes`` option of every subcommand: a power of two 1..64; default: the
    board's (``--board``/``--target`` naming a board), else 8 (:func:`resolve_lanes`)."""
    parser.add_argument("--lanes", type=LANES, default=None, metavar="P",
                        help=f"{what}: {LANES.allowed()} (default: the board's, 1 on icebreaker "
                             f"and 8 on ulx3s-85f; without a board {DEFAULT_LANES})")


def resolve_lanes(lanes, board=None):
    """``lanes``, or the default for ``board`` (a board name, a device name or None)."""
    if lanes is not None:
        return LANES.check("--lanes", lanes)
    target = TARGETS.get(board) if board is not None else None
    return target.default_lanes if target is not None else DEFAULT_LANES


def check_count(option, n, available, what):
    """``n`` images of ``available`` (``what``: which ones); :class:`CLIError` beyond them."""
    COUNT.check(option, n)
    if n > available:
        raise CLIError(f"{option}: {n} is more than {what} holds; allowed: 1..{available}")
    return n


# --- Dask campaigns (sweep, verify) ----------------------------------------------------------

def add_cluster_arguments(p, what):
    """``--scheduler`` and ``--workers``: where the Dask tasks of ``what`` run."""
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help=f"a Dask scheduler to run the {what} on (e.g. tcp://host:8786; its workers need "
                        "spikeforge and its tools installed; default: a local cluster on this machine)")
    p.add_argument("--workers", type=WORKERS, default=None, metavar="N",
                   help=f"processes of the local cluster ({WORKERS.allowed()}; default: one per core)")


def cluster_options(args):
    """``(scheduler, workers)`` of :func:`add_cluster_arguments`; :class:`CLIError` for both."""
    if args.scheduler is not None and args.workers is not None:
        raise CLIError(f"--workers {args.workers} sizes the local cluster and cannot go with --scheduler "
                       f"{args.scheduler}; start more workers there with `dask worker {args.scheduler}`")
    return args.scheduler, args.workers


# --- output paths --------------------------------------------------------------------------

_HINTS = {
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose another folder",
    errno.ENOSPC: "the disk is full; free some space or choose another disk",
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a file is in the way of that folder; choose another path",
    errno.EISDIR: "that is a folder; give a file name",
    errno.EEXIST: "a file of that name is in the way; choose another path",
}


def os_error_message(e, path=None, doing="cannot write"):
    """One line for an ``OSError``: the user's ``path`` (not a temporary name), what is wrong
    in words (no ``[Errno N]``) and what to do."""
    if path is None:
        path, other = e.filename, e.filename2
        if other is not None and path is not None and os.path.basename(os.fspath(path)).startswith(".tmp-"):
            path = other  # atomic_write's temporary file: name the user's file instead
    reason = (e.strerror or str(e) or type(e).__name__).rstrip(".")
    reason = reason[:1].lower() + reason[1:]
    hint = _HINTS.get(e.errno, "check the path")
    return f"{doing} {os.fspath(path)}: {reason}; {hint}" if path is not None else f"{reason}; {hint}"


def _nearest_existing(path):
    path = os.path.abspath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _probe_folder(option, user_path, folder):
    """A file can be created in ``folder`` (an existing path): else :class:`CLIError`."""
    if not os.path.isdir(folder):
        raise CLIError(f"{option} {user_path}: {folder} is a file, not a folder; choose another path")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".spikeforge-probe-"):
            pass
    except OSError as e:
        raise CLIError(f"{option} {user_path}: {os_error_message(e, folder, 'cannot write into')}") from None


def check_output_file(path, option="-o"):
    """Check before the work that ``path`` (a file to be written) can be written."""
    if path is None:
        return
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a folder; give a file name (e.g. {os.path.join(path, 'out')})")
    existing = _nearest_existing(os.path.dirname(os.path.abspath(path)))
    _probe_folder(option, path, existing)


def check_output_dir(path, option="-o"):
    """Check before the work that folder ``path`` can be created (if missing) and written."""
    if path is None:
        return
    path = os.fspath(path)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise CLIError(f"{option} {path}: is a file, not a folder; give a folder (it is created when missing)")
    _probe_folder(option, path, _nearest_existing(path))


def lanes_text(n):
    """``1 lane``, ``8 lanes``."""
    return f"{n} lane" + ("" if n == 1 else "s")


def check_plot_option(path):
    """``--plot DIR`` checked before any work (matplotlib installed, folder writable): the
    folder as a Path, or None without the option; :class:`CLIError` naming ``--plot`` otherwise."""
    if path is None:
        return None
    from .plots import PlotError, check_plot_dir

    try:
        return check_plot_dir(path)
    except PlotError as e:
        raise CLIError(f"--plot: {e}") from None


# --- the dataset of a model ----------------------------------------------------------------

def add_dataset_arguments(parser, download=True):
    """``--dataset NAME`` and ``--data-root DIR`` (and ``--download`` where real data is read):
    the images a command feeds the model (:func:`model_dataset_images`)."""
    from .datasets import dataset_names

    parser.add_argument("--dataset", metavar="NAME", choices=dataset_names(),
                        help="dataset of the images: " + ", ".join(dataset_names()) + " (default: the one the "
                             "model file records; digits for the shipped model; docs/datasets.md)")
    parser.add_argument("--data-root", metavar="DIR",
                        help="folder holding the dataset files (default $SPIKEFORGE_DATA_ROOT, else "
                             "~/.cache/spikeforge/datasets; digits and mnist-5k need none)")
    if download:
        parser.add_argument("--download", action="store_true",
                            help="fetch missing dataset files from their official URLs (MD5-checked; "
                                 "never done unless asked)")


def model_dataset_images(model, args, split=None, limit=None):
    """The :class:`~spikeforge.datasets.Dataset` a command feeds ``model``: ``args.dataset`` or
    the dataset the model records, ``split`` (default: the recorded one, else test), at the
    model's input range, the first ``limit`` images. :class:`CLIError` in one line when the model
    records none (and ``--dataset`` is not given) or the dataset does not fit its input
    (both shapes named)."""
    from .datasets import DatasetError, dataset_names, load_dataset
    from .datasets.record import check_dataset, model_dataset
    from .datasets.record import model_frames, model_input, shape_text

    try:
        rec = model_dataset(model)
        name = getattr(args, "dataset", None) or (rec or {}).get("dataset")
        if name is None:
            shape, max_value = model_input(model)
            raise CLIError(f"the model records no dataset and its input {shape_text(shape)} in 0..{max_value} is not "
                           f"the digits'; give one with --dataset NAME ({', '.join(dataset_names())})")
        same = rec is not None and rec["dataset"] == name
        downsample = rec.get("downsample") if same else None
        check_dataset(model, name, downsample)
        if split is None:
            split = rec["split"] if same else "test"
        _, max_value = model_input(model)
        # event data are binned into the model's T frames (spec §4 frames encoding)
        frames = {"time_steps": model.time_steps, "downsample": downsample} if model_frames(model) else {}
        return load_dataset(name, split, data_root=getattr(args, "data_root", None),
                            download=getattr(args, "download", False), max_value=max_value, limit=limit, **frames)
    except DatasetError as e:
        raise CLIError(str(e)) from None


#: test images the analytic model's cycle counts are taken on (info, generate, build)
ANALYSIS_IMAGES = 16


def analysis_images(model, args):
    """The first :data:`ANALYSIS_IMAGES` test images of the model's dataset (``--dataset``, else
    the one it records), at its input range: what the analytic model counts cycles on."""
    return model_dataset_images(model, args, split="test", limit=ANALYSIS_IMAGES).images
