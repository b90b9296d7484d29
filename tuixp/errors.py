"""Errors tuixp raises to its users: all ValueError subclasses, as daskperiment's were."""

from __future__ import annotations


class TuixpError(ValueError):
    """Base of every error tuixp raises on purpose; its message is meant for a person."""


class ParameterError(TuixpError):
    """A parameter is undeclared, undefined or has a value tuixp cannot record."""


class ParameterUndeclaredError(ParameterError):
    """A name given a value was never declared with ``Experiment.parameter`` (daskperiment's name)."""


class ParameterUndefinedError(ParameterError):
    """A declared parameter has no value yet (daskperiment's name)."""


class TrialNotFound(TuixpError):
    """The trial id names no recorded trial."""


class TrialIDNotFoundError(TrialNotFound):
    """daskperiment's name for a trial id that names no trial (or no trial running)."""


class LockedTrialError(TuixpError):
    """``trial_id`` read inside a running step, where only ``current_trial_id`` is safe."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            message
            or "Unable to use TrialManager.trial_id during trial. Use .current_trial_id for safety."
        )


class ExperimentNotFound(TuixpError):
    """The experiment has no trial in the store."""


class MetricNotFound(TuixpError):
    """No metric of that name was saved."""


class StoreError(TuixpError):
    """The store cannot be opened or written; the message says why and what to do."""


class StoreBusy(StoreError):
    """Another process held the store longer than we were willing to wait."""


class StoreReadOnly(StoreError):
    """The store's file or folder cannot be written."""


class SchemaTooNew(StoreError):
    """The store was written by a newer tuixp."""


class NotAStore(StoreError):
    """The file exists but is not a tuixp store."""


class StoreDamaged(StoreError):
    """The file is a DuckDB database that cannot be read back whole (truncated, overwritten)."""


class ReadOnlyQuery(TuixpError):
    """A SQL statement tried to write or reach outside the store."""


class UsageError(TuixpError):
    """Bad input typed by a person (a malformed ``NAME=VALUE``, an unknown option value, a
    missing script): the command line prints one line on stderr and exits with ``code`` (2);
    ``detail`` (a traceback) is printed above it with ``--debug``."""

    def __init__(self, message: str, code: int = 2, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


def first_line(text: str) -> str:
    """The first non-blank line of a message, stripped (what one-line refusals print)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""
