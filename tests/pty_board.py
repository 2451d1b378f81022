"""Serve a Python board model on the master side of a pseudo-terminal (shared test helper)."""

import os
import select


def serve_pty(master, board, stop):
    """Answer every chunk read from ``master`` with ``board(chunk)`` until ``stop`` is set."""
    while not stop.is_set():
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            reply = board(data)
            if reply:
                os.write(master, reply)
