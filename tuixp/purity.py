"""The purity check: a step that gave another output for the same input, in the same context.

A step is compared only with earlier runs of the same step that had

- the same inputs (``content_hash`` of its arguments: ``steps.input_hash``),
- the same source (its ``code`` row) and the same script,
- the same installed packages, the same git commit and uncommitted diff (helper modules the step
  calls live there), the same Python (implementation, version) and machine (system, architecture,
  host name), and the same content of the trial's data files.

Any of those changed, a different output is what a change of code, packages or data does, not
impurity, and the change is reported as such (``Code context has been changed`` ...). An input
or output with no trustworthy hash (``None``) is never compared: the trial's notes say "purity
not checked" instead of a warning that may be false.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from tuixp.capture.hashing import canonical_json, text_hash

logger = logging.getLogger("tuixp")

IMPURE_MESSAGE = "Experiment step result is changed with the same input"


def context_hash(
    script_hash: str | None,
    packages_hash: str | None,
    git_commit: str | None,
    git_diff: str | None,
    environment: Mapping[str, Any],
    data: Mapping[str, str] | None,
) -> str:
    """What outside a step's arguments may change its output, as one hash (see the module)."""
    py = environment.get("python") or {}
    plat = environment.get("platform") or {}
    return text_hash(
        canonical_json(
            {
                "script": script_hash,
                "packages": packages_hash,
                "git": [git_commit, text_hash(git_diff or "")],
                "python": [py.get("implementation"), py.get("version")],
                "platform": [plat.get("system"), plat.get("machine"), plat.get("hostname")],
                "data": dict(data or {}),
            }
        )
    )


def world_context(world: Mapping[str, Any], packages_hash: str) -> str:
    """The context hash of a trial about to run, from ``tuixp.trial.world.capture_world``."""
    git = world.get("git") or {}
    return context_hash(
        world.get("script_hash"),
        packages_hash,
        git.get("commit"),
        git.get("diff"),
        world.get("environment") or {},
        world.get("data"),
    )


def purity_key(step: str, source_hash: str | None, context: str, input_hash: str) -> str:
    """The key under which a step's output is remembered: same key, same output, or impure."""
    return text_hash(f"{step}\0{source_hash}\0{context}\0{input_hash}")


def load_history(con: Any, experiment: str) -> dict[tuple[str, str], tuple[str, int]]:
    """``{(step, purity key): (output hash, trial id)}`` of the succeeded steps in the store."""
    rows = con.execute(
        """
        SELECT s.step, s.input_hash, s.output_hash, s.trial_id, c.source_hash,
               sc.source_hash, t.packages_hash, json_extract_string(g.text, '$.commit'),
               json_extract_string(g.text, '$.diff'), e.text, t.data_inputs
        FROM step_record s
        JOIN trial_record t ON t.uuid = s.trial_uuid
        LEFT JOIN code_set c ON c.hash = t.code_hash AND c.step = s.step
        LEFT JOIN code_set sc ON sc.hash = t.code_hash AND sc.step = '<script>'
        LEFT JOIN blob g ON g.hash = t.git_hash
        LEFT JOIN blob e ON e.hash = t.environment_hash
        WHERE s.experiment = ? AND s.status = 'succeeded' AND s.input_hash IS NOT NULL
          AND s.output_hash IS NOT NULL
        ORDER BY s.trial_id
        """,
        [experiment],
    ).fetchall()
    found: dict[tuple[str, str], tuple[str, int]] = {}
    contexts: dict[tuple[Any, ...], str] = {}
    for step, ih, oh, tid, source_hash, script, packages, commit, diff, env, data in rows:
        ident = (script, packages, commit, diff, env, data)
        ctx = contexts.get(ident)
        if ctx is None:
            ctx = contexts[ident] = context_hash(
                script, packages, commit, diff, _loads(env), _loads(data)
            )
        found.setdefault((step, purity_key(step, source_hash, ctx, ih)), (oh, tid))
    return found


def _loads(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def check(
    seen: dict[tuple[str, str], tuple[str, int]],
    records: Iterable[Any],
    trial_id: int,
    source_hashes: Mapping[str, str],
    context: str,
) -> tuple[list[str], list[str]]:
    """Compare a trial's step records with ``seen`` (updated); (notes, impure step names).

    Each impure step logs one warning line: the step, a short description of its inputs (type,
    shape, hash) and the earlier trial. The notes keep the full text of the inputs.
    """
    notes: list[str] = []
    impure: list[str] = []
    unchecked: dict[str, str] = {}
    for r in records:
        if r.status != "succeeded" or r.input_repr is None:  # failed, or checking was off
            continue
        if not r.input_hash or not r.output_hash:
            what = "input" if not r.input_hash else "output"
            unchecked.setdefault(r.step, what)
            continue
        key = (r.step, purity_key(r.step, source_hashes.get(r.step), context, r.input_hash))
        before = seen.get(key)
        if before is not None and before[0] != r.output_hash:
            logger.warning(
                "%s: (step: %s, %s) (previous: trial %d)",
                IMPURE_MESSAGE,
                r.step,
                r.input_repr,
                before[1],
            )
            notes.append(f"impure: {r.step} (same input as trial {before[1]}: {r.input_repr})")
            if r.input_text:
                notes.append(f"input of {r.step} in full: {r.input_text}")
            impure.append(r.step)
        seen[key] = (r.output_hash, trial_id)
    for step, what in unchecked.items():
        logger.info("Purity of %s not checked: its %s has no stable content hash", step, what)
        notes.append(f"purity not checked: {step} (its {what} has no stable content hash)")
    return notes, impure
