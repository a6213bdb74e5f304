"""Message templates with ``{column}`` placeholders filled from spreadsheet columns.

Syntax follows ``str.format`` where people would expect it: ``{{`` and ``}}`` are literal
braces, ``{name}`` is a placeholder. Nothing else is interpreted (no ``{0}``, no ``{x:>10}``):
a placeholder is only a column name, matched case-insensitively and ignoring surrounding
spaces, so "{ Ism }" finds the column "ism". Pure logic, no I/O, no user-facing text:
handlers translate ``TemplateError.problem``.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Literal

logger = logging.getLogger(__name__)

TemplateProblem = Literal["unclosed", "unopened", "empty"]
"""``{`` without its ``}``; ``}`` without its ``{``; ``{}`` with nothing (or spaces) inside."""

TEMPLATE_NAME_MAX: Final = 32
_NAME_PUNCTUATION: Final[frozenset[str]] = frozenset(" _-")

# Order matters: the doubled braces must win over a placeholder starting at the same "{".
_TOKEN: Final = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# Compiled templates are reused for every row of a bulk send; a handful is plenty.
_COMPILED_CACHE_SIZE: Final = 64


class TemplateError(ValueError):
    kind: ClassVar[Literal["syntax"]] = "syntax"

    def __init__(self, problem: TemplateProblem, position: int) -> None:
        super().__init__(f"{problem} at {position}")
        self.problem = problem
        self.position = position
        """0-based index (in code points) of the offending brace."""


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    """As written in the template, without the surrounding spaces."""
    key: str


_Segment = str | _Slot


def field_key(name: str) -> str:
    """The form in which a placeholder and a column name are compared."""
    return " ".join(name.split()).casefold()


@functools.lru_cache(maxsize=_COMPILED_CACHE_SIZE)
def _compile(template: str) -> tuple[_Segment, ...]:
    segments: list[_Segment] = []
    literal: list[str] = []
    pos = 0
    for match in _TOKEN.finditer(template):
        literal.append(template[pos : match.start()])
        pos = match.end()
        token = match.group()
        if token == "{{":
            literal.append("{")
        elif token == "}}":
            literal.append("}")
        elif token == "{":
            raise TemplateError("unclosed", match.start())
        elif token == "}":
            raise TemplateError("unopened", match.start())
        else:
            name = match.group(1).strip()
            if not name:
                raise TemplateError("empty", match.start())
            if literal:
                segments.append("".join(literal))
                literal = []
            segments.append(_Slot(name, field_key(name)))
    literal.append(template[pos:])
    tail = "".join(literal)
    if tail:
        segments.append(tail)
    return tuple(segments)


def placeholders(template: str) -> list[str]:
    """Placeholder names in order of first use, each once; raise TemplateError on bad braces."""
    seen: dict[str, str] = {}
    for segment in _compile(template):
        if isinstance(segment, _Slot):
            seen.setdefault(segment.key, segment.name)
    return list(seen.values())


def _column_by_key(columns: Iterable[str]) -> dict[str, str]:
    # The first of two columns that only differ in case wins, as in a left-to-right reading.
    resolved: dict[str, str] = {}
    for column in columns:
        resolved.setdefault(field_key(column), column)
    return resolved


def check_template(template: str, columns: Sequence[str]) -> list[str]:
    """The placeholders that match no column, as written; raise TemplateError on bad braces."""
    known = _column_by_key(columns)
    return [name for name in placeholders(template) if field_key(name) not in known]


def make_renderer(template: str, columns: Sequence[str]) -> Callable[[Mapping[str, str]], str]:
    """A renderer bound to the table's columns: placeholders are resolved once, not per row.

    The returned function takes a row's fields keyed by the exact column names (as
    ``Recipient.fields`` are). Unknown placeholders and missing values render as "".
    """
    known = _column_by_key(columns)
    parts: list[tuple[bool, str]] = []
    for segment in _compile(template):
        if isinstance(segment, str):
            parts.append((False, segment))
        else:
            parts.append((True, known.get(segment.key, "")))

    if not any(is_field for is_field, _ in parts):
        text = "".join(value for _, value in parts)
        return lambda fields: text

    def render_row(fields: Mapping[str, str]) -> str:
        # Values are joined in, never parsed: a "{" in a name stays a "{".
        return "".join(fields.get(value, "") if is_field else value for is_field, value in parts)

    return render_row


def render(template: str, fields: Mapping[str, str]) -> str:
    """Fill the placeholders from fields (matched like columns); missing values become ""."""
    return make_renderer(template, list(fields))(fields)


def valid_template_name(name: str) -> bool:
    """1-32 letters or digits of any script, spaces, "_" and "-"; no leading/trailing space."""
    if not 1 <= len(name) <= TEMPLATE_NAME_MAX or name != name.strip():
        return False
    for index, ch in enumerate(name):
        if ch.isalnum() or ch in _NAME_PUNCTUATION:
            continue
        # Combining marks belong to the letter before them ("й" typed as и + U+0306).
        if index and unicodedata.category(ch).startswith("M"):
            continue
        return False
    return True
