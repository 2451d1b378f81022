"""spikeforge: quantized spike-driven transformers to bit-exact FPGA accelerators.

The integer specification is ``docs/spec.md``; :mod:`spikeforge.sim.golden` executes it.
"""

from .graph import Model, ModelError, Node
from .modelfile import load_model, save_model

__all__ = ["Model", "ModelError", "Node", "load_model", "save_model", "__version__"]
__version__ = "0.1.0"
