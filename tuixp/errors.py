"""Errors tuixp raises to its users: all ValueError subclasses, as daskperiment's were."""

from __future__ import annotations


class TuixpError(ValueError):
    """Base of every error tuixp raises on purpose; its message is meant for a person."""


class ParameterError(TuixpError):
    """A parameter is undeclared, undefined or has a value tuixp cannot record."""


class TrialNotFound(TuixpError):
    """The trial id names no recorded trial."""


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
