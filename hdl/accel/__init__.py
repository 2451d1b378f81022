"""The accelerator generator: model file to a complete engine (docs/accelerator.md)."""
