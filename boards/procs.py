"""Tool processes (Yosys, nextpnr, the packers) that end when spikeforge ends.

:func:`run` starts a tool in its own session (so its process group holds the tool and whatever
it starts) and kills that group with SIGKILL when the tool outlives the call: a timeout, an
exception, a signal. :func:`guard` installs handlers for SIGINT, SIGTERM and SIGHUP (those not
ignored: ``nohup`` keeps working) that kill every running tool's group at once and raise
:class:`Interrupted`; an ``atexit`` hook kills them on any other exit of the interpreter. A signal
sent to spikeforge's pid alone (as ``timeout`` and job runners do) therefore ends the tools too;
a signal to spikeforge's group does not reach the tools directly (their own session) but the
handler ends them the same way. Only SIGKILL of spikeforge itself leaves them running.

:func:`deferred` is a critical section: a signal arriving inside it kills the tools but raises
:class:`Interrupted` only at its end (used to publish a build's outputs as one set).
"""

import atexit
import contextlib
import os
import signal
import subprocess
import threading
import time

__all__ = ["Interrupted", "run", "guard", "deferred", "kill_all", "running"]

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))

_live = {}            # pid -> Popen of tools running now
_spawning = 0         # inside Popen: a signal must not raise before the new pid is known
_critical = 0         # inside deferred()
_pending = None       # a signal number that arrived while raising was not allowed


class Interrupted(KeyboardInterrupt):
    """spikeforge got SIGINT, SIGTERM or SIGHUP; the tools it ran are already killed.
    ``signum`` is the signal; the conventional exit status is ``128 + signum``."""

    def __init__(self, signum):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")


def running():
    """The pids of the tools running now."""
    return sorted(_live)


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_all():
    """SIGKILL the process group of every tool running now (safe in a signal handler)."""
    for proc in list(_live.values()):
        _kill_group(proc)


atexit.register(kill_all)


def _handler(signum, frame):
    global _pending
    kill_all()
    if _spawning or _critical:
        _pending = signum
        return
    raise Interrupted(signum)


def _raise_pending():
    global _pending
    if _pending is not None and not _spawning and not _critical:
        signum, _pending = _pending, None
        raise Interrupted(signum)


@contextlib.contextmanager
def guard():
    """While inside: SIGINT, SIGTERM and SIGHUP kill the running tools and raise
    :class:`Interrupted`. Only in the main thread (elsewhere a no-op); a signal that is ignored
    stays ignored; nested use is fine."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for sig in _SIGNALS:
        old = signal.getsignal(sig)
        if old in (signal.SIG_IGN, None) or old is _handler:
            continue
        saved[sig] = old
        signal.signal(sig, _handler)
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def deferred():
    """A section that a signal does not cut short: it kills the tools at once but raises
    :class:`Interrupted` when the section ends."""
    global _critical
    _critical += 1
    try:
        yield
    finally:
        _critical -= 1
    _raise_pending()


def run(cmd, *, cwd=None, env=None, stdout=None, stderr=None, capture_output=False, text=False, timeout=None,
        tick=None):
    """Run ``cmd`` like :func:`subprocess.run` (returns a :class:`subprocess.CompletedProcess`,
    raises :class:`subprocess.TimeoutExpired` after ``timeout`` seconds), in its own session,
    its process group killed if the call ends before the tool. ``tick(seconds)`` is called about
    every 5 s while it runs."""
    global _spawning
    if capture_output:
        stdout = stderr = subprocess.PIPE
    _spawning += 1
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout, stderr=stderr, text=text,
                                start_new_session=True)
        _live[proc.pid] = proc
    finally:
        _spawning -= 1
    t0 = time.monotonic()
    try:
        _raise_pending()
        out = err = None
        while True:
            left = None if timeout is None else timeout - (time.monotonic() - t0)
            if left is not None and left <= 0:
                raise subprocess.TimeoutExpired(cmd, timeout)
            try:
                out, err = proc.communicate(timeout=5 if left is None else min(5, left))
                break
            except subprocess.TimeoutExpired:
                if tick is not None:
                    tick(time.monotonic() - t0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    finally:
        _kill_group(proc)     # the tool if still running, and anything it left in its group
        if proc.poll() is None:
            proc.wait()
        _live.pop(proc.pid, None)
