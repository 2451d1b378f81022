"""PyTorch model family, quantization-aware training and export.

Modules (all need ``torch``, the ``torch`` extra):

- :mod:`.config`: :class:`~.config.ModelConfig` (dataclass, JSON), validated at construction.
- :mod:`.functional`, :mod:`.lsq`, :mod:`.neurons`, :mod:`.layers`, :mod:`.network`: the float
  fake-quant model :class:`~.network.SpikeTransformer` (LIF with sigmoid surrogate, QSD
  multi-level neuron with STE, V1 mask / V2 linear / QSD attention, spiking MLP, conv patch
  embedding, position-embedding branch, membrane shortcuts, pool + neuron + linear head).
- :mod:`.export`: BN + LSQ folding into the spec's requantization; :func:`~.export.export_model`.
- :mod:`.integer`: :func:`~.integer.evaluate`, the spec in torch ``int64`` (independent of
  the NumPy golden model).
- :mod:`.train`: :func:`~.train.train` on the digits split; :mod:`.cli`: ``spikeforge train``.

**The common fixed point.** Every requantized tensor (each ``conv`` and ``pool`` output) and
the residual stream use one fixed point: a real value ``x`` is the integer
``round_half_up(x * 2**frac_bits)`` saturated to signed ``act_bits`` bits (defaults
``frac_bits = 6``, ``act_bits = 12``: step 1/64, range -32 .. 32 - 1/64). Because both inputs
of every ``add`` share it, the membrane shortcut is a plain saturating integer addition (§7),
and neuron thresholds are ``round(theta * 2**frac_bits)`` (the default ``theta = 1.0`` is 64).
Attention outputs ``Q (K^T V)`` are exact integers (fixed point 2**0). The float model runs on
these grids in its forward pass (rounding half up, LIF leak as floor), so its only difference
from the integer model is the rounding of the folded multipliers (``mult_bits = 16``).
"""
