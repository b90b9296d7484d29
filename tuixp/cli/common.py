"""What every command shares: the store it uses, the output format, trial ids, and turning
tuixp's errors into one line on stderr and an exit code (``handled``)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from tuixp.errors import StoreBusy, TuixpError, UsageError, first_line

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "csv", "json")
STORE_HELP = "The store file (default: $TUIXP_STORE, else ./tuixp.duckdb)."

# Bad input: one line on stderr, exit code 2 (or its code). The command line's old name.
CliError = UsageError


StoreOption = Annotated[
    Path | None,
    typer.Option("--store", metavar="PATH", show_default=False, help=STORE_HELP),
]
FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        metavar="table|csv|json",
        show_default=False,
        help="Output format (default: table on a terminal, CSV when piped).",
    ),
]
# Commands whose output is a report rather than rows (diff, repeat): text or JSON.
ReportFormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        metavar="table|json",
        show_default=False,
        help="text for people (default) or JSON.",
    ),
]


class Debug:
    """Whether this invocation asked for tracebacks (``tuixp --debug ...``, ``run -v``)."""

    on = False


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"tuixp: {first_line(message)}", err=True)
    raise typer.Exit(code)


def handled(func: F) -> F:
    """Turn the errors tuixp raises on purpose into one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CliError as exc:
            if exc.detail and Debug.on:
                typer.echo(exc.detail.rstrip(), err=True)
            elif exc.detail:
                fail(f"{exc} (--debug shows the traceback)", exc.code)
            fail(str(exc), exc.code)
        except StoreBusy as exc:
            fail(str(exc), 1)
        except TuixpError as exc:
            fail(str(exc), 2)
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as exc:
            if type(exc).__name__ == "SchedulerError":  # execution.schedulers, imported lazily
                fail(str(exc), 2)
            raise

    return wrapper  # type: ignore[return-value]


# -- small helpers -----------------------------------------------------------------------------
def store_path(store: Path | None, ctx: typer.Context | None = None) -> Path:
    """The store this command uses: its --store, the top-level --store, $TUIXP_STORE, default."""
    from tuixp.store.connection import resolve_store_path

    if store is None and ctx is not None:
        store = ctx.find_root().meta.get("tuixp.store")
    return resolve_store_path(store)


def explicit_store(store: Path | None, ctx: typer.Context | None) -> Path | None:
    """The --store the user typed (this command's, else the top-level one), resolved."""
    if store is None and ctx is not None:
        store = ctx.find_root().meta.get("tuixp.store")
    if store is None:
        return None
    from tuixp.store.connection import resolve_store_path

    return resolve_store_path(store)


def open_store(path: Path) -> Any:
    """The ``Store`` at ``path`` for reading; refuses (exit 2) when there is none."""
    from tuixp.store.sql import require_store
    from tuixp.store.store import get_store

    return get_store(require_store(path))


def output_format(fmt: str | None, allowed: Sequence[str] = FORMATS) -> str:
    if fmt is None:
        return "table" if sys.stdout.isatty() or "csv" not in allowed else "csv"
    fmt = fmt.strip().lower()
    if fmt not in allowed:
        raise CliError(f"unknown format {fmt!r}: use {', '.join(allowed)}")
    return fmt


def parse_trial(text: str) -> int | str:
    text = text.strip()
    if text in ("latest", "last"):
        return "latest"
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"not a trial id: {text!r} (a number, or latest)") from None
    if value < 1:
        raise CliError(f"not a trial id: {text!r} (trial ids start at 1)")
    return value


def resolve_trial(con: Any, experiment: str, trial: int | str) -> int:
    from tuixp.errors import TrialNotFound

    require_experiment(con, experiment)
    if trial == "latest":
        row = con.execute(
            "SELECT max(trial_id) FROM trials WHERE experiment = ?", [experiment]
        ).fetchone()
        return int(row[0])
    found = con.execute(
        "SELECT 1 FROM trials WHERE experiment = ? AND trial_id = ?", [experiment, trial]
    ).fetchone()
    if found is None:
        deleted = con.execute(
            "SELECT 1 FROM trials_all WHERE experiment = ? AND trial_id = ? "
            "AND deleted_at IS NOT NULL",
            [experiment, trial],
        ).fetchone()
        if deleted is not None:
            raise TrialNotFound(
                f"trial {trial} of {experiment} is deleted "
                f"(tuixp restore {experiment} {trial} brings it back)"
            )
        last = con.execute(
            "SELECT max(trial_id) FROM trials WHERE experiment = ?", [experiment]
        ).fetchone()[0]
        raise TrialNotFound(
            f"Unable to find trial id: {trial} (experiment {experiment} has trials 1 to {last})"
        )
    return int(trial)


def require_experiment(con: Any, experiment: str) -> None:
    from tuixp.store import queries

    queries.require_experiment(con, experiment)
