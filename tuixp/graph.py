"""The graph a trial computes: parameters, steps and the lazy calls of steps.

``ParamNode`` (a parameter), ``Step`` (a decorated function) and ``Node`` (a lazy call of a
step) behave like ``dask.delayed`` objects: operators, attribute access and calls build nodes,
and the dask collection protocol lets dask compute or draw them. ``walk`` is the one walker of a
step's arguments (lists, tuples and dicts inside each other) that every other module uses.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuixp import errors
from tuixp.cache import DataFile
from tuixp.capture.code import function_source

if TYPE_CHECKING:
    from tuixp.execution.events import Listener
    from tuixp.experiment import Experiment

logger = logging.getLogger("tuixp")

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
        if not any(n.step.kind != "op" for n in graph_nodes(self)):
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
                        *walk(x.args, conv, same_type), **walk(x.kwargs, conv, same_type)
                    )
                return memo[x.index]
            return x

        return walk(self, conv, same_type)


def walk(x: Any, leaf: Callable[[Any], Any], build: Callable[[Any, Any], Any] | None = None) -> Any:
    """The one walker of a step's arguments: ``leaf`` applied to everything in ``x`` that is not
    a list, tuple or dict (nested to any depth), the containers built again around the results:
    by ``build(original, items)`` (items a list, or a dict for a dict), else as a plain list,
    tuple or dict. Every module that looks inside arguments (the runner, the cache keys, the
    plain dask graphs) walks them with this."""
    if isinstance(x, (list, tuple)):
        items = [walk(i, leaf, build) for i in x]
        if build is not None:
            return build(x, items)
        return items if isinstance(x, list) else tuple(items)
    if isinstance(x, dict):
        entries = {k: walk(v, leaf, build) for k, v in x.items()}
        return build(x, entries) if build is not None else entries
    return leaf(x)


def same_type(original: Any, items: Any) -> Any:
    """A ``build`` for ``walk`` keeping a list or tuple subclass's type (dicts become plain)."""
    return items if isinstance(original, dict) else type(original)(items)


def _leaves(x: Any) -> list[Any]:
    """Everything inside a step's arguments that is not a list, tuple or dict."""
    found: list[Any] = []
    walk(x, found.append)
    return found


def child_nodes(n: Node) -> list[Node]:
    return [x for x in _leaves([n.args, n.kwargs]) if isinstance(x, Node)]


def graph_nodes(root: Node) -> list[Node]:
    """Every step call of the graph ending at ``root`` (each once)."""
    seen: dict[int, Node] = {}
    stack = [root]
    while stack:
        n = stack.pop()
        if n.index not in seen:
            seen[n.index] = n
            stack.extend(child_nodes(n))
    return list(seen.values())


def data_files(root: Node) -> list[str]:
    found = (
        str(x)
        for n in graph_nodes(root)
        for x in _leaves([n.args, n.kwargs])
        if isinstance(x, DataFile)
    )
    return list(dict.fromkeys(found))


def substitute(root: Node, values: dict[int, Any]) -> Any:
    """A copy of the graph where the nodes in ``values`` are replaced by those values."""
    memo: dict[int, Any] = {}

    def conv(x: Any) -> Any:
        if isinstance(x, Node):
            if x.index in values:
                return values[x.index]
            if x.index not in memo:
                memo[x.index] = Node(x.ex, x.step, walk(x.args, conv), walk(x.kwargs, conv))
            return memo[x.index]
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
script_hint: dict[str, Any] = {"node": None, "ran": False, "registered": False}


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
    if not path or main_script() is None or os.path.basename(path) == "tuixp":
        return  # a notebook, a REPL, pytest or the tuixp command: no hint
    if not os.path.isfile(path):
        return  # ``python < script.py`` (``<stdin>``): no file to name in ``tuixp run FILE``
    script_hint["node"] = node
    frame: Any = sys._getframe(1)  # the script's own line that built it
    while frame is not None and not (
        frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__"
    ):
        frame = frame.f_back
    script_hint["line"] = frame.f_lineno if frame is not None else None
    script_hint["file"] = os.path.abspath(path)
    if not script_hint["registered"]:
        import atexit

        script_hint["registered"] = True
        try:  # the script as run from here (``../scripts/x.py`` from a notebook's folder)
            shown = os.path.relpath(path)
        except ValueError:  # another drive
            shown = path
        atexit.register(_hint_at_exit, shown, list(sys.argv[1:]))


def _hint_at_exit(path: str, argv: list[str]) -> None:
    """daskperiment ran a trial when a script called its result step; tuixp does not (so an
    import or a test never starts one): say how, once, when the script ran none."""
    node = script_hint["node"]
    if node is None or script_hint["ran"]:
        return
    if getattr(sys, "last_value", None) is not None:
        return  # the script died of an uncaught exception: its traceback says what to fix
    import shlex

    args = shlex.join(argv) or " ".join(f"{n}=VALUE" for n in node.ex._params)
    run = f"`tuixp run {shlex.quote(path)} {args}".rstrip() + "`"
    name, script = node.step.name, os.path.basename(path)
    if _in_main_block(script_hint.get("file"), script_hint.get("line")):
        # tuixp run does not run that block: it would find no result node there.
        sys.stderr.write(
            f'tuixp: {script} built the result {name}(...) in its if __name__ == "__main__": '
            f"block but ran no trial: call .compute() on the result node ({name}(...).compute()),"
            f" or build it at module level and run {run}\n"
        )
        return
    sys.stderr.write(
        f"tuixp: {script} built the result {name}(...) but ran no trial: run one with {run}, "
        f"or call .compute() on the result node ({name}(...).compute())\n"
    )


def _in_main_block(path: str | None, line: int | None) -> bool:
    """Whether ``line`` of the script ``path`` is in its ``if __name__ == "__main__":`` block."""
    if path is None or line is None:
        return False
    import ast

    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return False
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and stmt.lineno <= line <= (stmt.end_lineno or 0):
            test = ast.unparse(stmt.test)
            if "__name__" in test and "__main__" in test:
                return True
    return False


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
                    *walk(x.args, conv, same_type),
                    dask_key_name=x.key,
                    **walk(x.kwargs, conv, same_type),
                )
            return memo[x.index]
        return x

    return walk(root, conv, same_type)


@dataclass
class TrialOutcome:
    trial_id: int
    params: dict[str, Any]
    status: str
    result: Any = None
    error: BaseException | None = None


def main_script() -> str | None:
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
