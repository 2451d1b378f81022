"""Test tiers (README, "Tests").

- quick: ``python -m pytest -n 2 -m "not slow"``, before every commit;
- CI: ``python -m pytest -n 2``, what ``.ci/run`` runs: tests marked ``full`` are left out and
  the long randomized checks (marked ``random_sample(K)``) run a seeded sample of K items;
- full: ``python -m pytest -n 2 --full``, every check the suite knows, every random model.

A test marked ``full`` repeats, at greater cost, what a CI-tier test already proves; its
docstring names that test. ``full`` implies ``slow``.

The sample's seed is derived from the commit (``git rev-parse HEAD``), so successive commits
cover different random models; it is printed in the session header, and ``--sample-seed S``
repeats a sample. Naming test items on the command line (``file.py::test[42]``) runs them
whatever the sample.
"""

import hashlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

# tests/reference.py and other shared test helpers import by bare name.
sys.path.insert(0, os.path.dirname(__file__))

ROOT = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    group = parser.getgroup("spikeforge tiers")
    group.addoption("--full", action="store_true",
                    help="the full tier: run the tests marked 'full' and every random model")
    group.addoption("--sample-seed", default=None,
                    help="seed of the random-model sample (default: derived from the git commit)")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: only in the full tier (--full); repeats a CI-tier check at greater cost")
    config.addinivalue_line("markers", "random_sample(k): one of many randomized items; the CI tier runs a "
                                       "seeded sample of k of them, the full tier all")
    config._sample_seed = _sample_seed(config)
    # Tests differ in cost by three orders of magnitude: with ``-n N`` hand them out by work
    # stealing (pytest-xdist), so that no worker idles while another holds a queue of slow ones.
    # ``-n`` alone means ``--dist load``; an explicit other ``--dist`` is kept.
    if getattr(config.option, "dist", None) == "load" and "--dist" not in " ".join(config.invocation_params.args):
        config.option.dist = "worksteal"


def _commit():
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _sample_seed(config):
    given = config.getoption("--sample-seed")
    if given is not None:
        try:
            return int(given, 0), "--sample-seed"
        except ValueError:
            raise pytest.UsageError(f"--sample-seed is {given!r}; expected an integer such as 1234 or 0x4d2") from None
    commit = _commit()
    if commit is None:
        return 0, "no git commit found"
    return int(hashlib.sha256(commit.encode()).hexdigest()[:8], 16), f"commit {commit[:12]}"


def pytest_report_header(config):
    seed, source = config._sample_seed
    if config.getoption("--full"):
        return ["tier: full (every random model)"]
    return [f"random-model sample: seed {seed:#x} ({source}); repeat with --sample-seed {seed:#x}, "
            "or run everything with --full"]


def _named_on_command_line(config):
    return any("[" in arg for arg in config.args)


def pytest_collection_modifyitems(config, items):
    full = config.getoption("--full")
    seed, _ = config._sample_seed
    dropped = set()
    groups = {}
    for item in items:
        if item.get_closest_marker("full") is not None:
            item.add_marker(pytest.mark.slow)
            if not full:
                dropped.add(item.nodeid)
        marker = item.get_closest_marker("random_sample")
        if marker is not None:
            key = (item.module.__name__ if item.module else "", item.originalname)
            groups.setdefault(key, (marker, []))[1].append(item)
    if not full and not _named_on_command_line(config):
        for (module, name), (marker, group) in sorted(groups.items()):
            k = int(marker.args[0]) if marker.args else 24
            rng = random.Random(f"{seed}:{module}:{name}")
            keep = {it.nodeid for it in rng.sample(group, min(k, len(group)))}
            dropped.update(it.nodeid for it in group if it.nodeid not in keep)
    if dropped:
        config.hook.pytest_deselected(items=[it for it in items if it.nodeid in dropped])
        items[:] = [it for it in items if it.nodeid not in dropped]
    # Slow tests first (stable otherwise): with work stealing the run then ends on short tests,
    # not with one worker finishing a long one while the other idles.
    items.sort(key=lambda it: it.get_closest_marker("slow") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``SPIKEFORGE_REQUIRE_SIMULATORS=1`` (set by ``.ci/run``) a test skipped because a
    simulator is missing fails instead: CI installs both and must run every simulator test."""
    report = yield
    if report.skipped and os.environ.get("SPIKEFORGE_REQUIRE_SIMULATORS") == "1":
        reason = str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)
        if "simulator '" in reason:
            report.outcome = "failed"
            report.longrepr = f"simulator required in this run (SPIKEFORGE_REQUIRE_SIMULATORS=1): {reason}"
    return report
