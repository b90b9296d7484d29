"""``python -m tuixp.serve.session --store PATH``: what ``tuixp serve`` runs for each browser tab.

The TUI itself (``tuixp.tui.app.create_app``), unchanged: the same screens, keys and refresh,
the SQL screen as read-only as in a terminal. textual-serve starts it with Textual's web driver
(``TEXTUAL_DRIVER``) and talks to it over stdin and stdout, which are pipes; started any other
way it refuses, since the TUI's terminal check (``require_terminal``) is skipped only here.
"""

from __future__ import annotations

import argparse
import os
import sys

WEB_DRIVER = "textual.drivers.web_driver:WebDriver"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuixp.serve.session", description=__doc__)
    parser.add_argument("--store", required=True, help="the store file")
    args = parser.parse_args(argv)
    if os.environ.get("TEXTUAL_DRIVER") != WEB_DRIVER:
        print(
            "tuixp: this runs one browser tab of tuixp serve; in a terminal, use tuixp ui",
            file=sys.stderr,
        )
        return 2
    from tuixp.tui.app import create_app

    create_app(args.store, theme=os.environ.get("TUIXP_THEME") or None).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
