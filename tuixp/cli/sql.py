"""tuixp sql and export: read-only SQL on the store's views, and whole views as files."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tuixp.cli.common import (
    CliError,
    FormatOption,
    StoreOption,
    handled,
    open_store,
    output_format,
    store_path,
)
from tuixp.cli.render import (
    csv_cell,
    emit,
    json_default,
)
from tuixp.errors import first_line

TABLE_MAX_ROWS = 200  # `tuixp sql` as a table; CSV and JSON stream every row


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
        raise CliError(f"SQL error: {first_line(str(exc))}") from None


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
                writer.writerow([csv_cell(v) for v in row])
            else:
                out.write(
                    ("\n  " if first else ",\n  ")
                    + json.dumps(dict(zip(columns, row)), default=json_default)
                )
                first = False
    if writer is None:
        out.write("\n]\n" if not first else "]\n")
    out.flush()


@handled
def export_command(
    ctx: typer.Context,
    targets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="DIR | EXPERIMENT...",
            show_default=False,
            help="Where to write one file per view; with --bundle, the experiments to export "
            "(default: all).",
        ),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="parquet|csv", help="File format.")
    ] = "parquet",
    bundle: Annotated[
        Path | None,
        typer.Option(
            "--bundle",
            metavar="PATH",
            show_default=False,
            help="Write one bundle file that `tuixp merge` reads on another machine.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            show_default=False,
            help="With --bundle: only trials started on or after DATE (YYYY-MM-DD[THH:MM]).",
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Write each public view (trials, params, metrics, ...) to DIR as Parquet or CSV, or the
    trials as one bundle for another machine (--bundle PATH)."""
    if bundle is not None:
        _export_bundle(ctx, bundle, targets or [], since, store)
        return
    if since is not None:
        raise CliError("--since goes with --bundle PATH")
    if not targets or len(targets) != 1:
        raise CliError("give one DIR to write the views to (or --bundle PATH)")
    folder = Path(targets[0])
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


def _export_bundle(
    ctx: typer.Context,
    path: Path,
    experiments: list[str],
    since: str | None,
    store: Path | None,
) -> None:
    from tuixp.store.sharing import export_bundle, parse_since

    when = parse_since(since) if since is not None else None
    st = open_store(store_path(store, ctx))
    report = export_bundle(st, path.expanduser().absolute(), experiments or None, when)
    missing = f" ({report.objects_missing} missing in the store)" if report.objects_missing else ""
    typer.echo(
        f"wrote {report.path}: {report.trials} trial(s), {report.tables['metric_record']} "
        f"metric value(s), {report.objects} file(s) of persisted outputs and artifacts{missing}"
    )
