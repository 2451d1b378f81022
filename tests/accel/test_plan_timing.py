"""The engine's plan and timing rules are layer L1 (pure Python), read by the engine and the
executor alike; the engine's widths come from the plan; elaboration keeps no state."""

import ast
import dataclasses
import pathlib

import numpy as np
import pytest

from spikeforge.builder import random_model
from spikeforge.hdl.accel import execute, plan, timing
from spikeforge.hdl.accel.program import MappingError, _weight_bits, compile_model

ACCEL = pathlib.Path(plan.__file__).parent
#: L1 modules of hdl/accel/ and the gateware (L2) modules they must not import.
L1 = ("plan.py", "timing.py", "program.py", "placement.py")
L2 = {"engine", "memories", "lanes", "lsb", "product", "simulate", "generate"}


def _imports(path):
    """(module-level imports, function-local imports) of a file, as dotted names."""
    tree = ast.parse(path.read_text())
    top, local = [], []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else ["." * node.level + (node.module or "")])
            (top if node in tree.body else local).extend(names)
    return top, local


@pytest.mark.parametrize("name", L1)
def test_l1_modules_import_no_gateware(name):
    top, local = _imports(ACCEL / name)
    bad = [n for n in top + local if n.startswith("amaranth") or n.lstrip(".").split(".")[0] in L2]
    assert not bad, f"{name} (layer L1) imports {bad}"


def test_no_function_local_imports_in_the_accelerator():
    """The engine <-> execute <-> program cycle was closed by imports inside functions."""
    for path in sorted(ACCEL.glob("*.py")):
        if path.name == "report.py":  # L3 report: its board imports are the import-layer work's
            continue
        _, local = _imports(path)
        own = [n for n in local if n.startswith(".") or n.startswith("spikeforge")]
        assert not own, f"{path.name} imports {own} inside a function"


def test_executor_reads_the_timing_module():
    """The executor's cycle model and the engine's pipelines read one set of rules."""
    assert execute.timing_of is timing.timing_of
    prog = compile_model(random_model(1, channels=8), 1, compact=True)
    assert timing.timing_of(prog) is timing.TIMING_COMPACT and timing.build_of(prog) is timing.COMPACT
    for build, rules in ((timing.FAST, timing.TIMING), (timing.COMPACT, timing.TIMING_COMPACT)):
        assert rules == build.rules()
        assert rules["syn_drain"] == build.syn_drain_delay()
        assert rules["ew_latency"] == build.ew_write_cycle() - 2
    # the figures the shipped model's cycle counts rest on
    assert (timing.TIMING["syn_drain"], timing.TIMING["ew_latency"]) == (4, 12)
    assert (timing.FAST.syn_row_latency(), timing.FAST.syn_fifo_rows(),
            timing.FAST.syn_in_flight()) == (5, 7, (4, False))
    assert (timing.COMPACT.syn_row_latency(), timing.COMPACT.syn_fifo_rows(),
            timing.COMPACT.syn_in_flight()) == (1, 3, (3, True))
    assert (timing.TIMING_COMPACT["syn_drain"], timing.TIMING_COMPACT["ew_latency"]) == (2, 4)


def test_builds_are_one_frozen_parameter_object():
    """The engine reads its build's options from one Build, not from Program.compact."""
    from spikeforge.hdl.accel.engine import Engine

    assert dataclasses.is_dataclass(timing.Build)
    with pytest.raises(dataclasses.FrozenInstanceError):
        timing.FAST.syn_queue = 2
    for name in ("engine.py", "lanes.py", "plan.py"):
        assert ".compact" not in (ACCEL / name).read_text(), name
    prog = compile_model(random_model(1, channels=8), 2)
    engine = Engine(prog)
    engine._MustUse__silence = True  # not elaborated here
    assert engine.build is timing.FAST


def test_declared_weight_bits_set_the_weight_lane():
    """The model file's weight_bits, not the range the weights happen to span."""
    model = random_model(2, channels=8, weight_bits=4)
    assert compile_model(model, 2).widths["weight"] == 4
    for node in model.nodes:
        if "weight_bits" in node.attrs:
            node.attrs["weight_bits"] = 6
    prog = compile_model(model, 2)
    assert prog.widths["weight"] == 6
    assert plan.EnginePlan(prog).wb == 6


def test_weights_outside_the_declared_width_are_refused():
    model = random_model(2, channels=8, weight_bits=4)
    weights = np.array([[7, -8], [8, 0]])
    with pytest.raises(MappingError, match=r"weights span -8\.\.8, outside the declared weight_bits=4 range -8\.\.7"):
        _weight_bits(model, weights)


def test_opcodes_are_enums_and_descriptors_use_them():
    prog = compile_model(random_model(4, attention="mask", levels=3, channels=8), 2)
    p = plan.EnginePlan(prog)
    kinds = {row["kind"] for row in p.desc_rows}
    assert kinds == {plan.Kind.SYN, plan.Kind.EW, plan.Kind.RED}
    ops = {(row["kind"], row["op"]) for row in p.desc_rows if row["kind"] != plan.Kind.SYN}
    assert (plan.Kind.RED, plan.RedOp.MASK) in ops and (plan.Kind.EW, plan.EwOp.MULTISPIKE) in ops
    assert all(isinstance(op, (plan.EwOp, plan.RedOp)) for _, op in ops)


def test_plan_widths_cover_their_values():
    """The drain's word counter and pointers, the event's plane and channel fields: wide
    enough for every value the compiler's limits allow (they are sized by the limits)."""
    from spikeforge.hdl.accel.placement import MAX_COUNT, MAX_ROW_BITS, MAX_WORDS

    prog = compile_model(random_model(5, attention="linear", channels=16, levels=3), 4)
    p = plan.EnginePlan(prog)
    assert (1 << p.count_bits) > MAX_COUNT and (1 << p.addr_bits) > MAX_WORDS
    assert (1 << p.count_bits) > MAX_ROW_BITS      # a channel index of a row
    assert (1 << p.plane_field_bits) >= max(prog.spike_planes, p.pixel_bits, 16)
    syn = [q for q in prog.passes if q.kind == "syn"]
    assert (1 << p.aww) >= max(q.acc_words for q in syn) and (1 << p.iw) > prog.int_words
    assert dataclasses.is_dataclass(p.desc_fields["last_pass"])
    assert sum(f.width for f in p.desc_fields.values()) >= p.desc_size >= max(
        f.offset + f.width for f in p.desc_fields.values())


def test_elaboration_keeps_no_state_on_the_engine():
    """Elaborating sets only the documented debug view (for the simulation harness)."""
    from amaranth.back import rtlil

    from spikeforge.hdl.accel.engine import Engine

    engine = Engine(compile_model(random_model(3, channels=8), 8))
    before = set(vars(engine))
    first = rtlil.convert(engine, name="engine")
    added = set(vars(engine)) - before
    assert added <= {"debug_smem", "debug_imem", "debug_pc", "debug_events"}, added
    assert not hasattr(Engine, "_ELABORATION_STATE")
    assert rtlil.convert(engine, name="engine") == first


def test_no_accelerator_module_is_over_400_lines():
    """One concept per module (issue 19): the engine's stages live in modules of their own."""
    long = {p.name: n for p in ACCEL.glob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long
