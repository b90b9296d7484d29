"""The Python API: Experiment, its parameters and step decorators, the in-step API and the
history getters. A trial's record path starts in ``tuixp.trial.plan`` (docs/architecture.md);
the graph the steps build is ``tuixp.graph``.

Kept from daskperiment: the names, the history columns and the error messages. Changed: a trial
runs only when ``.compute()`` (or ``tuixp run``) asks; calling a step builds a lazy node.
"""

from __future__ import annotations

import keyword
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from tuixp import errors
from tuixp.annotating import Annotating
from tuixp.cache import DataFile
from tuixp.execution import steps as steps_mod
from tuixp.execution.events import Listener
from tuixp.graph import UNDEFINED, Node, ParamNode, Step, TrialOutcome, main_script
from tuixp.measuring import Measuring, identifier
from tuixp.store.store import Store, get_store
from tuixp.trial.plan import describe_params, run_trials
from tuixp.trial.world import StateFile, capture_world, unified

logger = logging.getLogger("tuixp")

_NO_DEFAULT = object()
EXPERIMENTS: list["Experiment"] = []  # every Experiment made in this process (tuixp run finds them)
GOALS = (None, "min", "max")  # which result is best: lowest, highest, or not said


class Experiment(Annotating, Measuring):
    """An experiment: its parameters, its steps, and every trial recorded in a store.

    One object per (id, store) in a process, as daskperiment's was: ``Experiment("x") is
    Experiment("x")``; the second call keeps the first one's parameters and steps.
    """

    _instances: dict[tuple[str, str], "Experiment"] = {}
    _instances_lock = threading.Lock()
    seed: int | None
    goal: str | None
    _purity_loaded: threading.Event  # set when earlier outputs are read (tuixp.trial.finish)

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
            self._log_created()  # daskperiment logged "Loaded existing experiment" again
            return
        store = _store_from_backend(store, backend)
        identifier(id, "Experiment ID")
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
        self._system_metrics: float | bool | None = None
        self.script = main_script()
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
        logger.info("Updated parameters: %s", describe_params(current))

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

    @property
    def system_metrics(self) -> float | bool | None:
        """Seconds between system-metric samples (``sys/cpu_percent``, ``sys/rss_mb``, GPUs)
        while this experiment's trials run; ``False`` or 0 for none; ``None`` (the default) for
        ``$TUIXP_SYSTEM_METRICS``, else 5 s. See tuixp.execution.sampler."""
        return self._system_metrics

    @system_metrics.setter
    def system_metrics(self, every: float | bool | None) -> None:
        from tuixp.execution.sampler import interval

        try:
            interval(every)  # refused here, never at a trial's start
        except ValueError as exc:
            raise errors.TuixpError(str(exc)) from None
        self._system_metrics = every

    # -- inside a step ---------------------------------------------------------------------
    @property
    def current_trial_id(self) -> int:
        scope = steps_mod.current_scope.get()
        if scope is None or scope.ctx.experiment != self.id:
            raise errors.TrialIDNotFoundError(
                "Current Trial ID only exists during a trial execution"
            )
        return scope.ctx.trial_id

    def log_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Keep the file or folder at ``path`` (a checkpoint, a plot, predictions) with the
        running trial, under ``name`` (default: its base name); inside a step only. Stored once
        by content hash beside the store; logging a name again in a trial keeps the last.
        Returns the content hash."""
        if steps_mod.current_scope.get() is None:
            raise errors.TrialIDNotFoundError(
                "Current Trial ID only exists during a trial execution"
            )
        return str(steps_mod.record_artifact(path, name)["hash"])

    def get_artifact(self, name: str, trial_id: int | None = None) -> Path:
        """A local path to the bytes of artifact ``name`` of ``trial_id`` (the latest trial when
        None): the file itself, or a folder laid out as it was logged. Read-only: copy it to
        change it (``tuixp artifact EXP TRIAL NAME -o PATH``)."""
        from tuixp.store import artifacts
        from tuixp.store.paths import StorePaths

        trial_id = self._check_trial(trial_id)
        with self.store.reading() as con:
            art = artifacts.find(con, self.id, trial_id, name)
        return artifacts.ArtifactStore(StorePaths(self.store.path).artifacts).local_path(art)

    # -- running trials --------------------------------------------------------------------
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
        """What ``Node.compute`` calls: the record path starts in ``tuixp.trial.plan``."""
        return run_trials(self, node, points, seed, scheduler, listeners, cache, worker_timeout)

    # -- history ---------------------------------------------------------------------------
    @property
    def trial_id(self) -> int:
        """The latest trial id of this experiment (0 when none), across processes.

        Inside a running step it raises LockedTrialError: use ``current_trial_id`` there.
        """
        scope = steps_mod.current_scope.get()
        if scope is not None and scope.ctx.experiment == self.id:
            raise errors.LockedTrialError()
        return self._last_trial()

    def _last_trial(self) -> int:
        # Asking creates nothing: a path where nothing was recorded has no trial yet.
        return self.store.counter.last(self.id) if self.store.has_records() else 0

    def _check_trial(self, trial_id: int | None) -> int:
        last = self._last_trial()
        if trial_id is None:
            if last == 0:
                raise errors.TrialIDNotFoundError("Unable to find trial id: no trial has run yet")
            return last
        if not isinstance(trial_id, int) or trial_id < 1 or trial_id > last:
            raise errors.TrialIDNotFoundError(f"Unable to find trial id: {trial_id}")
        return trial_id

    def get_history(
        self,
        verbose: bool = False,
        status: bool = False,
        annotations: bool = False,
        deleted: bool = False,
    ) -> Any:
        """daskperiment's history, its columns exactly; tuixp's options add columns last:
        ``status=True`` the ``Status`` (running, failed, ...), ``annotations=True`` each trial's
        ``Name``, ``Note``, ``Tags`` (a list) and ``Starred``. Deleted trials
        (``delete_trial``, ``tuixp rm``) are left out unless ``deleted=True``, which adds their
        ``Deleted`` time."""
        from tuixp.store import annotation as notes
        from tuixp.store import queries

        with self.store.reading() as con:
            df = queries.history(con, self.id, list(self._params), verbose=verbose, status=status)
            found = notes.current(con, self.id)
        gone = [t for t, a in found.items() if a.deleted]
        if gone and not deleted:
            df = df.drop(index=[t for t in gone if t in df.index])
        if annotations:
            empty = notes.Annotation()
            of = [found.get(t, empty) for t in df.index]
            df["Name"] = [a.name for a in of]
            df["Note"] = [a.note for a in of]
            df["Tags"] = [list(a.tags) for a in of]
            df["Starred"] = [a.starred for a in of]
        if deleted:
            import pandas as pd

            when = [found[t].deleted_at if t in found else None for t in df.index]
            df["Deleted"] = pd.to_datetime(
                [w.astimezone().replace(tzinfo=None) if w is not None else pd.NaT for w in when]
            )
        return df

    def get_parameters(self, trial_id: int | None = None) -> dict[str, Any]:
        if trial_id is None:
            return self._values({})
        trial_id = self._check_trial(trial_id)
        from tuixp.store import queries

        with self.store.reading() as con:
            return queries.trial(con, self.id, trial_id)["params"]

    def get_code(self, trial_id: int | None = None) -> str:
        if trial_id is None:
            return _join_code(s.source for s in self._steps.values())
        trial_id = self._check_trial(trial_id)
        from tuixp.store import queries

        with self.store.reading() as con:
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
            world = capture_world(self)
            return {**world["environment"], "packages": world["packages"], "git": world["git"]}
        trial_id = self._check_trial(trial_id)
        with self.store.reading() as con:
            env: dict[str, Any] = queries.environment(con, self.id, trial_id)
        return env

    def get_environment_record(
        self, trial_id: int | None = None, category: str | None = None
    ) -> Any:
        """tuixp's structured environment: summary lines, or one category's record (platform,
        cpu, gpu, python, numpy, scipy, pandas, conda, git with its diff, requirements,
        packages)."""
        from tuixp.capture.environment import environment_view

        return environment_view(self._environment_doc(trial_id), category)

    def start_dashboard(self, *args: Any, **kwargs: Any) -> None:
        """daskperiment's Flask dashboard has no counterpart: tuixp's is a terminal UI, which
        ``tuixp serve`` also shows in a browser."""
        raise errors.TuixpError(
            "tuixp has no web dashboard: run `tuixp` in a terminal (over SSH too) to browse, "
            "compare and re-run trials (`tuixp serve` shows that UI in a browser), or "
            "`tuixp ls`/`tuixp sql` to query them"
        )

    def get_persisted(self, step_name: str, trial_id: int | None = None) -> Any:
        trial_id = self._check_trial(trial_id)
        from tuixp.store import queries
        from tuixp.store.objects import ObjectStore

        with self.store.reading() as con:
            found = queries.persisted(con, self.id, trial_id, step_name)
        if found is None:  # daskperiment's error class here (its message was the pickle path)
            raise errors.TrialIDNotFoundError(
                f"Unable to find persisted output of step {step_name!r} in trial {trial_id}"
            )
        return ObjectStore(self.store.objects_dir).get(*found)

    # -- what the command line uses (tuixp.scripts, tuixp.cli, tuixp.repeat) ---------------
    def use_store(self, path: Any) -> None:
        """Record this experiment's trials in ``path`` from now on, whatever ``store=`` said
        (``tuixp run --store``); the store is opened again on its next use."""
        self._store_arg, self._store, self._state = path, None, None

    @property
    def parameter_names(self) -> list[str]:
        """The declared parameters' names, in the order they were declared."""
        return list(self._params)

    def check_parameters(self, point: Mapping[str, Any]) -> dict[str, Any]:
        """Every parameter's value for a trial run with ``point``; ParameterUndeclaredError for
        a name never declared, ParameterUndefinedError for a parameter left without a value."""
        return self._values(dict(point))


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


def _join_code(sources: Iterable[str]) -> str:
    """Step sources in registration order, two blank lines apart (as daskperiment's)."""
    return "\n\n".join(src.rstrip("\n") + "\n" for src in sources)


# URI schemes of daskperiment's Redis and MongoDB backends (redis-py's and pymongo's forms).
SERVER_SCHEMES = ("redis", "rediss", "unix", "mongodb", "mongodb+srv")


def _store_from_backend(store: Any, backend: Any) -> Any:
    """daskperiment's ``backend=`` as a tuixp store: 'local' is the default store, a folder
    holds ``tuixp.duckdb``; Redis and MongoDB have no tuixp counterpart."""
    if _run_store:  # ``tuixp run --store PATH`` is loading a script: whatever it said
        return _run_store[-1]
    if isinstance(store, str) and store == "local" and backend is None:
        return None  # Experiment(id, 'local'): daskperiment's second argument was backend
    if backend is None or (isinstance(backend, str) and backend == "local"):
        return store
    if store is not None:
        raise errors.TuixpError("Give store= or backend=, not both (backend= is daskperiment's)")
    text = os.fspath(backend) if isinstance(backend, (str, os.PathLike)) else None
    # daskperiment also took a redis.ConnectionPool or a pymongo Database (backend.rst).
    server = {"redis": "redis", "pymongo": "mongodb"}.get(type(backend).__module__.split(".")[0])
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text) if text is not None else None
    if scheme and scheme.group(1).lower() in SERVER_SCHEMES:
        server = scheme.group(1)
    if server is not None:
        raise errors.TuixpError(
            f"tuixp has no {server} backend: every trial is recorded in one DuckDB "
            "store file (store='path/tuixp.duckdb'); to share history between machines, copy the "
            "file or bring another store's trials in with `tuixp merge OTHER.duckdb`"
        )
    if text is None:
        raise errors.TuixpError(
            f"backend= must be 'local' or a folder path, not {type(backend).__name__}"
        )
    if scheme:
        raise errors.TuixpError(f"backend= must be 'local' or a folder path, not a URI ({text})")
    if text.endswith(".duckdb"):
        return text
    return os.path.join(text, "tuixp.duckdb")


def _instance_key(id: Any, store: Any, backend: Any) -> tuple[str, str] | None:
    """The (id, store path) an experiment object is shared under; None when not shareable."""
    from tuixp.store.connection import resolve_store_path

    if not isinstance(id, str):
        return None
    try:
        path = resolve_store_path(_store_from_backend(store, backend))
    except (errors.TuixpError, OSError, TypeError, ValueError):
        return None  # __init__ raises the clear error
    return id, str(path)


# The store ``tuixp run --store PATH`` gives the experiments of the script it loads.
_run_store: list[Any] = []


class fresh_instances:
    """Within this block ``Experiment(id)`` makes new objects (``tuixp run`` loading a script
    is a fresh start, even when the same process loaded it before); with ``store``, they use
    that store whatever their ``store=``/``backend=`` said, so what the script reads while it
    loads (``print(ex.get_history())``) comes from the store its trials go to."""

    def __init__(self, store: Any = None) -> None:
        self.store = store

    def __enter__(self) -> None:
        with Experiment._instances_lock:
            self._saved = Experiment._instances
            Experiment._instances = {}
        if self.store is not None:
            _run_store.append(self.store)

    def __exit__(self, *exc: Any) -> None:
        if self.store is not None:
            _run_store.pop()
        with Experiment._instances_lock:
            Experiment._instances = self._saved
