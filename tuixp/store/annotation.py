"""Annotations of trials: a note, tags, a star, a short name, and soft deletion.

Every annotation is one journal event (``tuixp.store.events.annotation``) with its own UUID, the
trial's UUID, a time and an author (``user@host``). Nothing is ever updated in place: the state
of a trial (its note, its tags, ...) is computed from its events, so annotations can be added
from any process while writers run, and a later merge of two stores is a union of rows by UUID
(issue 18): the same event merged twice is stored once.

How the events combine, ordered by (time, event UUID) so that every store computes the same:
- ``note`` and ``name``: the latest wins (an empty text clears it); the earlier ones stay in the
  ``annotations`` view, so a note two people wrote at once is never silently lost;
- ``tag`` / ``untag``: operations on one tag each; a tag is on when its latest operation is
  ``tag``;
- ``star`` / ``unstar`` and ``delete`` / ``restore``: the latest of the pair wins;
  ``deleted_at`` is when the trial was deleted.

The reads below take an open connection; the writes (``annotate``) open the store, check every
trial named, journal the events and ingest them at once, so the next read sees them.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time
import uuid as uuid_mod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tuixp.errors import ExperimentNotFound, TrialNotFound, UsageError
from tuixp.store import events as journal_events

if TYPE_CHECKING:
    import duckdb

    from tuixp.store.store import Store

# The actions an annotation event may carry; ``value`` is the text for note and name, the tag
# for tag and untag, and None for the others.
ACTIONS = ("note", "name", "tag", "untag", "star", "unstar", "delete", "restore")
WITH_VALUE = ("note", "name", "tag", "untag")

TAG_MAX = 64
NAME_MAX = 80
NOTE_MAX = 100_000
# A tag is one word: no white space and no comma, so `tuixp tag a,b` is refused rather than
# making a tag with a comma in it, and a list of tags prints unambiguously.
_TAG = re.compile(r"[^\s,]+")


def author() -> str:
    """Who annotates: ``$TUIXP_AUTHOR`` when set, else ``user@host``."""
    given = os.environ.get("TUIXP_AUTHOR", "").strip()
    if given:
        return given
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def check_tag(tag: Any) -> str:
    """A tag as stored, or UsageError: one word (no white space, no comma), 1 to 64 characters."""
    if not isinstance(tag, str):
        raise UsageError(f"a tag must be text, not {type(tag).__name__}")
    text = tag.strip()
    if not text:
        raise UsageError("a tag cannot be empty")
    if len(text) > TAG_MAX:
        raise UsageError(f"a tag is at most {TAG_MAX} characters: {text[:20]!r}...")
    if not _TAG.fullmatch(text):
        raise UsageError(f"a tag is one word, without spaces or commas: {text!r}")
    return text


def check_name(name: Any) -> str:
    """A trial's short name as stored ('' clears it): one line, at most 80 characters."""
    if not isinstance(name, str):
        raise UsageError(f"a name must be text, not {type(name).__name__}")
    text = name.strip()
    if "\n" in text or "\r" in text:
        raise UsageError("a name is one line (use a note for more)")
    if len(text) > NAME_MAX:
        raise UsageError(f"a name is at most {NAME_MAX} characters (use a note for more)")
    return text


def check_note(note: Any) -> str:
    """A note as stored ('' clears it): any text up to 100,000 characters."""
    if not isinstance(note, str):
        raise UsageError(f"a note must be text, not {type(note).__name__}")
    text = note.strip()
    if len(text) > NOTE_MAX:
        raise UsageError(f"a note is at most {NOTE_MAX:,} characters")
    return text


def check_value(action: str, value: Any) -> str | None:
    """``value`` as stored for ``action``, or UsageError."""
    if action not in ACTIONS:
        raise UsageError(f"unknown annotation {action!r}: use {', '.join(ACTIONS)}")
    if action in ("tag", "untag"):
        return check_tag(value)
    if action == "name":
        return check_name(value)
    if action == "note":
        return check_note(value)
    return None


@dataclass(frozen=True)
class TrialRef:
    """A trial an annotation names: its UUID is what the event refers to."""

    uuid: str
    experiment: str
    trial_id: int
    status: str
    deleted: bool


def event(
    trial: TrialRef | tuple[str, str, int],
    action: str,
    value: Any = None,
    at: float | None = None,
    by: str | None = None,
) -> dict[str, Any]:
    """One annotation event for ``trial`` (a TrialRef, or ``(uuid, experiment, trial_id)``),
    ``value`` checked for its action."""
    if isinstance(trial, TrialRef):
        trial_uuid, experiment, trial_id = trial.uuid, trial.experiment, trial.trial_id
    else:
        trial_uuid, experiment, trial_id = trial
    return journal_events.annotation(
        uuid_mod.uuid4().hex,
        trial_uuid,
        experiment,
        trial_id,
        action,
        check_value(action, value),
        time.time() if at is None else at,
        by or author(),
    )


def events_for(
    trials: Sequence[TrialRef], action: str, values: Sequence[Any] = (None,)
) -> list[dict[str, Any]]:
    """The events of one action on each trial, one per value (``tag a b``: two per trial). Every
    value is checked before any event is made; all share one time and author."""
    checked = [check_value(action, v) for v in values]
    if action in ("tag", "untag") and not checked:
        raise UsageError("give at least one tag")
    at, by = time.time(), author()
    return [event(t, action, v, at, by) for t in trials for v in checked]


# -- reads -------------------------------------------------------------------------------------
@dataclass
class Annotation:
    """What the events of one trial add up to."""

    name: str | None = None
    note: str | None = None
    tags: list[str] = field(default_factory=list)
    starred: bool = False
    deleted_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


LATEST = "latest"  # the newest trial not deleted, as a trial id a command line may give


def resolve(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_ids: Iterable[int | str]
) -> list[TrialRef]:
    """The trials named (ids, or ``LATEST``), in the order given (each once), or the error for
    the first unknown one: ExperimentNotFound, TrialNotFound."""
    given = list(trial_ids)
    if not given:
        raise UsageError("give at least one trial id")
    for t in given:
        if t != LATEST and (isinstance(t, bool) or not isinstance(t, int)):
            raise UsageError(f"not a trial id: {t!r}")
    last = resolve_experiment(con, experiment)
    if LATEST in given:
        shown = con.execute(
            "SELECT max(trial_id) FROM trials WHERE experiment = ?", [experiment]
        ).fetchone()
        latest = int(shown[0]) if shown and shown[0] is not None else last
        given = [latest if t == LATEST else t for t in given]
    ids = list(dict.fromkeys(given))
    found = {
        r[1]: r
        for r in con.execute(
            """
            SELECT t.uuid, t.trial_id, t.status, a.deleted_at IS NOT NULL
            FROM trial_record t LEFT JOIN trial_annotation a ON a.trial_uuid = t.uuid
            WHERE t.experiment = ? AND list_contains(?, t.trial_id)
            """,
            [experiment, ids],
        ).fetchall()
    }
    for t in ids:
        if t not in found:
            raise TrialNotFound(
                f"Unable to find trial id: {t} (experiment {experiment} has trials 1 to {last})"
            )
    return [
        TrialRef(found[t][0], experiment, found[t][1], found[t][2], bool(found[t][3])) for t in ids
    ]


def resolve_experiment(con: duckdb.DuckDBPyConnection, experiment: str) -> int:
    """The experiment's last trial id, or ExperimentNotFound naming the known ones."""
    row = con.execute(
        "SELECT count(*), max(trial_id) FROM trial_record WHERE experiment = ?", [experiment]
    ).fetchone()
    if row is None or not row[0]:
        known = [
            r[0]
            for r in con.execute(
                "SELECT DISTINCT experiment FROM trial_record ORDER BY 1"
            ).fetchall()
        ]
        hint = f" Known: {', '.join(known)}." if known else " The store has no trials yet."
        raise ExperimentNotFound(f"Unable to find experiment: {experiment}.{hint}")
    return int(row[1])


def current(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_ids: Sequence[int] | None = None
) -> dict[int, Annotation]:
    """The annotations of these trials (all of the experiment's when None), by trial id; a
    trial never annotated is absent."""
    sql = """
        SELECT t.trial_id, a.name, a.note, a.tags, a.starred, a.deleted_at
        FROM trial_annotation a JOIN trial_record t ON t.uuid = a.trial_uuid
        WHERE t.experiment = ?"""
    args: list[Any] = [experiment]
    if trial_ids is not None:
        if not trial_ids:
            return {}
        sql += " AND t.trial_id BETWEEN ? AND ? AND list_contains(?, t.trial_id)"
        args += [min(trial_ids), max(trial_ids), list(trial_ids)]
    return {
        tid: Annotation(name, note, list(tags or []), bool(starred), deleted)
        for tid, name, note, tags, starred, deleted in con.execute(sql, args).fetchall()
    }


def of_trial(con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int) -> Annotation:
    return current(con, experiment, [trial_id]).get(trial_id, Annotation())


def history(
    con: duckdb.DuckDBPyConnection, experiment: str, trial_id: int | None = None
) -> list[dict[str, Any]]:
    """Every annotation event of the experiment (or of one trial), oldest first."""
    sql = """
        SELECT trial_id, recorded_at, author, action, value, uuid FROM annotations
        WHERE experiment = ?"""
    args: list[Any] = [experiment]
    if trial_id is not None:
        sql += " AND trial_id = ?"
        args.append(trial_id)
    cur = con.execute(sql + " ORDER BY recorded_at, uuid", args)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def deleted_ids(con: duckdb.DuckDBPyConnection, experiment: str) -> list[int]:
    """The experiment's deleted trials, by id."""
    return [
        r[0]
        for r in con.execute(
            """
            SELECT t.trial_id FROM trial_annotation a JOIN trial_record t ON t.uuid = a.trial_uuid
            WHERE t.experiment = ? AND a.deleted_at IS NOT NULL ORDER BY t.trial_id
            """,
            [experiment],
        ).fetchall()
    ]


# -- writes ------------------------------------------------------------------------------------
def annotate(
    store: Store,
    experiment: str,
    trial_ids: Iterable[int | str],
    action: str,
    values: Sequence[Any] = (None,),
) -> list[dict[str, Any]]:
    """Annotate trials of ``experiment``: every trial and value is checked first (nothing is
    written on a refusal), then the events are journaled (synced) and ingested at once. Returns
    the events written (none when nothing would change: a delete of a deleted trial, a restore
    of one that is not)."""
    if action not in ACTIONS:
        raise UsageError(f"unknown annotation {action!r}: use {', '.join(ACTIONS)}")
    checked = [check_value(action, v) for v in values]  # before the store is even opened
    if action in ("tag", "untag") and not checked:
        raise UsageError("give at least one tag")
    with store.connect() as con:
        trials = resolve(con, experiment, list(trial_ids))
        if action == "delete":
            trials = [t for t in trials if not t.deleted]
        elif action == "restore":
            trials = [t for t in trials if t.deleted]
        written = events_for(trials, action, checked) if trials else []
        if written:
            store.record(written, sync=True)
            store.ingest(con)
    return written
