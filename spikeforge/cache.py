"""The simulator build cache (``spikeforge clean``).

Verilator and Icarus builds of the accelerator (``accel_sim/``, :mod:`spikeforge.sim.accel_runner`)
and of simulated boards (``board_sim/``, :mod:`spikeforge.boards.simulate`) are kept under one
folder, :func:`cache_root`: ``$SPIKEFORGE_CACHE``, else ``$XDG_CACHE_HOME/spikeforge``, else
``~/.cache/spikeforge``. A build folder in use by a running simulation is locked (``.lock``,
``flock``) and left alone by :func:`clean`. Only the simulator folders (:data:`SIM_FOLDERS`)
are ever deleted: the datasets' default folder (``datasets/``, :mod:`spikeforge.datasets`) and
anything else there stays.
"""

import fcntl
import os
import shutil
from pathlib import Path

__all__ = ["cache_root", "cache_entries", "clean", "human_size", "SIM_FOLDERS"]

#: the folders of simulator builds under the cache root: the accelerator's and the boards'
SIM_FOLDERS = ("accel_sim", "board_sim")


def cache_root():
    """The cache folder (which need not exist)."""
    root = os.environ.get("SPIKEFORGE_CACHE")
    if not root:
        root = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "spikeforge")
    return Path(root)


def _size(path):
    """Bytes of the files under ``path`` (symbolic links not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # removed while we looked
                pass
    return total


def human_size(n):
    """``123 B``, ``4.5 KB``, ``150.2 MB``, ``1.3 GB`` (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def cache_entries(root=None):
    """``[{"path", "kind", "bytes", "builds", "folder"}]``: each simulator folder under the
    cache root (:data:`SIM_FOLDERS`) that exists, its size and its build folders (each
    ``{"path", "bytes"}``). Empty when there is none."""
    root = cache_root() if root is None else Path(root)
    out = []
    for entry in (root / name for name in SIM_FOLDERS):
        if not (entry.exists() or entry.is_symlink()):
            continue
        builds = []
        if entry.is_dir() and not entry.is_symlink():
            builds = [{"path": b, "bytes": _size(b)} for b in sorted(entry.iterdir())
                      if b.is_dir() and not b.is_symlink()]
        out.append({"path": entry, "kind": entry.name, "bytes": _size(entry), "builds": builds,
                    "folder": entry.is_dir() and not entry.is_symlink()})
    return out


def _in_use(folder):
    """Whether a running simulation holds ``folder/.lock``."""
    lock = folder / ".lock"
    if not lock.is_file():
        return False
    try:
        with open(lock) as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def clean(root=None, *, dry_run=False):
    """Delete the cache's contents (not the root itself), except build folders in use.

    Returns ``(entries, freed_bytes, skipped)``: :func:`cache_entries` before deletion, the
    bytes deleted (0 with ``dry_run``) and the build folders left because a simulation uses
    them.
    """
    entries = cache_entries(root)
    freed, skipped = 0, []
    for entry in entries:
        targets = [b["path"] for b in entry["builds"]] if entry["builds"] else [entry["path"]]
        sizes = {b["path"]: b["bytes"] for b in entry["builds"]} or {entry["path"]: entry["bytes"]}
        for path in targets:
            if path.is_dir() and _in_use(path):
                skipped.append(path)
                continue
            if not dry_run:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                freed += sizes[path]
        if not dry_run and entry["builds"] and entry["path"].is_dir():
            leftovers = [p for p in entry["path"].iterdir() if p not in skipped]
            for p in leftovers:  # loose files next to the builds (temporary Verilog, ...)
                if p.is_dir() and not p.is_symlink():
                    continue
                freed += p.lstat().st_size
                p.unlink()
            if not any(entry["path"].iterdir()):
                entry["path"].rmdir()
    return entries, freed, skipped
