"""The devices and boards spikeforge knows: plain descriptions, read by every layer above.

A :class:`Device` is an FPGA: its family, the nextpnr and Yosys options of the synthesis flow
(:mod:`spikeforge.boards.synth`) and its totals of LUTs, flip-flops, block RAMs, SPRAMs and
multipliers (the analytic fit check, :mod:`spikeforge.hdl.accel.report`).

A :class:`Target` is a board that ``spikeforge build`` can target, on top of an amaranth-boards
platform: the platform, its device (a key of :data:`DEVICES`), the board oscillator and the PLL
that can derive other clocks from it, the UART and LED resources, and how the bitstream is
loaded (openFPGALoader board name, or iceprog).

=============== ================ ============ =========== ======= ==============================
name            platform         device       oscillator  PLL     UART
=============== ================ ============ =========== ======= ==============================
``icebreaker``  ICEBreaker       ice40-up5k   12 MHz      SB_PLL40_PAD  FTDI channel B (pins 6/9)
``ulx3s-85f``   ULX3S_85F        ecp5-85f     25 MHz      EHXPLLL FTDI (M1/L4)
=============== ================ ============ =========== ======= ==============================

OrangeCrab is not offered: its only host connection is USB (no UART resource), which the host
link does not speak.

:data:`LINK_LOGIC` is what a board build adds around the engine (the host link), counted by
the one fit check of ``info``, ``generate`` and ``build``.

This module is layer L0 (docs/architecture.md): it imports nothing of spikeforge.
"""

import importlib
from dataclasses import dataclass

__all__ = ["Device", "DEVICES", "Target", "TARGETS", "get_target", "target_names", "LINK_LOGIC"]


@dataclass(frozen=True)
class Device:
    name: str
    family: str  # "ice40" or "ecp5"
    nextpnr_args: tuple
    synth_command: str
    totals: dict  # lut, ff, bram, spram, dsp available on the device
    #: 16-bit words of SDRAM beside the device on its board (0: none): the ``sdram`` weight
    #: mapping (docs/sdram.md). The ECP5-85F's is the ULX3S's 32 MB, its one board here.
    sdram_words: int = 0


DEVICES = {
    "ice40-up5k": Device(
        "ice40-up5k", "ice40", ("--up5k", "--package", "sg48"), "synth_ice40 -dsp",
        {"lut": 5280, "ff": 5280, "bram": 30, "spram": 4, "dsp": 8},
    ),
    "ecp5-25f": Device(
        "ecp5-25f", "ecp5", ("--25k", "--package", "CABGA381"), "synth_ecp5",
        {"lut": 24288, "ff": 24288, "bram": 56, "spram": 0, "dsp": 28},
    ),
    "ecp5-85f": Device(
        "ecp5-85f", "ecp5", ("--85k", "--package", "CABGA381"), "synth_ecp5",
        {"lut": 83640, "ff": 83640, "bram": 208, "spram": 0, "dsp": 156}, sdram_words=16 * 1024 * 1024,
    ),
}


# The UART host link, its result adapter and the LED logic around the engine, less the
# engine's cycle and event counters that the board top does not read (Yosys on ice40-up5k,
# the shipped model's system with weight loading, 3,620 LUTs and 2,400 flip-flops, less the
# engine alone, 2,990 and 2,134).
LINK_LOGIC = {"lut": 630, "ff": 270}


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    platform: str                 # "module:Class" in amaranth_boards
    device: str                   # key of DEVICES
    family: str                   # "ice40" or "ecp5"
    clock_resource: str           # board oscillator resource
    osc_mhz: float                # its frequency
    default_clock_mhz: float      # clock used when --clock is not given
    clock_range_mhz: tuple        # clocks the PLL (or the oscillator) can give, (lo, hi)
    uart: str = "uart"            # UART resource (number 0)
    leds: tuple = ()              # (resource, number) pairs, in display order
    enable_resources: tuple = ()  # (resource, number) pairs driven high (e.g. ULX3S uart_tx_enable)
    bitstream: str = "top.bin"    # file name of the bitstream in Amaranth's build folder
    loader_board: str = ""        # openFPGALoader -b argument
    iceprog: bool = False         # iceprog can program it (iCE40 boards with an FTDI flasher)
    default_lanes: int = 8        # engine lanes when --lanes is not given

    def make_platform(self):
        """A fresh amaranth-boards platform instance."""
        module, cls = self.platform.split(":")
        return getattr(importlib.import_module(module), cls)()


TARGETS = {
    "icebreaker": Target(
        name="icebreaker", description="1BitSquared iCEBreaker (Lattice iCE40UP5K-SG48)",
        platform="amaranth_boards.icebreaker:ICEBreakerPlatform", device="ice40-up5k", family="ice40",
        clock_resource="clk12", osc_mhz=12.0, default_clock_mhz=24.0, clock_range_mhz=(16.0, 275.0),
        leds=(("led", 0), ("led", 1)), bitstream="top.bin", loader_board="ice40_generic", iceprog=True,
        default_lanes=1,
    ),
    "ulx3s-85f": Target(
        name="ulx3s-85f", description="Radiona ULX3S with LFE5U-85F (Lattice ECP5)",
        platform="amaranth_boards.ulx3s:ULX3S_85F_Platform", device="ecp5-85f", family="ecp5",
        # 50 MHz by default (a PLL from the 25 MHz oscillator): the default 8-lane build of the
        # shipped model places and routes at 104.3 MHz against it, mnist's 8-lane build at
        # 79.3 MHz (static placer, seed 1); at 25 MHz the engine bounded the board to about
        # 1,500 images/s, half what the link carries at 3 Mbaud.
        clock_resource="clk25", osc_mhz=25.0, default_clock_mhz=50.0, clock_range_mhz=(10.0, 400.0),
        leds=tuple(("led", i) for i in range(8)), enable_resources=(("uart_tx_enable", 0),),
        bitstream="top.bit", loader_board="ulx3s",
    ),
}


#: nextpnr placers a build may ask for (``--placer``).
PLACERS = ("heap", "static")

#: The placer of a build that names none, per family. On the ECP5 the electrostatic placer
#: (``static``) packs the engine's logic far less densely around the block RAM rows: the
#: 28x28 ``mnist`` model at 8 lanes (126 DP16KD) did not route after heap placement
#: (router2 still had about 3,500 overused wires after 16 iterations, seeds 1 and 2), and
#: after static placement its wire length was 116 k against 260 k and it routed at 79 MHz.
DEFAULT_PLACER = {"ice40": "heap", "ecp5": "static"}


def check_placer(placer):
    """``placer`` if the build flow knows it (None: the family's default), else ValueError."""
    if placer is not None and placer not in PLACERS:
        raise ValueError(f"placer is {placer!r}; allowed: {', '.join(PLACERS)}")
    return placer


def target_names():
    return sorted(TARGETS)


def get_target(name):
    """The :class:`Target` called ``name``; ``ValueError`` naming the known boards otherwise."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown board {name!r}; supported boards: {', '.join(target_names())}") from None
