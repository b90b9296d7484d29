"""Bringing a daskperiment 0.5.0 local history (``daskperiment_cache/``) into a tuixp store.

daskperiment kept each experiment in ``daskperiment_cache/<id>/``: ``<id>.pkl`` (its backend
object, pickled: parameters, results, seeds, times and metrics of every trial), ``code/<id>_<n>.py``,
``environment/<kind>_<id>_<n>.{json,txt}`` and ``persist/<id>_<step>_<n>.pkl``. The history pickle
is read with a restricted unpickler that builds nothing but daskperiment's own records, paths,
pandas timestamps and numpy scalars: any other global refuses the experiment, so a crafted file
cannot run code. Persisted outputs are arbitrary pickles: they are copied as they are (never
loaded here) and load only on an explicit ``get_persisted``, as in daskperiment.

Each trial gets a uuid derived from its content, so importing again adds nothing. daskperiment
itself need not be installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuixp.errors import TuixpError
from tuixp.store.schema import metric_value

_NAMESPACE = uuidlib.UUID("6f1c6d1e-3b1a-4c59-9d7e-2a4f0c9b7d11")

# daskperiment's classes found in a history pickle: rebuilt as plain records.
_DASKPERIMENT_CLASSES = {
    ("daskperiment.backend.local", "LocalBackend"),
    ("daskperiment.core.trial.local", "LocalTrialManager"),
    ("daskperiment.core.metric.local", "LocalMetricManager"),
    ("daskperiment.core.metric.local", "Metric"),
}
# Other globals a history may hold, each a constructor of plain data.
_SAFE_GLOBALS = {
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
    ("pathlib", "PurePosixPath"),
    ("pathlib", "PureWindowsPath"),
    ("pandas._libs.tslibs.timestamps", "_unpickle_timestamp"),
    ("pandas._libs.tslibs.timedeltas", "_timedelta_unpickle"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "dtype"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "complex"),
    ("collections", "OrderedDict"),
}


class ImportRefused(TuixpError):
    """A daskperiment history that cannot be imported; the message says why."""


class _Saved:
    """One of daskperiment's objects, as the attributes it was pickled with."""

    def __init__(self, *args: Any) -> None:
        self.state: dict[str, Any] = {}

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.state = dict(state) if isinstance(state, dict) else {}


class _HistoryUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _DASKPERIMENT_CLASSES:
            return type(name, (_Saved,), {})
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise ImportRefused(
            f"it holds {module}.{name}, which is not part of a daskperiment history "
            "(refused: unpickling it could run code)"
        )


@dataclass
class Trial:
    trial_id: int
    params: dict[str, Any]
    result: Any
    result_type: str | None
    success: bool
    finished: float | None  # epoch seconds
    process_time: float | None  # seconds
    description: str | None
    seed: int | None


@dataclass
class History:
    experiment: str
    folder: Path
    trials: list[Trial]
    metrics: dict[str, dict[int, list[tuple[int, Any, float | None]]]] = field(default_factory=dict)

    def text(self, kind: str, trial_id: int, ext: str) -> str | None:
        path = self.folder / "environment" / f"{kind}_{self.experiment}_{trial_id}.{ext}"
        try:
            return path.read_text()
        except (OSError, UnicodeDecodeError):
            return None

    def code(self, trial_id: int) -> str | None:
        try:
            text = (self.folder / "code" / f"{self.experiment}_{trial_id}.py").read_text()
        except (OSError, UnicodeDecodeError):
            return None
        lines = text.splitlines(keepends=True)  # the first line is daskperiment's header
        return "".join(lines[1:]) if lines and lines[0].startswith("# Code output") else text

    def persisted(self, trial_id: int) -> dict[str, Path]:
        prefix, suffix = f"{self.experiment}_", f"_{trial_id}.pkl"
        found = {}
        for path in sorted((self.folder / "persist").glob(f"{prefix}*{suffix}")):
            step = path.name[len(prefix) : -len(suffix)]
            if step.isidentifier():
                found[step] = path
        return found


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    try:
        if hasattr(value, "total_seconds"):  # a pandas Timedelta
            return float(value.total_seconds())
        if hasattr(value, "to_pydatetime"):  # a naive pandas Timestamp, in local time
            return float(value.to_pydatetime().timestamp())
    except (ValueError, OverflowError):
        return None
    return None


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers; NaN as None."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def read_history(folder: Path) -> History:
    """One experiment's history from ``daskperiment_cache/<id>/``; ImportRefused says why not."""
    experiment = folder.name
    path = folder / f"{experiment}.pkl"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportRefused(f"cannot read {path}: {exc.strerror}") from None
    try:
        backend = _HistoryUnpickler(io.BytesIO(data)).load()
    except ImportRefused as exc:
        raise ImportRefused(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - truncated, damaged, or not a pickle at all
        raise ImportRefused(
            f"{path} is not a readable daskperiment history ({type(exc).__name__}: {exc})"
        ) from None
    if type(backend).__name__ != "LocalBackend" or not isinstance(backend, _Saved):
        raise ImportRefused(f"{path} does not hold a daskperiment LocalBackend")
    state = backend.state
    if state.get("experiment_id") != experiment:
        raise ImportRefused(
            f"{path} belongs to experiment {state.get('experiment_id')!r}, not {experiment!r} "
            "(its folder was renamed?)"
        )
    trials_obj = state.get("trials")
    if not isinstance(trials_obj, _Saved):
        raise ImportRefused(f"{path} has no trial manager")
    ts = trials_obj.state
    params_h, results_h = ts.get("_parameters_history"), ts.get("_result_history")
    if not isinstance(params_h, dict) or not isinstance(results_h, dict):
        raise ImportRefused(f"{path} has no trial history")
    last = ts.get("_trial_id")
    missing = [t for t in range(1, int(last or 0) + 1) if t not in results_h]
    if missing:
        raise ImportRefused(
            f"{path} is partial: it counts {last} trials but has no result for trial(s) "
            + ", ".join(map(str, missing))
        )
    trials = []
    for tid in sorted(results_h):
        r = results_h[tid]
        if not isinstance(tid, int) or not isinstance(r, dict):
            raise ImportRefused(f"{path}: trial {tid!r} is not a daskperiment trial record")
        p = params_h.get(tid) or {}
        seed = _plain(r.get("Seed"))
        description = _plain(r.get("Description"))
        trials.append(
            Trial(
                tid,
                {str(k): _plain(v) for k, v in p.items()},
                _plain(r.get("Result")),
                r.get("Result Type"),
                bool(r.get("Success")),
                _seconds(r.get("Finished")),
                _seconds(r.get("Process Time")),
                str(description) if description is not None else None,
                int(seed) if isinstance(seed, (int, float)) else None,
            )
        )
    metrics: dict[str, dict[int, list[tuple[int, Any, float | None]]]] = {}
    manager = state.get("metrics")
    saved = manager.state.get("metrics") if isinstance(manager, _Saved) else None
    for name, metric in (saved if isinstance(saved, dict) else {}).items():
        if not isinstance(metric, _Saved):
            continue
        for tid, rows in (metric.state.get("values") or {}).items():
            metrics.setdefault(str(name), {})[int(tid)] = [
                (int(row["Epoch"]), _plain(row["Value"]), _seconds(row.get("Timestamp")))
                for row in rows
            ]
    return History(experiment, folder, trials, metrics)


def find_histories(path: Path) -> list[Path]:
    """The experiment folders under ``path`` (a daskperiment_cache/ or one experiment's folder)."""
    if not path.is_dir():
        raise ImportRefused(
            f"{path} is not a folder (give daskperiment_cache/ or one of its folders)"
        )
    if (path / f"{path.name}.pkl").is_file():
        return [path]
    found = sorted(p for p in path.iterdir() if p.is_dir() and (p / f"{p.name}.pkl").is_file())
    if not found:
        raise ImportRefused(
            f"{path} is not a daskperiment history: no EXPERIMENT/EXPERIMENT.pkl in it"
        )
    return found


def trial_uuid(history: History, trial: Trial) -> str:
    key = f"daskperiment/{history.experiment}/{trial.trial_id}/{trial.finished}/{trial.seed}"
    return uuidlib.uuid5(_NAMESPACE, key).hex


@dataclass
class Imported:
    experiment: str
    trials: dict[int, int] = field(default_factory=dict)  # daskperiment id -> tuixp id
    skipped: int = 0  # already in the store
    notes: list[str] = field(default_factory=list)


def _git_doc(text: str | None) -> dict[str, Any]:
    try:
        raw = json.loads(text) if text else {}
    except ValueError:
        raw = {}
    repo = raw.get("Git Repository")
    if not repo or repo == "Not Git Controlled":
        return {}
    branch = raw.get("Git Active Branch")
    return {
        "repository": repo,
        "branch": None if branch == "DETACHED" else branch,
        "detached": branch == "DETACHED",
        "commit": raw.get("Git HEAD Commit"),
        "dirty": bool(raw.get("Git Dirty Flag")),
    }


def _environment_doc(history: History, tid: int) -> dict[str, Any]:
    def load(kind: str) -> dict[str, Any]:
        try:
            doc = json.loads(history.text(kind, tid, "json") or "{}")
        except ValueError:
            return {}
        return doc if isinstance(doc, dict) else {}

    plat, py = load("platform"), load("python")
    return {
        "platform": {"description": plat.get("Platform Information")},
        "cpu": {"count": plat.get("Device CPU Count")},
        "python": {
            "implementation": py.get("Python Implementation"),
            "version": py.get("Python Version"),
            "venv": py.get("Python Prefix") if py.get("Python venv Flag") else None,
        },
        "imported_from": "daskperiment",
    }


def _packages(text: str | None) -> dict[str, str]:
    found = {}
    for line in (text or "").splitlines():
        name, sep, version = line.strip().partition("==")
        if sep and name:
            found[name] = version
    return found


def import_history(store: Any, history: History) -> Imported:
    """Record ``history``'s trials in ``store`` (a tuixp Store); those already there are skipped."""
    from tuixp.capture.hashing import canonical_json, text_hash
    from tuixp.execution.recorder import result_fields
    from tuixp.store import events as journal_events
    from tuixp.store.objects import ObjectStore

    done = Imported(history.experiment)
    existing: set[str] = set()
    announced = False
    if store.path.exists():
        with store.connect() as con:
            existing = {
                r[0]
                for r in con.execute(
                    "SELECT uuid FROM trial_record WHERE experiment = ?", [history.experiment]
                ).fetchall()
            }
            announced = bool(
                con.execute(
                    "SELECT 1 FROM experiment_record WHERE name = ?", [history.experiment]
                ).fetchone()
            )
    new = [t for t in history.trials if trial_uuid(history, t) not in existing]
    done.skipped = len(history.trials) - len(new)
    if not new:
        return done
    objects = ObjectStore(store.objects_dir)
    ids = store.counter.next_ids(history.experiment, len(new))
    events: list[dict[str, Any]] = []
    if not announced:
        first = min((t.finished or 0.0) for t in new)
        events.append(journal_events.experiment(history.experiment, first, None))
    for tuixp_id, t in zip(ids, new):
        u = trial_uuid(history, t)
        blobs: dict[str, str] = {}
        code = history.code(t.trial_id)
        code_hash = None
        if code is not None:
            h = text_hash(code)
            blobs[h] = code
            rows = [{"ord": 0, "step": "<daskperiment>", "source_hash": h}]
            code_hash = text_hash(canonical_json(rows))
            events.append(journal_events.code_set(code_hash, rows))
        else:
            done.notes.append(f"trial {t.trial_id}: no code file")
        env_text = canonical_json(_environment_doc(history, t.trial_id))
        env_hash = text_hash(env_text)
        blobs[env_hash] = env_text
        git = _git_doc(history.text("git", t.trial_id, "json"))
        git_text = canonical_json(git)
        git_hash = text_hash(git_text)
        blobs[git_hash] = git_text
        packages = _packages(history.text("requirements", t.trial_id, "txt"))
        packages_hash = text_hash(canonical_json(packages))
        events.extend(journal_events.blob(h, v) for h, v in blobs.items())
        events.append(journal_events.package_set(packages_hash, packages))
        finished = t.finished
        started = finished - t.process_time if finished is not None and t.process_time else finished
        params = json.loads(json.dumps(t.params, default=repr))
        events.append(
            journal_events.trial_started(
                u,
                history.experiment,
                tuixp_id,
                started,
                t.seed,
                params,
                host=None,
                pid=None,
                script=None,
                scheduler="daskperiment",
                changes=[],
                data={},
                code_hash=code_hash,
                environment_hash=env_hash,
                packages_hash=packages_hash,
                git_hash=git_hash,
                git_commit=git.get("commit"),
                git_branch=git.get("branch"),
                git_dirty=bool(git.get("dirty")),
            )
        )
        for name, by_trial in history.metrics.items():
            for seq, (epoch, value, at) in enumerate(by_trial.get(t.trial_id, [])):
                try:
                    number, value_type, value_int = metric_value(value)
                except ValueError:
                    done.notes.append(
                        f"trial {t.trial_id}: metric {name} epoch {epoch} not a number"
                    )
                    continue
                events.append(
                    journal_events.metric(
                        u,
                        history.experiment,
                        tuixp_id,
                        name,
                        epoch,
                        number,
                        at,
                        value_type=value_type,
                        value_int=value_int,
                        seq=seq,
                    )
                )
        for step, path in history.persisted(t.trial_id).items():
            digest, size = _copy_pickle(objects, path)
            events.append(
                journal_events.persisted(
                    u, history.experiment, tuixp_id, step, digest, "pickle", size
                )
            )
        note = [f"imported from daskperiment trial {t.trial_id} ({history.folder})"]
        fields: dict[str, Any] = {"notes": json.dumps(note)}
        if t.success:
            fields.update(result_fields(t.result))
            if t.result_type:
                fields["result_type"] = t.result_type
        else:
            error_type, _, message = (t.description or "Error()").partition("(")
            fields["error_type"] = error_type or "Error"
            fields["error_message"] = message[:-1] if message.endswith(")") else message
        status = "succeeded" if t.success else "failed"
        events.append(journal_events.trial_finished(u, status, finished, **fields))
        done.trials[t.trial_id] = tuixp_id
    store.record(events, sync=True)
    with store.connect():
        pass  # ingest now: the import is in the database when this returns
    return done


def _copy_pickle(objects: Any, path: Path) -> tuple[str, int]:
    """Copy a persisted output's pickle into the objects folder as it is, never loading it."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    target = objects.path_of(digest, "pickle")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return digest, len(data)
