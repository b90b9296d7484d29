"""tuixp: record, compare and re-run every trial of a Dask experiment, kept in one DuckDB file."""

from typing import TYPE_CHECKING, Any

from tuixp.errors import (
    LockedTrialError,
    ParameterUndeclaredError,
    ParameterUndefinedError,
    TrialIDNotFoundError,
    TuixpError,
)

if TYPE_CHECKING:
    from tuixp.experiment import Experiment

__version__ = "0.1.0"

__all__ = [
    "Experiment",
    "LockedTrialError",
    "ParameterUndeclaredError",
    "ParameterUndefinedError",
    "TrialIDNotFoundError",
    "TuixpError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # Experiment pulls in dask, duckdb and pyarrow (~0.3 s): import it on first use, so that
    # `tuixp --help` (tuixp.cli lives in this package) starts fast.
    if name == "Experiment":
        from tuixp.experiment import Experiment

        return Experiment
    raise AttributeError(f"module 'tuixp' has no attribute {name!r}")
