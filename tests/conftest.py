import os
import sys

# tests/reference.py and other shared test helpers import by bare name.
sys.path.insert(0, os.path.dirname(__file__))
