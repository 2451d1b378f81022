"""A build's outputs as one set: staged next to the output folder, swapped in with renames,
a manifest with the SHA-256 of every output written last, and the check that ``flash`` makes.

Layout of an output folder ``OUT`` after ``spikeforge build``::

    OUT/spikeforge_<board>.bin|.bit   the bitstream (absent when timing failed)
    OUT/spikeforge_<board>.v          Verilog of the board top
    OUT/weights.hex                   weights the host loads (SPRAM builds only)
    OUT/build_report.json             the report (with the SHA-256 of the bitstream and Verilog)
    OUT/build/                        the tools' work folder and logs
    OUT/build_manifest.json           written last: the SHA-256 and size of each file above

The build writes everything into ``.<OUT name>.staging`` beside ``OUT``; :func:`publish` then
removes the old manifest, renames the new files over the old ones (an old output the new build
does not have is removed), and writes the new manifest. SIGINT, SIGTERM and SIGHUP are held off
during this (:func:`spikeforge.boards.procs.deferred`), so a cancelled build leaves the previous
set or the new one. Only a crash or power loss in the middle of the renames can leave a mixed
folder, and then it has no manifest, which :func:`check_bitstream` refuses.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

from ..modelfile import atomic_write
from . import procs

__all__ = ["MANIFEST", "REPORT", "BuildSetError", "staging_dir", "sha256_file", "publish", "check_bitstream"]

MANIFEST = "build_manifest.json"
REPORT = "build_report.json"
WORK = "build"
#: Logs of the work folder that the manifest covers (besides the top-level outputs).
LOGS = ("yosys.out", "verilog.out", "top.rpt", "top.tim")


class BuildSetError(RuntimeError):
    """An output folder whose files are not one build's set; the message is one line."""


def staging_dir(out_dir):
    """Where a build of ``out_dir`` is assembled: a hidden folder beside it."""
    out = Path(os.path.abspath(out_dir))
    return out.parent / f".{out.name}.staging"


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _entry(path):
    return {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def publish(staging, out_dir, names, *, stale=(), board=None):
    """Move the outputs ``names`` (file names in ``staging``) and the work folder
    ``staging/build`` into ``out_dir`` as one set; remove the files ``stale`` (names of an
    earlier build's outputs that this one does not have) and whatever the old manifest listed
    that the new set lacks; write the manifest last. Returns the manifest (a dict)."""
    staging, out = Path(staging), Path(out_dir)
    files = {name: _entry(staging / name) for name in names}
    work = staging / WORK
    for log in LOGS:
        if (work / log).is_file():
            files[f"{WORK}/{log}"] = _entry(work / log)
    for log in sorted(work.glob("*.out")):
        files.setdefault(f"{WORK}/{log.name}", _entry(log))
    manifest = {"format": 1, "board": board, "files": files}
    old_names = set(stale)
    try:
        old = json.loads((out / MANIFEST).read_text())
        old_names |= {n for n in old.get("files", {}) if "/" not in n}
    except (OSError, ValueError, AttributeError):
        pass
    out.mkdir(parents=True, exist_ok=True)
    with procs.deferred():
        if (out / MANIFEST).exists():
            os.unlink(out / MANIFEST)           # from here on the folder is not a set, until the end
        if work.is_dir():
            if (out / WORK).exists():
                os.rename(out / WORK, staging / "build.old")
            os.rename(work, out / WORK)
        for name in names:
            os.replace(staging / name, out / name)
        for name in sorted(old_names - set(names)):
            if (out / name).is_file() and not (out / name).is_symlink():
                os.unlink(out / name)
        atomic_write(out / MANIFEST, json.dumps(manifest, indent=1).encode())
    shutil.rmtree(staging, ignore_errors=True)
    return manifest


def check_bitstream(path):
    """Refuse (:class:`BuildSetError`) a bitstream that is not part of the build set of its
    folder: the folder has a manifest that does not list it or whose bitstream, Verilog,
    weights or report differ from the files there, or it has a build report but no manifest (a
    build cut off while publishing, or one older than manifests). A bitstream in a folder
    without a build report or manifest (not written by ``spikeforge build``) is not checked."""
    path = Path(path)
    folder = path.parent
    manifest_path, report_path = folder / MANIFEST, folder / REPORT
    if not manifest_path.exists():
        if report_path.exists():
            raise BuildSetError(f"{str(folder)!r} has a build report but no {MANIFEST}: the build that wrote it "
                                "was cut off or is older than manifests, so its bitstream cannot be matched to "
                                "the report; build again")
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not an object")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BuildSetError(f"build manifest {str(manifest_path)!r} cannot be read ({e}); build again") from None
    if path.name not in files:
        raise BuildSetError(f"bitstream {str(path)!r} is not in the build manifest of its folder (that build "
                            "wrote no bitstream or another one); build again")
    for name, want in files.items():
        if "/" in name:
            continue        # the work folder's logs: not needed to flash
        file = folder / name
        if not file.is_file():
            raise BuildSetError(f"{str(file)!r}, part of the build set in {MANIFEST}, is missing; build again")
        got = sha256_file(file)
        if got != want.get("sha256"):
            raise BuildSetError(f"{str(file)!r} does not match the build manifest (SHA-256 {got[:12]}... here, "
                                f"{str(want.get('sha256'))[:12]}... in {MANIFEST}): the folder holds outputs of "
                                "different builds; build again")
    return manifest
