"""Fixtures for end-to-end tests: fake Telegram, fake devsms, the bot as a real process.

``devsms`` (a FakeDevsms with GOOD_TOKEN and OTHER_TOKEN accounts) comes from tests/conftest.py.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Final

import pytest

from tests.e2e.harness import BOT_TOKEN, BotLauncher, BotProcess, ChatUser
from tests.fakes.fake_devsms import FakeDevsms
from tests.fakes.fake_telegram import FakeTelegram

# The bots whose log tails a failed test's report shows; a module that shares one bot across
# its tests (a module-scoped fixture) puts it here with ``report_logs_of``.
_BOTS: Final = pytest.StashKey[list[BotProcess]]()
# The catch-all error handler's record of a call the fake (Telegram's rules, shared with the
# dispatcher tests: tests/support/telegram_rules.py) refused and nothing in the bot handled.
_UNHANDLED_REFUSAL: Final = re.compile(
    r"unhandled error in update \d+\n(?:(?:Traceback|[ \t]).*\n)*"
    r"aiogram\.exceptions\.TelegramBadRequest: (.*)"
)


def report_logs_of(request: pytest.FixtureRequest, *processes: BotProcess) -> None:
    """A failure of the requesting test shows these bots' log tails too."""
    request.node.stash[_BOTS] = [*request.node.stash.get(_BOTS, []), *processes]


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram(BOT_TOKEN)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def bots(
    request: pytest.FixtureRequest, tmp_path: Path, telegram: FakeTelegram, devsms: FakeDevsms
) -> AsyncIterator[BotLauncher]:
    launcher = BotLauncher(tmp_path, telegram, devsms)
    request.node.stash[_BOTS] = launcher.processes
    try:
        yield launcher
    finally:
        await launcher.stop_all()
    refusals = [
        f"{process.name}: {found}"
        for process in launcher.processes
        if process.log_path.exists()
        for found in _UNHANDLED_REFUSAL.findall(process.log_path.read_text(errors="replace"))
    ]
    assert refusals == [], "Telegram refused a call and nothing in the bot handled it"


@pytest.fixture
async def bot(bots: BotLauncher) -> BotProcess:
    """A running bot with a fixed ENCRYPTION_KEY; ``bots.started(encryption_key=None)`` for
    one that generates its key file."""
    return await bots.started()


@pytest.fixture
def user(telegram: FakeTelegram) -> ChatUser:
    return ChatUser(telegram)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed e2e test shows the tail of each bot log: the bot's side of the story, for CI."""
    report = yield
    if report.failed:
        for process in item.stash.get(_BOTS, []):
            report.sections.append(
                (f"{process.name} log tail ({report.when})", process.log_tail())
            )
    return report
