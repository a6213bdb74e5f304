"""The address book (/contacts): contacts, groups and who is in which group, per user.

Ids arrive in callback data, which can be forged: every method takes the owner's user id and
matches it, so a foreign id reads and changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final

from storage.db import Database, utc_now

_COLUMNS: Final = "id, user_id, name, phone, fields, created_at, updated_at"
# LIKE wildcards in a user's search text are searched for as themselves.
_LIKE_ESCAPE: Final = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})
# SQLite builds before 3.32 allow 999 bound parameters.
_PARAMS_PER_QUERY: Final = 900
# How an import's fields go over a contact's: (stored, the file's) → (to store, left out).
FieldMerge = Callable[[dict[str, str], dict[str, str]], tuple[dict[str, str], int]]


@dataclass(frozen=True, slots=True)
class ContactRow:
    id: int
    user_id: int
    name: str
    phone: str
    """Digits, country code first (services.phones.normalize_phone)."""
    fields: dict[str, str]
    """Extra values by column name: a template's {placeholders}."""
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ContactRow:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            name=row["name"],
            phone=row["phone"],
            fields=_fields(row["fields"]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )


@dataclass(frozen=True, slots=True)
class GroupRow:
    id: int
    name: str
    size: int
    """Contacts in the group."""


@dataclass(frozen=True, slots=True)
class NewContact:
    """One row of an import: `name` None keeps the name of a contact that exists already
    (the file had no name for it); a new contact then gets `fallback_name`."""

    phone: str
    name: str | None
    fallback_name: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class Imported:
    added: int
    updated: int
    capped: int = 0
    """Contacts some of whose new fields were left out (see import_rows' `merge`)."""


class ContactLimit(Exception):
    """Saving would take the user past their limit; nothing was saved."""

    def __init__(self, limit: int, have: int, adding: int) -> None:
        super().__init__(f"{have} + {adding} contacts over the limit of {limit}")
        self.limit = limit
        self.have = have
        self.adding = adding


class GroupLimit(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at the limit of {limit} groups")
        self.limit = limit


def _fields(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def _json(fields: dict[str, str]) -> str:
    return json.dumps(fields, ensure_ascii=False)


class ContactRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    # --- contacts ---------------------------------------------------------------------------

    async def count(self, user_id: int) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM contacts WHERE user_id = ?", (user_id,)
        )
        return 0 if row is None else int(row[0])

    async def add(
        self, user_id: int, name: str, phone: str, fields: dict[str, str], *, limit: int
    ) -> tuple[ContactRow, bool]:
        """Saves a contact, or renames the user's contact with that number and merges the
        fields in. Returns the row and whether it is new; raises ContactLimit for a new one
        past `limit`."""
        async with self._db.transaction():
            existing = await self.by_phone(user_id, phone)
            if existing is None:
                have = await self.count(user_id)
                if have + 1 > limit:
                    raise ContactLimit(limit, have, 1)
            await self._upsert(user_id, [NewContact(phone, name, name, fields)])
            row = await self.by_phone(user_id, phone)
        assert row is not None
        return row, existing is None

    async def import_rows(
        self,
        user_id: int,
        rows: Sequence[NewContact],
        *,
        limit: int,
        group_id: int | None = None,
        merge: FieldMerge | None = None,
    ) -> Imported:
        """Saves every row (new numbers added, known ones updated) and puts them into
        `group_id`, in one transaction: all of it or, past `limit`, nothing (ContactLimit).
        `merge` decides a contact's fields from its stored ones and the row's (default: the
        row's over the stored, every one kept)."""
        capped = 0
        async with self._db.transaction():
            known = {
                row["phone"]
                for row in await self._db.fetchall(
                    "SELECT phone FROM contacts WHERE user_id = ?", (user_id,)
                )
            }
            phones = {row.phone for row in rows}
            adding = len(phones - known)
            if len(known) + adding > limit:
                raise ContactLimit(limit, len(known), adding)
            if merge is not None:
                stored = await self._fields_of(user_id, sorted(phones & known))
                merged: list[NewContact] = []
                for row in rows:
                    fields, dropped = merge(stored.get(row.phone, {}), row.fields)
                    capped += dropped > 0
                    merged.append(replace(row, fields=fields))
                rows = merged
            await self._upsert(user_id, rows, replace_fields=merge is not None)
            if group_id is not None and await self.get_group(user_id, group_id) is not None:
                await self._db.conn.executemany(
                    "INSERT OR IGNORE INTO contact_group_members (group_id, contact_id) "
                    "SELECT ?, id FROM contacts WHERE user_id = ? AND phone = ?",
                    ((group_id, user_id, phone) for phone in phones),
                )
        return Imported(added=adding, updated=len(phones) - adding, capped=capped)

    async def _fields_of(self, user_id: int, phones: Sequence[str]) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for start in range(0, len(phones), _PARAMS_PER_QUERY):
            chunk = phones[start : start + _PARAMS_PER_QUERY]
            marks = ", ".join("?" for _ in chunk)
            for row in await self._db.fetchall(
                f"SELECT phone, fields FROM contacts WHERE user_id = ? AND phone IN ({marks})",
                (user_id, *chunk),
            ):
                found[row["phone"]] = _fields(row["fields"])
        return found

    async def _upsert(
        self, user_id: int, rows: Sequence[NewContact], *, replace_fields: bool = False
    ) -> None:
        """`replace_fields`: the rows hold the contacts' whole fields (merged already)."""
        now = utc_now()
        fields = (
            "excluded.fields" if replace_fields else "json_patch(contacts.fields, excluded.fields)"
        )
        await self._db.conn.executemany(
            "INSERT INTO contacts (user_id, name, phone, fields, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, phone) DO UPDATE SET "
            "name = CASE WHEN ? THEN excluded.name ELSE contacts.name END, "
            f"fields = {fields}, "
            "updated_at = excluded.updated_at",
            (
                (
                    user_id,
                    row.name if row.name is not None else row.fallback_name,
                    row.phone,
                    _json(row.fields),
                    now,
                    now,
                    row.name is not None,
                )
                for row in rows
            ),
        )

    async def get(self, user_id: int, contact_id: int) -> ContactRow | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM contacts WHERE id = ? AND user_id = ?",
            (contact_id, user_id),
        )
        return None if row is None else ContactRow.from_row(row)

    async def by_phone(self, user_id: int, phone: str) -> ContactRow | None:
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM contacts WHERE user_id = ? AND phone = ?", (user_id, phone)
        )
        return None if row is None else ContactRow.from_row(row)

    async def page(
        self, user_id: int, *, offset: int, limit: int, group_id: int | None = None
    ) -> list[ContactRow]:
        """Contacts by name; only the members of `group_id` when given."""
        if group_id is None:
            sql = f"SELECT {_COLUMNS} FROM contacts WHERE user_id = ?"
            params: tuple[int, ...] = (user_id,)
        else:
            sql = (
                f"SELECT {_COLUMNS} FROM contacts WHERE user_id = ? AND id IN "
                "(SELECT contact_id FROM contact_group_members WHERE group_id = ?)"
            )
            params = (user_id, group_id)
        rows = await self._db.fetchall(
            sql + " ORDER BY name COLLATE NOCASE, id LIMIT ? OFFSET ?", (*params, limit, offset)
        )
        return [ContactRow.from_row(row) for row in rows]

    async def search(self, user_id: int, text: str, digits: str, limit: int) -> list[ContactRow]:
        """Contacts whose name contains `text` (any case) or whose number contains `digits`
        (when given), by name."""
        name_like = "%" + text.translate(_LIKE_ESCAPE) + "%"
        phone_like = "%" + digits + "%" if digits else ""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM contacts WHERE user_id = ? AND "
            "(name LIKE ? ESCAPE '\\' OR (? != '' AND phone LIKE ?)) "
            "ORDER BY name COLLATE NOCASE, id LIMIT ?",
            (user_id, name_like, phone_like, phone_like, limit),
        )
        return [ContactRow.from_row(row) for row in rows]

    async def everyone(self, user_id: int) -> list[ContactRow]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM contacts WHERE user_id = ? ORDER BY name COLLATE NOCASE, id",
            (user_id,),
        )
        return [ContactRow.from_row(row) for row in rows]

    async def members(self, user_id: int, group_id: int) -> list[ContactRow]:
        """Everyone in the group, in the order they were added to the address book."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM contacts WHERE user_id = ? AND id IN "
            "(SELECT contact_id FROM contact_group_members WHERE group_id = ?) ORDER BY id",
            (user_id, group_id),
        )
        return [ContactRow.from_row(row) for row in rows]

    async def rename(self, user_id: int, contact_id: int, name: str) -> bool:
        changed = await self._db.execute(
            "UPDATE contacts SET name = ?, updated_at = ? WHERE id = ? AND user_id = ?",
            (name, utc_now(), contact_id, user_id),
        )
        return changed > 0

    async def set_fields(self, user_id: int, contact_id: int, fields: dict[str, str]) -> bool:
        changed = await self._db.execute(
            "UPDATE contacts SET fields = ?, updated_at = ? WHERE id = ? AND user_id = ?",
            (_json(fields), utc_now(), contact_id, user_id),
        )
        return changed > 0

    async def delete(self, user_id: int, contact_id: int) -> bool:
        changed = await self._db.execute(
            "DELETE FROM contacts WHERE id = ? AND user_id = ?", (contact_id, user_id)
        )
        return changed > 0

    async def group_names(self, user_id: int) -> dict[int, list[str]]:
        """Contact id -> the names of its groups: for the export."""
        rows = await self._db.fetchall(
            "SELECT m.contact_id, g.name FROM contact_group_members m "
            "JOIN contact_groups g ON g.id = m.group_id WHERE g.user_id = ? "
            "ORDER BY g.name COLLATE NOCASE",
            (user_id,),
        )
        names: dict[int, list[str]] = {}
        for row in rows:
            names.setdefault(int(row[0]), []).append(str(row[1]))
        return names

    # --- groups -----------------------------------------------------------------------------

    async def count_groups(self, user_id: int) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM contact_groups WHERE user_id = ?", (user_id,)
        )
        return 0 if row is None else int(row[0])

    async def groups(
        self, user_id: int, *, offset: int, limit: int, contact_id: int = 0
    ) -> list[tuple[GroupRow, bool]]:
        """The user's groups by name with their sizes, and whether `contact_id` is in each."""
        rows = await self._db.fetchall(
            "SELECT g.id, g.name, "
            "(SELECT COUNT(*) FROM contact_group_members m WHERE m.group_id = g.id) AS size, "
            "EXISTS (SELECT 1 FROM contact_group_members m "
            "WHERE m.group_id = g.id AND m.contact_id = ?) AS member "
            "FROM contact_groups g WHERE g.user_id = ? ORDER BY g.name, g.id LIMIT ? OFFSET ?",
            (contact_id, user_id, limit, offset),
        )
        return [
            (GroupRow(row["id"], row["name"], row["size"]), bool(row["member"])) for row in rows
        ]

    async def groups_of(self, user_id: int, contact_id: int) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT g.name FROM contact_groups g JOIN contact_group_members m "
            "ON m.group_id = g.id WHERE g.user_id = ? AND m.contact_id = ? ORDER BY g.name",
            (user_id, contact_id),
        )
        return [str(row[0]) for row in rows]

    async def is_member(self, group_id: int, contact_id: int) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM contact_group_members WHERE group_id = ? AND contact_id = ?",
            (group_id, contact_id),
        )
        return row is not None

    async def get_group(self, user_id: int, group_id: int) -> GroupRow | None:
        row = await self._db.fetchone(
            "SELECT g.id, g.name, "
            "(SELECT COUNT(*) FROM contact_group_members m WHERE m.group_id = g.id) AS size "
            "FROM contact_groups g WHERE g.id = ? AND g.user_id = ?",
            (group_id, user_id),
        )
        return None if row is None else GroupRow(row["id"], row["name"], row["size"])

    async def create_group(self, user_id: int, name: str, *, limit: int) -> GroupRow | None:
        """The new group; None when the user has a group of that name (any case). Raises
        GroupLimit at `limit` groups."""
        async with self._db.transaction():
            if await self.count_groups(user_id) >= limit:
                raise GroupLimit(limit)
            try:
                row = await self._db.fetchone(
                    "INSERT INTO contact_groups (user_id, name, created_at) VALUES (?, ?, ?) "
                    "RETURNING id",
                    (user_id, name, utc_now()),
                )
            except sqlite3.IntegrityError:
                return None
        assert row is not None
        return GroupRow(int(row["id"]), name, 0)

    async def rename_group(self, user_id: int, group_id: int, name: str) -> bool:
        """False when another group of the user has that name."""
        try:
            await self._db.execute(
                "UPDATE contact_groups SET name = ? WHERE id = ? AND user_id = ?",
                (name, group_id, user_id),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    async def delete_group(self, user_id: int, group_id: int) -> bool:
        """The group goes; its contacts stay in the address book."""
        changed = await self._db.execute(
            "DELETE FROM contact_groups WHERE id = ? AND user_id = ?", (group_id, user_id)
        )
        return changed > 0

    async def set_member(self, user_id: int, group_id: int, contact_id: int, member: bool) -> bool:
        """Puts the contact into the group or takes it out; False when either is not the
        user's."""
        async with self._db.transaction():
            if await self.get(user_id, contact_id) is None:
                return False
            if await self.get_group(user_id, group_id) is None:
                return False
            if member:
                await self._db.execute(
                    "INSERT OR IGNORE INTO contact_group_members (group_id, contact_id) "
                    "VALUES (?, ?)",
                    (group_id, contact_id),
                )
            else:
                await self._db.execute(
                    "DELETE FROM contact_group_members WHERE group_id = ? AND contact_id = ?",
                    (group_id, contact_id),
                )
        return True
