"""cocotb testbench for test_output_registers.py: the same random writes and reads into the
netlist before (``*_pre``) and after (``*_post``) the output-register pass; every output agrees
on every cycle, and the registered reads return what a Python memory holds."""

import random

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from spikeforge.sim.cocotb_util import TB, test_parameters


@cocotb.test()
async def same_outputs_and_contents(dut):
    params = test_parameters()
    rng = random.Random(params["seed"])
    tb = TB(dut)
    await tb.start()
    mem = {}
    history = []   # per cycle: (read address, the memory's contents before the cycle's write)
    checked = 0
    for cycle in range(params["cycles"]):
        await FallingEdge(tb.clk)
        wa, ra = rng.randrange(64), rng.randrange(64)   # a small range: reads hit written words
        wd, we, en = rng.getrandbits(36), rng.random() < 0.5, rng.random() < 0.5
        if we and wa == ra:
            we = False   # a read of the word being written is undefined (the memories are no_rw_check)
        dut.wa.value, dut.ra.value, dut.wd.value = wa, ra, wd
        dut.we.value, dut.en.value = int(we), int(en)
        history.append((ra, dict(mem)))
        await RisingEdge(tb.clk)
        await ReadOnly()
        pre = {o: int(getattr(dut, f"{o}_pre").value) for o in ("q16", "q36", "qen", "qfan", "raw")}
        post = {o: int(getattr(dut, f"{o}_post").value) for o in ("q16", "q36", "qen", "qfan", "raw")}
        assert pre == post, (cycle, pre, post)
        # q16/q36 now hold the word read at the edge before: address history[-2], as it was then
        if len(history) >= 2 and cycle > 2:
            addr, contents = history[-2]
            word = contents.get(addr, 0)
            assert post["q36"] == word, (cycle, hex(post["q36"]), hex(word))
            assert post["q16"] == word & 0xFFFF
            checked += word != 0
        if we:
            mem[wa] = wd
    assert checked > params["cycles"] // 4, checked
