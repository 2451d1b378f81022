"""``spikeforge sweep``: a grid of board builds (lanes x clock x placement seed), each one Dask
task, gathered into one table.

Every point of the grid is a :func:`~spikeforge.boards.build.build_board` run on a Dask worker
(:func:`run_point`, in a scratch folder it removes) that returns a row: resources, fmax, timing,
the analytic model's cycles per image and images per second, a status and its reason. A point
never takes the sweep down with it:

=============== ======================================================== ===============
status          when                                                     re-run skips it
=============== ======================================================== ===============
ok              built, timing met                                        yes
timing-failed   built, fmax below the clock                              yes
does-not-fit    refused by the resource pre-check, before synthesis      yes
refused         the clock cannot be made, or the model cannot be mapped  yes
failed          a tool failed (log tail in the reason)                   no
timeout         a tool still ran when the point's time limit ran out     no
error           the task raised, or its worker died 3 times (Dask)       no
=============== ======================================================== ===============

Files in the output folder ``DIR`` (each written atomically):

- ``points/KEY.json``: one point's row, its full build report and its key's parts; written as
  soon as the point ends. ``KEY`` is a hash of the model's content
  (:func:`~spikeforge.sim.accel_runner.model_digest`), the board, lanes, clock, seed, and the
  versions of the tools and of spikeforge's gateware sources (:func:`tool_versions`, asked of
  a worker): a re-run reuses the points already done with the same key and builds the others.
- ``sweep.csv``, ``sweep.json``: the table of the grid's points, in grid order (rewritten after
  every point, so an interrupted sweep leaves the table of what finished).
"""

import csv
import hashlib
import io
import json
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import NamedTuple

from .. import __version__
from ..devices import get_target
from ..hdl import accel as accel_pkg
from ..hdl.accel.program import MappingError
from ..modelfile import atomic_write
from ..sim.accel_runner import model_digest
from ..toolchain import ToolNotFound, find_tool
from .build import BuildError, BuildTimeout, DoesNotFit, TimingFailed, build_board
from .top import check_link_settings

__all__ = ["COLUMNS", "DONE", "Point", "grid", "point_key", "tool_versions", "run_point", "run_sweep",
           "table_csv", "format_row", "format_table"]

#: the table's columns, in order
COLUMNS = ("lanes", "clock_mhz", "seed", "status", "luts", "cells", "ff", "bram", "fmax_mhz", "timing_met",
           "cycles_per_image", "images_per_s", "images_per_s_at_fmax", "seconds", "reason", "key")
#: statuses that a re-run keeps (the others are built again)
DONE = frozenset({"ok", "timing-failed", "does-not-fit", "refused"})
#: a point file's format
FORMAT = 1


class Point(NamedTuple):
    """One build of the grid; ``clock_mhz`` None: the board's default clock."""

    lanes: int
    clock_mhz: float | None
    seed: int

    def label(self):
        clock = "default clock" if self.clock_mhz is None else f"{self.clock_mhz:g} MHz"
        return f"{self.lanes} lane{'' if self.lanes == 1 else 's'}, {clock}, seed {self.seed}"


def grid(lanes, clocks, seeds):
    """Every point of lanes x clocks x seeds (duplicates dropped), lanes varying slowest."""
    out = []
    for p in (Point(int(n), None if c is None else float(c), int(s))
              for n in lanes for c in (clocks or [None]) for s in seeds):
        if p not in out:
            out.append(p)
    return out


def _version_line(cmd):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({type(e).__name__})"
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def _sources_digest():
    """16 hex digits of the SHA-256 of the gateware and build sources (every module of the
    ``hdl`` and ``boards`` packages): a change to any of them can change a bitstream."""
    h = hashlib.sha256()
    for folder in (Path(accel_pkg.__file__).resolve().parent.parent, Path(__file__).resolve().parent):
        for path in sorted(folder.rglob("*.py")):
            h.update(path.relative_to(folder.parent).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def tool_versions(family):
    """The versions a build for ``family`` (``ice40``/``ecp5``) depends on, as found where this
    runs (on a worker): Yosys, nextpnr and the packer (their first ``--version`` line),
    spikeforge and a digest of its gateware sources."""
    out = {"spikeforge": __version__}
    pack = "icepack" if family == "ice40" else "ecppack"
    for name, flag in (("yosys", "-V"), (f"nextpnr-{family}", "--version"), (pack, "--help")):
        try:
            tool = find_tool(name)
        except ToolNotFound:
            out[name] = "not found"
            continue
        out[name] = _version_line([tool, flag]) if name != pack else Path(tool).name
    out["gateware_sources"] = _sources_digest()
    return out


def point_key(digest, board, point, versions):
    """The key of a point's result: 20 hex digits of the SHA-256 of the model's digest, the
    board, the point and the versions."""
    doc = {"format": FORMAT, "model": digest, "board": board, "lanes": point.lanes,
           "clock_mhz": point.clock_mhz, "seed": point.seed, "versions": versions}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:20]


def _row(point, status, reason="", report=None, seconds=None, key=""):
    row = dict.fromkeys(COLUMNS)
    row.update(lanes=point.lanes, clock_mhz=point.clock_mhz, seed=point.seed, status=status,
               reason=" ".join(str(reason).split()), key=key,
               seconds=None if seconds is None else round(seconds, 1))
    if report is not None:
        res, placed = report["resources"], report.get("placed") or {}
        cells = placed.get("logic_cells") or placed.get("lut") or {}
        ips = report["images_per_second"]
        row.update(clock_mhz=report["clock"]["mhz"], luts=res["lut"]["used"], cells=cells.get("used"),
                   ff=res["ff"]["used"], bram=res["bram"]["used"], fmax_mhz=report["fmax_mhz"],
                   timing_met=bool(report["timing_met"]),
                   cycles_per_image=round(report["cycles_per_image"]["mean"], 2),
                   images_per_s=round(ips["compute"], 1),
                   images_per_s_at_fmax=None if ips["compute_at_fmax"] is None else round(ips["compute_at_fmax"], 1))
    return row


def run_point(model, board, point, images, *, timeout=3600):
    """Build ``point`` (a :class:`Point`) of ``model`` for ``board`` in a scratch folder (removed
    after): ``{"row": the table's row, "report": the build report or None}``. Every expected
    failure is a row with its status and reason (module docstring); only a bug raises."""
    t0 = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="spikeforge-sweep-"))
    try:
        try:
            clock = check_link_settings(get_target(board), point.clock_mhz).mhz
            point = point._replace(clock_mhz=clock)
            report = build_board(model, board, images=images, lanes=point.lanes, clock_mhz=point.clock_mhz,
                                 out_dir=scratch / "out", seed=point.seed, progress=None, timeout=timeout)
            return {"row": _row(point, "ok", "", report, time.monotonic() - t0), "report": report}
        except TimingFailed as e:
            return {"row": _row(point, "timing-failed", str(e).split(" (report:")[0], e.report,
                                time.monotonic() - t0), "report": e.report}
        except DoesNotFit as e:
            status, why = "does-not-fit", str(e)
        except BuildTimeout as e:
            status, why = "timeout", str(e).split("; log:")[0]
        except BuildError as e:
            status, why = "failed", " | ".join(str(e).splitlines()[-3:])
        except (MappingError, ValueError) as e:
            status, why = "refused", str(e)
        return {"row": _row(point, status, why, None, time.monotonic() - t0), "report": None}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def table_csv(rows):
    """The rows as CSV text (the columns of :data:`COLUMNS`; empty cells for None)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r[k] for k in COLUMNS})
    return buf.getvalue()


def format_row(row):
    """One progress line of a finished point."""
    p = Point(row["lanes"], row["clock_mhz"], row["seed"])
    if row["status"] in ("ok", "timing-failed"):
        fmax = f"fmax {row['fmax_mhz']:.1f} MHz" if row["fmax_mhz"] is not None else "no fmax"
        what = (f"{row['luts']} LUTs, {row['bram']} BRAM, {fmax}, {row['cycles_per_image']:.0f} cycles/image, "
                f"{row['images_per_s']:.0f} images/s")
        if row["status"] == "timing-failed":
            what += " (timing failed)"
    else:
        what = f"{row['status']}: {row['reason']}"
    secs = f" ({row['seconds']:.0f} s)" if row.get("seconds") is not None else ""
    return f"{p.label()}: {what}{secs}"


def format_table(rows):
    """The rows as a readable fixed-width table."""
    head = ("lanes", "MHz", "seed", "status", "LUTs", "cells", "BRAM", "fmax", "cycles/img", "images/s", "s")
    lines = ["{:>5} {:>7} {:>5} {:<13} {:>6} {:>6} {:>5} {:>7} {:>10} {:>9} {:>5}".format(*head)]

    def num(v, fmt="{}"):
        return "-" if v is None else fmt.format(v)

    for r in rows:
        lines.append("{:>5} {:>7} {:>5} {:<13} {:>6} {:>6} {:>5} {:>7} {:>10} {:>9} {:>5}".format(
            r["lanes"], num(r["clock_mhz"], "{:g}"), r["seed"], r["status"], num(r["luts"]), num(r["cells"]),
            num(r["bram"]), num(r["fmax_mhz"], "{:.1f}"), num(r["cycles_per_image"], "{:.0f}"),
            num(r["images_per_s"], "{:.0f}"), num(r["seconds"], "{:.0f}")))
    return "\n".join(lines)


def _load_point(path):
    try:
        doc = json.loads(Path(path).read_text())
        return doc if doc.get("format") == FORMAT and isinstance(doc.get("row"), dict) else None
    except (OSError, ValueError, AttributeError):
        return None


def run_sweep(model, board, points, images, out_dir, client, *, timeout=3600, progress=print):
    """Build every point of ``points`` (:class:`Point`; :func:`grid`) of ``model`` for ``board``
    as Dask tasks on ``client`` (:func:`spikeforge.sim.cluster.open_client`), reusing the points
    of ``out_dir`` already done; write the point files and the table (module docstring).
    ``timeout``: seconds each point's build may take. ``progress``: one line per finished point.
    Returns the table: ``{"board", "model", "versions", "rows", "counts", "built", "reused",
    "seconds"}``."""
    from distributed import as_completed

    t0 = time.monotonic()
    target = get_target(board)
    out = Path(out_dir)
    (out / "points").mkdir(parents=True, exist_ok=True)
    say = progress or (lambda line: None)
    digest = model_digest(model)
    versions = client.submit(tool_versions, target.family, pure=False).result()
    keys = [point_key(digest, target.name, p, versions) for p in points]
    rows, docs, todo = {}, {}, []
    for p, key in zip(points, keys):
        doc = _load_point(out / "points" / f"{key}.json")
        if doc is not None and doc["row"].get("status") in DONE:
            rows[p], docs[p] = doc["row"], doc
        else:
            todo.append((p, key))
    reused = len(rows)
    if reused:
        say(f"{reused} of {len(points)} points already done in {out} (same model, board and tool versions)")

    meta = {"board": target.name, "model": digest, "versions": versions}

    def write_table():
        table = [rows[p] for p in points if p in rows]
        counts = {}
        for r in table:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        doc = {**meta, "points": len(points), "rows": table, "counts": counts, "built": len(rows) - reused,
               "reused": reused, "seconds": round(time.monotonic() - t0, 1)}
        atomic_write(out / "sweep.json", json.dumps(doc, indent=1).encode())
        atomic_write(out / "sweep.csv", table_csv(table).encode())
        return doc

    if not todo:
        return write_table()
    futures = {}
    run = uuid.uuid4().hex[:8]
    for p, key in todo:
        clock = "default" if p.clock_mhz is None else f"{p.clock_mhz:g}MHz"
        f = client.submit(run_point, model, target.name, p, images, timeout=timeout,
                          key=f"sweep-{p.lanes}lanes-{clock}-seed{p.seed}-{key[:8]}-{run}")
        futures[f] = (p, key)
    done = reused
    for f in as_completed(list(futures)):
        p, key = futures.pop(f)
        try:
            result = f.result()
        except Exception as e:  # noqa: BLE001 - a bug or a lost worker: that point's row, not the sweep's end
            result = {"row": _row(p, "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}",
                                  key=key), "report": None}
        result["row"]["key"] = key
        rows[p] = result["row"]
        doc = {"format": FORMAT, "key": key, **meta, "point": {"lanes": p.lanes, "clock_mhz": p.clock_mhz,
                                                               "seed": p.seed},
               "row": result["row"], "report": result["report"]}
        atomic_write(out / "points" / f"{key}.json", json.dumps(doc, indent=1).encode())
        done += 1
        say(f"[{done}/{len(points)}] {format_row(result['row'])}")
        write_table()
    return write_table()
