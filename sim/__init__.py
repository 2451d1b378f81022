"""Golden model (NumPy) and simulator runners."""
