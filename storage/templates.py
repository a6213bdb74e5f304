"""Named message templates, per user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from storage.db import Database, IntegrityError, Row, utc_now

_COLUMNS: Final = "id, user_id, name, body, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class TemplateRow:
    id: int
    user_id: int
    name: str
    body: str
    created_at: str
    updated_at: str

    @classmethod
    def from_row(cls, row: Row) -> TemplateRow:
        return cls(**{key: row[key] for key in row.keys()})  # noqa: SIM118 (Row)


class TemplateRepo:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, user_id: int, name: str, body: str) -> TemplateRow:
        """Creates the template, or replaces the body of the user's template with that name."""
        now = utc_now()
        row = await self._db.fetchone(
            "INSERT INTO templates (user_id, name, body, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, name) DO UPDATE SET "
            f"body = excluded.body, updated_at = excluded.updated_at RETURNING {_COLUMNS}",
            (user_id, name, body, now, now),
        )
        assert row is not None
        return TemplateRow.from_row(row)

    async def list(self, user_id: int) -> list[TemplateRow]:
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM templates WHERE user_id = ? ORDER BY name COLLATE NOCASE",
            (user_id,),
        )
        return [TemplateRow.from_row(row) for row in rows]

    async def get(self, user_id: int, template_id: int) -> TemplateRow | None:
        """By id, checked against the owner: ids arrive in callback data, which can be forged."""
        row = await self._db.fetchone(
            f"SELECT {_COLUMNS} FROM templates WHERE id = ? AND user_id = ?",
            (template_id, user_id),
        )
        return None if row is None else TemplateRow.from_row(row)

    async def rename(self, user_id: int, template_id: int, name: str) -> bool:
        try:
            changed = await self._db.execute(
                "UPDATE templates SET name = ?, updated_at = ? WHERE id = ? AND user_id = ?",
                (name, utc_now(), template_id, user_id),
            )
        except IntegrityError:
            return False  # another template of this user has that name
        return changed > 0

    async def update_body(self, user_id: int, template_id: int, body: str) -> bool:
        changed = await self._db.execute(
            "UPDATE templates SET body = ?, updated_at = ? WHERE id = ? AND user_id = ?",
            (body, utc_now(), template_id, user_id),
        )
        return changed > 0

    async def delete(self, user_id: int, template_id: int) -> bool:
        changed = await self._db.execute(
            "DELETE FROM templates WHERE id = ? AND user_id = ?", (template_id, user_id)
        )
        return changed > 0
