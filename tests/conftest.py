"""Test tiers (README, "Tests").

- quick: ``python -m pytest -n 2 -m "not slow"``, before every commit;
- CI: ``python -m pytest -n 2``, what ``.ci/run`` runs; tests marked ``full`` are left out and the
  long randomized checks run a seeded sample;
- full: ``python -m pytest -n 2 --full``, every check the suite knows.

A test marked ``full`` repeats, at greater cost, what a CI-tier test already proves; its
docstring names that test. ``full`` implies ``slow``.
"""

import os
import sys

import pytest

# tests/reference.py and other shared test helpers import by bare name.
sys.path.insert(0, os.path.dirname(__file__))


def pytest_addoption(parser):
    parser.addoption("--full", action="store_true",
                     help="the full tier: run the tests marked 'full' and every random model")


def pytest_configure(config):
    config.addinivalue_line("markers", "full: only in the full tier (--full); repeats a CI-tier check at greater cost")


def pytest_collection_modifyitems(config, items):
    full = config.getoption("--full")
    kept, dropped = [], []
    for item in items:
        if item.get_closest_marker("full") is not None:
            item.add_marker(pytest.mark.slow)
            if not full:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
