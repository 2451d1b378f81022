"""Amaranth 0.5 hardware units and the accelerator generator."""
