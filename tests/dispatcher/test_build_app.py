"""build_app: everything shared exists before polling, and leaving it closes everything once."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.factory import build_app
from tests.conftest import make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import make_bot
from tests.support.recording import RecordingSession

GROUP = -100_777


async def test_the_app_is_whole_before_polling_and_closed_on_the_way_out(
    tmp_path: Path, devsms: FakeDevsms
) -> None:
    settings = make_settings(tmp_path, devsms.url, admin_chat_id=GROUP, default_language="en")
    session = RecordingSession()
    async with build_app(settings, bot=make_bot(session)) as app:
        # Before any start-up: the handlers and the bulk runner already share the one notices.
        assert app.dp["notices"] is app.shared.runner.notices
        assert app.dp["notifier"] is app.shared.notifier
        await app.dp.emit_startup(bot=app.bot)
        await app.dp.emit_shutdown(bot=app.bot)
    # The notifier drained before it stopped: the admins hear of the stop, once.
    texts = [m.text for m in session.chat(GROUP)]
    assert len(texts) == 2, texts
    assert texts[0].startswith("🟢 Bot started") and texts[1] == "🔴 Bot stopped."
    # The database closed last of all.
    with pytest.raises(ValueError):
        await app.services.db.fetchone("SELECT 1")


async def test_an_app_never_started_closes_without_a_word(
    tmp_path: Path, devsms: FakeDevsms
) -> None:
    settings = make_settings(tmp_path, devsms.url, admin_chat_id=GROUP)
    session = RecordingSession()
    async with build_app(settings, bot=make_bot(session)) as app:
        pass
    assert session.calls == []
    with pytest.raises(ValueError):
        await app.services.db.fetchone("SELECT 1")
