"""The Dask client of the campaigns (``spikeforge sweep``, ``spikeforge verify``).

:func:`open_client` connects to a user's scheduler (``--scheduler tcp://host:8786``: workers
started elsewhere with ``dask worker tcp://host:8786``, each with spikeforge and its tools
installed) or starts a :class:`distributed.LocalCluster` on this machine: one worker process
per core (a build or a Verilator run is one process), one task at a time each, no dashboard
(it would need bokeh). A worker that dies (killed, out of memory) is replaced by its nanny and
its task runs again elsewhere (Dask's ``allowed-failures``: up to 3 times, then
:class:`distributed.KilledWorker`, which the campaigns record as the task's failure).
"""

import contextlib
import logging
import os

__all__ = ["DEFAULT_WORKERS", "ClusterError", "open_client", "describe"]

#: how long to try to reach a user's scheduler
CONNECT_TIMEOUT = "10s"
#: workers of the local cluster: one per core
DEFAULT_WORKERS = max(1, os.cpu_count() or 1)


class ClusterError(RuntimeError):
    """The scheduler cannot be reached, or the options do not go together; one line."""


@contextlib.contextmanager
def open_client(scheduler=None, *, workers=None, processes=True):
    """A :class:`distributed.Client`: of ``scheduler`` (an address) when given, else of a new
    local cluster of ``workers`` processes (default :data:`DEFAULT_WORKERS`; ``processes=False``:
    threads of this process, for tests that patch a function). Closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if workers is not None:
            raise ClusterError("--workers sizes the local cluster; with --scheduler the workers are the "
                             "scheduler's (start more with `dask worker ADDRESS`)")
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            why = " ".join(str(e).split()) or type(e).__name__
            raise ClusterError(f"--scheduler {scheduler}: cannot connect ({why}); "
                               "check the address (tcp://HOST:8786) and that the scheduler runs") from None
        with client:
            yield client
        return
    n = DEFAULT_WORKERS if workers is None else workers
    # No dashboard; the scheduler's own HTTP server (health, metrics) on a free port: on its
    # default 8787 a second cluster on the machine (another sweep, a parallel test) gets a
    # "port in use" warning.
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": ":0"},
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


def describe(client):
    """``"local cluster, 2 workers"`` / ``"tcp://host:8786, 16 workers"``."""
    n = len(client.nthreads())
    cluster = getattr(client, "cluster", None)
    where = "local cluster" if cluster is not None else client.scheduler.address
    return f"{where}, {n} worker" + ("" if n == 1 else "s")
