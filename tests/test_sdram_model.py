"""The SDRAM model against the datasheet's command rules: for each rule a hand-written legal
sequence that passes and the same sequence one cycle short that must raise, naming the rule."""

import dataclasses

import pytest

from spikeforge.hdl.sdram_timing import (ULX3S_SDRAM, read_schedule, sequential_bandwidth,
                                         split_address)
from spikeforge.sim.sdram_model import SdramModel, SdramRuleError, decode, encode

#: distinct values so each rule is the only one a one-cycle shift can break
T = dataclasses.replace(ULX3S_SDRAM.timing(100e6, 3), rcd=2, rp=3, ras=5, rc=10, rfc=8, wr=2,
                        rrd=3, mrd=2, power_up=20, refi=200, ras_max=150)
A10 = 1 << 10


def run(seq, *, skip_init=True, timing=T, until=None):
    """Step a model through ``seq`` [(cycle, name, pins)], NOP in every other cycle; return the
    model and {cycle: word driven}."""
    model = SdramModel(timing, skip_init=skip_init)
    at = {}
    for c, name, kw in seq:
        at.setdefault(c, []).append((name, kw))
    end = max(at) + 1 if until is None else until
    out = {}
    for c in range(end):
        name, kw = at.get(c, [("NOP", {})])[0]
        word = model.step(cmd=name, **kw)
        if word is not None:
            out[c] = word
    return model, out


def legal_and_short(make, rule, legal_gap):
    """``make(gap)`` is a sequence; it passes at ``legal_gap`` and raises ``rule`` at one less."""
    run(make(legal_gap))
    with pytest.raises(SdramRuleError, match=rule):
        run(make(legal_gap - 1))


def test_trcd():
    legal_and_short(lambda g: [(0, "ACT", {"ba": 1, "a": 7}), (g, "READ", {"ba": 1})], "tRCD", T.rcd)
    legal_and_short(lambda g: [(0, "ACT", {}), (g, "WRITE", {"dq_oe": 1})], "tRCD", T.rcd)


def test_trp():
    legal_and_short(lambda g: [(0, "ACT", {}), (20, "PRE", {}), (20 + g, "ACT", {})], "tRP", T.rp)
    legal_and_short(lambda g: [(0, "ACT", {}), (20, "PRE", {"a": A10}), (20 + g, "REF", {})],
                    "tRP", T.rp)


def test_tras():
    legal_and_short(lambda g: [(0, "ACT", {"ba": 2}), (g, "PRE", {"ba": 2})], "tRAS", T.ras)


def test_tras_max():
    run([(0, "ACT", {}), (T.ras_max, "PRE", {})])
    with pytest.raises(SdramRuleError, match="tRAS max"):
        run([(0, "ACT", {}), (T.ras_max + 1, "PRE", {})])


def test_trc():
    # PRECHARGE at tRAS, ACTIVE tRC after the first: tRP long met, only tRC binds
    legal_and_short(lambda g: [(0, "ACT", {}), (T.ras, "PRE", {}), (g, "ACT", {})], "tRC", T.rc)


def test_trrd():
    legal_and_short(lambda g: [(0, "ACT", {"ba": 0}), (g, "ACT", {"ba": 3})], "tRRD", T.rrd)


def test_twr():
    legal_and_short(lambda g: [(0, "ACT", {}), (10, "WRITE", {"dq_oe": 1}), (10 + g, "PRE", {})],
                    "tWR", T.wr)


def test_tmrd():
    legal_and_short(lambda g: [(0, "MRS", {"a": T.cl << 4}), (g, "ACT", {})], "tMRD", T.mrd)


def test_trfc():
    legal_and_short(lambda g: [(0, "REF", {}), (g, "ACT", {})], "tRFC", T.rfc)
    legal_and_short(lambda g: [(0, "REF", {}), (g, "REF", {})], "tRFC", T.rfc)


def test_refresh_interval():
    # a refresh at refi after the last passes; none by refi + 1 raises
    model, _ = run([(T.refi, "REF", {}), (2 * T.refi, "REF", {})])
    assert model.refreshes == [T.refi, 2 * T.refi]
    with pytest.raises(SdramRuleError, match="refresh interval"):
        run([(T.refi + 1, "REF", {})])


def test_read_write_closed_row():
    run([(0, "ACT", {}), (T.rcd, "READ", {})])
    with pytest.raises(SdramRuleError, match="READ to a closed row"):
        run([(0, "ACT", {"ba": 0}), (T.rcd, "READ", {"ba": 1})])
    with pytest.raises(SdramRuleError, match="WRITE to a closed row"):
        run([(0, "ACT", {}), (10, "PRE", {}), (20, "WRITE", {"dq_oe": 1})])


def test_bank_state_rules():
    with pytest.raises(SdramRuleError, match="ACTIVE to an open bank"):
        run([(0, "ACT", {}), (20, "ACT", {})])
    with pytest.raises(SdramRuleError, match="AUTO REFRESH with a bank open"):
        run([(0, "ACT", {"ba": 2}), (20, "REF", {})])
    with pytest.raises(SdramRuleError, match="LOAD MODE with a bank open"):
        run([(0, "ACT", {}), (20, "MRS", {"a": T.cl << 4})])


def _init(pre_at, second_ref=True):
    seq = [(pre_at, "PRE", {"a": A10}), (pre_at + T.rp, "REF", {})]
    c = pre_at + T.rp + T.rfc
    if second_ref:
        seq.append((c, "REF", {}))
        c += T.rfc
    seq += [(c, "MRS", {"a": T.cl << 4}), (c + T.mrd, "ACT", {})]
    return seq


def test_init_sequence():
    model, _ = run(_init(T.power_up), skip_init=False)
    assert model.init_done
    with pytest.raises(SdramRuleError, match="power-up wait"):
        run(_init(T.power_up - 1), skip_init=False)
    with pytest.raises(SdramRuleError, match=r"init sequence .*missing: 2 AUTO REFRESH"):
        run(_init(T.power_up, second_ref=False), skip_init=False)
    with pytest.raises(SdramRuleError, match="init sequence"):
        run([(T.power_up, "ACT", {})], skip_init=False)


def test_message_names_rule_cycle_bank_times():
    with pytest.raises(SdramRuleError) as e:
        run([(3, "ACT", {"ba": 2, "a": 5}), (4, "READ", {"ba": 2})])
    assert str(e.value) == ("SDRAM tRCD violated at cycle 4: bank 2: ACTIVE at cycle 3, "
                            "1 cycles ago; needs >= 2 cycles")


def test_cas_latency_and_data():
    """Write words, read them back: each comes exactly CL cycles after its READ; dqm masks bytes."""
    seq = [(0, "ACT", {"ba": 1, "a": 9})]
    seq += [(2 + k, "WRITE", {"ba": 1, "a": k, "dq": 0x1111 * (k + 1), "dq_oe": 1}) for k in range(3)]
    seq += [(5, "WRITE", {"ba": 1, "a": 0, "dq": 0xABCD, "dq_oe": 1, "dqm": 0b10})]  # low byte only
    seq += [(8 + k, "READ", {"ba": 1, "a": k}) for k in range(3)]
    model, out = run(seq, until=20)
    assert out == {8 + T.cl: 0x11CD, 9 + T.cl: 0x2222, 10 + T.cl: 0x3333}
    assert model.word((9 * 4 + 1) * 512 + 1) == 0x2222     # {row, bank, column} layout
    assert split_address(ULX3S_SDRAM, (9 * 4 + 1) * 512 + 1) == (1, 9, 1)


def test_bursts_of_four():
    """BL4: one READ gives 4 words wrapping within the aligned 4; a new READ cuts the burst."""
    mrs = (0, "MRS", {"a": 2 | T.cl << 4})
    seq = [mrs, (2, "ACT", {})] + [(4 + k, "WRITE", {"a": 4 * k, "dq": 10 + k, "dq_oe": 1})
                                   for k in range(2)]
    # the first WRITE's burst is cut by the second; its word 0 only; the second's rest masked
    masked = [(6 + k, "NOP", {"dqm": 3}) for k in range(3)]
    model, _ = run(seq + masked + [(10, "WRITE", {"a": 9, "dq": 1, "dq_oe": 1})] +
                   [(11 + k, "NOP", {"dq": 2 + k, "dq_oe": 1}) for k in range(3)], until=20)
    assert [model.word(k) for k in range(12)] == [10, 0, 0, 0, 11, 0, 0, 0, 4, 1, 2, 3]
    with pytest.raises(SdramRuleError, match="write data"):   # a burst word not driven
        run(seq[:3] + [(5, "NOP", {})], until=8)
    model, out = run([mrs, (2, "ACT", {}), (4, "WRITE", {"a": 8, "dq": 5, "dq_oe": 1}),
                      (5, "NOP", {"dq": 6, "dq_oe": 1}), (6, "NOP", {"dq": 7, "dq_oe": 1}),
                      (7, "NOP", {"dq": 8, "dq_oe": 1}), (9, "READ", {"a": 10}),
                      (11, "READ", {"a": 8})], until=20)
    c = T.cl
    assert out == {9 + c: 7, 10 + c: 8, 11 + c: 5, 12 + c: 6, 13 + c: 7, 14 + c: 8}


def test_data_bus_contention():
    seq = [(0, "ACT", {}), (2, "READ", {})]
    run(seq + [(3 + T.cl, "WRITE", {"dq_oe": 1})])
    with pytest.raises(SdramRuleError, match="data bus"):
        run(seq + [(2 + T.cl, "WRITE", {"dq_oe": 1})])


def test_unmodeled_commands_raise():
    with pytest.raises(SdramRuleError, match="auto precharge"):
        run([(0, "ACT", {}), (2, "READ", {"a": A10})])
    with pytest.raises(SdramRuleError, match="CAS latency"):
        run([(0, "MRS", {"a": 2 << 4})])


def test_pins_decode():
    for name in ("NOP", "ACT", "READ", "WRITE", "PRE", "REF", "MRS"):
        assert decode(*encode(name)) == name
    assert decode(1, 0, 0, 0) == "DESL"


def test_ulx3s_timing_values():
    """The datasheet ns at 50 MHz (20 ns cycle) and 100 MHz (10 ns)."""
    t = ULX3S_SDRAM.timing(50e6, 2)
    assert (t.rcd, t.rp, t.ras, t.rc, t.rfc, t.wr, t.rrd, t.mrd) == (1, 1, 3, 4, 4, 2, 1, 2)
    assert (t.refi, t.power_up) == (390, 10_000)
    t = ULX3S_SDRAM.timing(100e6, 3)
    assert (t.rcd, t.rp, t.ras, t.rc, t.rfc, t.wr, t.rrd, t.refi) == (2, 2, 5, 7, 7, 2, 2, 781)
    with pytest.raises(ValueError, match="CAS latency 2; allowed: <= 1e"):
        ULX3S_SDRAM.timing(133e6, 2)
    with pytest.raises(ValueError, match="cas_latency is 4; allowed: 2, 3"):
        ULX3S_SDRAM.timing(50e6, 4)


def test_bandwidth_model_matches_schedule():
    """The closed-form bandwidth equals the schedule's over a long read (many rows, refreshes)."""
    t = ULX3S_SDRAM.timing(50e6, 2)
    n = 200_000
    reads = [c for c, cmd in read_schedule(t, 0, n, since_ref=0) if cmd == "READ"]
    bw, _ = sequential_bandwidth(t)
    assert len(reads) == n
    assert abs(n / (reads[-1] + 1) - bw) < 0.002
