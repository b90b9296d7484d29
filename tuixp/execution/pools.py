"""Worker pools for the local schedulers, made so that Ctrl-C ends a run at once.

Dask's own pools would keep the process alive after an interrupt until every running step
returns: ``concurrent.futures`` joins its threads at exit and ``dask.multiprocessing`` waits for
its processes. A step can run for hours, so tuixp hands Dask pools it can let go of: daemon
threads that the interpreter does not wait for, and a process pool whose children are
terminated when the run is interrupted.
"""

from __future__ import annotations

import contextvars
import os
import queue
import signal
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any


class StepThreadPool(Executor):
    """A thread pool of daemon threads, one per call of a local run.

    Like Dask's ``ContextAwareThreadPoolExecutor`` it runs each task in a copy of the submitting
    thread's context; unlike it, nothing joins its threads at exit.
    """

    def __init__(self, max_workers: int) -> None:
        if max_workers < 1:
            raise ValueError("A pool needs at least one thread")
        self._max_workers = max_workers
        self._work: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._closed:
            raise RuntimeError("submit after shutdown")
        future: Future[Any] = Future()
        self._work.put((future, contextvars.copy_context(), fn, args, kwargs))
        if not self._idle.acquire(blocking=False):
            with self._lock:
                if len(self._threads) < self._max_workers:
                    thread = threading.Thread(
                        target=self._serve, daemon=True, name=f"tuixp-step-{len(self._threads)}"
                    )
                    self._threads.append(thread)
                    thread.start()
        return future

    def _serve(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            future, ctx, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(ctx.run(fn, *args, **kwargs))
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting scheduler
                    future.set_exception(exc)
            del item, future, ctx, fn, args, kwargs
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the threads go; with ``wait=False`` a step still running is simply abandoned."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()


def _init_step_process() -> None:
    from dask.multiprocessing import initialize_worker_process

    initialize_worker_process()
    # Ctrl-C reaches the whole process group; the owner decides what it means (it records the
    # trials as interrupted and then terminates this process), so the child must not die first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def step_process_pool(max_workers: int) -> ProcessPoolExecutor:
    """A process pool set up as ``dask.multiprocessing`` would set up its own."""
    from dask.multiprocessing import get_context

    # As Dask does: the same string hashing in every child, so tokens agree across processes.
    if os.environ.get("PYTHONHASHSEED") in (None, "0"):
        os.environ["PYTHONHASHSEED"] = "6640"
    return ProcessPoolExecutor(
        max_workers, mp_context=get_context(), initializer=_init_step_process
    )


def abandon_process_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a process pool now, terminating children that still run a step."""
    # ProcessPoolExecutor has no public way to stop a running call; its children are listed in
    # ``_processes`` (stable since Python 3.2, still there in 3.13).
    children = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for child in children:
        if child.is_alive():
            child.terminate()
    for child in children:
        child.join(timeout=5)
