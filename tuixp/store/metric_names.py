"""Which metrics are the user's and which are tuixp's own: the one rule, in one place.

System metrics (CPU, memory, GPUs, sampled while a trial runs: ``tuixp.execution.sampler``)
are stored as metrics whose names start with ``sys/``. A user's metric name is a Python
identifier (``save_metric`` refuses anything else), so it can never start with ``sys/``.
Everything that ranks or sorts trials by their metrics (best values, the trial table's metric
columns, ``tuixp ls --sort``) leaves system metrics out, through ``is_system_metric`` in Python
or ``user_metric_sql`` in SQL.
"""

from __future__ import annotations

SYSTEM_PREFIX = "sys/"


def is_system_metric(name: str) -> bool:
    """True for a metric tuixp sampled itself (``sys/cpu_percent``), False for the user's."""
    return name.startswith(SYSTEM_PREFIX)


def user_metric_sql(column: str = "name") -> str:
    """A SQL condition true for the user's metrics only, on the metric-name ``column``."""
    return f"NOT starts_with({column}, '{SYSTEM_PREFIX}')"


def system_metric_sql(column: str = "name") -> str:
    """A SQL condition true for system metrics only, on the metric-name ``column``."""
    return f"starts_with({column}, '{SYSTEM_PREFIX}')"
