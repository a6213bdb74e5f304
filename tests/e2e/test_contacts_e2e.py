"""Contacts end to end: `python -m bot` imports a file of contacts into a new group, and a
group send goes through the bulk dry run (across a restart) to one SMS per contact, each
with its own name filled in."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Final

import pytest

from tests.conftest import GOOD_TOKEN
from tests.e2e.harness import BotLauncher, ChatUser, connect_token
from tests.fakes.fake_devsms import FakeDevsms

pytestmark = pytest.mark.e2e

SEND: Final = "/send_sms.php"
ENV: Final = {"BULK_RATE": "50", "DEFAULT_LANGUAGE": "en"}
CONTACTS_FILE: Final = (
    b"Ism;Telefon;Shahar\n"
    b"Aziza;+998 90 111 22 33;Toshkent\n"
    b"Bobur;90 111 22 34;Samarqand\n"
    b"Bad;12345;X\n"
    b"Dilnoza;998901112235;Buxoro\n"
    b"Aziza again;998901112233;Y\n"
)
EXPECTED: Final = {
    "998901112233": "Salom Aziza (Toshkent)",
    "998901112234": "Salom Bobur (Samarqand)",
    "998901112235": "Salom Dilnoza (Buxoro)",
}


async def test_import_a_file_into_a_group_and_send_to_it_once(
    bots: BotLauncher, user: ChatUser, devsms: FakeDevsms
) -> None:
    bot = await bots.started(extra_env=ENV)
    devsms.accounts[GOOD_TOKEN].balance = Decimal(100_000)
    await connect_token(user, GOOD_TOKEN)

    book = await user.ask("/contacts", "Contacts")
    assert "📇 Contacts: 0 · groups: 0" in (book.text or "")
    user.tap(book, "Groups")
    groups = await user.wait_edited(book, "no groups yet")
    user.tap(groups, "New group")
    await user.reply_after(book.message_id, "Send a name for the new group")
    group = await user.ask("Mijozlar", "Group created")
    assert "👥 Mijozlar: 0 contacts" in (group.text or "")

    user.tap(group, "Import into this group")
    await user.reply_after(group.message_id, "They will be put into the group «Mijozlar» too.")
    sent = user.telegram.send_document(user.user_id, "mijozlar.csv", CONTACTS_FILE)
    summary = await user.reply_after(sent, "Import done")
    text = summary.text or ""
    assert "Rows read: 5" in text
    assert "➕ Added: 3" in text and "🔄 Updated: 0" in text
    assert "♻️ Duplicates in the file: 1" in text
    assert "row 4: «12345» — number too short" in text
    assert "All of them are in the group «Mijozlar»." in text
    assert bot.query("SELECT COUNT(*) FROM contact_group_members") == [(3,)]

    user.tap(group, "Send to this group")
    ask = await user.reply_after(summary.message_id, "Now send the text")
    assert "Group «Mijozlar»: rows: 3, numbers in column «phone»: 3." in (ask.text or "")
    review = await user.ask("Salom {name} ({Shahar})", "Check before sending")
    text = review.text or ""
    assert "Group: Mijozlar" in text and "✅ To send: 3" in text
    assert "Salom Aziza (Toshkent)" in text
    assert devsms.sent == []  # the dry run sends nothing

    # A restart between the dry run and Start: the group is read again from the database.
    await bot.restart()
    tap = user.tap(review, "Start")
    assert (await user.answer_to(tap)).get("text") == "Starting…"
    progress = await user.reply_after(review.message_id, "Bulk job #")
    await user.reply_after(progress.message_id, "finished.", timeout=30)

    assert {s.phone: s.message for s in devsms.sent} == EXPECTED
    assert Counter(s.phone for s in devsms.sent) == Counter(EXPECTED.keys())  # once each
    assert len(devsms.requests_to(SEND)) == len(EXPECTED)
