"""The metrics half of the in-step Python API: ``save_metric`` (daskperiment's), ``log_metrics``,
``metric_goal`` and ``load_metric``, as methods every ``tuixp.Experiment`` has (``Experiment``
derives from ``Measuring``). Points go to the step's buffer (``tuixp.execution.steps``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tuixp import errors
from tuixp.execution import steps as steps_mod
from tuixp.store.schema import metric_value

if TYPE_CHECKING:
    from tuixp.store.store import Store


class Measuring:
    """``Experiment``'s methods that save and read metrics."""

    if TYPE_CHECKING:  # what they use of the Experiment they are part of
        id: str

        @property
        def store(self) -> Store: ...

        def _check_trial(self, trial_id: int | None) -> int: ...

    def save_metric(
        self, metric_key: Any = None, epoch: Any = None, value: Any = None, *, key: Any = None
    ) -> None:
        """Save a metric from inside a step: ``save_metric("loss", epoch=1, value=0.5)``.

        ``metric_key`` is daskperiment's name for it; ``key=`` is accepted too. A value loads
        back with the type it was saved with, as in daskperiment: ints (and numpy integers) as
        int64, exactly, within 64 bits (larger ones are refused); bools (and numpy bools) as
        bool; other numbers (numpy float32 too) as float64. A numpy 0-d array or a one-element
        tensor is saved as the Python number its ``.item()`` gives.
        """
        if key is None and type(metric_key) is str and metric_key.isidentifier():
            key = metric_key  # the usual call, checked the short way
        else:
            key = _metric_key(metric_key, key)
        if steps_mod.current_scope.get() is None:  # daskperiment's answer outside a trial
            raise errors.TrialIDNotFoundError(
                "Current Trial ID only exists during a trial execution"
            )
        if epoch is None or value is None:
            raise errors.TuixpError(f"Metric {key}: save_metric needs an epoch and a value")
        steps_mod.record_metric(key, *_metric_point(key, epoch, value))

    def metric_goal(self, name: str, goal: str) -> None:
        """Say whether a metric's best value is its lowest (``"min"``: a loss) or its highest
        (``"max"``: an accuracy): ``ex.metric_goal("val_acc", "max")``. A metric no one gave
        a goal takes the experiment's goal for its result (``Experiment(goal=)``), else
        ``"min"``. The best value and its epoch of every trial follow it, the ones already
        recorded too (view ``metric_best``, the TUI's trial table, ``tuixp ls --sort``). Metrics
        named ``sys/...`` (system metrics) never have a best."""
        name = identifier(name, "Metric name")
        if goal not in ("min", "max"):
            raise errors.TuixpError(
                f"Metric {name}: goal must be 'min' (lower is better) or 'max' (higher is "
                f"better), not {goal!r}"
            )
        from tuixp.store import events as journal_events

        self.store.record([journal_events.metric_goal(self.id, name, goal)], sync=True)
        self.store.schedule_ingest()

    def log_metrics(self, metrics: Mapping[str, Any], epoch: Any = None) -> None:
        """Save several metrics at once from inside a step:
        ``ex.log_metrics({"loss": 0.31, "acc": 0.9}, epoch=12)``.

        ``epoch`` may be any whole number that fits in 64 bits (an epoch, or a global step in
        the millions). Omitted, each metric takes its next epoch in this step: 0 the first
        time, then one more than the last epoch this step saved of it (with ``save_metric``
        too). Values are typed as in ``save_metric``; every point keeps its wall-clock time
        (the ``recorded_at`` column), so plots can use either axis. A bad name or value refuses
        the whole call: none of its metrics is saved.
        """
        scope = steps_mod.current_scope.get()
        if scope is None:
            raise errors.TrialIDNotFoundError(
                "Current Trial ID only exists during a trial execution"
            )
        if type(metrics) is not dict and not isinstance(metrics, Mapping):
            raise errors.TuixpError(
                "log_metrics takes a mapping of metric names to values, given: "
                f"{type(metrics).__name__}"
            )
        if type(epoch) is int and _INT64_LOW <= epoch < _INT64_HIGH:
            buffer = steps_mod.quiet_buffer(scope)
            if buffer is not None:
                values = tuple(metrics.values())
                for value in values:
                    if type(value) is not float:
                        break
                else:  # floats: the usual call of a training loop, under the last call's names
                    keys = tuple(metrics)
                    if buffer.add_floats(keys, values, epoch):
                        scope.last_floats = (keys, epoch)
                        return
        epochs = scope.epochs
        points: list[tuple[str, int, float, str, int | None]] = []
        for name, value in metrics.items():
            if name not in _CHECKED_NAMES:
                name = identifier(name, "Metric name")
                if len(_CHECKED_NAMES) < 10_000:
                    _CHECKED_NAMES.add(name)
            if value is None:
                raise errors.TuixpError(f"Metric {name}: log_metrics needs a value")
            at = epochs.get(name, -1) + 1 if epoch is None else epoch
            if type(value) is float and type(at) is int and _INT64_LOW <= at < _INT64_HIGH:
                points.append((name, at, value, "float", None))  # the usual point, inlined
            else:
                points.append((name, *_metric_point(name, at, value)))
        steps_mod.record_metrics(scope, points)

    def load_metric(
        self, metric_key: Any = None, trial_id: int | list[int] | None = None, *, key: Any = None
    ) -> Any:
        """A DataFrame indexed by ``Epoch``, one column per trial id (an int or a list; the
        latest trial when None). A trial that never saved the metric raises
        TrialIDNotFoundError, as daskperiment's did. System metrics are read by their names
        (``"sys/cpu_percent"``)."""
        key = _metric_name(metric_key, key)
        ids = [trial_id] if isinstance(trial_id, int) or trial_id is None else list(trial_id)
        ids = [self._check_trial(t) for t in ids]
        from tuixp.store import metrics

        with self.store.reading() as con:
            return metrics.load_metric(con, self.id, key, ids)

    def metric_points(self, name: str, trial_id: int | None = None) -> Any:
        """One metric of one trial (the latest when None) as NumPy arrays, without pandas:
        ``.epoch`` (int64, ascending), ``.value`` (float64: ints and bools as numbers, NaN as
        saved), ``.recorded_at`` (Unix seconds) and ``.elapsed`` (seconds since its first
        point). For a training loop's millions of points, where ``load_metric``'s DataFrame
        (and importing pandas for it) is more than a plot needs. Errors as ``load_metric``."""
        key = _metric_name(name, None)
        tid = self._check_trial(trial_id)
        from tuixp.store import metrics

        with self.store.reading() as con:
            return metrics.trial_metric_points(con, self.id, key, tid)


_INT64_LOW, _INT64_HIGH = -(1 << 63), 1 << 63
# Metric names already found valid: a training loop logs the same few names millions of times.
_CHECKED_NAMES: set[str] = set()


def identifier(value: Any, what: str) -> str:
    """daskperiment's check of an id or a name, with its messages."""
    if not isinstance(value, str):
        raise errors.TuixpError(f"{what} must be str, given: {value}{type(value)}")
    if not value.isidentifier():
        raise errors.TuixpError(f"{what} must be valid as python identifier: {value}")
    return value


def _metric_name(metric_key: Any, key: Any) -> str:
    """The metric a read asks for: a system metric by its name (``"sys/cpu_percent"``), else
    a name checked as ``save_metric`` checks it."""
    from tuixp.store.metric_names import is_system_metric

    if isinstance(metric_key, str) and is_system_metric(metric_key) and key is None:
        return metric_key
    return _metric_key(metric_key, key)


def _metric_key(metric_key: Any, key: Any) -> str:
    if metric_key is not None and key is not None:
        raise errors.TuixpError("Give the metric's name once: metric_key= or key=, not both")
    return identifier(metric_key if metric_key is not None else key, "Metric name")


def _metric_point(key: str, epoch: Any, value: Any) -> tuple[int, float, str, int | None]:
    """``(epoch, value as a float, its type, an int's exact value)`` as stored, or the error
    ``save_metric`` raises. Plain Python ints and floats take the short way."""
    if type(epoch) is not int:
        epoch = _whole_epoch(key, epoch)
    if not -(1 << 63) <= epoch < (1 << 63):
        raise errors.TuixpError(f"Metric {key}: epoch must fit in 64 bits")
    kind = type(value)
    if kind is float:
        return epoch, value, "float", None
    if kind is int and -(1 << 63) <= value < (1 << 63):
        return epoch, float(value), "int", value
    return (epoch, *_typed_metric_value(key, value))


def _typed_metric_value(key: str, value: Any) -> tuple[float, str, int | None]:
    try:
        return metric_value(value)
    except ValueError as exc:
        raise errors.TuixpError(f"Metric {key}: {exc}") from exc


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
