"""Typing the command line's values without pydantic: ``str``, ``int``, ``float``, ``bool``,
``Path`` and ``list[str]`` options and arguments, the only kinds tuixp's commands have.

Typer (0.29, pinned) builds a pydantic ``TypeAdapter`` for every parameter it processes, given
or not: importing pydantic and building the adapters costs 90-110 ms of every command, a fifth
of a ``tuixp run`` of a small script. ``Command`` gives each plain parameter a coercion of its
own instead, with the messages typer's pydantic path prints (``Invalid value for '--seed':
Input should be a valid integer, ...``); a parameter with constraints (``min``, ``exists``, a
parser...) or a value of an unexpected kind keeps typer's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer import BadParameter
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_path
from typer.core import TyperCommand

PLAIN = (str, int, float, bool, Path, list[str])
MESSAGES = {
    int: "Input should be a valid integer, unable to parse string as an integer",
    float: "Input should be a valid number, unable to parse string as a number",
}


def _plain(descriptor: Any) -> bool:
    """The parameter is one of PLAIN with nothing for pydantic to check."""
    info = descriptor.parameter_info
    if descriptor.file_annotation is not None or descriptor.annotation not in PLAIN:
        return False
    constrained = (
        getattr(info, name, None) is not None
        for name in ("min", "max", "parser", "click_type", "callback_validator")
    )
    if any(constrained) or getattr(info, "exists", False) or getattr(info, "resolve_path", False):
        return False
    return not (getattr(info, "clamp", False) or getattr(info, "case_sensitive", True) is False)


@dataclass(frozen=True)
class PlainParam(RuntimeParam):
    """A plain parameter's value from the strings the parser gives."""

    descriptor: Any

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        ann = self.annotation
        if ann == list[str] and isinstance(value, (list, tuple)):
            if all(isinstance(v, str) for v in value):
                return list(value)
        elif ann is str and isinstance(value, str):
            return value
        elif ann is bool and isinstance(value, bool):
            return value
        elif ann in (int, float) and isinstance(value, str):
            try:
                return ann(value.strip())
            except ValueError:
                raise BadParameter(MESSAGES[ann], ctx=ctx, param=param) from None
        elif ann in (int, float) and type(value) in (int, float):
            if ann is float or float(value).is_integer():
                return ann(value)
        elif ann is Path and isinstance(value, (str, Path)):
            return coerce_cli_path(
                Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx
            )
        # anything else: typer's own coercion (pydantic)
        return build_runtime_param(self.descriptor).coerce(value, param=param, ctx=ctx)


class Command(TyperCommand):
    """A typer command whose plain parameters are typed without pydantic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            plain(param)

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            plain(option)  # an absent --help (None) is processed too
        return option


def plain(param: Any) -> None:
    """Type ``param`` with ``PlainParam`` if it is plain and typer has not typed it yet."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", True) is not None:
        return
    if _plain(descriptor):
        param._runtime_param = PlainParam(
            annotation=descriptor.annotation,
            parameter_info=descriptor.parameter_info,
            descriptor=descriptor,
        )
