"""The analytic report takes its images (and optionally the golden result) from its caller: the
command line loads them (layers, docs/architecture.md: the report is L3, data loading is the
CLI's choice), and a report is never silently computed on other images than those given."""

import numpy as np
import pytest

from spikeforge.builder import random_model
from spikeforge.hdl.accel.program import compile_model
from spikeforge.hdl.accel.report import analyze, fit
from spikeforge.sim.model import run_model


@pytest.fixture(scope="module")
def program():
    return compile_model(random_model(3, channels=4, heads=1), 2)


def _images(n, seed=0):
    return np.random.default_rng(seed).integers(0, 17, (n, 8, 8, 1))


def test_the_report_is_on_the_images_given(program):
    with pytest.raises(TypeError, match="images"):
        analyze(program)  # no hidden default data set
    a, b = analyze(program, images=_images(3)), analyze(program, images=_images(5, seed=1))
    assert (a["images"], b["images"]) == (3, 5)
    assert a["cycles_per_image"] != b["cycles_per_image"] or a["lower_bound_cycles"] != b["lower_bound_cycles"]


def test_a_golden_result_from_the_caller_is_used_as_is(program):
    images = _images(4)
    golden = run_model(program.model, images)
    assert analyze(program, images=images, golden=golden) == analyze(program, images=images)
    with pytest.raises(ValueError, match="the golden result is for 4 images, not the 2 given"):
        analyze(program, images=images[:2], golden=golden)


@pytest.mark.parametrize("shape", [(0, 8, 8, 1), (3, 8, 8), (3, 4, 4, 1)])
def test_images_of_another_shape_are_refused_in_one_line(program, shape):
    with pytest.raises(ValueError, match=r"^images have shape .*; expected \[B >= 1, 8, 8, 1\] \(the model's input\)$"):
        analyze(program, images=np.zeros(shape, np.int64))
    with pytest.raises(ValueError, match=r"^images have shape"):
        fit(program.model, 2, "ice40-up5k", images=np.zeros(shape, np.int64))
