"""The bot's router tree picks the same handler for a message with routers passed over by
their Reach (handlers/reach.py, as `python -m bot` builds it) as aiogram's plain walk over the
same tree: every command in several forms, every menu label, captions, media, in every dialog
state, for a user without a token, one with a token and an admin, in private and group chats,
with access open and by allowlist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.filters import Command
from aiogram.fsm.state import StatesGroup
from aiogram.types import Chat, Contact, Document, PhotoSize, User

from bot.factory import build_app
from handlers import compose_routers, reject_other_commands_early, run_sync_filters_inline
from handlers.keyboards import MENU_BUTTONS
from services.languages import LANGUAGES
from tests.conftest import make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.filter_checks import ME, private_message
from tests.support.harness import a_sticker, make_bot
from tests.support.recording import RecordingSession

ADMIN, ADMIN_GROUP, OTHER_GROUP = 100, -100777, -100888
PHOTO = [PhotoSize(file_id="p", file_unique_id="p", width=1, height=1)]
MEDIA: list[dict[str, Any]] = [
    {"photo": PHOTO},
    {"contact": Contact(phone_number="+998901234567", first_name="C")},
    {"document": Document(file_id="d", file_unique_id="d", file_name="a.csv")},
    {"sticker": a_sticker()},
]


def all_states() -> set[str | None]:
    groups = [StatesGroup]
    states: set[str | None] = {None, "Elsewhere:step"}
    while groups:
        for group in groups.pop().__subclasses__():
            states |= set(group.__all_states_names__)
            groups.append(group)
    return states


def command_names() -> set[str]:
    top = compose_routers()
    return {
        name
        for router in top.chain_tail
        for handler in router.message.handlers
        for flt in handler.filters or ()
        if isinstance(flt.callback, Command)
        for name in flt.callback.commands
        if isinstance(name, str)
    }


@pytest.mark.parametrize("access_mode", ["open", "allowlist"])
async def test_the_same_handler_takes_each_message_as_without_reach(
    tmp_path: Path, devsms: FakeDevsms, monkeypatch: pytest.MonkeyPatch, access_mode: str
) -> None:
    async def which(self: HandlerObject, *args: Any, **kwargs: Any) -> tuple[str, str]:
        # Who would take it, without running it.
        return kwargs["event_router"].name, self.callback.__name__

    monkeypatch.setattr(HandlerObject, "call", which)
    settings = make_settings(
        tmp_path,
        devsms.url,
        admin_ids=str(ADMIN),
        admin_chat_id=ADMIN_GROUP,
        access_mode=access_mode,
    )
    async with build_app(settings, bot=make_bot(RecordingSession())) as app:
        bot, services = app.bot, app.services
        bot._me = ME
        for user_id in (1, 2, ADMIN):
            await services.users.upsert_seen(user_id, "U", None)
        for user_id in (2, ADMIN):
            await services.credentials.save(user_id, services.vault.encrypt(user_id, "tok"))
        with_reach = app.dp.sub_routers[0]
        plain = compose_routers()
        run_sync_filters_inline(plain)
        reject_other_commands_early(plain)

        i18n = services.i18n
        texts = [i18n.gettext(msgid, locale=lang) for msgid in MENU_BUTTONS for lang in LANGUAGES]
        for name in [*sorted(command_names()), "nope"]:
            texts += [f"/{name}", f"/{name} 42", f"/{name}@{ME.username}", f"/{name}@other_bot"]
        texts += ["hello", "/", "/ balance", "  /balance", "/BALANCE", "+998901234567", "12:30"]
        captions = [t for t in texts if " " not in t and "@" not in t]
        bodies = [{"text": t} for t in texts] + [{"caption": t, "photo": PHOTO} for t in captions]
        bodies += MEDIA
        states = all_states()
        looked = 0
        for user_id, chat in (
            (1, Chat(id=1, type="private")),
            (2, Chat(id=2, type="private")),
            (ADMIN, Chat(id=ADMIN, type="private")),
            (ADMIN, Chat(id=ADMIN_GROUP, type="supergroup")),
            (2, Chat(id=OTHER_GROUP, type="group")),
        ):
            user = User(id=user_id, is_bot=False, first_name="U")
            for body in bodies:
                message = private_message(**body).model_copy(
                    update={"chat": chat, "from_user": user}
                )
                for raw_state in states:
                    data = dict(
                        app.dp.workflow_data,
                        bot=bot,
                        event_from_user=user,
                        event_chat=chat,
                        raw_state=raw_state,
                        i18n=i18n,
                    )
                    expected = await plain.propagate_event("message", message, **dict(data))
                    got = await with_reach.propagate_event("message", message, **dict(data))
                    assert got == expected, (user_id, chat.type, body, raw_state)
                    looked += 1
        assert looked > 30_000
