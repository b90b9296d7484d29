"""Messages of the TUI: one per stage, posted by workers and widgets, handled by the app.

Workers never touch widgets; they post these. Tests assert on them through ``message_hook``.
"""

from __future__ import annotations

from textual.message import Message

from tuixp.store.window import TrialQuery
from tuixp.tui.data import Snapshot, TrialDetail, TrialWindow


class StoreRefreshed(Message):
    """A poll finished: experiments, fingerprint and, if anything changed, the shown window."""

    def __init__(self, snapshot: Snapshot, generation: int) -> None:
        super().__init__()
        self.snapshot = snapshot
        self.generation = generation


class PollFinished(Message):
    """A poll's worker finished (after its snapshot, it updates the metric summary)."""


class TrialsLoaded(Message):
    """A window of trials was read for a query (a scroll, a sort, a filter, a jump)."""

    def __init__(self, window: TrialWindow, generation: int, replace: bool) -> None:
        super().__init__()
        self.window = window
        self.generation = generation
        self.replace = replace


class StoreProblem(Message):
    """The store could not be read this time (busy, missing, not a store); the app retries."""

    def __init__(self, message: str, from_poll: bool = False) -> None:
        super().__init__()
        self.message = message
        self.from_poll = from_poll


class FilterRejected(Message):
    """A filter expression was refused; the previous query stays in force."""

    def __init__(self, query: TrialQuery, message: str) -> None:
        super().__init__()
        self.query = query
        self.message = message


class QueryChanged(Message):
    """The trial table now shows this query (experiment, filter, sort)."""

    def __init__(self, query: TrialQuery) -> None:
        super().__init__()
        self.query = query


class MarksChanged(Message):
    """The trials marked for comparison changed (``marks`` maps experiment to trial ids)."""

    def __init__(self, experiment: str, trial_ids: frozenset[int]) -> None:
        super().__init__()
        self.experiment = experiment
        self.trial_ids = trial_ids


class DetailLoaded(Message):
    """A trial's detail was read for the detail screen."""

    def __init__(self, detail: TrialDetail) -> None:
        super().__init__()
        self.detail = detail


class OutputLoaded(Message):
    """A persisted output was read and turned into a preview text."""

    def __init__(self, step: str, text: str) -> None:
        super().__init__()
        self.step = step
        self.text = text


class Annotated(Message):
    """Annotation events were written (``action`` on these trials: tuixp.store.annotation)."""

    def __init__(self, experiment: str, trial_ids: list[int], action: str) -> None:
        super().__init__()
        self.experiment = experiment
        self.trial_ids = trial_ids
        self.action = action
