"""The ``NAME=VALUE`` grammar: how a person types a parameter's value, and how tuixp prints one
so that it reads back as the same value.

One set of rules for ``tuixp run`` (arguments and ``--grid``), the TUI's launch form and the
``tuixp run`` line the compare screen copies (docs/cli.md, ``tuixp run``'s ``NAME=VALUE``):

- a value is a Python literal (``0.1``, ``[1, 2]``, ``None``, ``'two words'``), else a bare word
  is the text itself (``model=ridge``);
- text that opens or closes like a literal but is none (``(1, 2``) is refused, as is an empty
  value (``name=""`` is the empty string);
- a grid's values are split on the commas outside brackets and quotes.

Errors are ``UsageError`` (tuixp.errors): one line, exit code 2 on the command line.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from tuixp.errors import UsageError


def parse_value(text: str, name: str) -> Any:
    """A Python literal, else the text itself when it is a bare word (``model=ridge``)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    stripped = text.strip()
    if not stripped:
        raise UsageError(f'malformed value for {name}: empty (write {name}="" for an empty string)')
    if stripped[0] in "[({'\"" or stripped[-1] in "])}'\"":
        raise UsageError(f"malformed value for {name}: {text} is not a Python literal")
    return text


def parse_assignment(text: str) -> tuple[str, str]:
    """``NAME=VALUE`` -> (name, the value's text); the name must be an identifier."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise UsageError(f"malformed parameter {text!r}: expected NAME=VALUE")
    if not name.isidentifier():
        raise UsageError(f"malformed parameter {text!r}: {name!r} is not a parameter name")
    return name, raw


def split_values(raw: str) -> list[str]:
    """``1,2,3`` -> three items; commas inside brackets or quotes do not split."""
    items: list[str] = []
    depth, quote, escaped, start = 0, "", False, 0
    for i, ch in enumerate(raw):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(raw[start:i])
            start = i + 1
    items.append(raw[start:])
    return items


def parse_grid(text: str, name: str, raw: str) -> list[Any]:
    """The values of ``--grid NAME=V1,V2`` (``text`` is the whole option, for the message)."""
    items = split_values(raw)
    if any(not item.strip() for item in items):
        raise UsageError(f"malformed --grid {text!r}: an empty value (use {name}=V1,V2,...)")
    return [parse_value(item, name) for item in items]


def parse_parameters(
    assignments: Sequence[str], grids: Sequence[str]
) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """``NAME=VALUE`` arguments and ``--grid NAME=V1,V2`` options, checked for clashes."""
    fixed: dict[str, Any] = {}
    for text in assignments:
        name, raw = parse_assignment(text)
        if name in fixed:
            raise UsageError(f"parameter {name} is given twice")
        fixed[name] = parse_value(raw, name)
    grid: dict[str, list[Any]] = {}
    for text in grids:
        name, raw = parse_assignment(text)
        if name in grid:
            raise UsageError(
                f"--grid {name} is given twice: list all its values in one, --grid {name}=V1,V2"
            )
        if name in fixed:
            raise UsageError(f"parameter {name} is given both as {name}=... and in --grid")
        grid[name] = parse_grid(text, name, raw)
    return fixed, grid


def format_value(value: Any) -> str:
    """A recorded value as one types it so that ``parse_value`` reads it back the same: a bare
    word for a string that is an identifier (``ridge``), else a Python literal (``'two words'``,
    ``0.1``, ``None``); a value with no literal (an object) as the literal of its text."""
    if isinstance(value, str) and value.isidentifier() and value not in ("True", "False", "None"):
        return value
    text = repr(value)
    try:
        ast.literal_eval(text)
    except (ValueError, SyntaxError):
        text = repr(str(value))
    return text
