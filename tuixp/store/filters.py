"""The trial filter: a small condition language over the trial table's columns, parsed here.

The TUI's filter box runs on the TUI's own (read-write) connection, so the text a person types
never reaches DuckDB as it is: it is parsed by the grammar below and the SQL is written again
from what was parsed. Column names come from the table's layout, literals are re-quoted, and
nothing else exists: no subquery, no table, no file, no function beyond ``FUNCTIONS``.

    condition  := or
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | predicate
    predicate  := sum [ compare sum
                      | ["NOT"] ("LIKE" | "ILIKE") sum
                      | ["NOT"] "IN" "(" sum ("," sum)* ")"
                      | ["NOT"] "BETWEEN" sum "AND" sum
                      | "IS" ["NOT"] ("NULL" | "TRUE" | "FALSE" | "DISTINCT" "FROM" sum) ]
    compare    := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    sum        := product (("+" | "-" | "||") product)*
    product    := unary (("*" | "/" | "%") unary)*
    unary      := ("-" | "+") unary | cast
    cast       := primary ("::" TYPE)*
    primary    := NUMBER | 'string' | TRUE | FALSE | NULL | INTERVAL (NUMBER UNIT | 'string')
                | column | "column" | FUNCTION "(" [condition ("," condition)*] ")"
                | ("CAST" | "TRY_CAST") "(" condition "AS" TYPE ")" | "(" condition ")"

Keywords are case-insensitive; a column whose name is a keyword (or holds other characters) is
written in double quotes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from tuixp.errors import TuixpError

FUNCTIONS = (
    "abs",
    "coalesce",
    "contains",
    "ends_with",
    "length",
    "lower",
    "now",
    "regexp_matches",
    "round",
    "starts_with",
    "upper",
)
TYPES = (
    "BIGINT",
    "BOOLEAN",
    "DATE",
    "DOUBLE",
    "INTEGER",
    "INTERVAL",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "VARCHAR",
)
_TYPE_ALIASES = {"INT": "INTEGER", "BOOL": "BOOLEAN", "FLOAT": "DOUBLE", "TEXT": "VARCHAR"}
UNITS = ("MICROSECOND", "MILLISECOND", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "YEAR")
_KEYWORDS = {
    "AND",
    "OR",
    "NOT",
    "LIKE",
    "ILIKE",
    "IN",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "BETWEEN",
    "DISTINCT",
    "FROM",
    "CAST",
    "TRY_CAST",
    "AS",
    "INTERVAL",
}
# Words that start a query: refused with their own message (a filter holds no subquery).
_QUERY_WORDS = {"SELECT", "WITH", "FROM", "VALUES", "TABLE", "SUMMARIZE", "DESCRIBE", "SHOW"}
MAX_DEPTH = 64  # nested parentheses, NOTs and signs: deeper is refused, not a RecursionError
EXAMPLE = "status = 'failed' AND lr > 0.01"

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")+")
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>::|<=|>=|<>|!=|==|\|\||[=<>+\-*/%(),])
    """,
    re.VERBOSE,
)


class FilterError(TuixpError):
    """A filter that is not a condition over the trial columns; the message says why."""


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, quoted, word, op, end
    text: str
    at: int  # position in the filter text (0-based)

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else self.text


@dataclass(frozen=True)
class Filter:
    """A parsed filter: ``sql`` is a DuckDB condition over quoted column names, ``columns``
    the column names it reads."""

    sql: str
    columns: frozenset[str]


def _tokens(text: str) -> list[Token]:
    out = []
    at = 0
    while at < len(text):
        if text.startswith(("--", "/*"), at):
            raise FilterError(
                f"Not a SQL condition: a filter holds no comment ({text[at : at + 2]} at "
                f"character {at + 1})"
            )
        m = _TOKEN.match(text, at)
        if m is None:
            ch = text[at]
            if ch in "'\"":
                raise FilterError(
                    f"Not a SQL condition: the quote at character {at + 1} is never closed"
                )
            raise FilterError(
                f"Not a SQL condition: {ch!r} (character {at + 1}) has no place in a filter "
                f"(one condition over the trial columns, such as {EXAMPLE})"
            )
        kind = m.lastgroup or ""
        if kind != "space":
            out.append(Token(kind, m.group(), at))
        at = m.end()
    out.append(Token("end", "", len(text)))
    return out


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Parser:
    def __init__(self, text: str, columns: Sequence[str]) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.depth = 0
        self.columns = list(columns)
        self.used: set[str] = set()

    # -- tokens --------------------------------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return tok

    def at_word(self, *words: str) -> bool:
        return self.tok.kind == "word" and self.tok.upper in words

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def expect_op(self, op: str, after: str) -> None:
        if not self.at_op(op):
            self.fail(f"expected {op!r} {after}")
        self.take()

    def expect_word(self, word: str, after: str) -> None:
        if not self.at_word(word):
            self.fail(f"expected {word} {after}")
        self.take()

    def fail(self, what: str) -> NoReturn:
        tok = self.tok
        found = (
            "the end of the filter"
            if tok.kind == "end"
            else f"{tok.text!r} (character {tok.at + 1})"
        )
        raise FilterError(f"Not a SQL condition: {what}, found {found}")

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"The filter is nested too deep (more than {MAX_DEPTH} levels)")

    # -- the grammar ---------------------------------------------------------------------------
    def condition(self) -> str:
        self.nest()
        try:
            return self.or_()
        finally:
            self.depth -= 1

    def or_(self) -> str:
        out = self.and_()
        while self.at_word("OR"):
            self.take()
            out = f"({out} OR {self.and_()})"
        return out

    def and_(self) -> str:
        out = self.not_()
        while self.at_word("AND"):
            self.take()
            out = f"({out} AND {self.not_()})"
        return out

    def not_(self) -> str:
        if self.at_word("NOT"):
            self.take()
            self.nest()
            try:
                return f"(NOT {self.not_()})"
            finally:
                self.depth -= 1
        return self.predicate()

    def predicate(self) -> str:
        left = self.sum()
        if self.at_op("=", "==", "!=", "<>", "<", "<=", ">", ">="):
            op = {"==": "=", "!=": "<>"}.get(self.tok.text, self.tok.text)
            self.take()
            return f"({left} {op} {self.sum()})"
        if self.at_word("IS"):
            self.take()
            negate = " NOT" if self.at_word("NOT") else ""
            if negate:
                self.take()
            if self.at_word("NULL", "TRUE", "FALSE"):
                return f"({left} IS{negate} {self.take().upper})"
            if self.at_word("DISTINCT"):
                self.take()
                self.expect_word("FROM", "after IS DISTINCT")
                return f"({left} IS{negate} DISTINCT FROM {self.sum()})"
            self.fail("expected NULL, TRUE, FALSE or DISTINCT FROM after IS")
        negate = ""
        if self.at_word("NOT"):
            self.take()
            negate = "NOT "
            if not self.at_word("LIKE", "ILIKE", "IN", "BETWEEN"):
                self.fail("expected LIKE, ILIKE, IN or BETWEEN after NOT")
        if self.at_word("LIKE", "ILIKE"):
            op = self.take().upper
            return f"({left} {negate}{op} {self.sum()})"
        if self.at_word("IN"):
            self.take()
            self.expect_op("(", "after IN")
            if self.at_word(*_QUERY_WORDS):
                self._refuse_query()
            items = [self.sum()]
            while self.at_op(","):
                self.take()
                items.append(self.sum())
            self.expect_op(")", "to close the IN list")
            return f"({left} {negate}IN ({', '.join(items)}))"
        if self.at_word("BETWEEN"):
            self.take()
            low = self.sum()
            self.expect_word("AND", "in BETWEEN ... AND ...")
            return f"({left} {negate}BETWEEN {low} AND {self.sum()})"
        return left

    def sum(self) -> str:
        out = self.product()
        while self.at_op("+", "-", "||"):
            op = self.take().text
            out = f"({out} {op} {self.product()})"
        return out

    def product(self) -> str:
        out = self.unary()
        while self.at_op("*", "/", "%"):
            op = self.take().text
            out = f"({out} {op} {self.unary()})"
        return out

    def unary(self) -> str:
        if self.at_op("-", "+"):
            op = self.take().text
            self.nest()
            try:
                return f"({op}{self.unary()})"
            finally:
                self.depth -= 1
        return self.cast()

    def cast(self) -> str:
        out = self.primary()
        while self.at_op("::"):
            self.take()
            out = f"CAST({out} AS {self.type_name()})"
        return out

    def type_name(self) -> str:
        if self.tok.kind == "word":
            name = _TYPE_ALIASES.get(self.tok.upper, self.tok.upper)
            if name in TYPES:
                self.take()
                return name
            raise FilterError(
                f"A filter cannot convert to {self.tok.text}: the types are " + ", ".join(TYPES)
            )
        self.fail("expected a type name")

    def primary(self) -> str:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return tok.text
        if tok.kind == "string":
            self.take()
            return _quote_str(tok.text[1:-1].replace("''", "'"))
        if tok.kind == "quoted":
            self.take()
            return self.column(tok.text[1:-1].replace('""', '"'), tok, quoted=True)
        if tok.kind == "op" and tok.text == "(":
            self.take()
            if self.at_word(*_QUERY_WORDS):
                self._refuse_query()
            inner = self.condition()
            self.expect_op(")", "to close the parenthesis")
            return inner
        if tok.kind != "word":
            self.fail("expected a column, a value or '('")
        word = tok.upper
        if word in ("TRUE", "FALSE", "NULL"):
            self.take()
            return word
        if word == "INTERVAL":
            return self.interval()
        if word in ("CAST", "TRY_CAST"):
            self.take()
            self.expect_op("(", f"after {word}")
            inner = self.condition()
            self.expect_word("AS", f"in {word}(... AS type)")
            typ = self.type_name()
            self.expect_op(")", f"to close {word}")
            return f"{word}({inner} AS {typ})"
        nxt = self.tokens[self.i + 1] if self.i + 1 < len(self.tokens) else tok
        if nxt.kind == "op" and nxt.text == "(":
            return self.call()
        if word in _QUERY_WORDS and self._find_column(tok.text) is None:
            self._refuse_query()
        if word in _KEYWORDS:
            self.fail("expected a column, a value or '('")
        self.take()
        return self.column(tok.text, tok, quoted=False)

    def interval(self) -> str:
        self.take()
        if self.tok.kind == "string":
            return "INTERVAL " + _quote_str(self.take().text[1:-1].replace("''", "'"))
        if self.tok.kind != "number":
            self.fail("expected a number or a 'string' after INTERVAL")
        amount = self.take().text
        unit = self.tok.upper.rstrip("S") if self.tok.kind == "word" else ""
        if unit not in UNITS:
            self.fail("expected a unit (" + ", ".join(u.lower() for u in UNITS) + ")")
        self.take()
        return f"INTERVAL {amount} {unit}"

    def call(self) -> str:
        tok = self.take()
        name = tok.text.lower()
        if name not in FUNCTIONS:
            raise FilterError(
                f"The filter cannot call {tok.text}(): a filter reads the trial columns only; "
                "its functions are " + ", ".join(FUNCTIONS)
            )
        self.take()  # "("
        if self.at_word(*_QUERY_WORDS):
            self._refuse_query()
        args = []
        if not self.at_op(")"):
            args.append(self.condition())
            while self.at_op(","):
                self.take()
                args.append(self.condition())
        self.expect_op(")", f"to close {tok.text}(")
        return f"{name}({', '.join(args)})"

    def column(self, name: str, tok: Token, quoted: bool) -> str:
        found = self._find_column(name, exact=quoted)
        if found is None:
            raise FilterError(
                f"No column named {name!r}. Columns: " + ", ".join(self.columns)
                if self.columns
                else f"No column named {name!r}"
            )
        self.used.add(found)
        return _quote_ident(found)

    def _find_column(self, name: str, exact: bool = False) -> str | None:
        if name in self.columns:
            return name
        if exact:
            return None
        folded = [c for c in self.columns if c.lower() == name.lower()]
        return folded[0] if len(folded) == 1 else None

    def _refuse_query(self) -> NoReturn:
        raise FilterError(
            "A filter is a condition over the trial columns: it cannot hold a query "
            f"({self.tok.text.upper()} ...). For queries use the SQL screen (:) or tuixp sql."
        )


def parse(text: str, columns: Sequence[str]) -> Filter:
    """Parse a filter over ``columns``; ``FilterError`` says what is wrong (and where)."""
    if not text.strip():
        return Filter("", frozenset())
    parser = _Parser(text, columns)
    sql = parser.condition()
    if parser.tok.kind != "end":
        parser.fail("expected AND, OR or the end of the filter")
    return Filter(sql, frozenset(parser.used))
