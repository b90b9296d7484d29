"""The root of the ``tuixp`` command: ``--store PATH`` before the command, ``--version``,
``--debug``, the TUI without a command, and every command registered in the order
``tuixp --help`` lists them.

A new command: a function in one ``tuixp/cli/*.py`` (decorated ``@handled``) and one line in
``_register`` below.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tuixp.cli import admin, artifact, curate, diff, ls, repeat, run, serve, share, show, sql
from tuixp.cli.admin import open_tui
from tuixp.cli.coercion import Command
from tuixp.cli.common import STORE_HELP, Debug, handled, store_path


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


# -- the root ----------------------------------------------------------------------------------
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
    Debug.on = debug
    if ctx.invoked_subcommand is None:
        open_tui(store_path(None, ctx))


def _register() -> None:
    """Every command, in the order ``tuixp --help`` lists them."""
    commands: list[tuple[str, Callable[..., Any]]] = [
        ("ui", admin.ui_command),
        ("run", run.run_command),
        ("ls", ls.ls_command),
        ("show", show.show_command),
        ("diff", diff.diff_command),
        ("repeat", repeat.repeat_command),
        ("note", curate.note_command),
        ("name", curate.name_command),
        ("tag", curate.tag_command),
        ("star", curate.star_command),
        ("rm", curate.rm_command),
        ("restore", curate.restore_command),
        ("sql", sql.sql_command),
        ("serve", serve.serve_command),
        ("export", sql.export_command),
        ("merge", share.merge_command),
        ("push", share.push_command),
        ("pull", share.pull_command),
        ("artifact", artifact.artifact_command),
        ("gc", admin.gc_command),
        ("import-daskperiment", admin.import_daskperiment_command),
        ("demo", admin.demo_command),
    ]
    for name, func in commands:
        app.command(name, cls=Command)(func)  # typed without pydantic (tuixp/cli/coercion.py)


_register()
