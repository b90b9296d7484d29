"""The Dask schedulers a trial can run on, chosen by name or cluster address.

``threads`` (default), ``processes``, ``sync``, ``distributed`` (a LocalCluster started for the
run) or ``tcp://HOST:PORT`` (an existing dask.distributed scheduler). ``$TUIXP_SCHEDULER`` sets
the default. Local runs use tuixp's worker pools (``pools``), so an interrupted run can stop
at once; ``num_workers`` comes from the argument, else Dask's ``num_workers`` setting,
else the number of CPUs.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

LOCAL = ("threads", "processes", "sync")
NAMES = (*LOCAL, "distributed")
ADDRESS_PREFIXES = ("tcp://", "tls://", "inproc://", "ws://", "wss://", "ucx://")

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class SchedulerError(ValueError):
    pass


@dataclass
class Scheduler:
    name: str
    kind: str  # "local" or "distributed"
    num_workers: int | None = None
    client: Any = None
    # distributed only: the event topic this process's steps publish to (steps.publish)
    channel: str | None = None

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


def get_scheduler(name: str | None = None, num_workers: int | None = None) -> Scheduler:
    """The scheduler called ``name``; a cluster is connected to now, so a bad address fails here."""
    name = resolve_name(name)
    if name in LOCAL:
        return Scheduler(name, "local", num_workers)
    client = distributed_client(name)
    return Scheduler(name, "distributed", num_workers, client, f"tuixp-{client.id}")


def distributed_client(address: str) -> Any:
    """A Client for ``address`` (or a LocalCluster for ``distributed``), reused in this process."""
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
                client = Client(cluster)
            else:
                # How long to wait for a cluster that does not answer: $TUIXP_CONNECT_TIMEOUT s.
                timeout = float(os.environ.get("TUIXP_CONNECT_TIMEOUT") or 10)
                client = Client(address, timeout=f"{timeout}s")
        except (OSError, ValueError) as exc:
            raise SchedulerError(
                f"Cannot reach the Dask scheduler at {address}: {exc}. Check that it runs and "
                "that the address is right (tcp://HOST:PORT)."
            ) from exc
        _clients[address] = client
        return client


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
