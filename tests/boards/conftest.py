import os
import sys

# Test helpers of this folder (uart_bits.py) import by bare name.
sys.path.insert(0, os.path.dirname(__file__))
