"""The import layers (docs/architecture.md, issue 19): every import of the package points to its
own layer or below, no function-local import below the command line, no import cycle.

The checker and the layer table are in tests/import_layers.py (``python tests/import_layers.py``
prints the table and the allow-list). The synthetic packages below prove it catches each kind of
violation; without them a checker that found nothing would pass as well as a correct one.
"""

import textwrap

import import_layers as il
import pytest


def test_every_import_of_the_package_follows_the_layers():
    found, allowed = il.check()
    print("\n".join(il.table()))
    print(f"allowed known violations ({len(allowed)}):" + "".join(f"\n  {line}" for line in allowed))
    assert not found, "\n" + "\n".join(found)


def test_the_checker_sees_the_whole_package():
    """Every folder of pyproject's package-dir is scanned, with the subpackages' own names, and
    the imports it reads include function-local ones and the CLI's delegated subcommands."""
    modules = il.find_modules(il.package_dirs())
    for name in ("spikeforge.graph", "spikeforge.datasets.images", "spikeforge.hdl.accel.engine",
                 "spikeforge.sim.golden", "spikeforge.boards.cli", "spikeforge.quant.train"):
        assert name in modules, name
    assert len(modules) == sum(1 for d in il.package_dirs().values() for p in d.rglob("*.py")
                               if "__pycache__" not in p.parts and not any(x.startswith(".") for x in p.parts))
    imports = il.all_imports(modules)
    edges = {(i.importer, i.imported, i.local) for i in imports}
    assert ("spikeforge.sim.model", "spikeforge.sim.golden", False) in edges       # from . import golden
    assert ("spikeforge.cli", "spikeforge.boards.cli", True) in edges              # in build_parser
    assert ("spikeforge.hdl.accel.report", "spikeforge.devices", False) in edges   # from ...devices import


def test_an_upward_import_in_the_real_tree_is_caught():
    """The real table and modules with one import added that points up (golden model -> CLI)."""
    modules = il.find_modules(il.package_dirs())
    imports = il.all_imports(modules)
    bad = il.Import("spikeforge.sim.golden", "spikeforge.cli", 1, False, "from ..cli import main")
    found, _ = il.problems(modules, imports + [bad])
    assert any("sim/golden.py:1: from ..cli import main points up: spikeforge.sim.golden is L1, "
               "spikeforge.cli is L5" in line for line in found), found
    assert any(line.startswith("import cycle between") and "spikeforge.sim.golden" in line for line in found)


def _package(tmp_path, files):
    root = tmp_path / "pkg"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    modules = il.find_modules({"pkg": root})
    return modules, il.all_imports(modules, root_package="pkg")


LAYERS = {"pkg": 0, "pkg.low": 0, "pkg.mid": 1, "pkg.mid2": 1, "pkg.top": 2, "pkg.sub": 1, "pkg.sub.deep": 1}


def _check(tmp_path, files, layers=LAYERS, allowed=None):
    modules, imports = _package(tmp_path, files)
    return il.problems(modules, imports, layers, allowed or {}, optional=set(), lazy_layers=(2,))


BASE = {"__init__.py": "", "low.py": "X = 1\n", "mid.py": "from . import low\n", "mid2.py": "from .low import X\n",
        "top.py": "def main():\n    from . import mid\n", "sub/__init__.py": "", "sub/deep.py": "from .. import mid\n"}


def test_a_clean_synthetic_package_passes(tmp_path):
    assert _check(tmp_path, BASE) == ([], [])


@pytest.mark.parametrize("importer, text", [
    ("low.py", "from . import mid\n"),
    ("low.py", "from .mid import something\n"),
    ("low.py", "import pkg.top\n"),
    ("low.py", "from pkg import top as t\n"),
    ("low.py", "try:\n    from .top import main\nexcept ImportError:\n    pass\n"),
    ("low.py", "import importlib\nM = importlib.import_module('.top', __package__)\n"),
    ("sub/deep.py", "from ..top import main\n"),
])
def test_an_upward_import_is_caught(tmp_path, importer, text):
    found, _ = _check(tmp_path, dict(BASE, **{importer: text}))
    assert any(" points up: " in line and f"{importer}:" in line for line in found), found


def test_a_function_local_import_below_the_cli_is_caught(tmp_path):
    found, _ = _check(tmp_path, dict(BASE, **{"mid.py": "def f():\n    from . import low\n    return low\n"}))
    assert len(found) == 1
    assert "mid.py:2: from . import low is function-local in an L1 module; import pkg.low at module level" in found[0]


def test_a_lazily_imported_optional_module_is_allowed(tmp_path):
    modules, imports = _package(tmp_path, dict(BASE, **{"mid.py": "def f():\n    from . import mid2\n"}))
    assert il.problems(modules, imports, LAYERS, {}, optional={"pkg.mid2"}, lazy_layers=(2,)) == ([], [])
    # third-party imports are never checked, local or not
    assert _check(tmp_path, dict(BASE, **{"low.py": "def f():\n    import torch\n    import cocotb\n"})) == ([], [])


def test_a_cycle_closed_by_function_local_imports_is_caught(tmp_path):
    """In the lazy layer (L2 here) local imports are allowed, but not one that closes a cycle."""
    layers = dict(LAYERS, **{"pkg.top2": 2})
    files = dict(BASE, **{"top.py": "from . import top2\n", "top2.py": "def f():\n    from . import top\n"})
    found, _ = _check(tmp_path, files, layers)
    assert len(found) == 1 and found[0].startswith("import cycle between pkg.top, pkg.top2: ")
    assert "top2.py:2: from . import top" in found[0]


def test_unassigned_and_stale_modules_are_caught(tmp_path):
    layers = {k: v for k, v in LAYERS.items() if k != "pkg.mid2"} | {"pkg.gone": 0}
    found, _ = _check(tmp_path, BASE, layers)
    assert any("module pkg.mid2 has no layer" in line for line in found), found
    assert any("LAYERS names pkg.gone, which is no module of the package" in line for line in found), found


def test_allowed_violations_are_reported_not_failed(tmp_path):
    files = dict(BASE, **{"low.py": "from . import top\n"})
    found, allowed = _check(tmp_path, files, allowed={("pkg.low", "pkg.top"): "being moved",
                                                       ("pkg.mid", "pkg.top"): "fixed already"})
    assert found == []
    assert len(allowed) == 2
    assert "low.py:1: from . import top (points up: pkg.low is L0, pkg.top is L2) -- allowed: being moved" in allowed[0]
    assert allowed[1] == "pkg.mid -> pkg.top: no such import any more; delete this entry of ALLOWED"
    # the same import without its entry fails
    assert _check(tmp_path, files)[0]


def test_an_import_of_a_missing_module_of_the_package_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="names pkg.nothing, which is no module of the package"):
        _package(tmp_path, dict(BASE, **{"nothing_here.py": "import pkg.nothing\n"}))
