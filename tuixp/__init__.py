"""tuixp: record, compare and re-run every trial of a Dask experiment, kept in one DuckDB file."""

from tuixp.errors import TuixpError
from tuixp.experiment import Experiment

__version__ = "0.1.0"

__all__ = ["Experiment", "TuixpError", "__version__"]
