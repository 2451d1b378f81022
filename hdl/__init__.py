"""Amaranth 0.5 hardware units and the accelerator generator.

Units (each a ``wiring.Component`` with ``lib.stream`` ports, a golden function of the same
name in snake case in :mod:`spikeforge.sim.golden`, and a cost model: ``cycles(...)``,
``memory_bits()``, ``logic_estimate()``):

- :class:`~.event_encoder.SpikeEventEncoder` (``spike_event_encoder``): spike vector -> one
  ``(channel, plane)`` event per set bit (§5 bit planes); built on
  :class:`~.row_scan.RowScan`, which is also the accelerator engine's SYN scan stage.
- :class:`~.conv_window.ConvWindowScan` (``conv_window_scan``): gather addressing of a k x k
  convolution with stride and zero padding (§5); built on :class:`~.window_walk.WindowWalk`,
  which is also the loop nest of the accelerator engine's SYN generator.
- :class:`~.sparse_add.SparseAdd` (``sparse_add``): events -> weight-row additions into P
  lanes, tiled over output channels (§5); built on :class:`~.accumulate_lanes.AccumulateLanes`,
  which is also the accelerator engine's SYN accumulate stage.
- :class:`~.lif_array.LifArray` (``lif_array``): requantization + LIF / multispike /
  pass-through over P lanes (§5, §6).
- :class:`~.spike_attention.SpikeAttentionMask` (``spike_attention_mask``, §8.1) and
  :class:`~.spike_attention.SpikeAttentionLinear` (``spike_attention_linear``, §8.2).

:mod:`.generate` writes Verilog of a single unit; :mod:`.testing` has stream helpers for
async testbenches; :func:`.pack.pack` drives a wide struct port with one assignment (a port
driven field by field is slow on Icarus).
"""
