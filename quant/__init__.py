"""PyTorch model family, quantization-aware training and export."""
