"""What every /bulk and /jobs handler works with, built once per update."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.fsm.context import FSMContext

from handlers.config import HandlerSettings
from services.accounts import Accounts
from services.bulk import BulkRunner
from services.bulk_plan import SourceCache
from services.upload_worker import UploadWorker
from storage import BulkRepo, TemplateRepo, UserRepo


@dataclass(frozen=True, slots=True)
class BulkContext:
    bot: Bot
    accounts: Accounts
    users: UserRepo
    bulk: BulkRepo
    templates: TemplateRepo
    runner: BulkRunner
    settings: HandlerSettings
    state: FSMContext
    sources: SourceCache
    uploads: UploadWorker
    user_id: int


def bulk_context(data: dict[str, Any]) -> BulkContext:
    return BulkContext(
        bot=data["bot"],
        accounts=data["accounts"],
        users=data["users"],
        bulk=data["bulk"],
        templates=data["templates"],
        runner=data["bulk_runner"],
        settings=data["settings"],
        state=data["state"],
        sources=data["bulk_sources"],
        uploads=data["uploads"],
        user_id=data["event_from_user"].id,
    )
