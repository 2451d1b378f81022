"""Shared check of a synthesized ULX3S top's SDRAM pins (test_sdram_pins.py, test_sdram_top.py)."""


def assert_sdram_pins_bound(mod):
    """``mod``: the top module of Yosys's JSON after synth_ecp5. Every SDRAM signal of
    amaranth-boards' resource is a port, DQ is 16 inout bits in 16 BIDIR I/O cells; returns the
    module's cells."""
    ports = set(mod["ports"])
    for name in ("clk", "clk_en", "cs", "we", "ras", "cas", "ba", "a", "dqm", "dq"):
        assert any(p.startswith(f"sdram_0__{name}") for p in ports), (name, sorted(ports))
    assert mod["ports"]["sdram_0__dq__io"]["direction"] == "inout"
    assert len(mod["ports"]["sdram_0__dq__io"]["bits"]) == 16
    cells = list(mod["cells"].values())
    bidir = [c for c in cells if c["type"] == "TRELLIS_IO" and c["parameters"]["DIR"] == "BIDIR"]
    assert len(bidir) == 16                        # DQ: the tristate pins, nothing else
    return cells
