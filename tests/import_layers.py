"""The layers of spikeforge, as data, and the checker of every import against them (issue 19).

A module may import only modules of its own layer or of a lower one (docs/architecture.md):

== ============================== ===============================================================
L0 model                          graph, model file and schema, model summary, data sets, device
                                  and board descriptions, tool discovery, the cache folder
L1 golden model and compiler      pure Python (NumPy; torch for quant/): golden model, builder,
                                  NIR conversion, loader fuzzing, program compiler, host-link
                                  protocol, quantization-aware training
L2 gateware                       Amaranth: the hardware units, the engine and its memories, the
                                  board gateware (UART, host link, board top)
L3 executor and analytic report   the program executor (cycle model), the analytic report and fit
                                  check, accelerator Verilog generation
L4 simulation runners and boards  cocotb/Verilator runners and benches, formal proofs, synthesis,
                                  build, flash, host runtime, the simulated board
L5 command line                   spikeforge.cli, the shared options, every ``*/cli.py``, pictures
== ============================== ===============================================================

The checker reads every module with :mod:`ast` and sees every import: module level, inside
functions, inside ``if``/``try``, and ``importlib.import_module("literal", __package__)``. The
rules (:func:`problems`):

1. **Down only.** An import of a spikeforge module points to the importer's layer or below.
2. **Every module has a layer.** A new module must be added to :data:`LAYERS` (and a removed
   one removed), so the table never drifts from the code.
3. **No function-local imports below the command line.** In L0..L4 a spikeforge module is
   imported at module level, so the import graph is the one Python executes and a cycle cannot
   hide in a function. Two exceptions: the command line (L5) imports lazily so that
   ``spikeforge --help`` stays fast and an install without torch runs every command but
   ``train``; and a module of :data:`OPTIONAL` (it needs an optional third-party package:
   torch, matplotlib, nir) may be imported lazily anywhere. Third-party imports are never
   checked (``import torch`` or ``import cocotb`` inside a function is how an optional
   dependency is kept optional).
4. **No cycles.** The graph of all those imports (lazy ones included) has no cycle, so no
   function-local import closes one.

:data:`ALLOWED` lists known violations by the exact import, each with why it is still there;
they are reported, not failed, and a new violation fails. Run ``python tests/import_layers.py``
for the table and the allow-list.
"""

import ast
import functools
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("model", "golden model and compiler", "gateware", "executor and analytic report",
         "simulation runners and boards", "command line")

#: module -> layer; a package is named by itself (its ``__init__.py``)
LAYERS = {
    # L0 model: descriptions that depend on nothing above them
    "spikeforge": 0,
    "spikeforge.graph": 0,
    "spikeforge.modelschema": 0,
    "spikeforge.modelfile": 0,
    "spikeforge.summary": 0,
    "spikeforge.data": 0,
    "spikeforge.datasets": 0,
    "spikeforge.datasets._files": 0,
    "spikeforge.datasets.images": 0,
    "spikeforge.datasets.events": 0,
    "spikeforge.datasets.record": 0,
    "spikeforge.devices": 0,
    "spikeforge.toolchain": 0,
    "spikeforge.cache": 0,
    "spikeforge.sim": 0,        # package docstrings only
    "spikeforge.hdl": 0,
    "spikeforge.hdl.accel": 0,
    "spikeforge.boards": 0,
    "spikeforge.quant": 0,
    # L1 golden model and compiler: pure Python
    "spikeforge.sim.golden": 1,
    "spikeforge.sim.model": 1,
    "spikeforge.builder": 1,          # calibrates each node it adds with the golden model
    "spikeforge.modelfuzz": 1,
    "spikeforge.nir_import": 1,
    "spikeforge.nir_export": 1,
    "spikeforge.hdl.accel.program": 1,
    "spikeforge.hdl.accel.placement": 1,
    "spikeforge.hdl.accel.weight_stream": 1,  # the sdram mapping's segments and load-time rules
    "spikeforge.hdl.accel.plan": 1,
    "spikeforge.hdl.accel.timing": 1,
    "spikeforge.hdl.sdram_timing": 1,  # the SDRAM part's datasheet rules and the cost model
    "spikeforge.sim.sdram_model": 1,   # the cycle-accurate SDRAM model (pure Python)
    "spikeforge.boards.hostlink": 1,  # frame formats and rates, shared by the gateware and the runtime
    "spikeforge.quant.config": 1,
    "spikeforge.quant.functional": 1,
    "spikeforge.quant.lsq": 1,
    "spikeforge.quant.neurons": 1,
    "spikeforge.quant.layers": 1,
    "spikeforge.quant.network": 1,
    "spikeforge.quant.footprint": 1,
    "spikeforge.quant.integer": 1,    # the spec in torch int64: a second golden model
    "spikeforge.quant.export": 1,
    "spikeforge.quant.train": 1,
    # L2 gateware: Amaranth
    "spikeforge.hdl.params": 2,
    "spikeforge.hdl.pack": 2,
    "spikeforge.hdl.row_scan": 2,
    "spikeforge.hdl.accumulate_lanes": 2,
    "spikeforge.hdl.sdram": 2,
    "spikeforge.hdl.event_encoder": 2,
    "spikeforge.hdl.conv_window": 2,
    "spikeforge.hdl.window_walk": 2,
    "spikeforge.hdl.sparse_add": 2,
    "spikeforge.hdl.lif_array": 2,
    "spikeforge.hdl.lif_lane": 2,
    "spikeforge.hdl.spike_attention": 2,
    "spikeforge.hdl.generate": 2,
    "spikeforge.hdl.testing": 2,
    "spikeforge.hdl.accel.product": 2,
    "spikeforge.hdl.accel.memories": 2,
    "spikeforge.hdl.accel.engine": 2,
    "spikeforge.hdl.accel.lanes": 2,
    "spikeforge.hdl.accel.lsb": 2,
    "spikeforge.hdl.accel.sequencer": 2,
    "spikeforge.hdl.accel.weight_prefetch": 2,  # the sdram mapping's prefetcher
    "spikeforge.hdl.accel.logits": 2,
    "spikeforge.hdl.accel.syn_drain": 2,
    "spikeforge.hdl.accel.syn_fifo": 2,
    "spikeforge.hdl.accel.syn": 2,
    "spikeforge.hdl.accel.syn_front": 2,
    "spikeforge.hdl.accel.syn_scan": 2,
    "spikeforge.hdl.accel.syn_decode": 2,
    "spikeforge.hdl.accel.syn_fetch": 2,
    "spikeforge.hdl.accel.syn_issue": 2,
    "spikeforge.hdl.accel.syn_accumulate": 2,
    "spikeforge.hdl.accel.ew": 2,
    "spikeforge.hdl.accel.ew_loops": 2,
    "spikeforge.hdl.accel.ew_nest": 2,
    "spikeforge.hdl.accel.ew_lanes": 2,
    "spikeforge.hdl.accel.ew_operands": 2,
    "spikeforge.boards.uart": 2,
    "spikeforge.boards.link_gateware": 2,
    "spikeforge.boards.sdram_pins": 2,
    "spikeforge.boards.sdram_load": 2,
    "spikeforge.boards.sdram_system": 2,
    "spikeforge.boards.top": 2,
    # L3 executor and analytic report
    "spikeforge.hdl.accel.execute": 3,
    "spikeforge.hdl.accel.report": 3,
    "spikeforge.hdl.accel.generate": 3,
    # L4 simulation runners and boards
    "spikeforge.hdl.accel.simulate": 4,
    "spikeforge.sim.runners": 4,
    "spikeforge.sim.cocotb_util": 4,
    "spikeforge.sim.accel_cocotb": 4,
    "spikeforge.sim.accel_runner": 4,
    "spikeforge.sim.formal": 4,
    "spikeforge.boards.procs": 4,
    "spikeforge.boards.output_registers": 4,
    "spikeforge.boards.synth": 4,
    "spikeforge.boards.buildset": 4,
    "spikeforge.boards.build": 4,
    "spikeforge.boards.flash": 4,
    "spikeforge.boards.runtime": 4,
    "spikeforge.boards.faults": 4,
    "spikeforge.boards.inference": 4,
    "spikeforge.boards.sim_board": 4,
    "spikeforge.boards.sim_board_bench": 4,
    "spikeforge.boards.simulate": 4,
    "spikeforge.boards.sweep": 4,
    "spikeforge.sim.cluster": 4,
    "spikeforge.sim.verify_campaign": 4,
    # L5 command line
    "spikeforge.options": 5,
    "spikeforge.cli": 5,
    "spikeforge.plots": 5,
    "spikeforge.nir_cli": 5,
    "spikeforge.sim.accel_cli": 5,
    "spikeforge.boards.cli": 5,
    "spikeforge.quant.cli": 5,
}

#: modules that need an optional third-party package (the torch, plot and nir extras): they
#: may be imported inside a function anywhere, which keeps the package usable without them
OPTIONAL = {
    "spikeforge.quant.functional", "spikeforge.quant.lsq", "spikeforge.quant.neurons", "spikeforge.quant.layers",
    "spikeforge.quant.network", "spikeforge.quant.integer", "spikeforge.quant.export", "spikeforge.quant.train",
    "spikeforge.plots",
}

#: Known violations, by the exact import ``(importer, imported)``, with the reason. Reported,
#: never failed; each entry goes when the import does. Empty: the engine's split (issue 19)
#: moved the plan and the timing rules to L1 and ended the engine <-> execute <-> program cycle.
ALLOWED = {}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    local: bool      # inside a function (or lambda)
    text: str        # the statement, for messages

    def where(self, modules):
        path = modules.get(self.importer)
        return f"{os.path.relpath(path, ROOT) if path else self.importer}:{self.line}"


def package_dirs(root=ROOT):
    """``{package: folder}`` of the distribution (``package-dir`` of pyproject.toml)."""
    with open(Path(root) / "pyproject.toml", "rb") as f:
        return {pkg: Path(root) / d for pkg, d in tomllib.load(f)["tool"]["setuptools"]["package-dir"].items()}


def find_modules(dirs):
    """``{module: path}`` of every ``.py`` file under the package folders ``dirs``
    (``{package: folder}``, a subpackage's folder may lie outside its parent's)."""
    modules = {}
    for pkg, folder in dirs.items():
        folder = Path(folder)
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("").parts
            if any(part.startswith(".") or part == "__pycache__" for part in rel):
                continue
            if rel[-1] == "__init__":
                rel = rel[:-1]
            name = ".".join((pkg, *rel))
            owner = max((p for p in dirs if name == p or name.startswith(p + ".")), key=len)
            if owner == pkg:   # a folder mapped to a subpackage of its own is scanned as that one
                modules[name] = path
    return modules


def read_imports(module, path, modules, root_package="spikeforge"):
    """Every import of ``module`` (file ``path``) that names a module of ``modules``."""
    source = Path(path).read_text()
    tree = ast.parse(source, str(path))
    is_pkg = Path(path).name == "__init__.py"
    package = module if is_pkg else module.rpartition(".")[0]
    found = []

    def absolute(level, name):
        if level == 0:
            return name
        base = package.split(".")
        if level - 1 > len(base) - 1:
            raise ValueError(f"{path}: relative import beyond the top-level package")
        base = base[:len(base) - (level - 1)]
        return ".".join(base + ([name] if name else []))

    def add(node, target, local):
        if not (target == root_package or target.startswith(root_package + ".")):
            return
        text = ast.unparse(node)
        if target not in modules:
            raise ValueError(f"{path}:{node.lineno}: {text!r} names {target}, which is no module of the package")
        found.append(Import(module, target, node.lineno, local, text))

    def visit(node, local):
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    add(child, alias.name, local)
            elif isinstance(child, ast.ImportFrom):
                base = absolute(child.level, child.module)
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    add(child, sub if sub in modules else base, local)
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr == "import_module" and child.args
                  and isinstance(child.args[0], ast.Constant) and isinstance(child.args[0].value, str)):
                name = child.args[0].value
                level = len(name) - len(name.lstrip("."))
                add(child, absolute(level, name[level:]) if level else name, local)
            visit(child, inner)

    visit(tree, False)
    return list(dict.fromkeys(found))   # one per imported module and line


def all_imports(modules, root_package="spikeforge"):
    return [imp for module, path in modules.items() for imp in read_imports(module, path, modules, root_package)]


def _cycles(edges):
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    graph = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
        graph.setdefault(b, set())
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def problems(modules, imports, layers=None, allowed=None, optional=None, lazy_layers=(5,)):
    """The violations of the four rules, one line each naming the file, line and import.

    Returns ``(problems, allowed_report)``: ``allowed_report`` has a line for each import
    excused by ``allowed`` (with the reason), and one for each entry no import matches any
    more (to be deleted; not a failure)."""
    layers = LAYERS if layers is None else layers
    allowed = ALLOWED if allowed is None else allowed
    optional = OPTIONAL if optional is None else optional
    out, excused = [], []
    for name in sorted(set(modules) - set(layers)):
        out.append(f"{os.path.relpath(modules[name], ROOT)}: module {name} has no layer; add it to LAYERS "
                   "in tests/import_layers.py (and to docs/architecture.md)")
    for name in sorted(set(layers) - set(modules)):
        out.append(f"LAYERS names {name}, which is no module of the package; remove it")
    graph = []
    for imp in imports:
        src, dst = layers.get(imp.importer), layers.get(imp.imported)
        if src is None or dst is None or imp.importer == imp.imported:
            continue
        wrong = []
        if dst > src:
            wrong.append(f"points up: {imp.importer} is L{src}, {imp.imported} is L{dst}")
        if imp.local and src not in lazy_layers and imp.imported not in optional:
            wrong.append(f"is function-local in an L{src} module; import {imp.imported} at module level")
        key = (imp.importer, imp.imported)
        if key in allowed:
            excused.append(f"{imp.where(modules)}: {imp.text} ({'; '.join(wrong) or 'no longer a violation'}) "
                           f"-- allowed: {allowed[key]}")
            continue
        graph.append(key)
        out += [f"{imp.where(modules)}: {imp.text} {w}" for w in wrong]
    seen = {(i.importer, i.imported) for i in imports}
    excused += [f"{a} -> {b}: no such import any more; delete this entry of ALLOWED" for a, b in allowed
                if (a, b) not in seen]
    for comp in _cycles(graph):
        members = set(comp)
        lines = sorted({f"{i.where(modules)}: {i.text}" for i in imports
                        if i.importer in members and i.imported in members and (i.importer, i.imported) in graph})
        out.append(f"import cycle between {', '.join(comp)}: " + "; ".join(lines))
    return out, excused


@functools.cache
def check(root=ROOT):
    modules = find_modules(package_dirs(root))
    return problems(modules, all_imports(modules))


def table():
    lines = []
    for n, name in enumerate(NAMES):
        members = sorted(m for m, layer in LAYERS.items() if layer == n)
        lines.append(f"L{n} {name}: {', '.join(m.removeprefix('spikeforge.') for m in members)}")
    return lines


if __name__ == "__main__":
    found, excused = check()
    print("\n".join(table()))
    print(f"\nallowed ({len(excused)}):" + "".join(f"\n  {line}" for line in excused))
    print(f"\nviolations ({len(found)}):" + "".join(f"\n  {line}" for line in found))
    sys.exit(1 if found else 0)
