"""tuixp ui, gc, demo and import-daskperiment: opening the TUI and looking after a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuixp.cli.common import (
    CliError,
    StoreOption,
    fail,
    handled,
    open_store,
    store_path,
)


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


@handled
def ui_command(ctx: typer.Context, store: StoreOption = None) -> None:
    """Open the TUI on the store (the same as tuixp without a command)."""
    open_tui(store_path(store, ctx))


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
    """Delete persisted outputs and artifacts that no trial and no step-cache entry references."""
    from tuixp.cache import garbage_collect
    from tuixp.store import artifacts
    from tuixp.store.paths import StorePaths

    path = store_path(store, ctx)
    st = open_store(path)
    with st.connect() as con:  # ingest first: a just-finished trial's outputs are referenced
        referenced = {
            r[0]
            for r in con.execute("SELECT DISTINCT object_hash FROM persisted_record").fetchall()
        }
        files, freed = garbage_collect(st.path, referenced, dry_run=dry_run, min_age_s=min_age)
        logged = artifacts.referenced(con)
        art_store = artifacts.ArtifactStore(StorePaths(st.path).artifacts)
        art_files, art_freed = art_store.garbage_collect(logged, dry_run=dry_run, min_age_s=min_age)
    verb = "would free" if dry_run else "freed"
    typer.echo(
        f"{verb} {files + art_files} file(s), {freed + art_freed:,} bytes; "
        f"{len(referenced)} output(s) kept; {len(logged)} artifact(s) kept"
    )


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
    from tuixp.store.store import get_store

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
