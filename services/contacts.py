"""The address book's rules: what a typed contact, a field and an imported row may be, and
how a group becomes a bulk list.

Pure logic, no I/O, no user-facing text: handlers translate ``ContactInputError.problem``
and the import's row reasons. read_contacts runs in the upload worker (a file) or a thread
(a pasted list), like services.bulk_plan.read_upload.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from services.bulk_plan import NoPhoneColumn, Source
from services.phones import InvalidPhone, PhoneNumber, normalize_phone
from services.spreadsheet import (
    MAX_COLUMNS,
    Recipient,
    Recipients,
    ResultFormat,
    Table,
    find_phone_column,
    read_table,
    write_result,
)
from services.templating import field_key

NAME_MAX: Final = 64
FIELD_NAME_MAX: Final = 32
FIELD_VALUE_MAX: Final = 200
FIELDS_MAX: Final = 20
SEARCH_MAX: Final = 64
# A typed contact or a set of fields: longer than any real one, and bounded before parsing.
TYPED_MAX: Final = 1000
# The columns every contact has; a file's columns of these names are not extra fields.
NAME: Final = "name"
PHONE: Final = "phone"
GROUPS: Final = "groups"
RESERVED: Final[frozenset[str]] = frozenset({NAME, PHONE, GROUPS})
PASTED_CONTACTS: Final = "contacts.txt"
# A group's list in the bulk dialog and its job (bulk_jobs.file_format): its result file is CSV.
GROUP_FORMAT: Final = "group"

# Header names of the name column, compared after field_key().
NAME_HEADERS: Final[frozenset[str]] = frozenset(
    {
        "name", "full name", "first name", "contact", "contact name", "client", "customer",
        "ism", "ismi", "ism familiya", "f.i.sh", "fish", "mijoz", "исм", "мижоз",
        "имя", "фио", "ф.и.о.", "клиент", "контакт", "название", "наименование",
    }
)  # fmt: skip
_SPLIT: Final = re.compile(r"[,;\n\t]+")
# Where a field line's name ends: "city: Tashkent" or "city = Tashkent".
_FIELD_SEPARATOR: Final = re.compile(r"[:=]")
_TOKEN: Final = re.compile(r"\S+")
_MAX_PHONE_TOKENS: Final = 8

Problem = Literal[
    "too_long",  # the whole message
    "no_phone",
    "no_name",
    "name_long",
    "field_format",  # a line that is not "name: value"
    "field_name",  # an empty or too long field name
    "field_reserved",
    "value_long",
    "too_many_fields",
]
RowReason = Literal["name_long", "value_long"]


class ContactInputError(ValueError):
    def __init__(self, problem: Problem, detail: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.detail = detail
        """The offending field name or line, for the message."""


# --- typed ------------------------------------------------------------------------------------


def clean_name(raw: str) -> str:
    """A contact's name as typed: one line, spaces collapsed; raises on empty or too long."""
    name = " ".join(raw.split())
    if not name:
        raise ContactInputError("no_name")
    if len(name) > NAME_MAX:
        raise ContactInputError("name_long")
    return name


def parse_typed(text: str) -> tuple[str, PhoneNumber]:
    """ "Ali Valiyev, +998 90 123 45 67" (or the number first, or no comma) → name, number."""
    if len(text) > TYPED_MAX:
        raise ContactInputError("too_long")
    parts = [p.strip() for p in _SPLIT.split(text) if p.strip()]
    if len(parts) >= 2:
        for index, part in enumerate(parts):
            try:
                phone = normalize_phone(part)
            except InvalidPhone:
                continue
            return clean_name(" ".join(parts[:index] + parts[index + 1 :])), phone
    found = _phone_at_edge(text.strip())
    if found is None:
        raise ContactInputError("no_phone")
    phone, rest = found
    return clean_name(rest), phone


def _phone_at_edge(text: str) -> tuple[PhoneNumber, str] | None:
    """The longest run of leading (else trailing) tokens that is a number, and the rest."""
    tokens = list(_TOKEN.finditer(text))
    best: tuple[PhoneNumber, str] | None = None
    for match in tokens[:_MAX_PHONE_TOKENS]:
        try:
            best = normalize_phone(text[: match.end()]), text[match.end() :]
        except InvalidPhone:
            continue
    if best is not None:
        return best
    for match in reversed(tokens[-_MAX_PHONE_TOKENS:]):
        try:
            best = normalize_phone(text[match.start() :]), text[: match.start()]
        except InvalidPhone:
            continue
    return best


def parse_fields(text: str) -> dict[str, str]:
    """ "city: Tashkent" per line → {"city": "Tashkent"}; an empty value removes the field
    (it maps to "")."""
    if len(text) > TYPED_MAX:
        raise ContactInputError("too_long")
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        # Split at the first ":" or "=" by hand: the pattern that did it with lazy groups
        # around \s* backtracked in cubic time (1.8 s for 999 spaces and an "x").
        line = line.strip()
        separator = _FIELD_SEPARATOR.search(line)
        if separator is None or separator.start() == 0:
            raise ContactInputError("field_format", line[:FIELD_NAME_MAX])
        name = " ".join(line[: separator.start()].replace("{", "").replace("}", "").split())
        value = line[separator.end() :].strip()
        if not name or len(name) > FIELD_NAME_MAX:
            raise ContactInputError("field_name", name[:FIELD_NAME_MAX])
        if field_key(name) in RESERVED:
            raise ContactInputError("field_reserved", name)
        if len(value) > FIELD_VALUE_MAX:
            raise ContactInputError("value_long", name)
        fields[name] = value
    if not fields:
        raise ContactInputError("field_format")
    return fields


def merge_fields(old: dict[str, str], changes: dict[str, str]) -> dict[str, str]:
    """`changes` over `old` (same name in any case replaces it; "" removes); at most
    FIELDS_MAX."""
    merged = {k: v for k, v in old.items()}
    for name, value in changes.items():
        for key in [k for k in merged if field_key(k) == field_key(name)]:
            del merged[key]
        if value:
            merged[name] = value
    # An import may have brought more (one per column); a change only may not add to them.
    if len(merged) > FIELDS_MAX and len(merged) > len(old):
        raise ContactInputError("too_many_fields")
    return merged


def merge_imported(old: dict[str, str], new: dict[str, str]) -> tuple[dict[str, str], int]:
    """An import's fields over a contact's: a field the contact has (same name in any case)
    takes the file's value, a new one is added while the contact has fewer than FIELDS_MAX.
    Returns the fields and how many of the file's were left out: each import merged in every
    column of its file, and a book grew without limit."""
    merged = dict(old)
    names = {field_key(name): name for name in merged}
    dropped = 0
    for name, value in new.items():
        key = field_key(name)
        if key in names:
            del merged[names[key]]
        elif len(merged) >= FIELDS_MAX:
            dropped += 1
            continue
        merged[name] = value
        names[key] = name
    return merged, dropped


# --- imported ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImportRow:
    phone: str
    name: str | None
    """None: the file has no name for this number."""
    fallback_name: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class BadRow:
    row_no: int
    value: str
    reason: str
    """A PhoneError value, or a RowReason."""


@dataclass(slots=True)
class ContactsFile:
    rows_read: int = 0
    name_column: str | None = None
    phone_column: str = ""
    rows: list[ImportRow] = field(default_factory=list)
    bad: list[BadRow] = field(default_factory=list)
    duplicates: int = 0


def read_contacts(data: bytes, file_name: str, max_rows: int) -> ContactsFile:
    """Blocking: the bulk reader's table (same encodings, limits and hardening), then one
    contact per distinct valid number. Raises SpreadsheetError, or NoPhoneColumn."""
    table = read_table(data, file_name, max_rows=max_rows)
    phone_at = find_phone_column(table)
    if phone_at is None:
        raise NoPhoneColumn(table.columns)
    name_at = _name_column(table, phone_at)
    result = ContactsFile(
        rows_read=len(table.rows),
        name_column=None if name_at is None else table.columns[name_at],
        phone_column=table.columns[phone_at],
    )
    extra = [
        (i, c[:FIELD_NAME_MAX])
        for i, c in enumerate(table.columns)
        if i not in (phone_at, name_at) and field_key(c) not in RESERVED
    ]
    seen: set[str] = set()
    for row_no, cells in zip(table.row_numbers, table.rows, strict=True):
        bad = _import_row(cells, phone_at, name_at, extra, seen, result)
        if bad is not None:
            result.bad.append(BadRow(row_no, *bad))
    return result


def _import_row(
    cells: list[str],
    phone_at: int,
    name_at: int | None,
    extra: list[tuple[int, str]],
    seen: set[str],
    result: ContactsFile,
) -> tuple[str, str] | None:
    """Adds the row to `result`; (value, reason) when it cannot be a contact."""
    raw = cells[phone_at]
    try:
        phone = normalize_phone(raw)
    except InvalidPhone as exc:
        return raw, exc.reason.value
    name = " ".join(cells[name_at].split()) if name_at is not None else ""
    if len(name) > NAME_MAX:
        return name, "name_long"
    fields = {column: cells[i] for i, column in extra if cells[i]}
    if any(len(value) > FIELD_VALUE_MAX for value in fields.values()):
        return raw, "value_long"
    if phone.digits in seen:
        result.duplicates += 1
        return None
    seen.add(phone.digits)
    result.rows.append(ImportRow(phone.digits, name or None, phone.international, fields))
    return None


def _name_column(table: Table, phone_at: int) -> int | None:
    others = [i for i in range(len(table.columns)) if i != phone_at]
    if table.has_header:
        named = [i for i in others if field_key(table.columns[i]) in NAME_HEADERS]
        return named[0] if named else None
    return others[0] if others else None


# --- a group as a bulk list -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    """What a group send needs of a contact (storage's ContactRow has these too)."""

    name: str
    phone: str
    fields: dict[str, str]


def group_source(group_name: str, members: Sequence[Member]) -> Source:
    """The group's contacts as the list a file upload makes: columns name, phone and every
    extra field, so that build_plan renders each member's placeholders. Its key is a hash
    of the contents: a group changed since the dry run no longer matches it."""
    keys: dict[str, str] = {NAME: NAME, PHONE: PHONE}
    for member in members:
        for column in member.fields:
            if len(keys) >= MAX_COLUMNS:
                break
            keys.setdefault(field_key(column), column)
    columns = list(keys.values())
    recipients = Recipients()
    digest = hashlib.sha256(group_name.encode())
    for row_no, member in enumerate(members, start=1):
        values = {NAME: member.name, PHONE: "+" + member.phone}
        for column in member.fields:
            values.setdefault(keys.get(field_key(column), ""), member.fields[column])
        fields = {column: values.get(column, "") for column in columns}
        recipients.valid.append(Recipient(row_no, member.phone, fields))
        digest.update(json.dumps([member.phone, member.name, member.fields]).encode())
    return Source(
        key="group:" + digest.hexdigest(),
        file_name=group_name,
        file_format=GROUP_FORMAT,
        columns=columns,
        phone_column=PHONE,
        rows_read=len(members),
        recipients=recipients,
        approx_bytes=sum(len(json.dumps(m.fields)) + 400 for m in members),
    )


# --- export -----------------------------------------------------------------------------------


def export_file(contacts: Iterable[tuple[Member, Sequence[str]]], fmt: ResultFormat) -> bytes:
    """Every contact with its groups and fields, one row each; readable back by an import.
    Blocking for big books: run it in a thread."""
    rows = list(contacts)
    extra: dict[str, str] = {}
    for member, _groups in rows:
        for column in member.fields:
            if field_key(column) not in RESERVED:
                extra.setdefault(field_key(column), column)
    header = [NAME, PHONE, GROUPS, *extra.values()]

    def cells_of(member: Member, groups: Sequence[str]) -> list[str]:
        # Each member's fields by key once: looking each column up in every member's fields
        # cost members × columns × fields (16.5 s for 2,000 contacts and 240 fields).
        by_key: dict[str, str] = {}
        for name, value in member.fields.items():
            by_key.setdefault(field_key(name), value)
        return [
            member.name,
            member.phone,
            "; ".join(groups),
            *(by_key.get(key, "") for key in extra),
        ]

    cells = (cells_of(member, groups) for member, groups in rows)
    return write_result(fmt, header, cells, own_columns=(1,))
