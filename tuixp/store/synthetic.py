"""Synthetic stores of any size, written straight into the tables: for tests and the scale bench.

Trials look like a real hyper-parameter search: a few parameters (a float, an int, a string),
mostly succeeded with some failed and interrupted ones, a result, ``loss`` and ``accuracy``
metrics over a few epochs, per-step timings, and code, environment and git records shared by
many trials as the real recorder stores them (once, by hash). Everything is deterministic for a
given seed and start time, so snapshots of a synthetic store are stable.

Rows are built as Arrow columns with numpy and inserted in batches (``INSERT ... BY NAME``), so a
million trials take seconds, not the hours that recording them through ``Experiment`` would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from tuixp.capture.hashing import canonical_json, text_hash
from tuixp.store import schema
from tuixp.store.store import Store

STEPS = ("load_data", "train", "evaluate")
MODELS = ("ridge", "lasso", "forest", "boost")
BASE_TIME = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC: fixed so screenshots are stable
BATCH = 100_000

_CODE = {
    "load_data": "def load_data(n):\n    return make_dataset(n)\n",
    "train": "def train(data, lr, depth, model):\n    return fit(model, data, lr=lr, depth=depth)\n",
    "evaluate": (
        "def evaluate(fitted, data):\n"
        "    for epoch in range(3):\n"
        "        ex.save_metric('loss', epoch=epoch, value=fitted.loss(epoch))\n"
        "    return fitted.score(data)\n"
    ),
}


def _blobs(experiment: str) -> tuple[list[dict[str, str]], dict[str, str], list[dict[str, object]]]:
    """Blob rows, the hashes a trial refers to, and the code set rows (shared by every trial)."""
    blobs: dict[str, str] = {}
    code_rows = []
    for i, (step, source) in enumerate(_CODE.items()):
        h = text_hash(source)
        blobs[h] = source
        code_rows.append({"ord": i, "step": step, "source_hash": h})
    code_hash = text_hash(canonical_json(code_rows))
    env = {
        "platform": {
            "system": "Linux",
            "release": "6.1.0",
            "machine": "x86_64",
            "hostname": "trainbox",
            "version": "#1 SMP",
        },
        "python": {
            "implementation": "CPython",
            "version": "3.11.9",
            "executable": "/srv/venv/bin/python",
            "venv": "/srv/venv",
            "conda": None,
        },
        "cpu": {"brand_raw": "Synthetic CPU", "arch": "X86_64", "count": 2},
        "gpu": [],
    }
    env_text = canonical_json(env)
    env_hash = text_hash(env_text)
    blobs[env_hash] = env_text
    git: dict[str, Any] = {
        "repository": "/srv/project",
        "branch": "main",
        "detached": False,
        "commit": "3f2a9c1d0b7e4a5f8c6d2e1b0a9f8e7d6c5b4a39",
        "dirty": True,
        "untracked": [],
        "diff": "--- a/train.py\n+++ b/train.py\n@@ -1 +1 @@\n-lr = 0.1\n+lr = 0.01\n",
        "notes": [],
    }
    git_text = canonical_json(git)
    git_hash = text_hash(git_text)
    blobs[git_hash] = git_text
    tb = (
        'Traceback (most recent call last):\n  File "train.py", line 12, in train\n'
        "    return fit(model, data, lr=lr, depth=depth)\n"
        "FloatingPointError: loss diverged\n"
    )
    tb_hash = text_hash(tb)
    blobs[tb_hash] = tb
    packages = {"numpy": "2.1.0", "pandas": "2.2.3", "dask": "2026.8.0", "scikit-learn": "1.5.2"}
    packages_hash = text_hash(canonical_json(packages))
    refs = {
        "code_hash": code_hash,
        "environment_hash": env_hash,
        "git_hash": git_hash,
        "packages_hash": packages_hash,
        "traceback_hash": tb_hash,
        "git_commit": git["commit"],
    }
    rows = [{"hash": h, "text": t} for h, t in blobs.items()]
    sets = [{"hash": code_hash, **r} for r in code_rows]
    sets_pk = [{"hash": packages_hash, "name": n, "version": v} for n, v in packages.items()]
    return rows, refs, [*sets, *({"_package": True, **p} for p in sets_pk)]


def _insert(con: object, table: str, arrow: pa.Table) -> None:
    con.register("_synthetic", arrow)  # type: ignore[attr-defined]
    # Keyless per-trial tables take new trials' rows as they are; the others skip known keys.
    how = "INSERT" if table in schema.KEYS else "INSERT OR IGNORE"
    try:
        con.execute(  # type: ignore[attr-defined]
            f"{how} INTO {table} BY NAME SELECT * FROM _synthetic"
        )
    finally:
        con.unregister("_synthetic")  # type: ignore[attr-defined]


def _choose(mask: np.ndarray, yes: Any, no: Any) -> pa.Array:
    """Strings: ``yes`` (a value or an array) where ``mask``, else ``no`` (a value or None)."""
    out = np.full(len(mask), no, dtype=object)
    out[mask] = yes[mask] if isinstance(yes, np.ndarray) else yes
    return pa.array(out, type=pa.string())


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array((seconds * 1_000_000).astype("int64"), type=pa.timestamp("us", tz="UTC"))


def generate(
    store_path: str | Path,
    trials: int,
    experiment: str = "search",
    epochs: int = 3,
    seed: int = 0,
    start: float = BASE_TIME,
    with_steps: bool = True,
) -> Path:
    """Add ``trials`` synthetic trials of ``experiment`` to the store at ``store_path``.

    Trial ids continue after the experiment's last one. Returns the store's path.
    """
    store = Store(store_path)
    rng = np.random.default_rng(seed)
    blob_rows, refs, sets = _blobs(experiment)
    with store.connect(ingest=False) as con:
        con.execute("SET enable_progress_bar = false")
        row = con.execute(
            "SELECT max(trial_id) FROM trial_record WHERE experiment = ?", [experiment]
        ).fetchall()
        first = int(row[0][0] or 0) + 1 if row else 1
        con.execute("BEGIN")
        _insert(con, "blob", pa.Table.from_pylist(blob_rows))
        code = [{k: v for k, v in r.items()} for r in sets if "_package" not in r]
        pkgs = [{k: v for k, v in r.items() if k != "_package"} for r in sets if "_package" in r]
        _insert(con, "code_set", pa.Table.from_pylist(code))
        _insert(con, "package_set", pa.Table.from_pylist(pkgs))
        _insert(
            con,
            "experiment_record",
            pa.table(
                {"name": [experiment], "created_at": _ts(np.array([start])), "script": ["train.py"]}
            ),
        )
        for lo in range(0, trials, BATCH):
            n = min(BATCH, trials - lo)
            _batch(con, rng, experiment, first + lo, n, epochs, start, refs, with_steps)
        con.execute("COMMIT")
    return store.path


def _batch(
    con: object,
    rng: np.random.Generator,
    experiment: str,
    first: int,
    n: int,
    epochs: int,
    start: float,
    refs: dict[str, str],
    with_steps: bool,
) -> None:
    ids = np.arange(first, first + n, dtype=np.int32)
    lr = np.round(10 ** rng.uniform(-4, -1, n), 5)
    depth = rng.integers(2, 12, n)
    model_ix = rng.integers(0, len(MODELS), n)
    models = np.array(MODELS)[model_ix]
    status = np.where(rng.random(n) < 0.92, "succeeded", "failed").astype(object)
    status[rng.random(n) < 0.01] = "interrupted"
    ok = status == "succeeded"
    score = np.round(
        0.6
        + 0.3 * np.exp(-((np.log10(lr) + 2.5) ** 2))
        - 0.01 * np.abs(depth - 6)
        + rng.normal(0, 0.02, n),
        6,
    )
    started = start + (ids - 1).astype(np.float64) * 7.0
    elapsed = np.round(rng.gamma(4.0, 1.2, n), 3)
    finished = started + elapsed
    uuids = np.array([f"{experiment}-{i:010d}" for i in ids])
    params = [
        json.dumps({"lr": float(a), "depth": int(b), "model": str(c)})
        for a, b, c in zip(lr, depth, models)
    ]
    fail = status == "failed"
    _insert(
        con,
        "trial_record",
        pa.table(
            {
                "uuid": uuids,
                "experiment": np.full(n, experiment),
                "trial_id": ids,
                "status": status,
                "started_at": _ts(started),
                "finished_at": _ts(finished),
                "seed": rng.integers(0, 2**31, n),
                "params": params,
                "result": _choose(ok, np.char.mod("%.6g", score), None),
                "result_type": _choose(ok, "<class 'float'>", None),
                "result_value": pa.array(np.where(ok, score, np.nan), from_pandas=True),
                "error_type": _choose(
                    fail,
                    "FloatingPointError",
                    _choose(ok, None, "Interrupted").to_numpy(zero_copy_only=False),
                ),
                "error_message": _choose(
                    fail,
                    "loss diverged",
                    _choose(
                        ok, None, "the process running this trial ended before the trial did"
                    ).to_numpy(zero_copy_only=False),
                ),
                "traceback_hash": _choose(fail, refs["traceback_hash"], None),
                "host": np.full(n, "trainbox"),
                "pid": np.full(n, 4242, dtype=np.int32),
                "journal": np.full(n, "synthetic"),
                "script": np.full(n, "train.py"),
                "scheduler": np.full(n, "threads"),
                "code_hash": np.full(n, refs["code_hash"]),
                "environment_hash": np.full(n, refs["environment_hash"]),
                "packages_hash": np.full(n, refs["packages_hash"]),
                "git_hash": np.full(n, refs["git_hash"]),
                "git_commit": np.full(n, refs["git_commit"]),
                "git_branch": np.full(n, "main"),
                "git_dirty": np.ones(n, dtype=bool),
                "changes": np.full(n, "[]"),
                "notes": pa.nulls(n, pa.string()),
            }
        ),
    )
    _insert(
        con,
        "param_record",
        pa.table(
            {
                "trial_uuid": np.repeat(uuids, 3),
                "experiment": np.full(3 * n, experiment),
                "trial_id": np.repeat(ids, 3),
                "name": np.tile(["lr", "depth", "model"], n),
                "value": np.stack(
                    [
                        np.char.mod("%.5g", lr),
                        depth.astype(str),
                        np.char.add(np.char.add('"', models), '"'),
                    ],
                    axis=1,
                ).ravel(),
            }
        ),
    )
    if epochs:
        ep = np.tile(np.arange(epochs), n)
        rep_ids = np.repeat(ids, epochs)
        decay = np.exp(-ep / 2.0)
        loss = np.round(np.repeat(1.0 - score, epochs) * (1 + decay), 6)
        acc = np.round(np.repeat(score, epochs) * (1 - 0.3 * decay), 6)
        rec = np.repeat(started, epochs) + (ep + 1) * np.repeat(elapsed, epochs) / (epochs + 1)
        for name, values in (("loss", loss), ("accuracy", acc)):
            _insert(
                con,
                "metric_record",
                pa.table(
                    {
                        "trial_uuid": np.repeat(uuids, epochs),
                        "experiment": np.full(n * epochs, experiment),
                        "trial_id": rep_ids,
                        "name": np.full(n * epochs, name),
                        "epoch": ep.astype(np.int64),
                        "value": values,
                        "recorded_at": _ts(rec),
                        "seq": np.arange(n * epochs),
                    }
                ),
            )
    if with_steps:
        k = len(STEPS)
        share = np.array([0.2, 0.6, 0.2])
        offsets = np.concatenate([[0.0], np.cumsum(share)[:-1]])
        s_start = np.repeat(started, k) + np.tile(offsets, n) * np.repeat(elapsed, k)
        s_end = s_start + np.tile(share, n) * np.repeat(elapsed, k)
        _insert(
            con,
            "step_record",
            pa.table(
                {
                    "trial_uuid": np.repeat(uuids, k),
                    "experiment": np.full(n * k, experiment),
                    "trial_id": np.repeat(ids, k),
                    "key": np.char.add(
                        np.tile(np.array(STEPS), n), np.char.mod("-%d", np.repeat(ids, k))
                    ),
                    "step": np.tile(np.array(STEPS), n),
                    "started_at": _ts(s_start),
                    "finished_at": _ts(s_end),
                    "status": np.full(n * k, "succeeded"),
                    "worker": np.full(n * k, "thread"),
                }
            ),
        )
