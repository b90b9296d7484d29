"""The source of each step and of the script, hashed so a change is seen across processes."""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable
from typing import Any

from tuixp.capture.hashing import text_hash

_UNREADABLE = "# source not available: {reason}\n# bytecode hash: {digest}\n"


def function_source(func: Callable[..., Any]) -> tuple[str, bool]:
    """The function's source and whether it could be read.

    When it cannot (``python -c``, a REPL, a C function), the text says why and carries a hash of
    the bytecode and constants, so a change is still seen, just not shown as a diff.
    """
    try:
        return textwrap.dedent(inspect.getsource(func)), True
    except (OSError, TypeError) as exc:
        code = getattr(func, "__code__", None)
        if code is not None:
            digest = text_hash(repr((code.co_code, code.co_consts, code.co_names)))
        else:
            digest = text_hash(repr(func))
        return _UNREADABLE.format(reason=str(exc) or type(exc).__name__, digest=digest), False


def script_source(path: str | None) -> str | None:
    if not path:
        return None
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None
