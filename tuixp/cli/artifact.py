"""tuixp artifact: list a trial's artifacts, print where one's bytes are, or copy one out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuixp.cli.common import (
    FormatOption,
    StoreOption,
    handled,
    open_store,
    output_format,
    parse_trial,
    resolve_trial,
    store_path,
)


@handled
def artifact_command(
    ctx: typer.Context,
    experiment: Annotated[str, typer.Argument(metavar="EXPERIMENT", show_default=False)],
    trial: Annotated[
        str, typer.Argument(metavar="TRIAL", show_default=False, help="A trial id, or latest.")
    ],
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="[NAME]",
            show_default=False,
            help="One artifact: print the path of its bytes, or copy it with -o.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="PATH",
            show_default=False,
            help="Copy the artifact there (into it, if it is a folder); never overwrites.",
        ),
    ] = None,
    store: StoreOption = None,
    fmt: FormatOption = None,
) -> None:
    """List a trial's artifacts (ex.log_artifact), or copy one out with -o."""
    from tuixp.cli.render import emit
    from tuixp.errors import UsageError
    from tuixp.store import artifacts
    from tuixp.store.paths import StorePaths

    wanted = parse_trial(trial)
    if output is not None and name is None:
        raise UsageError("-o needs the NAME of the artifact to copy")
    fmt = output_format(fmt)
    path = store_path(store, ctx)
    st = open_store(path)
    with st.connect() as con:
        trial_id = resolve_trial(con, experiment, wanted)
        if name is None:
            listed = artifacts.listed(con, experiment, trial_id)
        else:
            found = artifacts.find(con, experiment, trial_id, name)
    files = artifacts.ArtifactStore(StorePaths(st.path).artifacts)
    if name is None:
        rows = [(a.name, a.kind, a.size, a.files, a.hash) for a in listed]
        emit(
            ("name", "kind", "size", "files", "hash"),
            rows,
            fmt,
            table_cells=lambda r: (str(r[0]), str(r[1]), f"{r[2]:,}", str(r[3]), str(r[4])[:12]),
            right=(2, 3),
        )
        if not rows and fmt == "table":
            typer.echo(f"trial {trial_id} of {experiment} logged no artifact", err=True)
        return
    if output is None:
        typer.echo(str(files.local_path(found)))
        return
    written = files.copy_to(found, output.expanduser())
    typer.echo(f"copied {found.name} ({found.size:,} bytes) to {written}")
