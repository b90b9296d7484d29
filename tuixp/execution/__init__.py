"""Running trials on Dask: schedulers, the per-task wrapper, progress events, grids."""

from tuixp.execution.events import ProgressEvent

__all__ = ["ProgressEvent"]
