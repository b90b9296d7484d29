"""``tuixp serve``: the TUI in a browser (textual-serve, the ``serve`` extra).

Loopback only unless ``--allow-remote``, and then with a token (docs/tui.md, "In a browser").
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated

import typer

from tuixp.cli.common import Debug, StoreOption, fail, handled, store_path

MISSING = "tuixp serve needs textual-serve, which is not installed: pip install 'tuixp[serve]'"


@handled
def serve_command(
    ctx: typer.Context,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. Anything but loopback needs --allow-remote.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one)."),
    ] = 8000,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Listen on a non-loopback address; every request then needs the token.",
        ),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="TUIXP_SERVE_TOKEN",
            show_default=False,
            help="The token requests must carry (default: none on loopback, a new one printed "
            "with the address otherwise). Also $TUIXP_SERVE_TOKEN.",
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """Serve the TUI to a browser; prints the address, stops on Ctrl+C."""
    from tuixp.serve.guard import is_loopback, new_token, token_problem

    if not is_loopback(host):
        if not allow_remote:
            fail(
                f"--host {host} is not a loopback address, so anyone who reaches it could drive "
                "the TUI; reach a loopback server with ssh -L 8000:127.0.0.1:8000 HOST, or add "
                "--allow-remote to require a token"
            )
        token = token or new_token()
    if token is not None and (problem := token_problem(token)):
        fail(problem)
    path: Path = store_path(store, ctx)
    if path.is_dir():
        fail(f"{path} is a folder, not a store file")
    from tuixp.store.sql import require_store

    require_store(path)  # a missing store: one line and exit 2
    if importlib.util.find_spec("textual_serve") is None:
        fail(MISSING, 1)
    from tuixp.serve.server import TuixpServer

    if not is_loopback(host):
        typer.echo(
            "tuixp serve: plain HTTP: the token and every screen cross the network "
            "unencrypted; ssh -L is the safer way",
            err=True,
        )
    server = TuixpServer(
        path.resolve(), host=host, port=port, token=token, say=lambda s: typer.echo(s)
    )
    server.serve(debug=Debug.on)
    typer.echo("tuixp serve: stopped")
