"""The ``tuixp`` command line (typer): run, ls, show, diff, sql, export, demo, and the TUI.

Startup is part of the interface: ``tuixp --help`` must answer in well under 300 ms, so this
module imports only typer and the standard library at load time; dask, duckdb, pandas and
textual are imported inside the commands that need them.

Conventions shared by every command (docs/cli.md):
- bad input (an unknown parameter, a malformed ``NAME=VALUE``, a missing script, an unknown
  experiment or trial, SQL that would write) prints one line on stderr and exits with 2, before
  anything is written to the store;
- a trial that fails makes ``tuixp run`` exit with 1; Ctrl-C exits with 130;
- the store is ``--store PATH``, else ``$TUIXP_STORE``, else ``tuixp.duckdb`` here;
- listings print a table on a terminal and CSV when piped; ``--format`` chooses.
"""

from __future__ import annotations

import ast
import csv
import functools
import importlib.util
import io
import json
import math
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("table", "csv", "json")
PROGRESS = ("text", "jsonl", "none")
DEFAULT_LIMIT = 50
TABLE_MAX_ROWS = 200  # `tuixp sql` as a table; CSV and JSON stream every row

STORE_HELP = "The store file (default: $TUIXP_STORE, else ./tuixp.duckdb)."


class _Root(TyperGroup):
    """The top-level group; takes ``--store PATH`` before the command itself.

    Not a typer option on purpose: typer (0.29) builds a pydantic validator for every option it
    processes, and the root's options are processed for every command, ``run --help``
    included; pydantic alone costs 70-100 ms of the 300 ms a help may take.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        rest: list[str] = []
        store: str | None = None
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--store" or arg.startswith("--store="):
                if arg == "--store":
                    if i + 1 >= len(args):
                        raise typer.BadParameter("--store needs a PATH", ctx=ctx)
                    store, i = args[i + 1], i + 2
                else:
                    store, i = arg.split("=", 1)[1], i + 1
                continue
            if not arg.startswith("-") or arg == "--":
                rest.extend(args[i:])  # the command and its own arguments
                break
            rest.append(arg)
            i += 1
        ctx.meta["tuixp.store"] = Path(store) if store is not None else None
        return super().parse_args(ctx, rest)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None and "process_value" not in vars(option):
            # The same cost: typer hands an absent --help (None) to pydantic to make it False,
            # on every command. It is a flag; None means not given.
            coerce = option.process_value

            def process_value(ctx: Any, value: Any) -> Any:
                return coerce(ctx, False if value is None else value)

            option.process_value = process_value  # type: ignore[method-assign]
        return option

    def format_options(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Options"):
            formatter.write_dl(
                [("--store PATH", STORE_HELP)]
                + [rv for p in self.get_params(ctx) if (rv := p.get_help_record(ctx))]
            )
        self.format_commands(ctx, formatter)


app = typer.Typer(
    name="tuixp",
    cls=_Root,
    help="Record, compare and re-run every trial of a Dask experiment. Without a command, "
    "opens the TUI on the store.",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

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


# -- errors ------------------------------------------------------------------------------------
class CliError(Exception):
    """Bad input: one line on stderr, exit code 2 (or ``code``); ``detail`` (a traceback) is
    printed above it with ``--debug`` (``tuixp run -v``)."""

    def __init__(self, message: str, code: int = 2, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.detail = detail


class _Debug:
    """Whether this invocation asked for tracebacks (``tuixp --debug ...``, ``run -v``)."""

    on = False


def _one_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"tuixp: {_one_line(message)}", err=True)
    raise typer.Exit(code)


def handled(func: F) -> F:
    """Turn the errors tuixp raises on purpose into one line on stderr and an exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from tuixp.errors import StoreBusy, TuixpError

        try:
            return func(*args, **kwargs)
        except CliError as exc:
            if exc.detail and _Debug.on:
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
    from tuixp.store.db import resolve_store_path

    if store is None and ctx is not None:
        store = ctx.find_root().meta.get("tuixp.store")
    return resolve_store_path(store)


def _explicit_store(store: Path | None, ctx: typer.Context | None) -> Path | None:
    """The --store the user typed (this command's, else the top-level one), resolved."""
    if store is None and ctx is not None:
        store = ctx.find_root().meta.get("tuixp.store")
    if store is None:
        return None
    from tuixp.store.db import resolve_store_path

    return resolve_store_path(store)


def open_store(path: Path) -> Any:
    """The ``Store`` at ``path`` for reading; refuses (exit 2) when there is none."""
    from tuixp.store.db import get_store
    from tuixp.store.sql import require_store

    return get_store(require_store(path))


def output_format(fmt: str | None, allowed: Sequence[str] = FORMATS) -> str:
    if fmt is None:
        return "table" if sys.stdout.isatty() or "csv" not in allowed else "csv"
    fmt = fmt.strip().lower()
    if fmt not in allowed:
        raise CliError(f"unknown format {fmt!r}: use {', '.join(allowed)}")
    return fmt


def table_width() -> int:
    if sys.stdout.isatty():
        return max(40, shutil.get_terminal_size((80, 24)).columns)
    return 80


def fmt_number(value: float) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value) or math.isinf(value):
        return repr(value)
    return f"{value:.6g}"


def fmt_value(value: Any) -> str:
    """A value in a table cell: numbers short, strings bare, the rest compact JSON."""
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return fmt_number(value)
    if isinstance(value, str):
        return " ".join(value.split()) if "\n" in value else value
    if isinstance(value, datetime):
        return fmt_time(value, full=True)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    return str(value)  # Decimal, date, UUID, ...: as SQL shows them


def fmt_time(value: datetime | None, full: bool = False, clock: bool = False) -> str:
    """Local time: in full, as month-day hour:minute, or (``clock``) hour:minute only."""
    if value is None:
        return ""
    local = value.astimezone() if value.tzinfo is not None else value
    return local.strftime("%Y-%m-%d %H:%M:%S" if full else "%H:%M" if clock else "%m-%d %H:%M")


def _today(value: datetime | None) -> bool:
    if value is None:
        return True
    local = value.astimezone() if value.tzinfo is not None else value
    return local.date() == datetime.now().date()


def fmt_elapsed(seconds: float | None) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return ""
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_param(value: Any) -> str:
    """A parameter's value: as ``fmt_value``, but None is shown as ``None`` (``max_depth=None``
    is a value the trial ran with, not a blank: ``tuixp run`` reads it back as None)."""
    return "None" if value is None else fmt_value(value)


def fmt_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={fmt_param(v)}" for k, v in params.items())


def _json_default(value: Any) -> Any:
    """What JSON lacks: times as ISO text, decimals as numbers, durations in seconds."""
    import datetime as dt
    import decimal

    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "item") and type(value).__module__ == "numpy":
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return str(value)


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _elide(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…" if width > 0 else ""


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    width: int = 80,
    right: Iterable[int] = (),
    keep: Iterable[int] = (),
) -> str:
    """A plain table that fits ``width`` columns: the widest columns give way, cells elided.

    Columns in ``keep`` give way last: the others first shrink to 10 characters.
    """
    right = set(right)
    keep = set(keep)
    n = len(headers)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    gap = 2
    hard = [min(widths[i], max(len(h), 4)) for i, h in enumerate(headers)]
    soft = [widths[i] if i in keep else max(hard[i], min(widths[i], 10)) for i in range(n)]
    excess = sum(widths) + gap * (n - 1) - width
    for minimum in (soft, hard):
        while excess > 0:
            shrinkable = [i for i in range(n) if widths[i] > minimum[i]]
            if not shrinkable:
                break
            i = max(shrinkable, key=lambda j: widths[j])
            others = sorted((widths[j] for j in shrinkable if j != i), reverse=True)
            floor = max(minimum[i], others[0] if others else minimum[i])
            take = min(excess, max(widths[i] - floor, 1))
            widths[i] -= take
            excess -= take

    def line(cells: Sequence[str]) -> str:
        out = []
        for i, cell in enumerate(cells):
            text = _elide(cell, widths[i])
            out.append(text.rjust(widths[i]) if i in right else text.ljust(widths[i]))
        return (" " * gap).join(out).rstrip()

    return "\n".join([line(headers), *(line(r) for r in rows)])


def emit(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    table_columns: Sequence[str] | None = None,
    table_cells: Callable[[Sequence[Any]], Sequence[str]] | None = None,
    right: Iterable[int] = (),
    optional: Iterable[int] = (),
    keep: Iterable[int] = (),
) -> None:
    """Print rows as a table (people), CSV or JSON (programs).

    In a table, the ``optional`` columns are left out when every cell of theirs is empty.
    """
    if fmt == "json":
        typer.echo(
            json.dumps([dict(zip(columns, r)) for r in rows], default=_json_default, indent=2)
        )
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for r in rows:
            writer.writerow([_csv_cell(v) for v in r])
        typer.echo(buf.getvalue(), nl=False)
        return
    headers = list(table_columns or [c.upper() for c in columns])
    cells = [list(table_cells(r)) if table_cells else [fmt_value(v) for v in r] for r in rows]
    right, keep = set(right), set(keep)
    empty = sorted((i for i in optional if all(not r[i] for r in cells)), reverse=True)
    for i in empty:
        del headers[i]
        for r in cells:
            del r[i]
        right = {j - 1 if j > i else j for j in right if j != i}
        keep = {j - 1 if j > i else j for j in keep if j != i}
    typer.echo(render_table(headers, cells, table_width(), right, keep))


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    return value


# -- NAME=VALUE parsing ------------------------------------------------------------------------
def parse_value(text: str, name: str) -> Any:
    """A Python literal, else the text itself when it is a bare word (``model=ridge``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    stripped = text.strip()
    if not stripped:
        raise CliError(f'malformed value for {name}: empty (write {name}="" for an empty string)')
    if stripped[0] in "[({'\"" or stripped[-1] in "])}'\"":
        raise CliError(f"malformed value for {name}: {text} is not a Python literal")
    return text


def parse_assignment(text: str) -> tuple[str, str]:
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise CliError(f"malformed parameter {text!r}: expected NAME=VALUE")
    if not name.isidentifier():
        raise CliError(f"malformed parameter {text!r}: {name!r} is not a parameter name")
    return name, raw


def split_values(raw: str) -> list[str]:
    """``1,2,3`` -> three items; commas inside brackets or quotes do not split."""
    items: list[str] = []
    depth, quote, escaped, start = 0, "", False, 0
    for i, ch in enumerate(raw):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(raw[start:i])
            start = i + 1
    items.append(raw[start:])
    return items


def parse_parameters(
    assignments: Sequence[str], grids: Sequence[str]
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """``NAME=VALUE`` arguments and ``--grid NAME=V1,V2`` options, checked for clashes."""
    fixed: dict[str, Any] = {}
    for text in assignments:
        name, raw = parse_assignment(text)
        if name in fixed:
            raise CliError(f"parameter {name} is given twice")
        fixed[name] = parse_value(raw, name)
    grid: dict[str, list[Any]] = {}
    for text in grids:
        name, raw = parse_assignment(text)
        if name in grid:
            raise CliError(
                f"--grid {name} is given twice: list all its values in one, --grid {name}=V1,V2"
            )
        if name in fixed:
            raise CliError(f"parameter {name} is given both as {name}=... and in --grid")
        items = split_values(raw)
        if any(not item.strip() for item in items):
            raise CliError(f"malformed --grid {text!r}: an empty value (use {name}=V1,V2,...)")
        grid[name] = [parse_value(item, name) for item in items]
    return fixed, grid


# -- loading a script --------------------------------------------------------------------------
@dataclass
class LoadedScript:
    path: Path
    module: Any
    experiments: list[Any]
    results: dict[str, Any] = field(default_factory=dict)  # variable name -> result Node

    def pick(self, name: str | None) -> Any:
        """The result node to run: the only one, or the one ``--result NAME`` names."""
        if name is not None:
            found = self.results.get(name)
            if found is None:
                by_step = [n for n in self.results.values() if n.step.name == name]
                if len(by_step) == 1:
                    found = by_step[0]
            if found is None:
                known = ", ".join(self.results) or "none"
                raise CliError(f"{self.path.name} has no result node {name!r} (it has: {known})")
            return found
        if not self.results:
            names = ", ".join(e.id for e in self.experiments)
            raise CliError(
                f"{self.path.name} defines experiment {names} but no result node at module "
                "level: call the result step there (score(...), assigned or not); tuixp run "
                'does not run the script\'s if __name__ == "__main__": block'
            )
        if len(self.results) > 1:
            raise CliError(
                f"{self.path.name} has several result nodes "
                f"({', '.join(self.results)}): pick one with --result NAME"
            )
        return next(iter(self.results.values()))


_script_counter = iter(range(1, 1 << 30))


def load_script(path: Path, store: Path | None = None) -> LoadedScript:
    """Import ``path`` as a fresh module (not ``__main__``) and find its experiments and results.

    Its ``if __name__ == "__main__":`` block does not run; its folder is on ``sys.path`` while
    it loads, so it can import its neighbours. With ``store``, its experiments use that store
    from the start (what it reads while loading, too), whatever its ``store=`` said.
    """
    from tuixp.experiment import EXPERIMENTS, Node, collect_results, fresh_instances

    path = path.expanduser()
    if not path.exists():
        raise CliError(f"script not found: {path}")
    if not path.is_file():
        raise CliError(f"not a script file: {path}")
    path = path.resolve()
    stem = re.sub(r"\W", "_", path.stem)
    name = f"tuixp_script_{stem}_{next(_script_counter)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot load {path.name} as a Python module (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    before = len(EXPERIMENTS)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        # A script loaded again is a fresh start, as in a new process; every result node it
        # builds is seen, assigned to a variable or not.
        with fresh_instances(store), collect_results() as built:
            spec.loader.exec_module(module)
    except SystemExit as exc:
        sys.modules.pop(name, None)
        raise CliError(
            f"{path.name} exited while being loaded (exit code {exc.code}); "
            "tuixp run imports the script, so keep argument parsing under "
            'if __name__ == "__main__":'
        ) from None
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        where = path.name
        if exc.filename and Path(exc.filename).resolve() != path:  # in a module it imports
            bad = Path(exc.filename).resolve()
            where = f"{path.name} failed while being loaded: " + (
                str(bad.relative_to(path.parent)) if bad.is_relative_to(path.parent) else str(bad)
            )
        raise CliError(
            f"{where}, line {exc.lineno}: SyntaxError: {exc.msg}",
            detail=_user_traceback(exc, path),
        ) from None
    except Exception as exc:
        sys.modules.pop(name, None)
        raise CliError(
            f"{path.name} failed while being loaded: {_where(exc, path)}"
            f"{type(exc).__name__}: {_one_line(str(exc))}",
            detail=_user_traceback(exc, path),
        ) from None
    finally:
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    experiments: list[Any] = []
    for ex in EXPERIMENTS[before:]:
        if all(ex is not e for e in experiments):
            experiments.append(ex)
    results: dict[str, Any] = {}
    for var, value in vars(module).items():
        if isinstance(value, Node) and value.step.kind == "result":
            if all(value is not n for n in results.values()):
                results[var] = value
                if all(value.ex is not e for e in experiments):
                    experiments.append(value.ex)
    if not results:
        # daskperiment's scripts end with a bare ``calculate_score(d)``: the result node the
        # script built without assigning it.
        for node in built:
            name = f"{node.step.name}(...)"
            if name in results:
                name = f"{node.step.name}(...)#{len(results) + 1}"
            results[name] = node
            if all(node.ex is not e for e in experiments):
                experiments.append(node.ex)
    if not experiments:
        raise CliError(
            f"{path.name} defines no tuixp Experiment "
            '(ex = tuixp.Experiment("name") at module level)'
        )
    for ex in experiments:
        ex.script = str(path)  # the trials' script: this file, not the tuixp executable
    return LoadedScript(path, module, experiments, results)


def use_store(loaded: LoadedScript, path: Path) -> None:
    """Record the script's trials in ``path``, whatever its ``store=`` said (docs/cli.md)."""
    for ex in loaded.experiments:
        # Experiment resolves its store on first use; nothing has used it yet, or it is reset.
        ex._store_arg, ex._store, ex._state = path, None, None


def _user_frames(exc: BaseException, path: Path) -> list[Any]:
    """The frames of ``exc``'s traceback in the user's own files: the script and the modules
    beside it (its folder and below), not installed packages (a venv inside the project
    included) nor tuixp itself."""
    import traceback

    folder, own = path.parent, Path(__file__).resolve().parent

    def users(filename: str) -> bool:
        try:
            file = Path(filename).resolve()
        except (OSError, ValueError):
            return False
        return (
            file.is_relative_to(folder)
            and not file.is_relative_to(own)
            and not {"site-packages", "dist-packages"} & set(file.parts)
        )

    return [f for f in traceback.extract_tb(exc.__traceback__) if users(f.filename)]


def _where(exc: BaseException, path: Path) -> str:
    """Where in the user's files it went wrong: the innermost frame there (the script's own
    line when that is all there is), as ``helpers.py, line 2: `` or ``line 7: ``."""
    frames = _user_frames(exc, path)
    if not frames:
        return ""
    last = frames[-1]
    file = Path(last.filename).resolve()
    if file == path:
        return f"line {last.lineno}: "
    return f"{file.relative_to(path.parent)}, line {last.lineno}: "


def _user_traceback(exc: BaseException, path: Path) -> str:
    """The traceback from the script's first line on (tuixp's import machinery left out)."""
    import traceback

    tb = exc.__traceback__
    while tb is not None and Path(tb.tb_frame.f_code.co_filename) != path:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb or exc.__traceback__))


# -- progress ----------------------------------------------------------------------------------
def _count_steps(node: Any) -> int:
    """How many step calls the graph ending at ``node`` has (tasks per trial)."""
    from tuixp.experiment import Node

    seen: set[int] = set()
    stack: list[Any] = [node]
    while stack:
        x = stack.pop()
        if isinstance(x, Node):
            if x.index in seen:
                continue
            seen.add(x.index)
            stack.extend(x.args)
            stack.extend(x.kwargs.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, dict):
            stack.extend(x.values())
    return len(seen)


class JsonlProgress:
    """One JSON event a line on the given stream, from any thread (docs/events.md)."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        self.write(event.to_json())

    def write(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


class TextProgress:
    """A progress bar on a terminal (rich, on stderr); one line per finished trial otherwise."""

    def __init__(self, trials: int, steps_per_trial: int) -> None:
        self.lock = threading.Lock()
        self.per_trial = max(steps_per_trial, 1)
        self.done: dict[int, int] = {}
        self.total = trials * self.per_trial
        self.trials = trials
        self.finished = 0
        self.bar: Any = None
        self.task: Any = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[note]}"),
                console=Console(stderr=True),
                transient=True,
            )
            self.task = self.bar.add_task("tasks", total=self.total, note="")

    def __enter__(self) -> TextProgress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def _say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.console.print(text, markup=False, highlight=False)
        else:
            typer.echo(text, err=True)

    def __call__(self, event: Any) -> None:
        with self.lock:
            if event.kind in ("task_finished", "task_failed"):
                self.done[event.trial_id] = self.done.get(event.trial_id, 0) + 1
                if self.bar is not None:
                    self.bar.update(self.task, advance=1, note=f"{event.step}")
                if event.kind == "task_failed":
                    err = (event.data or {}).get("error", "")
                    self._say(f"trial {event.trial_id}: step {event.step} failed: {err}")
            elif event.kind == "trial_finished":
                self.finished += 1
                left = self.per_trial - self.done.get(event.trial_id, 0)
                self.done[event.trial_id] = self.per_trial
                if self.bar is not None and left > 0:
                    self.bar.update(self.task, advance=left)
                data = event.data or {}
                what = (
                    f"result {fmt_value(_loads(data.get('result')))}"
                    if event.status == "succeeded"
                    else f"{data.get('error') or event.status}: {data.get('message') or ''}"
                )
                self._say(
                    f"trial {event.trial_id} {event.status} "
                    f"({self.finished}/{self.trials}): {what}".rstrip(": ")
                )


# -- the commands ------------------------------------------------------------------------------
def _version(value: bool) -> None:
    if value:
        from tuixp import __version__

        typer.echo(f"tuixp {__version__}")
        raise typer.Exit()


@app.callback()
@handled
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool,
        typer.Option("--debug", help="On an error, print its full traceback too."),
    ] = False,
) -> None:
    """Without a command, open the TUI on the store (--store PATH)."""
    _Debug.on = debug
    if ctx.invoked_subcommand is None:
        open_tui(store_path(None, ctx))


def open_tui(path: Path) -> None:
    try:
        from tuixp.tui.app import require_terminal
        from tuixp.tui.app import run as run_tui
    except ImportError as exc:
        fail(f"the TUI is not available ({exc}); use tuixp ls, show, diff and sql meanwhile")
    if path.is_dir():
        fail(f"{path} is a folder, not a store file")
    require_terminal()  # before the store: a missing store is no reason to start without one
    from tuixp.store.sql import require_store

    require_store(path)  # a missing store: one line and exit 2, not an empty TUI waiting
    run_tui(path)


@app.command("ui")
@handled
def ui_command(ctx: typer.Context, store: StoreOption = None) -> None:
    """Open the TUI on the store (the same as tuixp without a command)."""
    open_tui(store_path(store, ctx))


@app.command("run")
@handled
def run_command(
    ctx: typer.Context,
    script: Annotated[
        Path,
        typer.Argument(
            metavar="SCRIPT",
            show_default=False,
            help="A Python file that defines an Experiment and its result node.",
        ),
    ],
    assignments: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME=VALUE",
            show_default=False,
            help="Parameter values: Python literals; a bare word is a string (model=ridge).",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed random and numpy for the trial(s).", show_default=False)
    ] = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            metavar="NAME=V1,V2",
            show_default=False,
            help="One trial per combination of values; repeat for more parameters.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            metavar="threads|processes|sync|distributed|tcp://HOST:PORT",
            show_default=False,
            help="Where the steps run (default: $TUIXP_SCHEDULER, else threads).",
        ),
    ] = None,
    worker_timeout: Annotated[
        float | None,
        typer.Option(
            "--worker-timeout",
            metavar="SECONDS",
            show_default=False,
            help="On a cluster: how long to wait while it has no worker before the unfinished "
            "trials fail (default: $TUIXP_WORKER_TIMEOUT, else 60).",
        ),
    ] = None,
    progress: Annotated[
        str | None,
        typer.Option(
            metavar="text|jsonl|none",
            show_default=False,
            help="text: a progress bar on stderr (default on a terminal); jsonl: one event a line "
            "on stdout (docs/events.md); none.",
        ),
    ] = None,
    result: Annotated[
        str | None,
        typer.Option(
            "--result",
            metavar="NAME",
            show_default=False,
            help="The result node to run when the script has several.",
        ),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Compute cached steps again.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            "--debug",
            help="When the script fails to load, print its full traceback too.",
        ),
    ] = False,
    store: StoreOption = None,
    fmt: FormatOption = None,
) -> None:
    """Run one trial of SCRIPT's experiment, or one per point of the --grid."""
    _Debug.on = _Debug.on or verbose
    fixed, grid_values = parse_parameters(assignments or [], grid or [])
    fmt = output_format(fmt)
    mode = (progress or ("text" if sys.stderr.isatty() else "none")).strip().lower()
    if mode not in PROGRESS:
        raise CliError(f"unknown progress mode {progress!r}: use text, jsonl or none")
    if not script.expanduser().exists():
        raise CliError(f"script not found: {script}")
    from tuixp.execution.schedulers import resolve_name, resolve_worker_timeout

    sched_name = resolve_name(scheduler)
    if worker_timeout is not None:
        resolve_worker_timeout(worker_timeout, "--worker-timeout")  # exit 2, nothing written
    chosen_store = _explicit_store(store, ctx)
    events_out = sys.stdout
    # stdout carries tuixp's output (results, or the event stream): what the script prints
    # goes to stderr while it loads and runs.
    sys.stdout = sys.stderr
    try:
        loaded = load_script(script, chosen_store)
        node = loaded.pick(result)
        ex = node.ex
        _check_parameters(ex, fixed, grid_values)
        if chosen_store is not None:
            use_store(loaded, chosen_store)
        if sched_name not in ("threads", "sync"):
            import cloudpickle

            # The script is not importable by name in worker processes: ship its functions.
            cloudpickle.register_pickle_by_value(loaded.module)
        points = 1
        for values in grid_values.values():
            points *= len(values)
        listeners: list[Any] = []
        jsonl = JsonlProgress(events_out) if mode == "jsonl" else None
        if jsonl is not None:
            listeners.append(jsonl)
        text = TextProgress(points, _count_steps(node)) if mode == "text" else None
        if text is not None:
            listeners.append(text)
        ex.set_parameters(**fixed)
        if text is not None:
            with text:
                outcomes = node.compute_grid(
                    grid_values,
                    seed=seed,
                    scheduler=scheduler,
                    listeners=listeners,
                    cache=not no_cache,
                    worker_timeout=worker_timeout,
                )
        else:
            outcomes = node.compute_grid(
                grid_values,
                seed=seed,
                scheduler=scheduler,
                listeners=listeners,
                cache=not no_cache,
                worker_timeout=worker_timeout,
            )
    finally:
        sys.stdout = events_out
    failed = [o for o in outcomes if o.status != "succeeded"]
    store_file = ex.store.path
    if jsonl is not None:
        jsonl.write(
            json.dumps(
                {
                    "kind": "run_finished",
                    "experiment": ex.id,
                    "time": time.time(),
                    "store": str(store_file),
                    "trials": [{"trial_id": o.trial_id, "status": o.status} for o in outcomes],
                },
                separators=(",", ":"),
            )
        )
    else:
        _print_outcomes(ex.id, outcomes, fmt)
        if fmt == "table":
            typer.echo(f"recorded in {store_file}", err=True)
    if failed:
        raise typer.Exit(1)


def _check_parameters(ex: Any, fixed: dict[str, Any], grid: dict[str, list[Any]]) -> None:
    from tuixp.errors import ParameterError

    declared = list(ex._params)
    unknown = [n for n in [*fixed, *grid] if n not in declared]
    if unknown:
        known = ", ".join(declared) or "none"
        raise CliError(
            f"unknown parameter {unknown[0]} for experiment {ex.id} (its parameters: {known})"
        )
    point = {**fixed, **{k: v[0] for k, v in grid.items()}}
    try:
        ex._values(point)
    except ParameterError as exc:
        missing = str(exc).rpartition(": ")[2]
        raise CliError(
            f"no value for parameter(s) {missing} of experiment {ex.id}: give NAME=VALUE"
        ) from None


def _print_outcomes(experiment: str, outcomes: Sequence[Any], fmt: str) -> None:
    names: list[str] = []
    for o in outcomes:
        names.extend(n for n in o.params if n not in names)
    rows = []
    for o in outcomes:
        error = None if o.error is None else f"{type(o.error).__name__}: {o.error}"
        rows.append([experiment, o.trial_id, o.status, dict(o.params), o.result, error])
    if fmt == "csv":
        columns = ["experiment", "trial_id", "status", *names, "result", "error"]
        flat = [[r[0], r[1], r[2], *(r[3].get(n) for n in names), r[4], r[5]] for r in rows]
        emit(columns, flat, fmt)
        return
    columns = ["experiment", "trial_id", "status", "params", "result", "error"]
    if fmt == "json":
        emit(columns, rows, fmt)
        return
    same = _common_params([r[3] for r in rows]) if len(rows) > 1 else {}
    emit(
        columns,
        rows,
        fmt,
        table_columns=["TRIAL", "STATUS", "PARAMS", "RESULT"],
        table_cells=lambda r: [
            str(r[1]),
            r[2],
            fmt_params({k: v for k, v in r[3].items() if k not in same}),
            fmt_value(r[4]) if r[2] == "succeeded" else (r[5] or ""),
        ],
        right=[0],
        optional=[2],
        keep=[2],
    )
    if same:
        typer.echo(f"same in every trial: {fmt_params(same)}", err=True)


@app.command("ls")
@handled
def ls_command(
    ctx: typer.Context,
    experiment: Annotated[
        str | None,
        typer.Argument(
            metavar="EXPERIMENT",
            show_default=False,
            help="List this experiment's trials (default: list experiments).",
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", metavar="N", help="Show the latest N trials.")
    ] = DEFAULT_LIMIT,
    all_trials: Annotated[bool, typer.Option("--all", "-a", help="Show every trial.")] = False,
    status: Annotated[
        str | None,
        typer.Option(
            metavar="succeeded|failed|queued|running|interrupted",
            show_default=False,
            help="Only trials with this status.",
        ),
    ] = None,
    store: StoreOption = None,
    fmt: FormatOption = None,
) -> None:
    """List experiments, or an experiment's latest trials."""
    fmt = output_format(fmt)
    if limit < 1:
        raise CliError("--limit must be at least 1 (or use --all)")
    if status is not None and status not in STATUSES:
        raise CliError(f"unknown status {status!r}: use {', '.join(STATUSES[:-1])} or interrupted")
    st = open_store(store_path(store, ctx))
    with st.connect() as con:
        if experiment is None:
            _ls_experiments(con, fmt)
        else:
            _ls_trials(con, experiment, None if all_trials else limit, status, fmt)


STATUSES = ("succeeded", "failed", "queued", "running", "interrupted")


def _ls_experiments(con: Any, fmt: str) -> None:
    from tuixp.store import queries

    columns = [
        "experiment",
        "trials",
        "succeeded",
        "failed",
        "running",
        "interrupted",
        "last_run",
        "min_result",
        "max_result",
        "goal",
        "best_result",
    ]
    rows = [[e[c] for c in columns] for e in queries.experiments(con)]
    if not rows and fmt == "table":
        typer.echo("no trials yet: run one with tuixp run SCRIPT (or try tuixp demo)", err=True)
        return

    def result(low: Any, high: Any, goal: str | None, best: Any) -> str:
        # Which end is best is the experiment's to say (Experiment(..., goal="min" or "max"));
        # without a goal, the range.
        if goal and best is not None:
            return f"best {fmt_number(best)} ({goal})"
        return "" if low is None else f"{fmt_number(low)} .. {fmt_number(high)}"

    emit(
        columns,
        rows,
        fmt,
        table_columns=["EXPERIMENT", "TRIALS", "OK", "FAILED", "RUNNING", "LAST RUN", "RESULT"],
        table_cells=lambda r: [
            r[0],
            str(r[1]),
            str(r[2]),
            str(r[3]),
            str(r[4]),
            fmt_time(r[6]),
            result(r[7], r[8], r[9], r[10]),
        ],
        right=[1, 2, 3, 4, 6],
    )


def _require_experiment(con: Any, experiment: str) -> None:
    from tuixp.store import queries

    queries.require_experiment(con, experiment)


def _ls_trials(con: Any, experiment: str, limit: int | None, status: str | None, fmt: str) -> None:
    from tuixp.store import flags, window

    _require_experiment(con, experiment)
    # Queued trials are running ones none of whose steps has started: told apart below.
    stored = "running" if status == window.QUEUED else status
    where = "experiment = ?" + (" AND status = ?" if stored else "")
    args: list[Any] = [experiment] + ([stored] if stored else [])
    total = con.execute(f"SELECT count(*) FROM trials WHERE {where}", args).fetchone()[0]
    requested = limit
    if stored == "running":
        limit = None  # a few: the split into queued and running is made here
    sql = (
        "SELECT trial_id, status, params, result, epoch(finished_at) - epoch(started_at), "
        "started_at, git_commit, git_dirty, changes, notes, CASE WHEN error_type IS NULL THEN "
        "NULL ELSE error_type || ': ' || error_message END "
        f"FROM trial_record WHERE {where} ORDER BY trial_id DESC"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    raw = con.execute(sql, args).fetchall()
    raw.reverse()
    firsts = window.first_step_starts(con, experiment, [r[0] for r in raw if r[1] == "running"])
    raw = [
        (r[0], window.shown_status(r[1], firsts.get(r[0])), *r[2:]) if r[1] == "running" else r
        for r in raw
    ]
    if status in ("running", window.QUEUED):
        raw = [r for r in raw if r[1] == status]
        total = len(raw)
        raw = raw[-requested:] if requested is not None else raw
    rows = []
    for tid, st, params, result, elapsed, started, commit, dirty, changes, notes, error in raw:
        kinds = sorted({c.get("kind", "?") for c in (_loads(changes) or []) if isinstance(c, dict)})
        rows.append(
            [
                experiment,
                tid,
                st,
                _loads(params) or {},
                _loads(result),
                elapsed,
                started,
                commit,
                bool(dirty),
                kinds,
                error,
                flags.text(changes, notes),
            ]
        )
    if fmt == "csv":
        from tuixp.store import queries

        names = queries.param_names(con, experiment)
        columns = [
            "experiment",
            "trial_id",
            "status",
            *names,
            "result",
            "elapsed_s",
            "started_at",
            "git_commit",
            "git_dirty",
            "changed",
            "error",
            "flags",
        ]
        flat = [
            [
                r[0],
                r[1],
                r[2],
                *(r[3].get(n) for n in names),
                r[4],
                r[5],
                r[6],
                r[7],
                r[8],
                ",".join(r[9]),
                r[10],
                r[11],
            ]
            for r in rows
        ]
        emit(columns, flat, fmt)
    elif fmt == "json":
        columns = [
            "experiment",
            "trial_id",
            "status",
            "params",
            "result",
            "elapsed_s",
            "started_at",
            "git_commit",
            "git_dirty",
            "changed",
            "error",
            "flags",
        ]
        emit(columns, rows, fmt)
    else:
        # A table shows the parameters that differ between the rows it shows; the others are
        # named once below it, so the column stays readable at 80 columns.
        same = _common_params([r[3] for r in rows]) if len(rows) > 1 else {}
        commits = {(r[7], r[8]) for r in rows}
        one_commit = len(rows) > 1 and len(commits) == 1 and rows[0][7] is not None
        table_rows = [
            [
                *r[:3],
                {k: v for k, v in r[3].items() if k not in same},
                *r[4:7],
                None if one_commit else r[7],
                *r[8:],
            ]
            for r in rows
        ]
        emit(
            [],
            table_rows,
            fmt,
            table_columns=[
                "TRIAL",
                "STATUS",
                flags.HEADER,
                "PARAMS",
                "RESULT",
                "ELAPSED",
                "STARTED",
                "COMMIT",
            ],
            table_cells=functools.partial(_trial_cells, clock=all(_today(r[6]) for r in rows)),
            right=[0, 5],
            optional=[3, 7],
            keep=[3],
        )
        if same:
            typer.echo(f"same in every trial shown: {fmt_params(same)}", err=True)
        if one_commit:
            commit, dirty = rows[0][7], rows[0][8]
            typer.echo(
                f"every trial shown ran at commit {commit[:7]}"
                + (" with uncommitted changes" if dirty else ""),
                err=True,
            )
        if total > len(rows):
            typer.echo(
                f"latest {len(rows)} of {total} trials (--limit N or --all for more)", err=True
            )


def _common_params(params: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters every one of ``params`` has, with the same value."""
    first = params[0]
    marker = object()
    return {
        k: v for k, v in first.items() if all(_same_json(p.get(k, marker), v) for p in params[1:])
    }


def _same_json(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _trial_cells(r: Sequence[Any], clock: bool = False) -> list[str]:
    _, tid, st, params, result, elapsed, started, commit, dirty, kinds, error, marks = r
    shown = fmt_value(result) if st == "succeeded" else (error or "")
    return [
        str(tid),
        st,
        marks,
        fmt_params(params),
        shown,
        fmt_elapsed(elapsed) if st not in ("running", "queued") else "…",
        fmt_time(started, clock=clock),
        (commit[:7] + ("*" if dirty else "")) if commit else "",
    ]


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

    _require_experiment(con, experiment)
    if trial == "latest":
        row = con.execute(
            "SELECT max(trial_id) FROM trials WHERE experiment = ?", [experiment]
        ).fetchone()
        return int(row[0])
    found = con.execute(
        "SELECT 1 FROM trials WHERE experiment = ? AND trial_id = ?", [experiment, trial]
    ).fetchone()
    if found is None:
        last = con.execute(
            "SELECT max(trial_id) FROM trials WHERE experiment = ?", [experiment]
        ).fetchone()[0]
        raise TrialNotFound(
            f"Unable to find trial id: {trial} (experiment {experiment} has trials 1 to {last})"
        )
    return int(trial)


def load_trial(con: Any, experiment: str, trial_id: int) -> dict[str, Any]:
    """Everything recorded about one trial, as plain data (what show --format json prints)."""
    from tuixp.store import flags, queries, window

    rec = queries.trial(con, experiment, trial_id)
    if rec["status"] == "running":
        first = window.first_step_starts(con, experiment, [trial_id]).get(trial_id)
        rec["status"] = window.shown_status("running", first)
    doc: dict[str, Any] = {
        "experiment": experiment,
        "trial_id": trial_id,
        "status": rec["status"],
        "started_at": rec["started_at"],
        "finished_at": rec["finished_at"],
        "elapsed_s": rec.get("elapsed_s"),
        "seed": rec["seed"],
        "params": rec["params"],
        "result": rec["result"],
        "result_type": rec["result_type"],
        "error_type": rec["error_type"],
        "error_message": rec["error_message"],
        "traceback": rec.get("traceback"),
        "host": rec["host"],
        "pid": rec["pid"],
        "script": rec["script"],
        "scheduler": rec["scheduler"],
        "changes": rec["changes"],
        "notes": rec["notes"],
        "data_inputs": _loads(rec.get("data_inputs")) or {},
        "uuid": rec["uuid"],
        "flags": flags.text(rec["changes"], rec["notes"]),
    }
    doc["metrics"] = [
        {
            "name": n,
            "epochs": c,
            "first_epoch": e0,
            "last_epoch": e1,
            "last": last,
            "min": lo,
            "max": hi,
        }
        for n, c, e0, e1, last, lo, hi in con.execute(
            """
            SELECT name, count(*), min(epoch), max(epoch), arg_max(value, epoch), min(value),
                   max(value)
            FROM metrics WHERE experiment = ? AND trial_id = ? GROUP BY name ORDER BY name
        """,
            [experiment, trial_id],
        ).fetchall()
    ]
    doc["metric_values"] = {}
    for name, epoch, value in con.execute(
        "SELECT name, epoch, value FROM metrics WHERE experiment = ? AND trial_id = ? "
        "ORDER BY name, epoch",
        [experiment, trial_id],
    ).fetchall():
        doc["metric_values"].setdefault(name, []).append([epoch, value])
    doc["steps"] = [
        {
            "key": k,
            "step": s,
            "status": st,
            "elapsed_s": el,
            "worker": w,
            "error": err,
            "reused_from": ru,
        }
        for k, s, st, el, w, err, ru in con.execute(
            """
            SELECT key, step, status, elapsed_s, worker, error, reused_from FROM steps
            WHERE experiment = ? AND trial_id = ? ORDER BY started_at, key
        """,
            [experiment, trial_id],
        ).fetchall()
    ]
    if doc["status"] not in ("running", "queued"):
        for s in doc["steps"]:  # a step that never reported its end (its process was killed)
            if s["status"] == "running":
                s["status"] = "interrupted"
    doc["persisted"] = [
        {"step": s, "format": f, "size": z, "object_hash": h}
        for s, f, z, h in con.execute(
            "SELECT step, format, size, object_hash FROM persisted WHERE experiment = ? AND "
            "trial_id = ? ORDER BY step",
            [experiment, trial_id],
        ).fetchall()
    ]
    doc["code"] = queries.code(con, experiment, trial_id)
    env = queries.environment(con, experiment, trial_id)
    doc["environment"] = env
    return doc


@app.command("show")
@handled
def show_command(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(metavar="EXPERIMENT", show_default=False)],
    trial: Annotated[
        str, typer.Argument(metavar="TRIAL", show_default=False, help="A trial id, or latest.")
    ],
    store: StoreOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json",
            show_default=False,
            help="text for people (default) or JSON with everything, packages included.",
        ),
    ] = None,
) -> None:
    """Everything recorded about one trial."""
    fmt = output_format(fmt or "table", ("table", "json"))
    wanted = parse_trial(trial)
    st = open_store(store_path(store, ctx))
    with st.connect() as con:
        trial_id = resolve_trial(con, experiment, wanted)
        doc = load_trial(con, experiment, trial_id)
    if fmt == "json":
        typer.echo(json.dumps(doc, default=_json_default, indent=2))
        return
    typer.echo(render_trial(doc))


def _section(title: str) -> str:
    return f"\n{title}\n" + "-" * len(title)


def render_trial(doc: dict[str, Any]) -> str:
    """``tuixp show`` for people: one section per kind of record."""
    from tuixp.capture.environment import environment_view
    from tuixp.store import flags

    out = [f"{doc['experiment']} trial {doc['trial_id']}: {doc['status']}"]
    fields = [
        ("started", fmt_time(doc["started_at"], full=True)),
        ("finished", fmt_time(doc["finished_at"], full=True)),
        ("elapsed", fmt_elapsed(doc["elapsed_s"])),
        ("seed", doc["seed"]),
        ("host", f"{doc['host']} (pid {doc['pid']})"),
        ("scheduler", doc["scheduler"]),
        ("script", doc["script"] or ""),
        ("flags", doc["flags"]),
    ]
    out += [f"  {k:<10} {v}" for k, v in fields]
    out += [" " * 13 + line for line in flags.describe(doc["changes"], doc["notes"])]
    out.append(_section("Parameters"))
    width = max([len(k) for k in doc["params"]] + [1])
    out += [f"  {k:<{width}}  {fmt_param(v)}" for k, v in doc["params"].items()] or ["  (none)"]
    if doc["status"] == "succeeded":
        out.append(_section("Result"))
        kind = re.sub(r"^<class '(.*)'>$", r"\1", doc["result_type"] or "")
        out.append(f"  {fmt_value(doc['result'])}    ({kind})")
    else:
        out.append(_section("Error"))
        out.append(f"  {doc['error_type'] or ''}: {doc['error_message'] or ''}")
        if doc["traceback"]:
            out += ["", *("  " + line for line in doc["traceback"].rstrip().splitlines())]
    if doc["metrics"]:
        out.append(_section("Metrics"))
        rows = [
            [
                m["name"],
                str(m["epochs"]),
                f"{m['first_epoch']}..{m['last_epoch']}",
                fmt_value(m["last"]),
                fmt_value(m["min"]),
                fmt_value(m["max"]),
            ]
            for m in doc["metrics"]
        ]
        out.append(
            _indent(
                render_table(
                    ["NAME", "EPOCHS", "RANGE", "LAST", "MIN", "MAX"], rows, 78, right=[1, 3, 4, 5]
                )
            )
        )
    if doc["steps"]:
        out.append(_section("Steps"))
        rows = [
            [
                s["step"],
                s["status"] + (f" (from trial {s['reused_from']})" if s["reused_from"] else ""),
                fmt_elapsed(s["elapsed_s"]),
                s["worker"] or "",
                s["error"] or "",
            ]
            for s in doc["steps"]
        ]
        out.append(
            _indent(
                render_table(["STEP", "STATUS", "ELAPSED", "WORKER", "ERROR"], rows, 78, right=[2])
            )
        )
    if doc["persisted"]:
        out.append(_section("Persisted outputs"))
        rows = [
            [p["step"], p["format"], _size(p["size"]), p["object_hash"]] for p in doc["persisted"]
        ]
        out.append(_indent(render_table(["STEP", "FORMAT", "SIZE", "OBJECT"], rows, 78, right=[2])))
    if doc["data_inputs"]:
        out.append(_section("Data inputs"))
        out += [f"  {p}  {h}" for p, h in doc["data_inputs"].items()]
    if doc["changes"] or doc["notes"]:
        out.append(_section("Changes since the previous trial"))
        for c in doc["changes"]:
            out.append(f"  {c.get('message', c.get('kind'))}: {c.get('name')}")
            out += ["    " + line for line in str(c.get("diff", "")).splitlines()]
        out += [f"  note: {n}" for n in doc["notes"]]
    out.append(_section("Environment"))
    env = doc["environment"]
    out += ["  " + line for line in environment_view(env, None)]
    out.append(f"  Packages: {len(env.get('packages') or {})} recorded (--format json lists them)")
    for step, source in doc["code"].items():
        if step == "<script>":
            continue
        out.append(_section(f"Code: {step}"))
        out += ["  " + line for line in source.rstrip().splitlines()]
    if "<script>" in doc["code"]:
        lines = doc["code"]["<script>"].count("\n") + 1
        out.append(_section("Script"))
        out.append(f"  {doc['script']} ({lines} lines recorded; --format json includes it)")
    return "\n".join(out)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


@app.command("diff")
@handled
def diff_command(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(metavar="EXPERIMENT", show_default=False)],
    first: Annotated[
        str, typer.Argument(metavar="T1", show_default=False, help="A trial id, or latest.")
    ],
    second: Annotated[
        str, typer.Argument(metavar="T2", show_default=False, help="A trial id, or latest.")
    ],
    params: Annotated[
        bool, typer.Option("--params", help="Only the parameters and results.")
    ] = False,
    code: Annotated[bool, typer.Option("--code", help="Only the code.")] = False,
    env: Annotated[bool, typer.Option("--env", help="Only the environment.")] = False,
    causes: Annotated[
        bool, typer.Option("--causes", help="Only the likely causes of a different result.")
    ] = False,
    store: StoreOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json",
            show_default=False,
            help="text for people (default) or JSON.",
        ),
    ] = None,
) -> None:
    """What differs between trials T1 and T2: parameters, results (status, seed, commit, data
    inputs, metrics), the likely causes, code and environment, as the TUI's compare screen."""
    from tuixp import diff as diffs

    fmt = output_format(fmt or "table", ("table", "json"))
    a, b = parse_trial(first), parse_trial(second)
    st = open_store(store_path(store, ctx))
    with st.connect() as con:
        ta, tb = resolve_trial(con, experiment, a), resolve_trial(con, experiment, b)
        docs = diff_documents(con, experiment, [ta, tb])
    result = diffs.compare(docs, labels=(f"trial {ta}", f"trial {tb}"))
    chosen = (("params", params), ("causes", causes), ("code", code), ("env", env))
    sections = [s for s, on in chosen if on] or [s for s, _ in chosen]
    if fmt == "json":
        typer.echo(
            json.dumps(_diff_json(result, ta, tb, sections), default=_json_default, indent=2)
        )
        return
    typer.echo(render_diff(result, ta, tb, sections))


def diff_documents(con: Any, experiment: str, trial_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The trials as ``tuixp.diff.compare`` takes them (the compare screen reads the same)."""
    from tuixp.store import queries, window

    series = window.metric_series(con, experiment, list(trial_ids))
    docs = []
    for tid in trial_ids:
        steps = window.steps(con, experiment, tid)
        docs.append(
            {
                "trial": queries.trial(con, experiment, tid),
                "code": queries.code(con, experiment, tid),
                "environment": queries.environment(con, experiment, tid),
                "steps_ran": [s["step"] for s in steps] if steps else None,
                "metrics": {name: by_trial.get(tid, []) for name, by_trial in series.items()},
            }
        )
    return docs


def _missing_to_none(value: Any) -> Any:
    from tuixp.diff import MISSING

    return None if value is MISSING else value


def _diff_json(result: Any, ta: int, tb: int, sections: list[str]) -> dict[str, Any]:
    from tuixp.diff import compare_params

    doc: dict[str, Any] = {"trials": [ta, tb]}
    if "params" in sections:
        doc["params"] = [
            {
                "name": r.name,
                "status": p.status,
                "old": _missing_to_none(p.old),
                "new": _missing_to_none(p.new),
            }
            for r in result.params
            for p in compare_params({r.name: r.values[0]}, {r.name: r.values[1]})
        ]
        doc["results"] = [
            {
                "name": r.name,
                "old": _missing_to_none(r.values[0]),
                "new": _missing_to_none(r.values[1]),
                "differs": r.differs,
            }
            for r in result.results
        ]
    if "causes" in sections:
        doc["causes"] = [
            {
                "kind": c.kind,
                "title": c.title,
                "name": c.name,
                "old": _missing_to_none(c.old),
                "new": _missing_to_none(c.new),
                "detail": c.detail,
            }
            for c in result.causes
        ]
    if "code" in sections:
        doc["code"] = [{"step": c.step, "status": c.status, "diff": c.diff} for c in result.code]
    if "env" in sections:
        doc["environment"] = {
            group: [
                {
                    "name": c.name,
                    "status": c.status,
                    "old": _missing_to_none(c.old),
                    "new": _missing_to_none(c.new),
                }
                for c in changes
            ]
            for group, changes in result.environment.groups.items()
        }
    return doc


def render_diff(result: Any, ta: int, tb: int, sections: list[str]) -> str:
    from tuixp.diff import ADDED, GIT_DIFF_STEP, MISSING, REMOVED, cause_text, short

    def cell(value: Any) -> str:
        return "—" if value is MISSING else short(value, 30)

    out = [f"trial {ta} -> trial {tb}"]
    if "params" in sections:
        out.append(_section("Parameters"))
        changed = [r for r in result.params if r.differs]
        if not changed:
            out.append("  no differences")
        rows = [
            [r.name, cell(r.values[0]), cell(r.values[1]), _param_status(r.values)] for r in changed
        ]
        if rows:
            out.append(
                _indent(render_table(["NAME", f"TRIAL {ta}", f"TRIAL {tb}", "CHANGE"], rows, 78))
            )
        same = [r.name for r in result.params if not r.differs]
        if same:
            out.append(f"  same: {', '.join(same)}")
        out.append(_section("Results"))
        rows = [
            [
                _row_name(r.name),
                cell(r.values[0]),
                cell(r.values[1]),
                _param_status(r.values) if r.differs else "",
            ]
            for r in result.results
        ]
        out.append(_indent(render_table(["", f"TRIAL {ta}", f"TRIAL {tb}", "CHANGE"], rows, 78)))
    if "causes" in sections:
        out.append(_section("Likely causes, most likely first"))
        if not result.causes:
            out.append(
                "  nothing here explains a different result: same code, packages, seed, commit "
                "and data inputs"
            )
        for i, c in enumerate(result.causes, 1):
            out.append(f"  {i:>2}. {c.title}: {cause_text(c)}")
    if "code" in sections:
        out.append(_section("Code"))
        changed = result.code_changed
        if not changed:
            out.append("  no differences")
        for c in changed:
            name = "the script" if c.step == "<script>" else f"step {c.step}"
            if c.step == GIT_DIFF_STEP:
                name = "the uncommitted changes (git diff)"
            if c.status in (ADDED, REMOVED):
                out.append(f"  {name}: {c.status} in trial {tb}")
            out.append(c.diff)
    if "env" in sections:
        out.append(_section("Environment"))
        groups = result.environment.groups
        if not groups:
            out.append("  no differences")
        for group, changes in groups.items():
            out.append(f"  {group}:")
            for c in changes:
                texts = [v for v in (c.old, c.new) if isinstance(v, str)]
                if any("\n" in t for t in texts):  # e.g. git's uncommitted diff
                    old_lines = len(c.old.splitlines()) if isinstance(c.old, str) else 0
                    new_lines = len(c.new.splitlines()) if isinstance(c.new, str) else 0
                    out.append(f"    ~ {c.name}: {old_lines} lines -> {new_lines} lines")
                    continue
                sign = {"added": "+", "removed": "-"}.get(c.status, "~")
                if c.status == "added":
                    out.append(f"    {sign} {c.name} {short(c.new)}")
                elif c.status == "removed":
                    out.append(f"    {sign} {c.name} {short(c.old)}")
                elif group == "git" and c.name == "commit":
                    out.append(f"    ~ commit: {str(c.old)[:12]} -> {str(c.new)[:12]}")
                else:
                    out.append(f"    {sign} {c.name}: {short(c.old, 34)} -> {short(c.new, 34)}")
    return "\n".join(out)


def _row_name(name: str, width: int = 36) -> str:
    """A result row's name in a table: a long data path keeps its end (the file's name)."""
    if len(name) <= width:
        return name
    head = "data " if name.startswith("data ") else ""
    return head + "…" + name[len(name) - (width - len(head) - 1) :]


def _param_status(values: Sequence[Any]) -> str:
    from tuixp.diff import MISSING, compare_params

    old = {} if values[0] is MISSING else {"v": values[0]}
    new = {} if values[1] is MISSING else {"v": values[1]}
    return compare_params(old, new)[0].status if old or new else ""


@app.command("repeat")
@handled
def repeat_command(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(metavar="EXPERIMENT", show_default=False)],
    trial: Annotated[
        str, typer.Argument(metavar="TRIAL", show_default=False, help="A trial id, or latest.")
    ],
    scheduler: Annotated[
        str | None,
        typer.Option(
            metavar="threads|processes|sync|distributed|tcp://HOST:PORT",
            show_default=False,
            help="Where the steps run (default: the trial's own when local, else threads).",
        ),
    ] = None,
    result: Annotated[
        str | None,
        typer.Option(
            "--result",
            metavar="NAME",
            show_default=False,
            help="The result node to run when the script has several.",
        ),
    ] = None,
    progress: Annotated[
        str | None,
        typer.Option(
            metavar="jsonl|none",
            show_default=False,
            help="jsonl: tuixp run's events on stdout, then the verdict as one last event.",
        ),
    ] = None,
    store: StoreOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar="table|json",
            show_default=False,
            help="text for people (default) or JSON.",
        ),
    ] = None,
) -> None:
    """Run trial TRIAL again (its parameters and seed, today's code) and check every step's
    output against it: exit 0 when it reproduced bit for bit, 1 when it did not."""
    from tuixp import repeat as repeats

    fmt = output_format(fmt or "table", ("table", "json"))
    mode = (progress or "none").strip().lower()
    if mode not in ("jsonl", "none"):
        raise CliError(f"unknown progress mode {progress!r}: use jsonl or none")
    wanted = parse_trial(trial)
    path = store_path(store, ctx)
    out = sys.stdout
    jsonl = JsonlProgress(out) if mode == "jsonl" else None

    def say(plan: Any) -> None:
        typer.echo(
            f"repeating trial {plan.trial_id} of {plan.experiment} with seed {plan.seed} "
            f"{fmt_params(plan.params)} on {plan.script} as it is now",
            err=True,
        )

    sys.stdout = sys.stderr  # what the script prints goes to stderr, as in tuixp run
    try:
        doc = repeats.repeat_trial(
            path,
            experiment,
            wanted,
            load_script=load_script,
            use_store=use_store,
            scheduler=scheduler,
            result=result,
            listeners=[jsonl] if jsonl is not None else [],
            on_plan=say,
        )
    finally:
        sys.stdout = out
    if jsonl is not None:
        jsonl.write(json.dumps({"kind": "repeat_finished", **doc}, default=_json_default))
    elif fmt == "json":
        typer.echo(json.dumps(doc, default=_json_default, indent=2))
    else:
        typer.echo(repeats.render(doc, table_width()))
    if not doc["reproduced"]:
        raise typer.Exit(1)


@app.command("sql")
@handled
def sql_command(
    ctx: typer.Context,
    query: Annotated[
        str,
        typer.Argument(
            metavar="QUERY",
            show_default=False,
            help="One read-only statement; - reads it from stdin.",
        ),
    ],
    store: StoreOption = None,
    fmt: FormatOption = None,
    max_rows: Annotated[
        int | None,
        typer.Option(
            "--max-rows",
            metavar="N",
            show_default=False,
            help=f"At most N rows (default: {TABLE_MAX_ROWS} in a table, all in CSV and JSON).",
        ),
    ] = None,
) -> None:
    """Run SQL on the store's views (trials, params, metrics, steps, ...), read-only."""
    import duckdb

    from tuixp.store import sql as sqlmod

    fmt = output_format(fmt)
    if query.strip() == "-":
        query = sys.stdin.read()
    limit = max_rows if max_rows is not None else (TABLE_MAX_ROWS if fmt == "table" else None)
    if limit is not None and limit < 0:
        raise CliError("--max-rows must be 0 or more")
    path = store_path(store, ctx)
    try:
        with sqlmod.execute(path, query) as cur:
            columns = [d[0] for d in cur.description or []]
            if fmt == "table":
                rows = cur.fetchmany((limit or 0) + 1) if limit is not None else cur.fetchall()
                more = limit is not None and len(rows) > limit
                rows = rows[:limit] if limit is not None else rows
                emit(columns, rows, fmt, table_columns=columns)
                if more:
                    typer.echo(
                        f"first {limit} rows shown (--max-rows N, or --format csv for all)",
                        err=True,
                    )
                return
            _stream(cur, columns, fmt, limit)
    except duckdb.Error as exc:
        raise CliError(f"SQL error: {_one_line(str(exc))}") from None


def _stream(cur: Any, columns: list[str], fmt: str, limit: int | None) -> None:
    """CSV or JSON of every row, written as they are fetched (never all in memory)."""
    out = sys.stdout
    left = limit
    writer = csv.writer(out, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writerow(columns)
    else:
        out.write("[")
    first = True
    while left is None or left > 0:
        batch = cur.fetchmany(10_000 if left is None else min(left, 10_000))
        if not batch:
            break
        if left is not None:
            left -= len(batch)
        for row in batch:
            if writer is not None:
                writer.writerow([_csv_cell(v) for v in row])
            else:
                out.write(
                    ("\n  " if first else ",\n  ")
                    + json.dumps(dict(zip(columns, row)), default=_json_default)
                )
                first = False
    if writer is None:
        out.write("\n]\n" if not first else "]\n")
    out.flush()


@app.command("export")
@handled
def export_command(
    ctx: typer.Context,
    folder: Annotated[
        Path,
        typer.Argument(metavar="DIR", show_default=False, help="Where to write one file per view."),
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="parquet|csv", help="File format.")
    ] = "parquet",
    store: StoreOption = None,
) -> None:
    """Write each public view (trials, params, metrics, ...) to DIR as Parquet or CSV."""
    fmt = fmt.strip().lower()
    if fmt not in ("parquet", "csv"):
        raise CliError(f"unknown export format {fmt!r}: use parquet or csv")
    from tuixp.store.schema import PUBLIC_VIEWS

    st = open_store(store_path(store, ctx))
    folder = folder.expanduser()
    if folder.exists() and not folder.is_dir():
        raise CliError(f"{folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    with st.connect():
        pass  # ingest the journals
    written = []
    with st.connect(read_only=True) as con:
        for view in PUBLIC_VIEWS:
            target = (folder / f"{view}.{fmt}").resolve()
            quoted = str(target).replace("'", "''")
            options = "FORMAT parquet" if fmt == "parquet" else "FORMAT csv, HEADER true"
            con.execute(f"COPY (SELECT * FROM {view}) TO '{quoted}' ({options})")
            rows = con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
            written.append([view, str(target), rows])
    emit(
        ["view", "file", "rows"],
        written,
        output_format(None),
        table_columns=["VIEW", "FILE", "ROWS"],
        right=[2],
    )


@app.command("gc")
@handled
def gc_command(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be freed; delete nothing.")
    ] = False,
    min_age: Annotated[
        float,
        typer.Option(
            "--min-age",
            metavar="SECONDS",
            help="Spare files written more recently (a running trial may use them).",
        ),
    ] = 600.0,
    store: StoreOption = None,
) -> None:
    """Delete persisted outputs that no trial and no step-cache entry references any more."""
    from tuixp.cache import garbage_collect

    path = store_path(store, ctx)
    st = open_store(path)
    with st.connect() as con:  # ingest first: a just-finished trial's outputs are referenced
        referenced = {
            r[0]
            for r in con.execute("SELECT DISTINCT object_hash FROM persisted_record").fetchall()
        }
        files, freed = garbage_collect(st.path, referenced, dry_run=dry_run, min_age_s=min_age)
    verb = "would free" if dry_run else "freed"
    typer.echo(f"{verb} {files} file(s), {freed:,} bytes; {len(referenced)} output(s) kept")


@app.command("import-daskperiment")
@handled
def import_daskperiment_command(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="daskperiment_cache/ (every experiment) or one of its folders.")
    ],
    store: StoreOption = None,
) -> None:
    """Bring a daskperiment local history into the store; importing again adds nothing."""
    from tuixp.daskperiment_import import (
        ImportRefused,
        find_histories,
        import_history,
        read_history,
    )
    from tuixp.store.db import get_store

    target = store_path(store, ctx)
    if target.is_dir():
        raise CliError(f"{target} is a folder, not a store file")
    folders = find_histories(path.expanduser())
    histories, refused = [], []
    for folder in folders:  # every history is read before anything is written
        try:
            histories.append(read_history(folder))
        except ImportRefused as exc:
            refused.append(f"{folder.name}: {exc}")
    if not histories:
        raise CliError("nothing imported: " + "; ".join(refused))
    st = get_store(target)
    for history in histories:
        done = import_history(st, history)
        moved = ", ".join(f"{d}->{t}" for d, t in done.trials.items()) or "none"
        typer.echo(
            f"{history.experiment}: imported {len(done.trials)} trial(s) (daskperiment->tuixp "
            f"id: {moved}), {done.skipped} already in {target.name}"
        )
        for note in done.notes:
            typer.echo(f"  note: {note}", err=True)
    for line in refused:
        typer.echo(f"tuixp: not imported: {line}", err=True)
    if refused:
        raise typer.Exit(1)


@app.command("demo")
@handled
def demo_command(
    ctx: typer.Context,
    store: StoreOption = None,
) -> None:
    """Record a small demo experiment into the store, to have something to look at."""
    from tuixp.demo import run_demo

    path = store_path(store, ctx)
    if path.is_dir():
        raise CliError(f"{path} is a folder, not a store file")
    summary = run_demo(path, say=lambda text: typer.echo(text, err=True))
    typer.echo(summary)


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


if __name__ == "__main__":
    main()
