"""Seeding the process-wide random generators a step may draw from: random, numpy and torch.

These generators are global to a process, and the steps of parallel trials share them when
they run on threads (the default scheduler, or a cluster worker with several threads). So a
seed is applied under a rule (docs/python-api.md, "Seeds"):

- A step that draws from the global generators (or whose habits are not known yet) runs
  alone among the steps of its process (``exclusive``): the generators are seeded from the
  step's seed when it starts (a step inside a step gives them back to the enclosing step as it
  found them). So a trial's result does not depend on what ran beside it.
- A step seen to draw nothing from them (the first run of each step function in a process is
  exclusive, and learns it) runs beside the others (``shared``), unseeded: it draws nothing, so
  it needs no seed. If it does draw after all (a draw that depends on its input), its result
  may not reproduce: that is detected when it ends, said in a warning naming the step and in
  the trial's notes, and the step function runs exclusive from then on.
- numpy's and torch's generators are seeded when the step starts if the module is imported,
  else when the step imports it (an import hook), before the step can draw from it.
- A Python thread a step leaves running can draw between or during later steps; when the
  generators are found drawn from between steps while such a thread is alive, the warning
  names the step that started it.

What happened is returned as a small dict per step (``StepSeeding.outcome``) that travels in
the step's record to the owner of the store, which warns and writes the trial's notes.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import sys
import threading
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

logger = logging.getLogger("tuixp")

# How long a step waits at a time for the generators while another step holds them; it
# waits again after each slice (a step may hold them for hours), saying what it waits for.
WAIT_SLICE_S = 60.0


def new_seed() -> int:
    return random.SystemRandom().randrange(2**31)


def step_seed(seed: int, step_name: str) -> int:
    """The seed of one step: derived from the trial's seed and the step's name.

    Each step gets its own, so the result does not depend on the order in which parallel steps
    ran, or on which worker ran them.
    """
    return (seed + zlib.crc32(step_name.encode())) % (2**32)


# -- the generators --------------------------------------------------------------------------


def _numpy_random() -> Any:
    """numpy.random if it is imported, else None (numpy 2 imports it lazily, on first use:
    until then numpy's global generator does not exist, and the import hook seeds it).

    Through the import statement, never straight from sys.modules: there a module another
    thread is still importing is half made, and the import statement waits for that thread.
    """
    if "numpy.random" not in sys.modules:
        return None
    import numpy.random

    return numpy.random


def _torch() -> Any:
    if "torch" not in sys.modules:
        return None
    import torch  # type: ignore[import-not-found]

    return torch


def _snapshot() -> dict[str, Any]:
    """The state of each global generator of this process, by name."""
    states: dict[str, Any] = {"random": random.getstate()}
    np_random = _numpy_random()
    if np_random is not None:
        states["numpy"] = np_random.get_state(legacy=True)
    torch = _torch()
    if torch is not None:
        states["torch"] = torch.get_rng_state()
    return states


def _same_state(name: str, a: Any, b: Any) -> bool:
    if name == "numpy":
        import numpy

        return bool(a[0] == b[0] and a[2:] == b[2:] and numpy.array_equal(a[1], b[1]))
    if name == "torch":
        torch = _torch()
        return bool(torch.equal(a, b))
    return bool(a == b)


def _drawn(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The generators whose state differs between two snapshots (present in both)."""
    return [
        name
        for name in before
        if name in after and not _same_state(name, before[name], after[name])
    ]


def _restore(states: dict[str, Any]) -> None:
    random.setstate(states["random"])
    if "numpy" in states:
        _numpy_random().set_state(states["numpy"])
    if "torch" in states:
        _torch().set_rng_state(states["torch"])


def _seed_numpy(np_random: Any, seed: int) -> None:
    np_random.seed(seed % (2**32))


def _seed_all(seed: int) -> list[str]:
    """Seed every global generator of the process; the names of those seeded."""
    random.seed(seed)
    seeded = ["random"]
    np_random = _numpy_random()
    if np_random is not None:
        _seed_numpy(np_random, seed)
        seeded.append("numpy")
    torch = _torch()
    if torch is not None:
        torch.manual_seed(seed)
        seeded.append("torch")
    return seeded


# -- seeding modules a step imports ------------------------------------------------------------

# The module whose import creates each generator (numpy 2 imports numpy.random lazily).
_WATCHED = {"numpy.random": "numpy", "torch": "torch"}
_hook_lock = threading.Lock()
_hook_installed = False
_finding = threading.local()


class _SeedOnImport:
    """A meta path finder that seeds numpy's or torch's generator right after a step imports
    it, with that step's seed, before the step can draw from it.

    It finds nothing itself: it asks the finders after it, and adds a seeding call after the
    found loader runs the module (on that loader instance, made for this one import).
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname not in _WATCHED or _active.get() is None or getattr(_finding, "on", False):
            return None
        _finding.on = True
        try:
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            _finding.on = False
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:
            return spec

        def exec_and_seed(module: Any) -> None:
            exec_module(module)
            run = _active.get()
            if run is not None:
                run.imported(_WATCHED[fullname])

        try:
            loader.exec_module = exec_and_seed  # type: ignore[union-attr]
        except (AttributeError, TypeError):  # a loader that takes no attributes: seeded later
            pass
        return spec


def _install_import_hook() -> None:
    global _hook_installed
    with _hook_lock:
        if not _hook_installed:
            sys.meta_path.insert(0, _SeedOnImport())  # type: ignore[arg-type]
            _hook_installed = True
    _private_generator_for_dask()


# Modules of Dask that draw from the global ``random`` from their own threads (the event loop
# of a dask.distributed worker or of an in-process cluster) while steps run.
_DASK_MODULES = (
    "dask.sizeof",  # samples big collections to measure task outputs (random.sample)
    "distributed.comm.core",  # connection back-off
    "distributed.utils_comm",  # retry jitter
    "distributed.worker",
    "distributed.scheduler",  # work stealing, with an in-process scheduler
    "distributed.client",
)


def _private_generator_for_dask() -> None:
    """Give Dask's own draws a generator of their own.

    A dask.distributed worker measured each task's output with ``dask.sizeof``, which samples
    big collections with the global ``random.sample``, from its event loop while steps ran on
    the worker's threads, and ``distributed.protocol.compression`` samples every big message
    with the global ``random.randint``: that moved the draws of seeded steps
    (tests/test_seeding.py, the cluster case). None of them needs particular randomness.
    """
    for name in _DASK_MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "random", None) is random:
            module.random = random.Random()  # type: ignore[attr-defined]
    compression = sys.modules.get("distributed.protocol.compression")
    if compression is not None and getattr(compression, "randint", None) is random.randint:
        compression.randint = random.Random().randint  # type: ignore[attr-defined]


# -- who may use the generators now ------------------------------------------------------------


class _Gate:
    """Exclusive holds (steps that draw) and shared holds (steps that do not) of the
    generators of this process; a step inside a step (a nested computation) uses the gate
    its enclosing step opened, so it never waits for its own caller."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._holders: dict[int, str] = {}
        self.entries = 0  # holds taken so far: a step that sees no new one ran alone
        self._entered: list[str] = []  # the steps of the last holds, oldest first
        # The state the generators were left in when the last holder left, and the steps
        # that left Python threads running then (they may draw while no step holds them).
        self.left: dict[str, Any] | None = None
        self.abandoned: _Gate | None = None  # the gate of an interrupted run's steps
        self.threads_left: dict[str, list[threading.Thread]] = {}
        # Generators seen drawn from outside any step (by apply_seed, which reseeds them before
        # a trial and so hides earlier draws from the next step's look), until a step says so.
        self.drawn_outside: set[str] = set()

    def acquire(self, wants_exclusive: Callable[[], bool], step: str) -> tuple[bool, bool]:
        """Wait for the generators: (exclusive, idle), idle when no other step held them.

        ``wants_exclusive`` is asked again after each wait: a step function waiting behind
        its own first run learns from it that it draws nothing, and then runs beside others.
        """
        me = id(threading.current_thread())
        with self._cond:
            while True:
                exclusive = wants_exclusive()
                if not (self._exclusive or (exclusive and self._shared)):
                    break
                if not self._cond.wait(timeout=WAIT_SLICE_S):
                    logger.debug(
                        "step %s still waits for the global random generators, held by %s",
                        step,
                        ", ".join(sorted(set(self._holders.values()))) or "nobody",
                    )
            idle = not self._shared
            self.entries += 1
            self._entered.append(step)
            del self._entered[:-256]  # the last holds are enough to name who ran beside
            if exclusive:
                self._exclusive = True
            else:
                self._shared += 1
            self._holders[me] = step
            return exclusive, idle

    def holders(self) -> set[str]:
        with self._cond:
            return set(self._holders.values())

    def entered_since(self, entries: int) -> set[str]:
        """The steps that took a hold after the ``entries``-th."""
        with self._cond:
            n = self.entries - entries
            return set(self._entered[-n:]) if n > 0 else set()

    def release(self, exclusive: bool, left: Callable[[], dict[str, Any]]) -> None:
        with self._cond:
            self._holders.pop(id(threading.current_thread()), None)
            if exclusive:
                self._exclusive = False
            else:
                self._shared -= 1
            if not self._shared and not self._exclusive and self.threads_left:
                self.left = left()  # only looked at while a step's thread may still draw
            self._cond.notify_all()


_GATE = _Gate()
_gate_swap = threading.Lock()


def abandon_steps() -> None:
    """The steps running on this process's threads were abandoned (an interrupted run: they
    run on in daemon threads until they return). The next steps must not wait for them: they
    get a new gate, and are told if an abandoned step still holds the generators."""
    global _GATE
    with _gate_swap:
        old = _GATE
        if old.holders():
            _GATE = _Gate()
            _GATE.abandoned = old


# The gate a step running in this context must use: its enclosing step's, else the process's.
_holding: contextvars.ContextVar[_Gate | None] = contextvars.ContextVar(
    "tuixp_seed_gate", default=None
)
# The seeding of the step running in this context (for the import hook).
_active: contextvars.ContextVar[StepSeeding | None] = contextvars.ContextVar(
    "tuixp_step_seeding", default=None
)

# What each step function was seen to do, in this process: True draws, False does not.
_draws: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()
_draws_lock = threading.Lock()


def _known_to_draw(func: Any) -> bool | None:
    try:
        with _draws_lock:
            return _draws.get(func)
    except TypeError:  # not weak-referenceable: never learnt, always exclusive
        return None


def _learn(func: Any, draws: bool) -> None:
    try:
        with _draws_lock:
            _draws[func] = draws or _draws.get(func, False)
    except TypeError:
        pass


class StepSeeding:
    """The seeding of one run of one step: ``with StepSeeding(seed, step, func): func(...)``.

    ``outcome`` then says what happened, as a small JSON-able dict:
    ``mode`` (``exclusive`` or ``shared``), ``seeded`` (the generators set from ``seed``),
    ``drew`` (the generators the step changed) and, when its seed may not reproduce its
    result, ``problem`` (a sentence).
    """

    def __init__(self, seed: int, step: str, func: Any) -> None:
        self.seed = seed
        self.step = step
        self.func = func
        self.outcome: dict[str, Any] = {}
        self._seeded: list[str] = []
        self._problems: list[str] = []

    def imported(self, name: str) -> None:
        """The step just imported the module of generator ``name``: seed it now."""
        if name in self._seeded or name in self._base:
            return
        # Only this module: another one (torch, importing numpy) may be half made now.
        if name == "numpy":
            np_random = sys.modules["numpy.random"]
            _seed_numpy(np_random, self.seed)
            self._base[name] = np_random.get_state(legacy=True)
        else:
            torch = sys.modules["torch"]
            torch.manual_seed(self.seed)
            self._base[name] = torch.get_rng_state()
        self._seeded.append(name)

    @contextlib.contextmanager
    def held(self) -> Iterator[StepSeeding]:
        """Hold the generators (exclusive or shared) for the whole step; waits for them."""
        _install_import_hook()
        enclosing = _holding.get()
        self._nested = enclosing is not None
        self._gate = enclosing or _GATE
        self._exclusive, self._idle = self._gate.acquire(
            lambda: _known_to_draw(self.func) is not False, self.step
        )
        self._beside = self._gate.holders()
        self._entries = self._gate.entries
        try:
            yield self
        finally:
            self._gate.release(self._exclusive, _snapshot)

    def __enter__(self) -> StepSeeding:
        """Seed the generators as the step's function starts (inside ``held``)."""
        abandoned = self._gate.abandoned.holders() if self._gate.abandoned else set()
        if abandoned:
            self._problems.append(
                f"step(s) {', '.join(sorted(abandoned))} of an interrupted run still run in "
                "this process and can draw from the global generators during this step"
            )
        # A snapshot costs ~10-50 µs (numpy copies its state): taken only when it is used.
        seeds = self._exclusive or self._idle
        watch = self._idle and bool(self._gate.threads_left)
        found = _snapshot() if self._nested or watch or not seeds else None
        if watch and found is not None:
            self._check_between_steps(found)
        self._found = found
        self._threads = set(threading.enumerate())
        # A shared step that finds no other holder is seeded too: alone (sync, processes, a
        # one-thread worker) it then reproduces even when it draws after all.
        if seeds:
            self._seeded = _seed_all(self.seed)
            self._base = _snapshot()
        else:
            self._base = found or {}
        self._tokens = (_holding.set(_Gate()), _active.set(self))
        return self

    def _check_between_steps(self, found: dict[str, Any]) -> None:
        """Generators changed while no step held them, with a thread a step left running."""
        gate = self._gate
        drawn = _drawn_outside(gate, found)
        gate.drawn_outside.clear()
        if drawn:
            steps = sorted(gate.threads_left)
            names = sorted({t.name for threads in gate.threads_left.values() for t in threads})
            self._problems.append(
                f"the {', '.join(drawn)} generator(s) were drawn from outside any step, while "
                f"thread(s) {', '.join(names)} started by step(s) {', '.join(steps)} still ran: "
                "their draws can fall inside this step's and change its result"
            )

    def __exit__(self, *exc: object) -> None:
        _active.reset(self._tokens[1])
        _holding.reset(self._tokens[0])
        end = _snapshot()
        try:
            drew = _drawn(self._base, end)
            if self._exclusive:
                # Alone, a generator that appeared unseeded was imported by this step (by a
                # loader the import hook could not wrap): it drew, or may have, unseeded.
                unseeded = [n for n in end if n not in self._base and n not in self._seeded]
                drew += unseeded
                if unseeded:
                    self._problems.append(
                        f"it imported {', '.join(unseeded)} in a way tuixp could not seed; "
                        "import it before the trial starts"
                    )
            left = [t for t in threading.enumerate() if t not in self._threads and t.is_alive()]
            left = [t for t in left if not t.name.startswith("tuixp-step-")]
            if left:
                self._gate.threads_left[self.step] = left
            alone = self._idle and self._gate.entries == self._entries
            if drew and not self._exclusive and not alone:
                beside = self._beside | self._gate.entered_since(self._entries)
                beside = {name for name in beside if name != self.step}
                self._problems.append(
                    f"the global {', '.join(drew)} generator(s) were drawn from while it ran "
                    "beside other steps"
                    + (f" ({', '.join(sorted(beside))})" if beside else "")
                    + ", by it or by them; its earlier runs in this process drew nothing, so "
                    "it was not run alone: it runs alone from now on"
                )
            _learn(self.func, bool(drew))
            self.outcome = {
                "seed": self.seed,
                "mode": "exclusive" if self._exclusive else "shared",
                "seeded": list(self._seeded),
                "drew": drew,
            }
            if self._problems:
                self.outcome["problem"] = "; ".join(self._problems)
        finally:
            # A step inside a step gives the generators back to its enclosing step as it
            # found them; at the top the next step seeds them anyway.
            if self._exclusive and self._found is not None:
                _restore({k: v for k, v in self._found.items() if k in end})


def _drawn_outside(gate: _Gate, found: dict[str, Any]) -> list[str]:
    """The generators drawn from since the last holder left (``found`` is their state now),
    while a thread a step left running is alive, with those seen so before; forgets the threads
    that ended."""
    alive = {
        step: [t for t in threads if t.is_alive()] for step, threads in gate.threads_left.items()
    }
    gate.threads_left = {step: threads for step, threads in alive.items() if threads}
    if gate.left is None or not gate.threads_left:
        gate.drawn_outside.clear()
        return []
    drawn = set(_drawn(gate.left, found)) | gate.drawn_outside
    return [name for name in found if name in drawn]


def apply_seed(seed: int) -> None:
    """Seed this process's generators (outside steps: before a local run, as daskperiment did).

    Inside a step it does nothing: the generators belong to the running step there. Outside, it
    waits until no step holds them, so a step running in another thread keeps its draws.
    """
    if _active.get() is not None:
        return
    gate = _GATE
    gate.acquire(lambda: True, "apply_seed")
    try:
        # Seeding resets the state the next step compares with: remember draws made before it.
        gate.drawn_outside.update(_drawn_outside(gate, _snapshot()))
        _seed_all(seed)
    finally:
        gate.release(True, _snapshot)


# -- what the owner of the store says about it ---------------------------------------------------


def seeding_problem(outcome: dict[str, Any] | None) -> str | None:
    return None if not outcome else outcome.get("problem")


def seeding_notes(steps: Iterable[tuple[str, dict[str, Any] | None]]) -> list[str]:
    """The trial's notes on its seed, from each step's (name, outcome).

    ``seeded: fit (numpy, torch), split (random)`` lists the steps that drew from the global
    generators, each with the generators it drew from, all seeded from the trial's seed; steps
    that drew nothing need no seed and are not listed. A step whose result may not reproduce
    gets its own note, ``seed not reproducible: STEP: why``.
    """
    seeded: dict[str, list[str]] = {}
    notes = []
    for step, outcome in steps:
        if not outcome:
            continue
        problem = outcome.get("problem")
        if problem:
            notes.append(f"seed not reproducible: {step}: {problem}")
        elif outcome.get("drew"):
            drew = seeded.setdefault(step, [])
            drew += [g for g in outcome["drew"] if g not in drew]
    if seeded:
        notes.insert(
            0, "seeded: " + ", ".join(f"{s} ({', '.join(g)})" for s, g in sorted(seeded.items()))
        )
    return notes
