"""The ``tuixp`` command line (typer): run, ls, show, diff, repeat, sql, export, demo, and the TUI.

Startup is part of the interface: ``tuixp --help`` must answer in well under 300 ms, so this
package imports only typer and the standard library at load time; dask, duckdb, pandas and
textual are imported inside the commands that need them.

Conventions shared by every command (docs/cli.md):
- bad input (an unknown parameter, a malformed ``NAME=VALUE``, a missing script, an unknown
  experiment or trial, SQL that would write) prints one line on stderr and exits with 2, before
  anything is written to the store;
- a trial that fails makes ``tuixp run`` exit with 1; Ctrl-C exits with 130;
- the store is ``--store PATH``, else ``$TUIXP_STORE``, else ``tuixp.duckdb`` here;
- listings print a table on a terminal and CSV when piped; ``--format`` chooses.

The map (docs/architecture.md): ``app`` the root and the registration, ``common`` the store,
the format and the error mapping, ``render`` cells, tables, CSV and JSON, one module per group
of commands (``run``, ``ls``, ``show``, ``diff``, ``repeat``, ``sql``, ``admin``). The
``NAME=VALUE`` grammar is ``tuixp.values``, script loading ``tuixp.scripts``.
"""

from __future__ import annotations

import sys
from typing import NoReturn

# ``tuixp.cli.app`` is the Typer object here (what ``from tuixp.cli import app`` has always
# given); the module of that name is reached with ``from tuixp.cli.app import ...``.
from tuixp.cli.app import app
from tuixp.cli.common import CliError, output_format
from tuixp.cli.render import fmt_elapsed, render_table
from tuixp.values import parse_assignment, parse_parameters, parse_value, split_values

__all__ = [
    "CliError",
    "app",
    "fmt_elapsed",
    "main",
    "output_format",
    "parse_assignment",
    "parse_parameters",
    "parse_value",
    "render_table",
    "split_values",
]


def main() -> None:
    """The ``tuixp`` console script."""
    try:
        app(prog_name="tuixp")
    except SystemExit as exc:
        if exc.code == 130:
            _exit_interrupted()
        raise


def _exit_interrupted() -> NoReturn:
    """Leave an interrupted process with code 130 without the interpreter's shutdown.

    After Ctrl-C, steps may still run on tuixp's daemon threads, inside native code (torch,
    numpy, DuckDB) with the GIL released. At shutdown, Python 3.11 ends such a thread with
    ``pthread_exit`` when it comes back for the GIL, which unwinds through C++ frames and aborts
    the process ("terminate called without an active exception", exit 134), or leaves the import
    lock held and hangs it (seen: a step inside ``import torch``); module teardown under the
    running threads prints tracebacks too. The trials are already recorded ``interrupted`` in
    the journal: run the exit hooks (the store's final ingest, logging's flush), flush stdout
    and stderr, and end the process here. A second Ctrl-C meanwhile ends it at once (the
    journal keeps every trial for the next open).
    """
    import atexit
    import os
    import signal

    signal.signal(signal.SIGINT, lambda *_: os._exit(130))
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(130)
