"""The Dask schedulers a trial can run on, chosen by name or cluster address.

``threads`` (default), ``processes``, ``sync``, ``distributed`` (a LocalCluster started for the
run) or ``tcp://HOST:PORT`` (an existing dask.distributed scheduler). ``$TUIXP_SCHEDULER`` sets
the default.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LOCAL = ("threads", "processes", "sync")
NAMES = (*LOCAL, "distributed")

_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class SchedulerError(ValueError):
    pass


@dataclass
class Scheduler:
    name: str
    kind: str  # "local" or "distributed"
    get: Callable[..., Any]
    client: Any = None


def resolve_name(name: str | None) -> str:
    name = name or os.environ.get("TUIXP_SCHEDULER") or "threads"
    if name in NAMES or name.startswith(("tcp://", "tls://", "inproc://", "ws://", "wss://")):
        return name
    raise SchedulerError(
        f"Unknown scheduler: {name!r}. Use threads, processes, sync, distributed or a "
        "cluster address like tcp://127.0.0.1:8786."
    )


def get_scheduler(name: str | None = None, num_workers: int | None = None) -> Scheduler:
    name = resolve_name(name)
    if name == "threads":
        import dask.threaded

        def get(dsk: Any, keys: Any, callbacks: Any = None) -> Any:
            return dask.threaded.get(dsk, keys, callbacks=callbacks, num_workers=num_workers)

        return Scheduler(name, "local", get)
    if name == "sync":
        import dask.local

        def get_sync(dsk: Any, keys: Any, callbacks: Any = None) -> Any:
            return dask.local.get_sync(dsk, keys, callbacks=callbacks)

        return Scheduler(name, "local", get_sync)
    if name == "processes":
        import dask.multiprocessing

        def get_mp(dsk: Any, keys: Any, callbacks: Any = None) -> Any:
            return dask.multiprocessing.get(dsk, keys, callbacks=callbacks, num_workers=num_workers)

        return Scheduler(name, "local", get_mp)
    client = distributed_client(name)
    return Scheduler(name, "distributed", client.get, client)


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

                cluster = LocalCluster(
                    n_workers=min(4, os.cpu_count() or 1), threads_per_worker=1,
                    processes=True, dashboard_address=None, host="127.0.0.1",
                )
                client = Client(cluster)
            else:
                client = Client(address, timeout="10s")
        except OSError as exc:
            raise SchedulerError(f"Cannot reach the Dask scheduler at {address}: {exc}") from exc
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
