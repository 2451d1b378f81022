"""Boards that ``spikeforge build`` can target, on top of amaranth-boards platforms.

A :class:`Target` names the amaranth-boards platform, the device name that the accelerator's
resource model (:func:`spikeforge.hdl.accel.report.analyze`) and :data:`spikeforge.boards.synth.DEVICES`
use, the board oscillator and the PLL that can derive other clocks from it, the UART and LED
resources, and how the bitstream is loaded (openFPGALoader board name, or iceprog).

=============== ================ ============ =========== ======= ==============================
name            platform         device       oscillator  PLL     UART
=============== ================ ============ =========== ======= ==============================
``icebreaker``  ICEBreaker       ice40-up5k   12 MHz      SB_PLL40_PAD  FTDI channel B (pins 6/9)
``ulx3s-85f``   ULX3S_85F        ecp5-85f     25 MHz      EHXPLLL FTDI (M1/L4)
=============== ================ ============ =========== ======= ==============================

OrangeCrab is not offered: its only host connection is USB (no UART resource), which the host
link does not speak.
"""

import importlib
from dataclasses import dataclass

__all__ = ["Target", "TARGETS", "get_target", "target_names"]


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    platform: str                 # "module:Class" in amaranth_boards
    device: str                   # key of spikeforge.boards.synth.DEVICES
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
        clock_resource="clk25", osc_mhz=25.0, default_clock_mhz=25.0, clock_range_mhz=(10.0, 400.0),
        leds=tuple(("led", i) for i in range(8)), enable_resources=(("uart_tx_enable", 0),),
        bitstream="top.bit", loader_board="ulx3s",
    ),
}


def target_names():
    return sorted(TARGETS)


def get_target(name):
    """The :class:`Target` called ``name``; ``ValueError`` naming the known boards otherwise."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown board {name!r}; supported boards: {', '.join(target_names())}") from None
