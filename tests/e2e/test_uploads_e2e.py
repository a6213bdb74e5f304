"""Hostile uploads to `python -m bot`: a zip bomb is refused by the real worker process while
other users are served, and the next file is read as usual."""

from __future__ import annotations

import pytest

from tests.conftest import GOOD_TOKEN, OTHER_TOKEN
from tests.e2e.harness import BotLauncher, ChatUser, connect_token, unhandled_errors
from tests.fakes.fake_telegram import FakeTelegram
from tests.support.uploads import xlsx_bomb

pytestmark = pytest.mark.e2e

REFUSAL = "This file unpacks to far more data than a list of numbers needs"


async def test_a_zip_bomb_is_refused_while_another_user_is_served(
    bots: BotLauncher, user: ChatUser, telegram: FakeTelegram
) -> None:
    bot = await bots.started(extra_env={"DEFAULT_LANGUAGE": "en"})
    other = ChatUser(telegram, user_id=1002, first_name="Bob")
    await connect_token(user, GOOD_TOKEN)
    await connect_token(other, OTHER_TOKEN)
    await user.ask("/bulk", "Bulk sending")

    bomb = xlsx_bomb(300 * 1024 * 1024)  # about 1 MB
    sent = user.telegram.send_document(user.user_id, "debtors.xlsx", bomb)
    balance = await other.ask("/balance", "Balance:")
    refused = await user.reply_after(sent, REFUSAL)

    assert "Balance: 500 so'm" in (balance.text or "")
    assert "Copy just the list into a new .xlsx or .csv file" in (refused.text or "")
    sent = user.telegram.send_document(user.user_id, "people.csv", b"phone\n998901234567\n")
    asked = await user.reply_after(sent, "Now send the text")
    assert "rows: 1, numbers in column «phone»: 1." in (asked.text or "")
    assert unhandled_errors(bot) == []
