"""The Dask schedulers a trial can run on, chosen by name or cluster address.

``threads`` (default), ``processes``, ``sync``, ``distributed`` (a LocalCluster started for the
run) or ``tcp://HOST:PORT`` (an existing dask.distributed scheduler). ``$TUIXP_SCHEDULER`` sets
the default. Local runs use tuixp's worker pools (``pools``), so an interrupted run can stop
at once; ``num_workers`` comes from the argument, else Dask's ``num_workers`` setting,
else the number of CPUs.

On a cluster, a run that has no worker left gives up after ``worker_timeout`` seconds
(``compute(worker_timeout=...)``, ``tuixp run --worker-timeout``, ``$TUIXP_WORKER_TIMEOUT``,
default 60): its unfinished trials end ``failed`` with ``WorkersLost``; a scheduler that goes
away ends them with ``SchedulerLost`` (``ClusterWatch``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

LOCAL = ("threads", "processes", "sync")
NAMES = (*LOCAL, "distributed")
ADDRESS_PREFIXES = ("tcp://", "tls://", "inproc://", "ws://", "wss://", "ucx://")
WORKER_TIMEOUT = 60.0  # seconds a cluster run waits while the cluster has no worker

logger = logging.getLogger("tuixp")

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class SchedulerError(ValueError):
    pass


class ClusterLost(RuntimeError):
    """A trial cannot finish because the cluster it ran on went away (recorded as its error)."""


class WorkersLost(ClusterLost):
    """The cluster had no worker for longer than the run's worker timeout."""


class SchedulerLost(ClusterLost):
    """The connection to the Dask scheduler was lost: it was stopped, killed or cut off."""


@dataclass
class Scheduler:
    name: str
    kind: str  # "local" or "distributed"
    num_workers: int | None = None
    client: Any = None
    # distributed only: the event topic this process's steps publish to (steps.publish)
    channel: str | None = None
    # distributed only: how long a run waits while the cluster has no worker (seconds)
    worker_timeout: float = WORKER_TIMEOUT

    def address(self) -> str:
        """The scheduler's address (a ``distributed`` LocalCluster's too), for messages."""
        scheduler = getattr(self.client, "scheduler", None)
        return str(getattr(scheduler, "address", None) or self.name)

    def run_local(self, dsk: Any, keys: list[Any], callbacks: list[Any]) -> Any:
        """Compute ``keys`` on this local scheduler; ``callbacks`` apply to this call only."""
        if self.name == "sync":
            import dask.local

            return dask.local.get_sync(dsk, keys, callbacks=callbacks)
        workers = self.workers()
        if self.name == "threads":
            import dask.threaded

            pool = _thread_pool(workers)
            try:
                return dask.threaded.get(dsk, keys, callbacks=callbacks, pool=pool)
            except BaseException:
                # Its threads may still be inside steps: the next run gets a fresh pool, and
                # does not wait for the random generators those steps hold (capture.seed).
                _drop_thread_pool(pool)
                from tuixp.capture.seed import abandon_steps

                abandon_steps()
                raise
        import dask.multiprocessing

        from tuixp.execution.pools import abandon_process_pool, step_process_pool

        ppool = step_process_pool(workers)
        try:
            # One task a submission and no fusing: each step is its own task, so the owner's
            # callbacks see every step start and end, as they do on the other schedulers.
            values = dask.multiprocessing.get(
                dsk, keys, callbacks=callbacks, pool=ppool, chunksize=1, optimize_graph=False
            )
        except BaseException:
            abandon_process_pool(ppool)
            raise
        ppool.shutdown(wait=True)
        return values

    def workers(self) -> int:
        if self.num_workers:
            return self.num_workers
        import dask
        from dask.system import CPU_COUNT

        configured = dask.config.get("num_workers", None)
        return int(configured) if configured else CPU_COUNT


class ClusterWatch:
    """Watches the workers of a cluster run from a daemon thread, and gives up on them.

    Dask keeps a task whose workers are all gone waiting for a new worker forever (its state is
    ``no-worker``), so a run would wait forever with its trials ``running``. Once the scheduler
    has reported no worker for ``timeout`` seconds, or has not answered for as long (stopped,
    or cut off without its connection closing), the watch cancels the run's futures, so the run
    ends at once; ``reason`` then says why, for every trial that did not finish. A scheduler
    whose connection closes (killed) is reported by the client at once (``cancellation``).
    """

    def __init__(self, sched: Scheduler, futures: list[Any]) -> None:
        self.client = sched.client
        self.address = sched.address()
        self.timeout = sched.worker_timeout
        self.futures = futures
        self.reason: ClusterLost | None = None
        self.poll = min(1.0, self.timeout / 4)
        self.ask_timeout = min(5.0, self.timeout)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tuixp-cluster-watch", daemon=True)

    def __enter__(self) -> ClusterWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        # Bounded: the thread waits at most one poll, or one question to the scheduler.
        self._thread.join(timeout=self.poll + self.ask_timeout + 1)

    def workers(self) -> int | None:
        """How many workers the scheduler has now; None when it does not answer."""
        try:
            info = self.client.sync(
                self.client.scheduler.identity, n_workers=0, callback_timeout=self.ask_timeout
            )
            return int(info["n_workers"])
        except Exception:  # noqa: BLE001 - no answer, for whatever reason
            return None

    def _watch(self) -> None:
        no_worker: float | None = None  # since when the scheduler says it has no worker
        no_answer: float | None = None  # since when it has not answered
        while not self._stop.wait(self.poll):
            asked = time.monotonic()
            count = self.workers()
            now = time.monotonic()
            if count is None:
                no_answer = asked if no_answer is None else no_answer
                if now - no_answer >= self.timeout:
                    self._give_up(
                        SchedulerLost(
                            f"the Dask scheduler at {self.address} is gone: it has not answered "
                            f"for {self.timeout:g} s (the worker timeout: --worker-timeout, "
                            "worker_timeout= or $TUIXP_WORKER_TIMEOUT)"
                        )
                    )
                    return
                continue
            no_answer = None
            if count > 0:
                no_worker = None
                continue
            if no_worker is None:
                no_worker = now
                logger.warning(
                    "The cluster at %s has no worker: its unfinished trials fail in %g s "
                    "unless one joins (the worker timeout)",
                    self.address,
                    self.timeout,
                )
            if now - no_worker >= self.timeout:
                self._give_up(
                    WorkersLost(
                        f"every worker of the cluster at {self.address} is gone: it has had no "
                        f"worker for {self.timeout:g} s (the worker timeout: --worker-timeout, "
                        "worker_timeout= or $TUIXP_WORKER_TIMEOUT)"
                    )
                )
                return

    def _give_up(self, reason: ClusterLost) -> None:
        if self._stop.is_set():
            return  # the run ended meanwhile
        self.reason = reason
        pending = [f for f in self.futures if not f.done()]
        try:
            self.client.cancel(pending, reason="tuixp-gave-up", msg=str(reason))
        except Exception:  # noqa: BLE001 - a client that is gone ends the run anyway
            pass


def cancellation(future: Any, address: str, watch: ClusterWatch | None) -> BaseException:
    """Why a future of a cluster run was cancelled, in the user's words."""
    if watch is not None and watch.reason is not None:
        return watch.reason
    reason = ""
    try:
        future.result(timeout=5)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - a CancelledError (a BaseException) carries it
        reason = str(getattr(exc, "reason", "") or "")
    if reason == "scheduler-connection-lost":
        return SchedulerLost(
            f"the Dask scheduler at {address} is gone: the connection to it was lost while "
            "the trial ran (it was stopped, killed or cut off); its workers' results are lost"
        )
    return RuntimeError(
        "the task was cancelled on the cluster" + (f" (reason: {reason})" if reason else "")
    )


_pools: dict[tuple[threading.Thread, int], Any] = {}
_pools_lock = threading.Lock()


def _thread_pool(workers: int) -> Any:
    """The step thread pool of the calling thread (as Dask does: a step that runs a nested
    computation gets its own pool and never waits for a thread its caller holds)."""
    from tuixp.execution.pools import StepThreadPool

    me = threading.current_thread()
    with _pools_lock:
        for owner, n in [k for k in _pools if not k[0].is_alive()]:
            _pools.pop((owner, n)).shutdown(wait=False)
        pool = _pools.get((me, workers))
        if pool is None:
            pool = _pools[(me, workers)] = StepThreadPool(workers)
        return pool


def _drop_thread_pool(pool: Any) -> None:
    with _pools_lock:
        for k in [k for k, p in _pools.items() if p is pool]:
            del _pools[k]
    pool.shutdown(wait=False)


def resolve_name(name: str | None) -> str:
    name = name or os.environ.get("TUIXP_SCHEDULER") or "threads"
    name = name.strip()
    if name in NAMES or (name.startswith(ADDRESS_PREFIXES) and name.split("://", 1)[1]):
        return name
    raise SchedulerError(
        f"Unknown scheduler: {name!r}. Use threads, processes, sync, distributed or a "
        "cluster address like tcp://127.0.0.1:8786."
    )


def resolve_worker_timeout(seconds: float | None, where: str = "worker_timeout") -> float:
    """The worker timeout: ``seconds``, else ``$TUIXP_WORKER_TIMEOUT``, else 60; refused unless
    a positive number of seconds (``where`` names the setting in the refusal)."""
    value: Any = seconds
    if value is None:
        value = os.environ.get("TUIXP_WORKER_TIMEOUT") or None
        where = "$TUIXP_WORKER_TIMEOUT"
    if value is None:
        return WORKER_TIMEOUT
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number > 0 or number == float("inf"):  # nan, 0, negatives and inf are refused
        raise SchedulerError(
            f"Invalid {where}: {value!r}. Give the seconds a cluster run waits while it has no "
            "worker, a number above 0 (default 60)."
        )
    return number


def get_scheduler(
    name: str | None = None, num_workers: int | None = None, worker_timeout: float | None = None
) -> Scheduler:
    """The scheduler called ``name``; a cluster is connected to now, so a bad address fails here."""
    name = resolve_name(name)
    if name in LOCAL:
        if worker_timeout is not None:
            resolve_worker_timeout(worker_timeout)  # a bad value is refused everywhere
        return Scheduler(name, "local", num_workers)
    timeout = resolve_worker_timeout(worker_timeout)
    client = distributed_client(name)
    return Scheduler(name, "distributed", num_workers, client, f"tuixp-{client.id}", timeout)


def distributed_client(address: str) -> Any:
    """A Client for ``address`` (or a LocalCluster for ``distributed``), reused in this process.

    Not made the process's default: tuixp hands its graphs to this client itself, and the
    user's own dask work after a trial (``df.compute()``) stays on the scheduler it had.
    """
    with _clients_lock:
        client = _clients.get(address)
        if client is not None and client.status == "running":
            return client
        from distributed import Client

        try:
            if address == "distributed":
                from distributed import LocalCluster

                # No dashboard; the scheduler's HTTP endpoints on any free port (the default,
                # 8787, is often taken by another cluster and then only warns).
                cluster = LocalCluster(
                    n_workers=min(4, os.cpu_count() or 1),
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                    host="127.0.0.1",
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                )
                client = Client(cluster, set_as_default=False)
            else:
                # How long to wait for a cluster that does not answer: $TUIXP_CONNECT_TIMEOUT s.
                timeout = float(os.environ.get("TUIXP_CONNECT_TIMEOUT") or 10)
                client = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except (OSError, ValueError) as exc:
            raise SchedulerError(
                f"Cannot reach the Dask scheduler at {address}: {exc}. Check that it runs and "
                "that the address is right (tcp://HOST:PORT)."
            ) from exc
        _clients[address] = client
        return client


def drop_client(client: Any) -> None:
    """Forget and close a client whose scheduler is gone (the next run connects anew).

    Closed now, while it still tries to reconnect (for its connect timeout), rather than at
    interpreter exit; distributed logs the cut-short reconnection as an ERROR with a traceback,
    which says nothing the trials' SchedulerLost does not, so its client logger is quiet here.
    """
    with _clients_lock:
        for address in [a for a, c in _clients.items() if c is client]:
            del _clients[address]
    log = logging.getLogger("distributed.client")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        client.close(timeout=5)
    except Exception:  # noqa: BLE001 - it is gone either way
        pass
    finally:
        log.setLevel(level)


def close_clients() -> None:
    with _clients_lock:
        for client in _clients.values():
            try:
                cluster = client.cluster
                client.close()
                if cluster is not None:
                    cluster.close()
            except Exception:  # noqa: BLE001 - best effort at shutdown
                pass
        _clients.clear()
