"""The list of a /bulk dialog between its steps: read once, kept in memory (`SourceCache`) and,
with replicas, in Redis (`SourceCache.shared`), read again after a restart from what FSM data
keeps (the Telegram file id or the pasted text)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

from handlers.config import HandlerSettings
from services.bulk_plan import (
    PASTED,
    NoPhoneColumn,
    PackedSource,
    Source,
    SourceCache,
    parse_source,
    read_upload,
)
from services.contacts import Member, group_source
from services.spreadsheet import SpreadsheetError
from services.upload_worker import UploadWorker
from storage import ContactRepo
from storage.users import UserRow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Lists:
    """Reads one user's list and keeps it between the steps of the dialog."""

    bot: Bot
    sources: SourceCache
    uploads: UploadWorker
    contacts: ContactRepo
    max_rows: int
    user_id: int

    @classmethod
    def of(
        cls,
        bot: Bot,
        bulk_sources: SourceCache,
        uploads: UploadWorker,
        contacts: ContactRepo,
        settings: HandlerSettings,
        user_row: UserRow,
    ) -> Lists:
        return cls(bot, bulk_sources, uploads, contacts, settings.bulk_max_rows, user_row.id)

    async def parse(self, data: bytes, file_name: str, key: str) -> Source:
        """A file is read in the upload worker (limits on memory and time); a pasted list is
        one message, small enough for a thread, and starts no process."""
        shared = self.sources.shared
        if file_name == PASTED:
            source = await asyncio.to_thread(parse_source, data, file_name, key, self.max_rows)
            if shared is not None:
                await shared.save(self.user_id, await asyncio.to_thread(PackedSource.pack, source))
            return source
        packed = await self.uploads.run(read_upload, data, file_name, key, self.max_rows)
        if shared is not None:
            await shared.save(self.user_id, packed)
        return await asyncio.to_thread(packed.unpack)

    async def load(self, data: dict[str, Any]) -> Source | None:
        """The parsed list of the dialog: from memory, else read again (after a restart)."""
        found_by = data.get("src")
        if not isinstance(found_by, dict):
            return None
        if "group" in found_by:
            # Always read again from the database (never the copy in memory): a member removed
            # since the report, from another /contacts message, must not get the SMS. A group
            # is at most CONTACTS_LIMIT rows, and nothing need be sent again.
            return await self.load_group(int(found_by["group"]), str(found_by["key"]))
        cached = self.sources.get(self.user_id, found_by["key"])
        if cached is not None:
            return cached
        if self.sources.shared is not None:
            # Read on another replica (or by this one, before its memory let it go).
            packed = await self.sources.shared.load(self.user_id, str(found_by["key"]))
            if packed is not None:
                source = await asyncio.to_thread(packed.unpack)
                self.sources.put(self.user_id, source)
                return source
        if self.sources.evicted(self.user_id, found_by["key"]):
            return None  # lost_source asks for the file again
        if "pasted" in found_by:
            content = str(found_by["pasted"]).encode()
        else:
            try:
                downloaded = await self.bot.download(found_by["file_id"])
            except TelegramAPIError:
                logger.warning("bulk file of user %s cannot be downloaded again", self.user_id)
                return None
            assert downloaded is not None
            content = downloaded.read()
        try:
            source = await self.parse(content, found_by["name"], found_by["key"])
        except (SpreadsheetError, NoPhoneColumn):
            return None  # BULK_MAX_ROWS was lowered meanwhile
        self.sources.put(self.user_id, source)
        return source

    async def load_group(self, group_id: int, key: str) -> Source | None:
        """A contact group read again; None when it is gone or changed since the report."""
        source = await self.group(group_id)
        if source is None or source.key != key:
            return None
        self.sources.put(self.user_id, source)
        return source

    async def group(self, group_id: int) -> Source | None:
        """The user's contact group as a list, as a file upload makes one."""
        group = await self.contacts.get_group(self.user_id, group_id)
        if group is None:
            return None
        members = [
            Member(c.name, c.phone, c.fields)
            for c in await self.contacts.members(self.user_id, group_id)
        ]
        return await asyncio.to_thread(group_source, group.name, members)

    def evicted(self, data: dict[str, Any]) -> bool:
        found_by = data.get("src")
        return isinstance(found_by, dict) and self.sources.evicted(
            self.user_id, found_by.get("key", "")
        )
