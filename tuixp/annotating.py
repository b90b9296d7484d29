"""The curation half of the Python API (issue 17): notes, names, tags, stars, soft deletes of
trials, as methods every ``tuixp.Experiment`` has (``Experiment`` derives from ``Annotating``).
What they write is ``tuixp.store.annotation``'s events, through ``tuixp.curation``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tuixp import errors
from tuixp.execution import steps as steps_mod

if TYPE_CHECKING:
    from tuixp.store.store import Store


class Annotating:
    """``Experiment``'s methods that curate its history."""

    if TYPE_CHECKING:  # what they use of the Experiment they are part of
        id: str

        @property
        def store(self) -> Store: ...

        def _check_trial(self, trial_id: int | None) -> int: ...

    def note(self, trial_id: int | str, text: str | None = None) -> None:
        """Set the note of a trial: ``ex.note(3, "baseline for the paper")``; inside a running
        step ``ex.note("text")`` notes the current trial. An empty text clears it; the earlier
        notes stay in the store's ``annotations`` view."""
        self._annotate("note", *_split_target(trial_id, text, "note"))

    def name(self, trial_id: int | str, text: str | None = None) -> None:
        """Give a trial a short name (one line): ``ex.name(3, "baseline")``; inside a running
        step ``ex.name("text")``. An empty text clears it."""
        self._annotate("name", *_split_target(trial_id, text, "name"))

    def tag(self, trial_id: int | str, *tags: str) -> None:
        """Add tags to a trial: ``ex.tag(3, "paper", "ridge")``; inside a running step
        ``ex.tag("paper")`` tags the current trial. A tag is one word (no spaces or commas)."""
        target, values = _split_tags(trial_id, tags)
        self._annotate("tag", target, values)

    def untag(self, trial_id: int | str, *tags: str) -> None:
        """Remove tags from a trial, as ``tag`` adds them."""
        target, values = _split_tags(trial_id, tags)
        self._annotate("untag", target, values)

    def star(self, trial_id: int | None = None, on: bool = True) -> None:
        """Star a trial (``on=False``: unstar it); without a trial id, inside a running step,
        the current trial."""
        target = None if trial_id is None else _trial_arg(trial_id)
        self._annotate("star" if on else "unstar", target, [None])

    def delete_trial(self, *trial_ids: int) -> None:
        """Delete trials softly: hidden from ``get_history()``, ``tuixp ls``, the TUI and the
        ``trials`` view, kept in ``trials_all``; ``restore_trial`` brings them back and
        ``tuixp rm --purge`` removes them for good."""
        self._annotate_many("delete", trial_ids)

    def restore_trial(self, *trial_ids: int) -> None:
        """Bring deleted trials back."""
        self._annotate_many("restore", trial_ids)

    def get_annotations(self, trial_id: int | None = None) -> dict[str, Any]:
        """A trial's annotations (the latest trial when None): ``name``, ``note``, ``tags``,
        ``starred``, ``deleted_at`` and ``history``, every annotation event oldest first
        (time, author, action, value)."""
        from tuixp.store import annotation

        trial_id = self._check_trial(trial_id)
        with self.store.reading() as con:
            found = annotation.of_trial(con, self.id, trial_id)
            events = annotation.history(con, self.id, trial_id)
        return {
            "name": found.name,
            "note": found.note,
            "tags": found.tags,
            "starred": found.starred,
            "deleted_at": found.deleted_at,
            "history": [
                {k: e[k] for k in ("recorded_at", "author", "action", "value")} for e in events
            ],
        }

    def _annotate(self, action: str, trial_id: int | None, values: list[Any]) -> None:
        from tuixp.store import annotation

        scope = steps_mod.current_scope.get()
        in_step = scope is not None and scope.ctx.experiment == self.id
        if trial_id is None or (in_step and scope is not None and trial_id == scope.ctx.trial_id):
            if not in_step or scope is None:
                raise errors.TrialIDNotFoundError(
                    f"Give the trial id: ex.{_API_NAME.get(action, action)}(trial_id, ...); "
                    "only inside a running step is it the current trial"
                )
            ctx = scope.ctx
            events = annotation.events_for(
                [
                    annotation.TrialRef(
                        ctx.trial_uuid, ctx.experiment, ctx.trial_id, "running", False
                    )
                ],
                action,
                values,
            )
            steps_mod.record_annotations(events)
            return
        self._annotate_many(action, [trial_id], values)

    def _annotate_many(
        self, action: str, trial_ids: Iterable[int], values: list[Any] | None = None
    ) -> None:
        from tuixp import curation

        ids = list(trial_ids)
        if not ids:
            raise errors.TuixpError(f"{action}: give at least one trial id")
        for t in ids:
            self._check_trial(t)
        try:
            curation.annotate(self.store, self.id, ids, action, values or [None])
        except errors.TrialIDNotFoundError:
            raise
        except errors.TrialNotFound as exc:  # recorded once, purged since
            raise errors.TrialIDNotFoundError(str(exc)) from None


_API_NAME = {"unstar": "star", "untag": "untag"}


def _split_target(trial_id: Any, text: Any, what: str) -> tuple[int | None, list[Any]]:
    """``(3, "text")`` or, inside a step, ``("text",)``: the trial (None: the current one)."""
    if text is None:
        if isinstance(trial_id, str):
            return None, [trial_id]
        raise errors.TuixpError(f"ex.{what}(trial_id, text): give the text")
    return _trial_arg(trial_id), [text]


def _split_tags(trial_id: Any, tags: tuple[Any, ...]) -> tuple[int | None, list[Any]]:
    if isinstance(trial_id, str):
        return None, [trial_id, *tags]
    return _trial_arg(trial_id), list(tags)


def _trial_arg(trial_id: Any) -> int:
    if isinstance(trial_id, bool) or not isinstance(trial_id, int):
        raise errors.TrialIDNotFoundError(f"Unable to find trial id: {trial_id!r}")
    return trial_id
