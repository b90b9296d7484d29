"""tuixp repeat: run a recorded trial again on today's code and check it reproduced."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from tuixp.cli.common import (
    CliError,
    ReportFormatOption,
    StoreOption,
    handled,
    output_format,
    parse_trial,
    store_path,
)
from tuixp.cli.render import (
    fmt_params,
    json_default,
    table_width,
)
from tuixp.cli.run import JsonlProgress


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
    fmt: ReportFormatOption = None,
) -> None:
    """Run trial TRIAL again (its parameters and seed, today's code) and check every step's
    output against it: exit 0 when it reproduced bit for bit, 1 when it did not."""
    from tuixp import repeat as repeats
    from tuixp import verdict

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
            scheduler=scheduler,
            result=result,
            listeners=[jsonl] if jsonl is not None else [],
            on_plan=say,
        )
    finally:
        sys.stdout = out
    if jsonl is not None:
        jsonl.write(json.dumps({"kind": "repeat_finished", **doc}, default=json_default))
    elif fmt == "json":
        typer.echo(json.dumps(doc, default=json_default, indent=2))
    else:
        typer.echo(verdict.render(doc, table_width()))
    if not doc["reproduced"]:
        raise typer.Exit(1)
