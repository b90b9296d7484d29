"""The Python API: Experiment, parameters, step decorators and the trial lifecycle.

Kept from daskperiment: the names, the history columns and the error messages. Changed: a trial
runs only when ``.compute()`` (or ``tuixp run``) asks; calling a step builds a lazy node.
"""

from __future__ import annotations

import keyword
import logging
import os
import socket
import sys
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tuixp import errors, purity
from tuixp.cache import CacheEntry, DataFile, StepCache, cache_key, data_hash, token
from tuixp.capture.code import function_source, script_source
from tuixp.capture.environment import (
    capture_environment,
    capture_packages,
    changed_distributions,
    code_imports,
    imported_distributions,
)
from tuixp.capture.git import capture_git
from tuixp.capture.hashing import canonical_json, text_hash
from tuixp.capture.seed import apply_seed, new_seed
from tuixp.execution import steps as steps_mod
from tuixp.execution.events import Listener
from tuixp.execution.recorder import TrialRecorder
from tuixp.execution.steps import StepFailure, StepOutput, TrialContext
from tuixp.store.db import Store, get_store
from tuixp.trial.world import StateFile, unified

logger = logging.getLogger("tuixp")

_NO_DEFAULT = object()
EXPERIMENTS: list["Experiment"] = []  # every Experiment made in this process (tuixp run finds them)
GOALS = (None, "min", "max")  # which result is best: lowest, highest, or not said
PURITY_LOAD_WAIT_S = 10.0  # at most this long a trial's end waits to read earlier outputs
_node_counter = iter(range(1, 1 << 62))
_node_lock = threading.Lock()


def _next_index() -> int:
    with _node_lock:
        return next(_node_counter)


class _Undefined:
    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED = _Undefined()


class Lazy:
    """What parameters and step outputs share with ``dask.delayed`` objects.

    Operators, attribute access and calls build graph nodes (``a + 1``, ``d.sum()``), and the
    dask collection protocol lets ``dask.compute``, ``dask.delayed(f)(node)`` and
    ``dask.visualize`` take them. Computing a node whose graph holds a step through dask runs
    a recorded trial, exactly as ``.compute()`` does.
    """

    ex: "Experiment"

    def __getattr__(self, attr: str) -> Any:
        # Private names and the node's own attributes (missing while unpickling) are never
        # lazy: pickle, copy and IPython probe for them.
        if attr.startswith("_") or attr in ("ex", "step", "args", "kwargs", "index", "name"):
            raise AttributeError(attr)
        return _op(self, "getattr", getattr, (self, attr))

    def __call__(self, *args: Any, **kwargs: Any) -> "Node":
        return _op(self, "call", _call, (self, args, kwargs))

    def __bool__(self) -> bool:
        raise TypeError(
            f"The truth of {self!r} is not known until it is computed: use .compute(), or "
            "branch inside a step"
        )

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(f"{self!r} cannot be iterated before it is computed")

    __hash__ = object.__hash__

    # -- the dask collection protocol ------------------------------------------------------
    def _dask_key(self) -> str:
        raise NotImplementedError

    def __dask_graph__(self) -> Any:
        from dask._task_spec import Task

        key = self._dask_key()
        return {key: Task(key, _Computed(self))}

    @property
    def dask(self) -> Any:
        """The dask graph (as ``Delayed.dask``): one task that computes this node."""
        return self.__dask_graph__()

    def __dask_keys__(self) -> list[str]:
        return [self._dask_key()]

    def __dask_layers__(self) -> tuple[str]:
        return (self._dask_key(),)

    def __dask_tokenize__(self) -> str:
        return self._dask_key()

    def __dask_postcompute__(self) -> tuple[Callable[..., Any], tuple[()]]:
        return _first, ()

    def __dask_postpersist__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return _rebuild, (self._dask_key(),)

    @staticmethod
    def __dask_optimize__(dsk: Any, keys: Any, **kwargs: Any) -> Any:
        return dsk

    @staticmethod
    def __dask_scheduler__(dsk: Any, keys: Any, **kwargs: Any) -> Any:
        import dask.threaded

        return dask.threaded.get(dsk, keys, **kwargs)

    def _plain(self) -> Any:
        """This graph as a plain dask Delayed: steps unrecorded, parameters read at compute."""
        return _plain_delayed(self)

    def visualize(self, filename: str = "mydask", format: str | None = None, **kwargs: Any) -> Any:
        """Draw the graph (parameters need no value yet); needs graphviz, as dask's does."""
        return self._plain().visualize(filename=filename, format=format, **kwargs)


def _first(results: Any) -> Any:
    return results[0]


def _rebuild(dsk: Any, key: str) -> Any:
    from dask.delayed import Delayed

    return Delayed(key, dsk)


def _call(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return func(*args, **kwargs)


def _op(first: Lazy, name: str, func: Callable[..., Any], args: tuple[Any, ...]) -> "Node":
    """A graph node applying ``func`` (an operator) to ``args``; computed, not recorded."""
    return Node(first.ex, _OpStep(first.ex, name, func), args, {})


class _Computed:
    """The one task of a node's dask graph: compute the node (a trial when it has a step)."""

    def __init__(self, node: Lazy) -> None:
        self.node = node

    def __call__(self) -> Any:
        return self.node.compute()  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"compute({self.node!r})"


class ParamNode(Lazy):
    """A placeholder for a parameter; its value is set per trial. Like daskperiment's
    ``Parameter``: ``.compute()`` gives its current value, operators build graph nodes."""

    def __init__(self, ex: "Experiment", name: str, default: Any) -> None:
        self.ex, self.name, self.default = ex, name, default

    def __repr__(self) -> str:
        value = self.ex._current_value(self.name)
        if value is UNDEFINED:
            return f"Parameter({self.name}: Undefined)"
        return f"Parameter({self.name}: {value}{type(value)})"

    def _dask_key(self) -> str:
        return f"{self.name}-param-{self.ex.id}"

    def compute(self, **kwargs: Any) -> Any:
        """The parameter's current value (set, else its default); undefined raises."""
        value = self.ex._current_value(self.name)
        if value is UNDEFINED:
            raise errors.ParameterUndefinedError(
                "Parameters are not defined. Use Experiment.set_parameters to initialize: "
                + self.name
            )
        return value


class Node(Lazy):
    """A lazy call of a step: ``.compute()`` runs a trial of the graph that ends here."""

    def __init__(
        self, ex: "Experiment", step: "Step", args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        self.ex, self.step, self.args, self.kwargs = ex, step, args, kwargs
        self.index = _next_index()

    def __repr__(self) -> str:
        return f"Node({self.step.name}, #{self.index})"

    @property
    def key(self) -> str:
        return f"{self.step.name}-{self.index}"

    def _dask_key(self) -> str:
        return self.key

    def compute(
        self,
        seed: int | None = None,
        scheduler: str | None = None,
        listeners: Iterable[Listener] = (),
        cache: bool = True,
        worker_timeout: float | None = None,
        **params: Any,
    ) -> Any:
        """Run one trial and return its result; a failing step's exception is re-raised.

        ``cache=False`` computes every step, even cached ones whose inputs did not change.
        ``worker_timeout``: on a cluster, how many seconds to wait while it has no worker
        before the trial fails (default ``$TUIXP_WORKER_TIMEOUT``, else 60).
        """
        if not any(n.step.kind != "op" for n in _nodes(self)):
            # Only operators on parameters (``(a + 1).compute()``): no step, so no trial.
            return self._plain().compute(scheduler="sync")
        outcome = self.ex._run(
            self,
            [params] if params else [{}],
            seed,
            scheduler,
            list(listeners),
            cache,
            worker_timeout,
        )[0]
        if outcome.status != "succeeded":
            if outcome.error is not None:
                raise outcome.error
            raise KeyboardInterrupt
        return outcome.result

    def compute_grid(
        self,
        grid: Mapping[str, Iterable[Any]] | None = None,
        /,
        seed: int | None = None,
        scheduler: str | None = None,
        listeners: Iterable[Listener] = (),
        cache: bool = True,
        worker_timeout: float | None = None,
        **lists: Iterable[Any],
    ) -> list["TrialOutcome"]:
        """One trial per point of the grid, all in one Dask computation.

        ``s.compute_grid(a=[1, 2], b=[0.1, 0.2])`` runs four trials; parameters not in the grid
        keep their ``set_parameters`` values. A failing point fails only its own trial. A
        parameter named like a keyword here (``seed``, ``scheduler``, ...) goes in the mapping:
        ``s.compute_grid({"seed": [1, 2]}, b=[0.1])``. ``worker_timeout`` as in ``compute``.
        """
        both = sorted(set(grid or {}) & set(lists))
        if both:
            raise errors.ParameterError(
                f"Grid parameter {both[0]!r} is given twice: in the mapping and as a keyword"
            )
        return self.ex._run(
            self,
            grid_points({**(grid or {}), **lists}),
            seed,
            scheduler,
            list(listeners),
            cache,
            worker_timeout,
        )

    def to_delayed(self) -> Any:
        """A plain dask Delayed of this graph with the current parameters (records nothing)."""
        import dask

        values = self.ex._values({})
        memo: dict[int, Any] = {}

        def conv(x: Any) -> Any:
            if isinstance(x, ParamNode):
                return values[x.name]
            if isinstance(x, Node):
                if x.index not in memo:
                    memo[x.index] = dask.delayed(x.step.func, name=x.key, pure=False)(
                        *[conv(a) for a in x.args], **{k: conv(v) for k, v in x.kwargs.items()}
                    )
                return memo[x.index]
            if isinstance(x, (list, tuple)):
                return type(x)(conv(i) for i in x)
            if isinstance(x, dict):
                return {k: conv(v) for k, v in x.items()}
            return x

        return conv(self)


def _size(path: Any) -> int | None:
    try:
        return int(os.path.getsize(path))
    except OSError:
        return None


def _leaves(x: Any) -> Iterator[Any]:
    """Everything inside a step's arguments that is not a list, tuple or dict."""
    if isinstance(x, (list, tuple)):
        for i in x:
            yield from _leaves(i)
    elif isinstance(x, dict):
        for i in x.values():
            yield from _leaves(i)
    else:
        yield x


def _children(n: Node) -> list[Node]:
    return [x for x in _leaves([n.args, n.kwargs]) if isinstance(x, Node)]


def _nodes(root: Node) -> list[Node]:
    """Every step call of the graph ending at ``root`` (each once)."""
    seen: dict[int, Node] = {}
    stack = [root]
    while stack:
        n = stack.pop()
        if n.index not in seen:
            seen[n.index] = n
            stack.extend(_children(n))
    return list(seen.values())


def _data_files(root: Node) -> list[str]:
    found = (
        str(x) for n in _nodes(root) for x in _leaves([n.args, n.kwargs]) if isinstance(x, DataFile)
    )
    return list(dict.fromkeys(found))


def _substitute(root: Node, values: dict[int, Any]) -> Any:
    """A copy of the graph where the nodes in ``values`` are replaced by those values."""
    memo: dict[int, Any] = {}

    def conv(x: Any) -> Any:
        if isinstance(x, Node):
            if x.index in values:
                return values[x.index]
            if x.index not in memo:
                copy = Node(
                    x.ex,
                    x.step,
                    tuple(conv(a) for a in x.args),
                    {k: conv(v) for k, v in x.kwargs.items()},
                )
                memo[x.index] = copy
            return memo[x.index]
        if isinstance(x, list):
            return [conv(i) for i in x]
        if isinstance(x, tuple):
            return tuple(conv(i) for i in x)
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x

    return conv(root)


def grid_points(grid: dict[str, Iterable[Any]]) -> list[dict[str, Any]]:
    import itertools

    names = list(grid)
    values = [list(v) for v in grid.values()]
    if any(not v for v in values):
        raise errors.ParameterError("Every grid parameter needs at least one value")
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


class Step:
    """A decorated function: calling it builds a lazy ``Node``; ``.func`` is the plain function."""

    def __init__(
        self, ex: "Experiment", func: Callable[..., Any], kind: str, cache: bool = False
    ) -> None:
        self.ex, self.func, self.kind, self.cache = ex, func, kind, cache
        self.name = func.__name__
        self.source, self.source_readable = function_source(func)
        self.__wrapped__ = func
        self.__doc__ = func.__doc__
        self.__name__ = func.__name__

    def __call__(self, *args: Any, **kwargs: Any) -> Node:
        node = Node(self.ex, self, args, kwargs)
        if self.kind == "result":
            _result_built(node)
        return node

    def __repr__(self) -> str:
        return f"<tuixp {self.kind} {self.name}>"


# Result nodes built while ``tuixp run`` loads a script (assigned to a variable or not: a
# daskperiment script ends with a bare ``calculate_score(d)``); None when nobody collects.
_collecting: list[Node] | None = None
# A plain ``python script.py``: the last result node it built, and whether a trial ran.
_script_hint: dict[str, Any] = {"node": None, "ran": False, "registered": False}


class collect_results:
    """``with collect_results() as built:`` gathers the result nodes built inside."""

    def __enter__(self) -> list[Node]:
        global _collecting
        self._saved, _collecting = _collecting, []
        return _collecting

    def __exit__(self, *exc: Any) -> None:
        global _collecting
        _collecting = self._saved


def _result_built(node: Node) -> None:
    if _collecting is not None:
        _collecting.append(node)
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or _main_script() is None or os.path.basename(path) == "tuixp":
        return  # a notebook, a REPL, pytest or the tuixp command: no hint
    _script_hint["node"] = node
    if not _script_hint["registered"]:
        import atexit

        _script_hint["registered"] = True
        atexit.register(_hint_at_exit, path, list(sys.argv[1:]))


def _hint_at_exit(path: str, argv: list[str]) -> None:
    """daskperiment ran a trial when a script called its result step; tuixp does not (so an
    import or a test never starts one): say how, once, when the script ran none."""
    node = _script_hint["node"]
    if node is None or _script_hint["ran"]:
        return
    args = " ".join(argv) or " ".join(f"{n}=VALUE" for n in node.ex._params)
    script = os.path.basename(path)
    sys.stderr.write(
        f"tuixp: {script} built the result {node.step.name}(...) but ran no trial: run one "
        f"with `tuixp run {script} {args}`".rstrip()
        + f", or call .compute() on the result node ({node.step.name}(...).compute())\n"
    )


class _OpStep(Step):
    """An operator or attribute access on parameters and outputs (``a + 1``): part of the
    graph, never registered as a step, so it has no code, record or cache of its own."""

    def __init__(self, ex: "Experiment", name: str, func: Callable[..., Any]) -> None:
        self.ex, self.func, self.kind, self.cache = ex, func, "op", False
        self.name = name
        self.source, self.source_readable = f"<operator {name}>", True
        self.__wrapped__ = func
        self.__doc__ = None
        self.__name__ = name


def _bind_operators() -> None:
    """Give Lazy the operators dask.delayed objects have; each builds an operator node."""
    import operator

    def binary(name: str, func: Callable[..., Any], reflected: bool) -> None:
        def method(self: Lazy, other: Any) -> Node:
            return _op(self, name, func, (other, self) if reflected else (self, other))

        method.__name__ = f"__{'r' if reflected else ''}{name}__"
        setattr(Lazy, method.__name__, method)

    def unary(name: str, func: Callable[..., Any]) -> None:
        def method(self: Lazy) -> Node:
            return _op(self, name, func, (self,))

        method.__name__ = f"__{name}__"
        setattr(Lazy, method.__name__, method)

    for name in "add sub mul matmul truediv floordiv mod pow lshift rshift and or xor".split():
        func = getattr(operator, name + "_" if name in ("and", "or") else name)
        binary(name, func, reflected=False)
        binary(name, func, reflected=True)
    for name in "eq ne lt le gt ge getitem".split():
        binary(name, getattr(operator, name), reflected=False)
    for name in "neg pos invert abs".split():
        unary(name, getattr(operator, name))


_bind_operators()


def _plain_delayed(root: Lazy) -> Any:
    """The graph ending at ``root`` as a plain dask Delayed: steps as they are (unrecorded),
    parameters as tasks that read their value when computed, so it can be drawn before any
    value is set."""
    import dask
    from dask._task_spec import Task
    from dask.delayed import Delayed

    memo: dict[Any, Any] = {}

    def conv(x: Any) -> Any:
        if isinstance(x, ParamNode):
            key = x._dask_key()
            if key not in memo:
                memo[key] = Delayed(key, {key: Task(key, _Computed(x))})
            return memo[key]
        if isinstance(x, Node):
            if x.index not in memo:
                memo[x.index] = dask.delayed(x.step.func, pure=False)(
                    *[conv(a) for a in x.args],
                    dask_key_name=x.key,
                    **{k: conv(v) for k, v in x.kwargs.items()},
                )
            return memo[x.index]
        if isinstance(x, (list, tuple)):
            return type(x)(conv(i) for i in x)
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x

    return conv(root)


@dataclass
class TrialOutcome:
    trial_id: int
    params: dict[str, Any]
    status: str
    result: Any = None
    error: BaseException | None = None


@dataclass
class _Plan:
    ctx: TrialContext
    params: dict[str, Any]
    recorder: TrialRecorder
    recorded: dict[str, Any]
    result_key: str
    persist_keys: dict[str, str]
    cache_keys: dict[str, str] = field(default_factory=dict)  # cached step -> its cache key
    reused: dict[str, CacheEntry] = field(default_factory=dict)  # step -> entry it reused
    # cached step -> the modules its code and the code of the steps it reads import
    cache_imports: dict[str, set[str]] = field(default_factory=dict)
    source_hashes: dict[str, str] = field(default_factory=dict)  # step -> its source's hash
    context: str = ""  # what else its steps' outputs may depend on (tuixp.purity)


class Experiment:
    """An experiment: its parameters, its steps, and every trial recorded in a store.

    One object per (id, store) in a process, as daskperiment's was: ``Experiment("x") is
    Experiment("x")``; the second call keeps the first one's parameters and steps.
    """

    _instances: dict[tuple[str, str], "Experiment"] = {}
    _instances_lock = threading.Lock()
    seed: int | None
    goal: str | None

    def __new__(
        cls,
        id: str | None = None,
        store: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        goal: str | None = None,
        backend: Any = None,
    ) -> "Experiment":
        if id is None:  # unpickling, or a subclass's own construction
            return super().__new__(cls)
        key = _instance_key(id, store, backend)
        with cls._instances_lock:
            found = cls._instances.get(key) if key is not None else None
        if found is not None and type(found) is cls:
            return found
        return super().__new__(cls)

    def __init__(
        self,
        id: str,
        store: str | os.PathLike[str] | None = None,
        seed: int | None = None,
        goal: str | None = None,
        backend: Any = None,
    ) -> None:
        if goal not in GOALS:
            raise errors.TuixpError(
                f"goal must be 'min' (a lower result is better: a loss, an error) or 'max' (a "
                f"higher one is: an accuracy, a score), not {goal!r}"
            )
        if self.__dict__.get("_initialized"):
            # The same experiment asked for again: keep its parameters and steps.
            if seed is not None:
                self.seed = seed
            if goal is not None and goal != self.goal:
                self.goal = goal
                self._announced = False  # the next trial tells the store the new goal
            return
        store = _store_from_backend(store, backend)
        _identifier(id, "Experiment ID")
        if keyword.iskeyword(id):
            raise errors.TuixpError(f"Experiment ID must be valid as python identifier: {id}")
        self.id = id
        self.seed = seed
        self.goal = goal
        self._store_arg = store
        self._store: Store | None = None
        self._params: dict[str, ParamNode] = {}
        self._values_set: dict[str, Any] = {}
        self._steps: dict[str, Step] = {}
        self._code_warned: dict[str, str] = {}  # step -> the diff warned at its redefinition
        self._state: StateFile | None = None
        self._purity: dict[tuple[str, str], tuple[str, int]] | None = None
        self._purity_lock = threading.Lock()
        self._announced = False
        self.script = _main_script()
        EXPERIMENTS.append(self)
        key = _instance_key(id, store, None)
        if key is not None:
            with self._instances_lock:
                self._instances.setdefault(key, self)
        self._initialized = True
        self._log_created()

    def _log_created(self) -> None:
        _show_info_in_notebooks()
        try:
            last = self.store.counter.last(self.id) if self.store.counter.path.exists() else 0
        except errors.StoreError:
            last = 0
        if last:
            logger.info("Loaded existing experiment: %r (trial_id: %d)", self, last)
        else:
            logger.info("Initialized new experiment: %r", self)

    def __repr__(self) -> str:
        return f"Experiment(id={self.id!r}, store={str(self.store.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Steps shipped to other processes or workers carry the experiment (their code calls
        # ex.save_metric): send what identifies it, never the store's files and locks.
        state = dict(self.__dict__)
        for name in ("_store", "_state", "_purity", "_purity_lock", "_purity_loaded"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._store = None
        self._state = None
        self._purity = None
        self._purity_lock = threading.Lock()

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = get_store(self._store_arg)
        return self._store

    # -- definition ------------------------------------------------------------------------
    def parameter(self, name: str, default: Any = _NO_DEFAULT) -> ParamNode:
        if not isinstance(name, str) or not name.isidentifier():
            raise errors.ParameterError(
                f"Parameter name must be valid as python identifier: {name!r}"
            )
        found = self._params.get(name)
        if found is None:
            found = self._params[name] = ParamNode(self, name, default)
        elif default is not _NO_DEFAULT:
            found.default = default
        return found

    def _register(self, func: Callable[..., Any], kind: str, cache: bool = False) -> Step:
        if isinstance(func, Step):
            func = func.func
        if not callable(func):
            raise errors.TuixpError(f"A step must be a function, not {type(func).__name__}")
        step = Step(self, func, kind, cache)
        old = self._steps.get(step.name)
        if old is not None and old.source != step.source:
            diff = unified(old.source, step.source, step.name)
            logger.warning("Code context has been changed: %s\n%s", step.name, diff)
            self._code_warned[step.name] = diff  # not again at the next compute()
        self._steps[step.name] = step
        return step

    def __call__(self, func: Callable[..., Any] | None = None) -> Any:
        """A step: ``@ex`` or ``@ex()``."""
        if func is None:
            return lambda f: self._register(f, "step")
        return self._register(func, "step")

    def persist(self, func: Callable[..., Any] | None = None, *, cache: bool = False) -> Any:
        """A step whose output is kept for every trial; ``cache=True`` also reuses it.

        ``@ex.persist`` or ``@ex.persist(cache=True)`` (the same as ``@ex.cached``).
        """
        if func is None:
            return lambda f: self._register(f, "persist", cache)
        return self._register(func, "persist", cache)

    def cached(self, func: Callable[..., Any]) -> Step:
        """A persisted step that is not computed again when nothing it depends on changed.

        Its output is reused from the latest succeeded trial with the same step source, the
        same inputs (parameters, upstream steps, data files) and the same versions of the packages
        it could use (those imported when it ran: ``tuixp.cache``).
        """
        return self._register(func, "persist", cache=True)

    def data_file(self, path: str | os.PathLike[str]) -> DataFile:
        """Declare a file or folder the trial reads; pass the returned path to a step.

        Its content hash is recorded with each trial; a change is reported like a code change
        and invalidates the cache of the steps that read it.
        """
        data = DataFile(path)
        if not os.path.exists(data):
            raise errors.TuixpError(f"Data input not found: {data}")
        return data

    def result(self, func: Callable[..., Any] | None = None) -> Any:
        """The trial's result step: ``@ex.result`` or ``@ex.result()``."""
        if func is None:
            return lambda f: self._register(f, "result")
        return self._register(func, "result")

    def set_parameters(self, **kwargs: Any) -> None:
        for name in kwargs:
            if name not in self._params:
                raise errors.ParameterUndeclaredError(
                    f"Parameter is not declared. Use Experiment.parameter to declare: {name}"
                )
        self._values_set.update(kwargs)
        current = {n: self._current_value(n) for n in self._params}
        logger.info("Updated parameters: %s", _describe(current))

    def _current_value(self, name: str) -> Any:
        """A parameter's value now: set, else its default, else UNDEFINED."""
        if name in self._values_set:
            return self._values_set[name]
        default = self._params[name].default
        return UNDEFINED if default is _NO_DEFAULT else default

    def _values(self, overrides: dict[str, Any]) -> dict[str, Any]:
        for name in overrides:
            if name not in self._params:
                raise errors.ParameterUndeclaredError(
                    f"Parameter is not declared. Use Experiment.parameter to declare: {name}"
                )
        values = {}
        missing = []
        for name, p in self._params.items():
            if name in overrides:
                values[name] = overrides[name]
            elif name in self._values_set:
                values[name] = self._values_set[name]
            elif p.default is not _NO_DEFAULT:
                values[name] = p.default
            else:
                missing.append(name)
        if missing:
            raise errors.ParameterUndefinedError(
                "Parameters are not defined. Use Experiment.set_parameters to initialize: "
                + ", ".join(missing)
            )
        return values

    # -- inside a step ---------------------------------------------------------------------
    @property
    def current_trial_id(self) -> int:
        scope = steps_mod.current_scope.get()
        if scope is None or scope.ctx.experiment != self.id:
            raise errors.TrialIDNotFoundError(
                "Current Trial ID only exists during a trial execution"
            )
        return scope.ctx.trial_id

    def save_metric(
        self, metric_key: Any = None, epoch: Any = None, value: Any = None, *, key: Any = None
    ) -> None:
        """Save a metric from inside a step: ``save_metric("loss", epoch=1, value=0.5)``.

        ``metric_key`` is daskperiment's name for it; ``key=`` is accepted too. Integers load
        back as int64, other numbers as float64.
        """
        key = _metric_key(metric_key, key)
        if steps_mod.current_scope.get() is None:  # daskperiment's answer outside a trial
            raise errors.TrialIDNotFoundError(
                "Current Trial ID only exists during a trial execution"
            )
        if epoch is None or value is None:
            raise errors.TuixpError(f"Metric {key}: save_metric needs an epoch and a value")
        epoch = _whole_epoch(key, epoch)
        try:
            value = float(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise errors.TuixpError(
                f"Metric {key}: epoch must be an integer and value a number ({exc})"
            ) from exc
        if not -(1 << 63) <= epoch < (1 << 63):
            raise errors.TuixpError(f"Metric {key}: epoch must fit in 64 bits")
        steps_mod.record_metric(key, epoch, value)

    # -- running trials --------------------------------------------------------------------
    def _world(self) -> dict[str, Any]:
        """Code, environment, packages and git state as they are now."""
        code = {name: s.source for name, s in self._steps.items()}
        script_text = script_source(self.script)
        start = os.path.dirname(self.script) if self.script else os.getcwd()
        return {
            "code": code,
            "unreadable": [n for n, s in self._steps.items() if not s.source_readable],
            "script_text": script_text,
            "script_hash": text_hash(script_text) if script_text else None,
            "environment": capture_environment(),
            "packages": capture_packages(),
            "git": capture_git(start or "."),
        }

    def _texts_and_refs(self, world: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Journal events for texts not yet journaled, and the hashes a trial row refers to."""
        store = self.store
        blobs: dict[str, str] = {}
        code_rows = []
        for i, (name, source) in enumerate(world["code"].items()):
            h = text_hash(source)
            blobs[h] = source
            code_rows.append({"ord": i, "step": name, "source_hash": h})
        if world["script_text"]:
            code_rows.append(
                {"ord": len(code_rows), "step": "<script>", "source_hash": world["script_hash"]}
            )
            blobs[world["script_hash"]] = world["script_text"]
        code_hash = text_hash(canonical_json(code_rows))
        env_text = canonical_json(world["environment"])
        env_hash = text_hash(env_text)
        blobs[env_hash] = env_text
        git_doc = dict(world["git"])
        git_text = canonical_json(git_doc)
        git_hash = text_hash(git_text)
        blobs[git_hash] = git_text
        packages_hash = text_hash(canonical_json(world["packages"]))
        events = store.blob_events(blobs)
        marks = store.blob_events({f"code_set:{code_hash}": "", f"package_set:{packages_hash}": ""})
        for m in marks:
            kind, h = m["hash"].split(":", 1)
            if kind == "code_set":
                events.append({"t": "code_set", "rows": [{"hash": h, **r} for r in code_rows]})
            else:
                events.append({"t": "package_set", "hash": h, "packages": world["packages"]})
        if not self._announced:
            self._announced = True
            events.append(
                {
                    "t": "experiment",
                    "name": self.id,
                    "created_at": time.time(),
                    "script": self.script,
                    "goal": self.goal,
                }
            )
        refs = {
            "code_hash": code_hash,
            "environment_hash": env_hash,
            "packages_hash": packages_hash,
            "git_hash": git_hash,
            "git_commit": git_doc.get("commit"),
            "git_branch": git_doc.get("branch"),
            "git_dirty": bool(git_doc.get("dirty")),
        }
        return events, refs

    def _run(
        self,
        node: Node,
        points: list[dict[str, Any]],
        seed: int | None,
        scheduler: str | None,
        listeners: list[Listener],
        cache: bool = True,
        worker_timeout: float | None = None,
    ) -> list[TrialOutcome]:
        from tuixp.execution.runner import build_graph, execute

        _script_hint["ran"] = True
        # Everything that can be refused is checked before a trial id is used.
        param_sets = [self._values(p) for p in points]
        recorded = [_normalize_params(v) for v in param_sets]
        from tuixp.execution.schedulers import get_scheduler

        sched = get_scheduler(scheduler, worker_timeout=worker_timeout)
        base_seed = seed if seed is not None else self.seed
        world = self._world()
        world["data"] = {d: data_hash(d) for d in _data_files(node)}
        self.store.check_target()  # a store path that cannot be used: refused, nothing written
        if self._state is None:
            self._state = StateFile(self.store.path, self.id)
        with _CodeWarnedFilter(self._code_warned):  # warned when the step was redefined
            changes = self._state.compare_and_update(world)
        self._code_warned.clear()
        if world["unreadable"]:
            logger.warning(
                "Source not available for step(s) %s; their code is recorded by hash only",
                ", ".join(world["unreadable"]),
            )
        texts, refs = self._texts_and_refs(world)
        self._start_purity_load()
        source_hashes = {name: text_hash(src) for name, src in world["code"].items()}
        context = purity.world_context(world, refs["packages_hash"])
        ids = self.store.counter.next_ids(self.id, len(param_sets))
        plans: list[_Plan] = []
        for trial_id, values, rec_values in zip(ids, param_sets, recorded):
            trial_seed = base_seed if base_seed is not None else new_seed()
            u = uuidlib.uuid4().hex
            ctx = TrialContext(
                self.id,
                u,
                trial_id,
                trial_seed,
                os.getpid(),
                socket.gethostname(),
                channel=sched.channel,
            )
            rec = TrialRecorder(self.store, self.id, trial_id, u, listeners)
            plans.append(
                _Plan(
                    ctx,
                    values,
                    rec,
                    rec_values,
                    "",
                    {},
                    source_hashes=source_hashes,
                    context=context,
                )
            )
        use_cache = cache and any(n.step.cache for n in _nodes(node))
        if use_cache:
            py = world["environment"]["python"]
            python = f"{py.get('implementation')} {py.get('version')}"
            dsk = {}
            for plan in plans:
                trial_node = self._plan_cache(node, plan, world["data"], python)
                part, ((result_key, persist_keys),) = build_graph(
                    trial_node, [(plan.ctx, plan.params)]
                )
                dsk.update(part)
                plan.result_key, plan.persist_keys = result_key, persist_keys
        else:
            dsk, keys = build_graph(node, [(p.ctx, p.params) for p in plans])
            for plan, (result_key, persist_keys) in zip(plans, keys):
                plan.result_key, plan.persist_keys = result_key, persist_keys
        started = time.time()
        begun: list[_Plan] = []
        try:
            for i, plan in enumerate(plans):
                steps_mod.RECORDERS[plan.ctx.trial_uuid] = plan.recorder
                plan.recorder.start(
                    {
                        "t": "trial_started",
                        "uuid": plan.ctx.trial_uuid,
                        "experiment": self.id,
                        "trial_id": plan.ctx.trial_id,
                        "started_at": started,
                        "seed": plan.ctx.seed,
                        "params": plan.recorded,
                        "host": plan.ctx.owner_host,
                        "pid": plan.ctx.owner_pid,
                        "script": self.script,
                        "scheduler": sched.name,
                        "changes": changes,
                        "data": world["data"],
                        **refs,
                    },
                    texts if i == 0 else [],
                )
                begun.append(plan)
                self._log_started(plan, seed is not None or self.seed is not None)
                if plan.reused:
                    self._record_reused(plan)
        except BaseException as exc:
            # A start the store refused (a full disk): end the trials already started, or they
            # would show as running for as long as this process lives.
            for plan in plans:
                steps_mod.RECORDERS.pop(plan.ctx.trial_uuid, None)
            for plan in begun:
                try:
                    plan.recorder.finish("failed", error=exc)
                except Exception:  # noqa: BLE001 - still full: it ends as interrupted later
                    logger.debug("could not record the end of trial %d", plan.ctx.trial_id)
            raise
        if sched.kind == "local" and sched.name != "processes":
            apply_seed(plans[0].ctx.seed)
        try:
            outcomes = execute(self, sched, dsk, plans)
            for o in outcomes:
                logger.info("Finished Experiment (trial id=%d)", o.trial_id)
            return outcomes
        finally:
            for plan in plans:
                steps_mod.RECORDERS.pop(plan.ctx.trial_uuid, None)

    def _log_started(self, plan: _Plan, seed_given: bool) -> None:
        """daskperiment's INFO lines at a trial's start."""
        tid = plan.ctx.trial_id
        logger.info("Started Experiment (trial id=%d)", tid)
        logger.info("Parameters: %s", _describe(plan.params))
        if seed_given:
            logger.info("Random seed is initialized with given seed: %d", plan.ctx.seed)
        else:
            msg = "Random seed is not provided, initialized with generated seed: %d"
            logger.info(msg, plan.ctx.seed)

    def _finish_plan(self, plan: _Plan, outputs: dict[str, Any]) -> TrialOutcome:
        """Record a trial's end from its outputs (result and persisted keys)."""
        rec = plan.recorder
        out = outputs.get(plan.result_key)
        if isinstance(out, StepFailure):
            rec.absorb(out.records)
            rec.finish(
                "failed",
                error=out.error,
                error_type=out.error_type,
                message=out.message,
                traceback_text=out.traceback,
            )
            logger.error(
                "Trial %d of %s failed in step %s: %s: %s",
                plan.ctx.trial_id,
                self.id,
                out.step,
                out.error_type,
                out.message,
            )
            return TrialOutcome(plan.ctx.trial_id, plan.params, "failed", error=out.error)
        assert isinstance(out, StepOutput), out
        rec.absorb(out.records)
        notes, kept = self._persist(plan, outputs)
        notes += self._check_purity(plan)
        self._fill_cache(plan, kept)
        rec.finish("succeeded", result=out.value, notes=notes)
        return TrialOutcome(plan.ctx.trial_id, plan.params, "succeeded", result=out.value)

    def _persist(self, plan: _Plan, outputs: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """Keep persisted outputs; the notes on what could not be kept, and what was, by step."""
        from tuixp.store.objects import ObjectStore

        notes = []
        kept: dict[str, tuple[str, str]] = {}
        objects = ObjectStore(self.store.objects_dir)
        events = []
        for step, key in plan.persist_keys.items():
            out = outputs.get(key)
            if not isinstance(out, StepOutput):
                continue
            try:
                digest, fmt, size = objects.put(out.value)
            except Exception as exc:  # noqa: BLE001 - the trial stands; say what was not kept
                notes.append(f"could not persist the output of {step}: {type(exc).__name__}: {exc}")
                logger.warning("Could not persist the output of %s: %s", step, exc)
                continue
            kept[step] = (digest, fmt)
            logger.info("Saved the output of %s (trial id=%d)", step, plan.ctx.trial_id)
            events.append(
                {
                    "t": "persisted",
                    "trial_uuid": plan.ctx.trial_uuid,
                    "experiment": self.id,
                    "trial_id": plan.ctx.trial_id,
                    "step": step,
                    "object_hash": digest,
                    "format": fmt,
                    "size": size,
                }
            )
        if events:
            self.store.record(events)
        return notes, kept

    def _start_purity_load(self) -> None:
        """Read earlier outputs by (step, purity key) from the store, in the background.

        The steps never wait for it; a trial's end waits for it at most ``PURITY_LOAD_WAIT_S``
        (a short trial in a new process, ``tuixp run``, ends before the read does and would
        compare with nothing). A store busy longer: the check uses what this process has seen.
        """
        if self._purity is not None:
            return
        self._purity = {}
        loaded = self._purity_loaded = threading.Event()
        if not self.store.path.exists():
            loaded.set()
            return

        def load() -> None:
            try:
                with self.store.connect(timeout=PURITY_LOAD_WAIT_S / 2) as con:
                    found = purity.load_history(con, self.id)
                with self._purity_lock:
                    assert self._purity is not None
                    for k, v in found.items():
                        self._purity.setdefault(k, v)
            except errors.StoreError as exc:
                logger.debug("purity check: earlier outputs not read (%s)", exc)
            finally:
                loaded.set()

        threading.Thread(target=load, name="tuixp-purity-load", daemon=True).start()

    def _check_purity(self, plan: _Plan) -> list[str]:
        rec = plan.recorder
        loaded = getattr(self, "_purity_loaded", None)
        if loaded is not None and not loaded.wait(PURITY_LOAD_WAIT_S):
            logger.debug(
                "purity check: earlier outputs still being read; compared with this process's"
            )
        with self._purity_lock:
            seen = self._purity if self._purity is not None else {}
            notes, impure = purity.check(
                seen, rec.steps_seen.values(), rec.trial_id, plan.source_hashes, plan.context
            )
        for step in impure:
            StepCache(self.store.path, self.id).mark_impure(step)
        return notes

    # -- the step cache --------------------------------------------------------------------
    def _plan_cache(self, node: Node, plan: _Plan, data: dict[str, str], python: str) -> Node:
        """The graph of one trial with reusable cached steps replaced by their stored outputs.

        Cache keys are computed top-down from the graph's structure before anything runs, so a
        reused step and everything it depends on never reach a scheduler. An entry is reused
        only if the distributions it names are installed at the versions it names (tuixp.cache).
        """
        from tuixp.store.objects import ObjectStore

        values = plan.params
        keys: dict[int, str] = {}

        def key_of(x: Any) -> Any:
            if isinstance(x, ParamNode):
                return ["param", token(values[x.name])]
            if isinstance(x, DataFile):
                return ["data", data[str(x)]]
            if isinstance(x, Node):
                if x.index not in keys:
                    keys[x.index] = cache_key(
                        [
                            x.step.name,
                            text_hash(x.step.source),
                            [key_of(a) for a in x.args],
                            {k: key_of(v) for k, v in sorted(x.kwargs.items())},
                            python,
                            "cache-2",  # keys of entries that name their packages
                        ]
                    )
                return keys[x.index]
            if isinstance(x, (list, tuple)):
                return [key_of(i) for i in x]
            if isinstance(x, dict):
                return {str(k): key_of(v) for k, v in x.items()}
            return ["literal", token(x)]

        key_of(node)
        cache = StepCache(self.store.path, self.id)
        impure = cache.impure_steps()
        objects = ObjectStore(self.store.objects_dir)
        reused_values: dict[int, Any] = {}

        def find(n: Node) -> None:
            if n.index in reused_values:
                return
            if n.step.cache:
                plan.cache_keys[n.step.name] = keys[n.index]
                plan.cache_imports[n.step.name] = set().union(
                    *(code_imports(m.step.func) for m in _nodes(n))
                )
            if n.step.cache and n is not node:  # the node asked for is always computed
                upstream = {m.step.name for m in _nodes(n)}
                entry = cache.get(keys[n.index]) if not (upstream & impure) else None
                stale = changed_distributions(entry.packages or {}) if entry is not None else []
                if entry is not None and (entry.packages is None or stale):
                    logger.info(
                        "Step %s not reused from trial %d: %s",
                        n.step.name,
                        entry.trial_id,
                        ", ".join(stale) or "its packages are not recorded",
                    )
                    entry = None
                if entry is not None:
                    try:
                        reused_values[n.index] = objects.get(entry.object_hash, entry.format)
                        plan.reused[n.step.name] = entry
                        return
                    except Exception as exc:  # noqa: BLE001 - recompute, never a wrong result
                        logger.warning(
                            "The cached output of %s from trial %d is missing or "
                            "corrupt (%s); computing it again",
                            n.step.name,
                            entry.trial_id,
                            exc,
                        )
            for child in _children(n):
                find(child)

        find(node)
        return _substitute(node, reused_values) if reused_values else node

    def _record_reused(self, plan: _Plan) -> None:
        from tuixp.store.objects import ObjectStore

        objects = ObjectStore(self.store.objects_dir)
        now = time.time()
        events = []
        for step, entry in plan.reused.items():
            key = f"{step}-{plan.ctx.trial_id}-reused"
            events.append(
                {
                    "t": "step",
                    "trial_uuid": plan.ctx.trial_uuid,
                    "experiment": self.id,
                    "trial_id": plan.ctx.trial_id,
                    "key": key,
                    "step": step,
                    "started_at": now,
                    "finished_at": now,
                    "status": "reused",
                    "worker": None,
                    "input_hash": None,
                    "output_hash": entry.output_hash,
                    "reused_from": entry.trial_id,
                }
            )
            events.append(
                {
                    "t": "persisted",
                    "trial_uuid": plan.ctx.trial_uuid,
                    "experiment": self.id,
                    "trial_id": plan.ctx.trial_id,
                    "step": step,
                    "object_hash": entry.object_hash,
                    "format": entry.format,
                    "size": _size(objects.path_of(entry.object_hash, entry.format)),
                }
            )
            plan.recorder.emit(
                "task_finished",
                now,
                key=key,
                step=step,
                status="reused",
                data={"reused_from": entry.trial_id, "elapsed": 0.0},
            )
            logger.info("Step %s reused from trial %d", step, entry.trial_id)
        self.store.record(events)

    def _fill_cache(self, plan: _Plan, kept: dict[str, tuple[str, str]]) -> None:
        """After a succeeded trial: cache entries for the cached steps it computed."""
        if not plan.cache_keys:
            return
        cache = StepCache(self.store.path, self.id)
        impure = cache.impure_steps()
        outputs = {
            r.step: r.output_hash
            for r in plan.recorder.steps_seen.values()
            if r.status == "succeeded"
        }
        for step, key in plan.cache_keys.items():
            if step in plan.reused or step in impure or step not in kept:
                continue
            digest, fmt = kept[step]
            packages = imported_distributions(plan.cache_imports.get(step, ()))
            cache.put(
                key, CacheEntry(step, plan.ctx.trial_id, digest, fmt, outputs.get(step), packages)
            )

    # -- history ---------------------------------------------------------------------------
    @property
    def trial_id(self) -> int:
        """The latest trial id of this experiment (0 when none), across processes.

        Inside a running step it raises LockedTrialError: use ``current_trial_id`` there.
        """
        scope = steps_mod.current_scope.get()
        if scope is not None and scope.ctx.experiment == self.id:
            raise errors.LockedTrialError()
        return self.store.counter.last(self.id)

    def _check_trial(self, trial_id: int | None) -> int:
        last = self.store.counter.last(self.id)
        if trial_id is None:
            if last == 0:
                raise errors.TrialIDNotFoundError("Unable to find trial id: no trial has run yet")
            return last
        if not isinstance(trial_id, int) or trial_id < 1 or trial_id > last:
            raise errors.TrialIDNotFoundError(f"Unable to find trial id: {trial_id}")
        return trial_id

    def get_history(self, verbose: bool = False, status: bool = False) -> Any:
        """daskperiment's history; ``status=True`` adds tuixp's ``Status`` column last."""
        from tuixp.store import queries

        with self.store.connect() as con:
            return queries.history(con, self.id, list(self._params), verbose=verbose, status=status)

    def get_parameters(self, trial_id: int | None = None) -> dict[str, Any]:
        if trial_id is None:
            return self._values({})
        trial_id = self._check_trial(trial_id)
        from tuixp.store import queries

        with self.store.connect() as con:
            return queries.trial(con, self.id, trial_id)["params"]

    def get_code(self, trial_id: int | None = None) -> str:
        if trial_id is None:
            return _join_code(s.source for s in self._steps.values())
        trial_id = self._check_trial(trial_id)
        from tuixp.store import queries

        with self.store.connect() as con:
            code = queries.code(con, self.id, trial_id)
        return _join_code(src for step, src in code.items() if step != "<script>")

    def get_environment(self, trial_id: int | None = None, category: str | None = None) -> str:
        """daskperiment's text: a summary, or one category's (platform, cpu, python, numpy,
        scipy, pandas, conda, git, requirements). The structured record is
        ``get_environment_record``."""
        from tuixp import daskperiment_text as text

        if category is not None and str(category).lower() not in text.CATEGORIES:
            raise errors.TuixpError(
                f"Category must be either {', '.join(text.CATEGORIES)}, given: {category}"
            )
        env = self._environment_doc(trial_id)
        shell = text.shell_mode() if trial_id is None else None
        if category is None:
            return text.summary(env, shell)
        return text.category_text(env, str(category).lower(), shell)

    def get_python_packages(self, trial_id: int | None = None) -> str:
        """The trial's installed packages as ``name==version`` lines (as pip freeze)."""
        return self.get_environment(trial_id, category="requirements")

    def _environment_doc(self, trial_id: int | None) -> dict[str, Any]:
        from tuixp.store import queries

        if trial_id is None:
            world = self._world()
            return {**world["environment"], "packages": world["packages"], "git": world["git"]}
        trial_id = self._check_trial(trial_id)
        with self.store.connect() as con:
            env: dict[str, Any] = queries.environment(con, self.id, trial_id)
        return env

    def get_environment_record(
        self, trial_id: int | None = None, category: str | None = None
    ) -> Any:
        """tuixp's structured environment: summary lines, or one category's record (platform,
        cpu, gpu, python, numpy, scipy, pandas, conda, git with its diff, requirements,
        packages)."""
        from tuixp.store import queries

        return queries.environment_view(self._environment_doc(trial_id), category)

    def start_dashboard(self, *args: Any, **kwargs: Any) -> None:
        """daskperiment's Flask dashboard has no counterpart: tuixp's is a terminal UI."""
        raise errors.TuixpError(
            "tuixp has no web dashboard: run `tuixp` in a terminal (over SSH too) to browse, "
            "compare and re-run trials, or `tuixp ls`/`tuixp sql` to query them"
        )

    def get_persisted(self, step_name: str, trial_id: int | None = None) -> Any:
        trial_id = self._check_trial(trial_id)
        from tuixp.store import queries
        from tuixp.store.objects import ObjectStore

        with self.store.connect() as con:
            found = queries.persisted(con, self.id, trial_id, step_name)
        if found is None:
            raise errors.TuixpError(
                f"Unable to find persisted output of step {step_name!r} in trial {trial_id}"
            )
        return ObjectStore(self.store.objects_dir).get(*found)

    def load_metric(
        self, metric_key: Any = None, trial_id: int | list[int] | None = None, *, key: Any = None
    ) -> Any:
        """A DataFrame indexed by ``Epoch``, one column per trial id (an int or a list; the
        latest trial when None). A trial that never saved the metric raises
        TrialIDNotFoundError, as daskperiment's did."""
        key = _metric_key(metric_key, key)
        ids = [trial_id] if isinstance(trial_id, int) or trial_id is None else list(trial_id)
        ids = [self._check_trial(t) for t in ids]
        from tuixp.store import queries

        with self.store.connect() as con:
            return queries.load_metric(con, self.id, key, ids)


def _show_info_in_notebooks() -> None:
    """In Jupyter or IPython, show tuixp's INFO lines as daskperiment did (its users read the
    trial ids and seeds there), unless logging is configured already. Scripts and tools keep
    Python's default: warnings only."""
    from tuixp.daskperiment_text import shell_mode

    if logger.handlers or logging.getLogger().handlers:
        return
    if shell_mode() not in ("Jupyter Notebook", "IPython Terminal"):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s [%(name)s] [%(levelname)s] %(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def _describe(values: Mapping[str, Any]) -> str:
    """Parameters as daskperiment logged them: ``a=1<class 'int'>, b=Undefined``."""
    return ", ".join(
        f"{n}={v}" if v is UNDEFINED else f"{n}={v}{type(v)}" for n, v in values.items()
    )


class _CodeWarnedFilter(logging.Filter):
    """Drops the compute-time warning of a code change already warned, with the same diff,
    when the step was redefined in this process (a notebook user saw each one twice)."""

    def __init__(self, warned: dict[str, str]) -> None:
        super().__init__()
        self.warned = dict(warned)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 3
            and args[0] == "Code context has been changed"
        ):
            return self.warned.get(str(args[1])) != args[2]
        return True

    def __enter__(self) -> None:
        if self.warned:
            logger.addFilter(self)

    def __exit__(self, *exc: Any) -> None:
        logger.removeFilter(self)


def _join_code(sources: Iterable[str]) -> str:
    """Step sources in registration order, two blank lines apart (as daskperiment's)."""
    return "\n\n".join(src.rstrip("\n") + "\n" for src in sources)


def _identifier(value: Any, what: str) -> str:
    """daskperiment's check of an id or a name, with its messages."""
    if not isinstance(value, str):
        raise errors.TuixpError(f"{what} must be str, given: {value}{type(value)}")
    if not value.isidentifier():
        raise errors.TuixpError(f"{what} must be valid as python identifier: {value}")
    return value


def _metric_key(metric_key: Any, key: Any) -> str:
    if metric_key is not None and key is not None:
        raise errors.TuixpError("Give the metric's name once: metric_key= or key=, not both")
    return _identifier(metric_key if metric_key is not None else key, "Metric name")


def _store_from_backend(store: Any, backend: Any) -> Any:
    """daskperiment's ``backend=`` as a tuixp store: 'local' is the default store, a folder
    holds ``tuixp.duckdb``; Redis and MongoDB have no tuixp counterpart."""
    if isinstance(store, str) and store == "local" and backend is None:
        return None  # Experiment(id, 'local'): daskperiment's second argument was backend
    if backend is None or (isinstance(backend, str) and backend == "local"):
        return store
    if store is not None:
        raise errors.TuixpError("Give store= or backend=, not both (backend= is daskperiment's)")
    text = os.fspath(backend) if isinstance(backend, (str, os.PathLike)) else None
    if text is None:
        raise errors.TuixpError(
            f"backend= must be 'local' or a folder path, not {type(backend).__name__}"
        )
    if text.startswith(("redis://", "mongodb://", "mongodb+srv://")):
        raise errors.TuixpError(
            f"tuixp has no {text.split(':', 1)[0]} backend: every trial is recorded in one DuckDB "
            "store file (store='path/tuixp.duckdb'); to share history between machines, copy the "
            "file or bring another store's trials in with `tuixp merge OTHER.duckdb`"
        )
    if text.endswith(".duckdb"):
        return text
    return os.path.join(text, "tuixp.duckdb")


def _instance_key(id: Any, store: Any, backend: Any) -> tuple[str, str] | None:
    """The (id, store path) an experiment object is shared under; None when not shareable."""
    from tuixp.store.db import resolve_store_path

    if not isinstance(id, str):
        return None
    try:
        path = resolve_store_path(_store_from_backend(store, backend))
    except (errors.TuixpError, OSError, TypeError, ValueError):
        return None  # __init__ raises the clear error
    return id, str(path)


class fresh_instances:
    """Within this block ``Experiment(id)`` makes new objects (``tuixp run`` loading a script
    is a fresh start, even when the same process loaded it before)."""

    def __enter__(self) -> None:
        with Experiment._instances_lock:
            self._saved = Experiment._instances
            Experiment._instances = {}

    def __exit__(self, *exc: Any) -> None:
        with Experiment._instances_lock:
            Experiment._instances = self._saved


def _normalize_params(values: dict[str, Any]) -> dict[str, Any]:
    """Parameters as strict JSON values (numpy scalars become numbers); refuse what is not.

    NaN and infinities are kept as the strings "nan", "inf" and "-inf": strict JSON has no
    words for them and the store's JSON columns must stay readable by any client.
    """
    import json
    import math

    def strict(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return repr(v)
        if isinstance(v, list):
            return [strict(i) for i in v]
        if isinstance(v, dict):
            return {k: strict(i) for k, i in v.items()}
        return v

    out = {}
    for name, value in values.items():
        if _nested_deeper_than(value, MAX_PARAM_DEPTH):
            raise errors.ParameterError(
                f"Parameter {name} cannot be recorded: it is nested more than {MAX_PARAM_DEPTH} "
                "levels deep (lists and dicts inside each other, or a list that holds itself)."
            )
        try:
            clean = json.loads(json.dumps(value, allow_nan=True, default=_refuse))
        except (TypeError, ValueError, RecursionError) as exc:
            raise errors.ParameterError(
                f"Parameter {name} cannot be recorded: {exc}. Use numbers, strings, booleans, "
                "None, or lists and dicts of them."
            ) from None
        out[name] = strict(clean)
    return out


MAX_PARAM_DEPTH = 100  # deeper values hit Python's recursion limit here, in Dask or in readers


def _nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether lists, tuples and dicts in ``value`` nest more than ``limit`` levels (no recursion:
    it must work where recursion would not)."""
    todo: list[tuple[Any, int]] = [(value, 0)]
    deepest: dict[int, int] = {}  # a list held twice is walked again only from deeper down
    while todo:
        item, depth = todo.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= limit:
                return True
            if deepest.get(id(item), -1) >= depth:
                continue
            deepest[id(item)] = depth
            children = item.values() if isinstance(item, dict) else item
            todo.extend((child, depth + 1) for child in children)
    return False


def _refuse(obj: Any) -> Any:
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):
        return obj.item() if getattr(obj, "shape", ()) == () else obj.tolist()
    raise TypeError(f"a value of type {type(obj).__name__} is not JSON")


def _main_script() -> str | None:
    override = os.environ.get("TUIXP_SCRIPT")
    if override:
        return override
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if (
        path
        and os.path.basename(path) not in ("pytest", "__main__.py")
        and not path.endswith(("pytest/__main__.py",))
    ):
        return os.path.abspath(path)
    return None


def _whole_epoch(key: str, epoch: Any) -> int:
    """An epoch as stored: an integer, or a float that is one (2.0); 1.5 is refused, never
    silently stored as 1."""
    import numbers

    if isinstance(epoch, numbers.Integral) and not isinstance(epoch, bool):
        return int(epoch)
    if isinstance(epoch, numbers.Real) and not isinstance(epoch, bool):
        as_float = float(epoch)
        if as_float.is_integer():
            return int(as_float)
        raise errors.TuixpError(
            f"Metric {key}: epoch must be a whole number, not {epoch!r} (epochs are stored as "
            "integers: number fractional steps 0, 1, 2, ... or save them under their own metric)"
        )
    raise errors.TuixpError(
        f"Metric {key}: epoch must be an integer, not {type(epoch).__name__} {epoch!r}"
    )
