"""Where chunks of work run: in this process (default), a local Dask cluster, or a remote one.

Training, the permutation null and prediction split their work into independent chunks
(genes for training, cells for prediction). :func:`open_executor` returns an
:class:`Executor` whose :meth:`Executor.map_ordered` runs a function on each chunk and yields
the results **in chunk order**, whichever worker finished first - so whatever gathers or
writes them produces the same bytes with any executor. Scheduling, retries and data transfer
are Dask's (``dask.distributed``); we only bound how many chunks are in flight, so the driver
never holds more than a few chunks of input and output at once.

Kinds (``params.yaml`` ``executor.kind``):

* ``inprocess`` - a plain loop in this process; numba and BLAS keep their usual threads.
* ``local`` - a ``distributed.LocalCluster`` of ``n_workers`` processes with
  ``threads_per_worker`` threads each, started and closed here.
* ``address`` - connect to a running scheduler (``tcp://host:8786``), e.g. one started with
  ``dask scheduler`` / ``dask worker`` or by dask-jobqueue / dask-kubernetes. The workers
  must have this package installed (same version); inputs travel with the tasks, so no
  shared filesystem is needed.

On Dask workers each task limits numba and BLAS to the worker's threads per task (1 by
default), so ``n_workers`` x ``threads_per_worker`` never oversubscribes the cores.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import ClassVar

from ephys2expr.errors import InputError, one_line
from ephys2expr.settings import Settings, setting

log = logging.getLogger("ephys2expr")

EXECUTOR_KINDS = ("inprocess", "local", "address")
# Address schemes of a Dask scheduler (distributed's comm backends reachable by address).
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss")


@dataclass
class ExecutorSettings(Settings):
    """Where chunks run (``params.yaml`` ``executor:``, shared by train and predict).

    Prediction's tasks are its ``predict.chunk_cells`` (one Parquet row group each, so the
    bytes do not depend on the executor); ``gene_chunk`` sizes training's tasks.
    """

    SECTION: ClassVar[str] = "executor"

    kind: str = setting("inprocess", "inprocess | local (a Dask LocalCluster) | address")
    n_workers: int = setting(2, "local only: worker processes")
    threads_per_worker: int = setting(
        1, "threads of each local worker, and the numba/BLAS threads of each Dask task"
    )
    address: str = setting("", "address only: the Dask scheduler, e.g. tcp://host:8786")
    gene_chunk: int = setting(0, "genes per training task (0 = all at once); same results")

    def check(self) -> None:
        self.kind = self.kind.strip().lower()
        if self.kind not in EXECUTOR_KINDS:
            raise InputError(f"{self.where('kind')}: {self.kind!r} is not one of {EXECUTOR_KINDS}")
        if self.kind == "address" and not self.address.strip():
            raise InputError(f"{self.where('address')}: kind 'address' needs a scheduler address")
        if self.kind == "address":
            self._check_address()
        for key in ("n_workers", "threads_per_worker"):
            if getattr(self, key) < 1:
                raise InputError(f"{self.where(key)}: {getattr(self, key)} must be >= 1")
        if self.gene_chunk < 0:
            raise InputError(f"{self.where('gene_chunk')}: {self.gene_chunk} is negative")

    def _check_address(self) -> None:
        """A Dask scheduler address: ``[tcp|tls|ws|wss://]host:port`` (not a file or URL)."""
        from urllib.parse import urlsplit

        address = self.address.strip()
        where = self.where("address")
        scheme, sep, rest = address.partition("://")
        if not sep:
            scheme, rest = "tcp", address
        if scheme.lower() not in SCHEDULER_SCHEMES:
            raise InputError(
                f"{where}: {address!r} is not a Dask scheduler address (scheme {scheme!r}; "
                f"use one of {list(SCHEDULER_SCHEMES)}, e.g. tcp://host:8786)"
            )
        try:
            parts = urlsplit(f"{scheme}://{rest}")
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = None
        if parts is None or not parts.hostname or parts.path not in ("", "/"):
            raise InputError(
                f"{where}: {address!r} is not a Dask scheduler address (expected host:port, "
                "e.g. tcp://host:8786)"
            )
        self.address = address


def _limited_call(fn: Callable, threads: int, args: tuple):
    """Run ``fn(*args)`` with numba and BLAS limited to ``threads`` (on a Dask worker)."""
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    with threadpool_limits(limits=threads):
        return fn(*args)


class Executor:
    """Runs a function over chunks; results come back in chunk order.

    Use :func:`open_executor` (a context manager) rather than this class directly.
    """

    def __init__(self, settings: ExecutorSettings, client=None):
        self.settings = settings
        self.client = client

    @property
    def n_workers(self) -> int:
        """Workers that can run chunks at the same time (1 in-process)."""
        if self.client is None:
            return 1
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def share(self, obj):
        """``obj`` sent once to every worker (a Dask future to pass as a task argument)."""
        if self.client is None:
            return obj
        return self.client.scatter(obj, broadcast=True, hash=False)

    def map_ordered(
        self,
        fn: Callable,
        chunks: Iterable[tuple],
        *,
        what: str = "chunk",
        total=None,
        max_in_flight: int | None = None,
    ) -> Iterator:
        """Yield ``fn(*args)`` for each ``args`` of ``chunks``, in order.

        ``chunks`` is consumed lazily: at most ``max_in_flight`` chunks (default twice the
        workers) have been submitted and not yet yielded, which bounds the memory the driver
        and the cluster spend on pending inputs and results. ``fn`` must be importable
        (a module-level function) for Dask to send it to the workers.
        """
        start = time.perf_counter()
        done = 0

        def progress():
            elapsed = time.perf_counter() - start
            of = f"/{total}" if total else ""
            log.info("%s %d%s done (%.1f s elapsed)", what, done, of, elapsed)

        if self.client is None:
            for args in chunks:
                yield fn(*args)
                done += 1
                progress()
            return
        limit = max_in_flight or 2 * self.n_workers
        threads = self.settings.threads_per_worker
        pending: collections.deque = collections.deque()
        it = iter(chunks)
        exhausted = False
        while True:
            while not exhausted and len(pending) < limit:
                try:
                    args = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending.append(self.client.submit(_limited_call, fn, threads, args, pure=False))
            if not pending:
                return
            fut = pending.popleft()
            result = fut.result()
            fut.release()
            yield result
            done += 1
            progress()


@contextlib.contextmanager
def open_executor(settings: ExecutorSettings | None = None) -> Iterator[Executor]:
    """Start (``local``) or connect to (``address``) Dask, or run in-process; close at the end."""
    settings = settings or ExecutorSettings()
    if settings.kind == "inprocess":
        yield Executor(settings)
        return
    from distributed import Client, LocalCluster

    if settings.kind == "local":
        log.info(
            "starting a Dask LocalCluster: %d worker processes x %d thread(s)",
            settings.n_workers,
            settings.threads_per_worker,
        )
        with (
            LocalCluster(
                n_workers=settings.n_workers,
                threads_per_worker=settings.threads_per_worker,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield Executor(settings, client)
        return
    log.info("connecting to the Dask scheduler at %s", settings.address)
    try:
        client = Client(settings.address, timeout="30s")
    except (OSError, TimeoutError, ValueError, MemoryError) as err:
        # MemoryError: a server that is not a Dask scheduler answered the handshake with
        # bytes read as a huge frame length
        why = one_line(str(err))[:200] or type(err).__name__
        raise InputError(
            f"params.yaml executor.address: cannot reach a Dask scheduler at "
            f"{settings.address!r} ({type(err).__name__}: {why})"
        ) from None
    with client:
        yield Executor(settings, client)


def chunk_slices(n: int, size: int) -> list[slice]:
    """Consecutive slices of ``size`` (all of ``n`` at once when ``size`` is 0)."""
    if n == 0:
        return []
    size = n if size <= 0 else size
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


__all__ = ["EXECUTOR_KINDS", "Executor", "ExecutorSettings", "chunk_slices", "open_executor"]
