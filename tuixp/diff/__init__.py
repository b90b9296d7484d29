"""Pure comparisons of recorded trials: parameters, step code, environment.

Inputs are the plain data the store hands out (``queries.trial(...)["params"]``,
``queries.code(...)``, ``queries.environment(...)``); outputs are small frozen dataclasses.
Nothing here reads a store or prints: ``tuixp diff`` and the TUI's compare screen both render
the same answers.

One module per kind of comparison: ``values`` (``MISSING``, statuses, parameters), ``code``,
``environment``, ``causes`` (``explain``) and ``comparison`` (``compare``, everything at once);
this package names them all, so ``tuixp.diff.explain`` and the rest stay where they were.
"""

from tuixp.diff.causes import (
    CAUSE_ORDER,
    CAUSE_TITLES,
    IMPORT_ALIASES,
    Cause,
    explain,
    imported_modules,
    imported_packages,
    normalize_package,
    trial_data_inputs,
)
from tuixp.diff.code import (
    CodeChange,
    Gap,
    SideRow,
    compare_code,
    side_by_side,
    unified_diff,
    unified_rows,
)
from tuixp.diff.comparison import (
    ELAPSED_ROW,
    GIT_DIFF_STEP,
    Comparison,
    TrialDiff,
    cause_text,
    compare,
    compare_trials,
    result_rows,
    sources,
)
from tuixp.diff.environment import (
    ENV_GROUPS,
    EnvChange,
    EnvDiff,
    compare_environment,
)
from tuixp.diff.values import (
    ADDED,
    CHANGED,
    MISSING,
    REMOVED,
    SAME,
    ParamChange,
    ParamRow,
    compare_params,
    entry_status,
    param_table,
    same,
    short,
)

__all__ = [
    "ADDED",
    "CAUSE_ORDER",
    "CAUSE_TITLES",
    "CHANGED",
    "Cause",
    "CodeChange",
    "Comparison",
    "ELAPSED_ROW",
    "ENV_GROUPS",
    "EnvChange",
    "EnvDiff",
    "GIT_DIFF_STEP",
    "Gap",
    "IMPORT_ALIASES",
    "MISSING",
    "ParamChange",
    "ParamRow",
    "REMOVED",
    "SAME",
    "SideRow",
    "TrialDiff",
    "cause_text",
    "compare",
    "compare_code",
    "compare_environment",
    "compare_params",
    "compare_trials",
    "entry_status",
    "explain",
    "imported_modules",
    "imported_packages",
    "normalize_package",
    "param_table",
    "result_rows",
    "same",
    "short",
    "side_by_side",
    "sources",
    "trial_data_inputs",
    "unified_diff",
    "unified_rows",
]
