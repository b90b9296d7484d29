"""tuixp merge, push and pull: bring trials recorded elsewhere into this store (docs/sharing.md).

``tuixp export --bundle`` (the file these read) is in ``tuixp/cli/sql.py`` with the other
export; the work of all four is in ``tuixp.store.merge`` and ``tuixp.store.sharing``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from tuixp.cli.common import ReportFormatOption, StoreOption, handled, output_format, store_path

_FORMATS = ("table", "json")
CONFLICTS_SHOWN = 20  # in a table; JSON lists them all


def _format(fmt: str | None) -> str:
    return output_format(fmt or "table", _FORMATS)


def _short(store_id: str) -> str:
    return store_id[:8]


def _say(message: str) -> None:
    typer.echo(f"tuixp: {message}", err=True)


def print_merge(report: Any, fmt: str, header: bool = True) -> None:
    """A merge report for people: one line per experiment, then every conflict and note."""
    if fmt == "json":
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    verb = "would merge" if report.dry_run else "merged"
    if header:
        host = f", host {report.source_host}" if report.source_host else ""
        typer.echo(
            f"{verb} {report.source} (store {_short(report.source_store)}{host}) "
            f"into {report.target}"
        )
    totals = report.totals()
    if not report.experiments:
        typer.echo("  nothing to merge: the source holds no trial")
    for e in report.experiments.values():
        words = []
        if e.added:
            ids = f" as #{e.first_id}-#{e.last_id}" if e.first_id is not None else ""
            words.append(f"{'would add' if report.dry_run else 'added'} {e.added}{ids}")
        if e.updated:
            words.append(f"{'would update' if report.dry_run else 'updated'} {e.updated}")
        if e.skipped:
            words.append(f"skipped {e.skipped} (here already)")
        if e.conflicts:
            words.append(f"{e.conflicts} in conflict")
        typer.echo(f"  {e.experiment}: " + ", ".join(words))
    shown = report.conflicts[:CONFLICTS_SHOWN]
    for line in shown:
        typer.echo(f"  conflict: {line}")
    if len(report.conflicts) > len(shown):
        typer.echo(f"  ... and {len(report.conflicts) - len(shown)} more (--format json lists all)")
    if report.objects_copied:
        typer.echo(f"  {report.objects_copied} file(s) of persisted outputs and artifacts copied")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    if report.dry_run:
        typer.echo(
            f"dry run: nothing written ({totals['added']} to add, {totals['updated']} to update)"
        )


@handled
def merge_command(
    ctx: typer.Context,
    source: Annotated[
        Path,
        typer.Argument(
            metavar="SOURCE",
            show_default=False,
            help="A tuixp store file, or a bundle (tuixp export --bundle, tuixp push).",
        ),
    ],
    store: StoreOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be merged; write nothing.")
    ] = False,
    fmt: ReportFormatOption = None,
) -> None:
    """Bring in every trial of SOURCE this store lacks (by UUID), with all it recorded."""
    from tuixp.store.merge import merge
    from tuixp.store.store import get_store

    fmt = _format(fmt)
    target = get_store(store_path(store, ctx))
    report = merge(source.expanduser(), target, dry_run=dry_run, progress=_say)
    print_merge(report, fmt)


@handled
def push_command(
    ctx: typer.Context,
    remote: Annotated[
        str,
        typer.Argument(
            metavar="REMOTE",
            show_default=False,
            help="A folder every machine reaches (a mounted share, a synced folder, a USB disk).",
        ),
    ],
    store: StoreOption = None,
    fmt: ReportFormatOption = None,
) -> None:
    """Write this store's trials that REMOTE lacks as one new bundle there."""
    from tuixp.cli.common import open_store
    from tuixp.store.sharing import push

    fmt = _format(fmt)
    st = open_store(store_path(store, ctx))
    report = push(st, remote)
    if fmt == "json":
        typer.echo(json.dumps(vars(report), indent=2))
    elif report.bundle is None:
        typer.echo(f"nothing to push: {report.remote} has every trial of {st.path}")
    else:
        typer.echo(
            f"pushed {report.trials} trial(s) and {report.objects} file(s) of outputs and artifacts to "
            f"{report.remote}/{report.bundle}"
        )


@handled
def pull_command(
    ctx: typer.Context,
    remote: Annotated[
        str,
        typer.Argument(metavar="REMOTE", show_default=False, help="The folder pushed to."),
    ],
    store: StoreOption = None,
    fmt: ReportFormatOption = None,
) -> None:
    """Merge every bundle in REMOTE not merged here yet."""
    from tuixp.store.sharing import pull, remote_folder
    from tuixp.store.store import get_store

    fmt = _format(fmt)
    folder = remote_folder(remote)  # refused before a store is created
    report = pull(get_store(store_path(store, ctx)), folder)
    if fmt == "json":
        typer.echo(
            json.dumps(
                {
                    "remote": report.remote,
                    "merged": [{"bundle": n, **r.as_dict()} for n, r in report.merged],
                    "known": report.known,
                    "failed": [{"bundle": n, "error": e} for n, e in report.failed],
                },
                indent=2,
            )
        )
    else:
        for name, merged in report.merged:
            typer.echo(f"{name} (store {_short(merged.source_store)}, {merged.source_host}):")
            print_merge(merged, fmt, header=False)
        added = sum(r.totals()["added"] for _, r in report.merged)
        typer.echo(
            f"pulled {len(report.merged)} new bundle(s) from {report.remote}: {added} trial(s) "
            f"added; {report.known} bundle(s) merged before"
        )
    for name, error in report.failed:
        typer.echo(f"tuixp: {name} not merged: {error}", err=True)
    if report.failed:
        raise typer.Exit(1)
