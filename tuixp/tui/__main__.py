"""``python -m tuixp.tui --store PATH [--theme dark|light|ansi]``: the TUI without the CLI."""

from __future__ import annotations

import argparse
import sys

from tuixp.store.connection import resolve_store_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuixp.tui", description=__doc__)
    parser.add_argument(
        "--store", default=None, help="the store (default: $TUIXP_STORE, else tuixp.duckdb here)"
    )
    parser.add_argument("--theme", default=None, help="dark, light, ansi or a Textual theme")
    args = parser.parse_args(argv)
    from tuixp.tui.app import NoTerminal, create_app, require_terminal

    path = resolve_store_path(args.store)
    if path.exists() and path.is_dir():
        print(f"tuixp: {path} is a folder, not a store file.", file=sys.stderr)
        return 2
    try:
        require_terminal()
    except NoTerminal as exc:
        print(f"tuixp: {exc}", file=sys.stderr)
        return 2
    create_app(path, theme=args.theme).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
