"""Move the register after an ECP5 block RAM read into the block RAM (``REGMODE = OUTREG``).

Yosys maps every ECP5 block RAM read port with its outputs unregistered (``REGMODE NOREG``):
the data leaves the DP16KD about 5.8 ns after the clock (speed grade 6), and the route to the
next register comes on top of that. The DP16KD has an output register of its own whose data
leaves after about 1 ns. A design that registers the read data anyway (the engine's EW
operands and SYN weights do: ``Build.ew_read_regs``) loses nothing by using it: the latency is the
same, and the route then starts at a register.

:func:`absorb_output_registers` does this on a Yosys JSON netlist, between ``synth_ecp5`` and
nextpnr. It absorbs the registers of a read port only when the result is the same circuit:

- every data output of the port in use drives exactly one cell, a ``TRELLIS_FF`` on its data
  input, and no top-level port;
- each such flip-flop is a plain register: the port's clock on the same edge, always enabled,
  no set or reset, initial value 0 (the output register's value after configuration);
- the port's output register would load every cycle (``OCE`` tied to 1) and is never reset
  (``RST`` tied to 0), as Yosys maps a read port without a read reset;
- in pseudo-dual-port mode (a 36-bit read on port B, Yosys's ``$__PDPW16KD_``), all 36 outputs
  count as one port: both halves switch to ``OUTREG`` together, their output enables tied to 1.

Then the flip-flops go, the block RAM drives their outputs' nets, and its ``REGMODE`` becomes
``OUTREG``. The port's clock enable (``CE``) gates its address register only, as in NOREG mode,
so a held read holds its output either way.
"""

import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

__all__ = ["absorb_output_registers", "absorb_output_registers_file"]


def _plain_register(ff, clk):
    params, conn = ff["parameters"], ff["connections"]
    return (ff["type"] == "TRELLIS_FF"
            and conn.get("CLK") == clk
            and params.get("CLKMUX", "CLK").strip() == "CLK"
            and params.get("CEMUX", "1").strip() == "1"
            and conn.get("CE", ["1"]) == ["1"]
            and conn.get("LSR", ["0"]) == ["0"]
            and params.get("LSRMUX", "LSR").strip() == "LSR"
            and params.get("REGSET", "RESET").strip() == "RESET"
            and conn.get("M", ["0"]) in (["0"], ["x"]))


def _width(cell, port):
    value = cell["parameters"].get(f"DATA_WIDTH_{port}", "18")
    try:
        return int(value, 2) if set(value) <= {"0", "1"} and len(value) > 2 else int(value)
    except ValueError:
        return None


def absorb_output_registers(netlist):
    """Absorb read-data registers into DP16KD output registers, in place.

    Returns the absorbed read ports as ``(cell name, ports, flip-flops removed)`` tuples, where
    ``ports`` is ``"A"``, ``"B"`` or ``"AB"`` (pseudo-dual-port).
    """
    absorbed = []
    for module in netlist.get("modules", {}).values():
        cells = module.get("cells", {})
        sinks = defaultdict(list)
        for name, cell in cells.items():
            directions = cell.get("port_directions", {})
            for port, bits in cell.get("connections", {}).items():
                if directions.get(port) != "output":
                    for bit in bits:
                        if isinstance(bit, int):
                            sinks[bit].append((name, port))
        for port in module.get("ports", {}).values():
            for bit in port.get("bits", []):
                if isinstance(bit, int):
                    sinks[bit].append((None, None))

        for name, cell in list(cells.items()):
            if cell.get("type") != "DP16KD":
                continue
            conn, params = cell["connections"], cell["parameters"]
            pdp = _width(cell, "B") == 36
            for halves in (("A", "B"),) if pdp else (("A",), ("B",)):
                read = "B" if pdp else halves[0]
                if any(params.get(f"REGMODE_{h}", "NOREG") != "NOREG" for h in halves):
                    continue
                if conn.get(f"OCE{read}") != ["1"] or conn.get(f"RST{read}") != ["0"]:
                    continue
                if pdp and conn.get("RSTA") != ["0"]:
                    continue
                clk = conn.get(f"CLK{read}")
                outputs = {p: bits[0] for p, bits in conn.items()
                           if p[:3] in tuple(f"DO{h}" for h in halves) and len(bits) == 1
                           and isinstance(bits[0], int) and sinks.get(bits[0])}
                if not outputs:
                    continue
                registers = {}
                for port, bit in outputs.items():
                    users = sinks[bit]
                    if len(users) != 1 or users[0][1] != "DI" or not _plain_register(cells[users[0][0]], clk):
                        break
                    registers[port] = users[0][0]
                else:
                    if len(set(registers.values())) != len(registers):
                        continue
                    for port, ff in registers.items():
                        conn[port] = cells.pop(ff)["connections"]["Q"]
                    for h in halves:
                        params[f"REGMODE_{h}"] = "OUTREG"
                        conn[f"OCE{h}"] = ["1"]
                    absorbed.append((name, "".join(halves), len(registers)))
    return absorbed


def absorb_output_registers_file(path):
    """:func:`absorb_output_registers` on a Yosys JSON file, rewritten atomically."""
    path = Path(path)
    netlist = json.loads(path.read_text())
    absorbed = absorb_output_registers(netlist)
    if absorbed:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(netlist, f)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return absorbed
