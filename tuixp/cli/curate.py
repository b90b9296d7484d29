"""tuixp note, name, tag, star, rm and restore: curating an experiment's trials.

Each is an annotation event journaled with its time and author (``tuixp.store.annotation``);
``rm`` hides trials (``restore`` brings them back) and ``rm --purge`` removes them for good.
Everything typed is checked before the store is written: bad input is one line and exit 2.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from tuixp.cli.common import CliError, StoreOption, handled, open_store, store_path

ExperimentArg = Annotated[str, typer.Argument(metavar="EXPERIMENT", help="The experiment.")]
TrialArg = Annotated[
    str,
    typer.Argument(
        metavar="TRIAL", help="A trial id, latest, or several: 3,5,8-10.", show_default=False
    ),
]
TrialsArg = Annotated[
    list[str],
    typer.Argument(
        metavar="TRIAL...", help="Trial ids, latest, or ranges: 3 5 8-10.", show_default=False
    ),
]


def parse_trials(texts: list[str]) -> list[int | str]:
    """Trial ids as typed: numbers, ``latest``, ranges ``8-10``, lists ``3,5``; each once."""
    out: list[int | str] = []
    for text in texts:
        for part in text.split(","):
            part = part.strip()
            if not part:
                raise CliError(f"not a trial id: {text!r} (a number, a range 3-7, or latest)")
            if part in ("latest", "last"):
                out.append("latest")
                continue
            lo, sep, hi = part.partition("-")
            try:
                first, last = int(lo), int(hi) if sep else int(lo)
            except ValueError:
                raise CliError(
                    f"not a trial id: {part!r} (a number, a range 3-7, or latest)"
                ) from None
            if first < 1 or last < first:
                raise CliError(f"not a trial range: {part!r} (trial ids start at 1, low-high)")
            if last - first >= 100_000:
                raise CliError(f"trial range too long: {part!r} (at most 100,000 trials)")
            out.extend(range(first, last + 1))
    if not out:
        raise CliError("give at least one trial id")
    return list(dict.fromkeys(out))


def _annotate(
    ctx: typer.Context,
    store: Any,
    experiment: str,
    trials: list[str],
    action: str,
    values: list[Any],
) -> list[dict[str, Any]]:
    from tuixp import curation
    from tuixp.store import annotation

    ids = parse_trials(trials)
    checked = [annotation.check_value(action, v) for v in values]  # before the store opens
    st = open_store(store_path(store, ctx))
    return curation.annotate(st, experiment, ids, action, checked)


def _ids(events: list[dict[str, Any]]) -> str:
    ids = sorted({e["trial_id"] for e in events})
    return ", ".join(str(i) for i in ids)


@handled
def note_command(
    ctx: typer.Context,
    experiment: ExperimentArg,
    trial: TrialArg,
    text: Annotated[
        str,
        typer.Argument(metavar="TEXT", help="The note ('' clears it; - reads it from stdin)."),
    ],
    store: StoreOption = None,
) -> None:
    """Set a trial's note (the latest note wins; earlier ones stay in the annotations view)."""
    if text == "-":
        text = sys.stdin.read()
    done = _annotate(ctx, store, experiment, [trial], "note", [text])
    what = "cleared the note of" if not done or not done[0]["value"] else "noted"
    typer.echo(f"{what} trial {_ids(done)} of {experiment}")


@handled
def name_command(
    ctx: typer.Context,
    experiment: ExperimentArg,
    trial: TrialArg,
    text: Annotated[str, typer.Argument(metavar="NAME", help="A short name ('' clears it).")],
    store: StoreOption = None,
) -> None:
    """Give a trial a short name, one line (e.g. baseline)."""
    done = _annotate(ctx, store, experiment, [trial], "name", [text])
    value = done[0]["value"] if done else ""
    shown = f"named trial {_ids(done)} of {experiment} {value!r}"
    typer.echo(shown if value else f"cleared the name of trial {_ids(done)} of {experiment}")


@handled
def tag_command(
    ctx: typer.Context,
    experiment: ExperimentArg,
    trial: TrialArg,
    tags: Annotated[
        list[str], typer.Argument(metavar="TAG...", help="Tags: one word each.", show_default=False)
    ],
    remove: Annotated[bool, typer.Option("--remove", "-r", help="Remove these tags.")] = False,
    store: StoreOption = None,
) -> None:
    """Add tags to trials (--remove takes them off)."""
    done = _annotate(ctx, store, experiment, [trial], "untag" if remove else "tag", tags)
    verb = "untagged" if remove else "tagged"
    names = " ".join(dict.fromkeys(e["value"] for e in done))
    typer.echo(f"{verb} trial {_ids(done)} of {experiment}: {names}")


@handled
def star_command(
    ctx: typer.Context,
    experiment: ExperimentArg,
    trials: TrialsArg,
    off: Annotated[bool, typer.Option("--off", help="Unstar them.")] = False,
    store: StoreOption = None,
) -> None:
    """Star trials (--off: unstar them)."""
    done = _annotate(ctx, store, experiment, trials, "unstar" if off else "star", [None])
    typer.echo(f"{'unstarred' if off else 'starred'} trial {_ids(done)} of {experiment}")


@handled
def rm_command(
    ctx: typer.Context,
    experiment: ExperimentArg,
    trials: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[TRIAL]...",
            help="Trial ids, latest, or ranges (with --purge and none: every deleted trial).",
            show_default=False,
        ),
    ] = None,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="Remove the trials for good: their rows, metrics, steps and the texts and "
            "files only they used.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Purge without asking.")] = False,
    store: StoreOption = None,
) -> None:
    """Delete trials: hidden from ls, the TUI and the trials view (restore brings them back);
    --purge removes them for good."""
    if purge:
        _purge(ctx, store, experiment, trials, yes)
        return
    if yes:
        raise CliError("--yes goes with --purge (a delete can be undone: tuixp restore)")
    if not trials:
        raise CliError("give the trials to delete: tuixp rm EXPERIMENT TRIAL...")
    ids = parse_trials(trials)
    from tuixp import curation

    st = open_store(store_path(store, ctx))
    done = curation.annotate(st, experiment, ids, "delete")
    if not done:
        typer.echo(f"nothing deleted: the trial(s) of {experiment} were deleted already", err=True)
        return
    typer.echo(
        f"deleted trial {_ids(done)} of {experiment} (tuixp restore {experiment} "
        f"{' '.join(str(e['trial_id']) for e in done)} brings them back)"
    )


def _purge(
    ctx: typer.Context, store: Any, experiment: str, trials: list[str] | None, yes: bool
) -> None:
    from tuixp import curation

    ids = parse_trials(trials) if trials else None
    if not yes and not sys.stdin.isatty():
        raise CliError(
            "rm --purge asks before it removes anything: run it in a terminal, or add --yes"
        )
    st = open_store(store_path(store, ctx))
    planned = curation.plan_purge(st, experiment, ids)
    if not planned.trials:
        typer.echo(
            f"nothing to purge: {experiment} has no deleted trials (tuixp rm {experiment} "
            "TRIAL... deletes some; or name the trials)",
            err=True,
        )
        return
    if not yes:
        typer.echo(f"this removes {planned.describe()} for good.", err=True)
        if not typer.confirm("Purge them?", default=False, err=True):
            typer.echo("nothing purged", err=True)
            raise typer.Exit(1)
    report = curation.purge(st, planned)
    typer.echo(report.describe(st.path.name))


@handled
def restore_command(
    ctx: typer.Context,
    experiment: ExperimentArg,
    trials: TrialsArg,
    store: StoreOption = None,
) -> None:
    """Bring deleted trials back."""
    from tuixp import curation

    ids = parse_trials(trials)
    st = open_store(store_path(store, ctx))
    done = curation.annotate(st, experiment, ids, "restore")
    if not done:
        typer.echo(f"nothing restored: the trial(s) of {experiment} are not deleted", err=True)
        return
    typer.echo(f"restored trial {_ids(done)} of {experiment}")
