"""Running the chunk function on a scheduler: in a loop, on threads, or on dask.distributed.

``scheduler="synchronous"`` runs the chunks one after the other in this process, ``"threads"``
on a pool of threads; otherwise they go to a dask.distributed cluster: a LocalCluster of worker
processes by default, or the scheduler at a given address. Models and each band's static inputs
are scattered to the workers once; a few tasks are in flight at a time.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from fluxbridge.errors import ClusterError
from fluxbridge.upscaling.chunks import Chunk, Model, Shipped, run_chunk, run_chunk_shipped

log = logging.getLogger(__name__)


def _worker_threads(n_workers: int) -> int:
    """Task threads of each LocalCluster worker: its share of the cores."""
    return max(1, _cpu_count() // n_workers)


def _cpu_count() -> int:
    """Cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def quiet_cluster_logs() -> Iterator[None]:
    """Raise dask.distributed's loggers to WARNING, unless fluxbridge logs at DEBUG (--debug).

    The scheduler and nannies of a LocalCluster run in this process and log their start,
    connections and shutdown at INFO through the root logger's handlers.
    """
    if logging.getLogger("fluxbridge").isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in ("distributed", "bokeh", "tornado")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(logging.WARNING, lg.getEffectiveLevel()))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextlib.contextmanager
def open_client(scheduler: str | None, n_workers: int) -> Iterator[Any]:
    """A dask.distributed client: the given address or a LocalCluster, closed on exit.

    A LocalCluster has ``n_workers`` processes sharing the cores as task threads, each task's
    forward pass on one torch thread: two chunks in flight overlap one's reading and writing
    with the other's forward pass, which one chunk on two torch threads cannot.
    """
    from dask.distributed import Client, LocalCluster

    with quiet_cluster_logs():
        if scheduler is None:
            with LocalCluster(n_workers=n_workers, threads_per_worker=_worker_threads(n_workers),
                              processes=True,
                              dashboard_address=None, silence_logs=logging.WARNING) as cluster, \
                    Client(cluster) as client:
                yield client
        else:
            with Client(scheduler) as client:
                yield client


def task_result(future: Any) -> Any:
    """The result of a dask.distributed task; a worker that died running it, or a scheduler
    that went away, raises one :class:`~fluxbridge.errors.ClusterError` line.

    Raises
    ------
    ClusterError
        When the cluster lost the task (errors raised by the task itself pass unchanged).
    """
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    try:
        return future.result()
    except KilledWorker as exc:
        worker = getattr(getattr(exc, "last_worker", None), "address", "a worker")
        problem = f"dask worker {worker} died while computing chunk {future.key}"
    except (CommClosedError, concurrent.futures.CancelledError) as exc:
        problem = (f"lost the dask scheduler while computing chunk {future.key} "
                   f"({type(exc).__name__})")
    raise ClusterError(f"{problem}; the chunks finished are kept: run the command again to "
                       "resume (see the workers' logs for why)")


def execute(jobs: list[tuple[Chunk, dict[str, Any]]], members: Sequence[Model],
             scheduler: str | None, n_workers: int, bar: Any, client: Any = None) -> None:
    """Run :func:`run_chunk` for every job on the chosen scheduler (or the given client)."""
    if not jobs:
        return
    if scheduler == "synchronous":
        for _, kw in jobs:
            run_chunk(members, **kw)
            bar.update()
        return
    if scheduler == "threads":
        with concurrent.futures.ThreadPoolExecutor(max_workers=n_workers) as pool:
            futures = [pool.submit(run_chunk, members, **kw) for _, kw in jobs]
            for fut in concurrent.futures.as_completed(futures):
                fut.result()
                bar.update()
        return
    from dask.distributed import as_completed

    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(open_client(scheduler, n_workers))
        log.debug("upscaling on dask.distributed at %s", client.scheduler.address)
        # our LocalCluster's tasks share this machine's cores; a remote cluster's are its own
        threads = 1 if scheduler is None else None
        shipped = client.scatter(list(members), broadcast=True)
        statics: dict[int, Any] = {}  # band weights and areas: scattered once, not per task

        def submit(kw: dict[str, Any]) -> Any:
            kw = dict(kw)
            for key in ("weights", "land_area"):
                if id(kw[key]) not in statics:
                    statics[id(kw[key])] = client.scatter(Shipped(kw[key]))
                kw[key] = statics[id(kw[key])]
            with warnings.catch_warnings():
                # predictors held in memory travel inside their chunk's task; a file-backed
                # chunk travels as its file name and indices
                warnings.filterwarnings("ignore", message="Sending large graph")
                return client.submit(run_chunk_shipped, shipped, pure=False, threads=threads,
                                     **kw)

        # a few tasks in flight at a time: what waits at the scheduler does not grow with the
        # record length
        todo = iter(kw for _, kw in jobs)
        slots = sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values())
        window = 2 * max(n_workers, slots) + 1
        running = as_completed([submit(kw) for kw in itertools.islice(todo, window)])
        for fut in running:
            task_result(fut)
            bar.update()
            nxt = next(todo, None)
            if nxt is not None:
                running.add(submit(nxt))
