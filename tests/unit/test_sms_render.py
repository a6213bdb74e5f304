"""Rendering SMS lines and details: escaped, cut safely, always within Telegram's limit."""

from __future__ import annotations

import html as std_html
import re
from collections.abc import Iterator
from datetime import datetime

import pytest
from aiogram.utils.i18n import I18n

from bot.i18n import DOMAIN, LOCALES_DIR
from handlers.sms_render import (
    TELEGRAM_LIMIT,
    clip,
    sms_card,
    sms_details,
    sms_line,
    sms_list,
    split_text,
    status_label,
    telegram_length,
)
from services.devsms import SmsRecord
from services.money import parse_money

HOSTILE = "<&>" * 1000
# An entity cut in half would leave "&am" or "&l" at the end or start of a piece.
_BROKEN_ENTITY = re.compile(r"&(?!(?:amp|lt|gt);)")


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    i18n = I18n(path=LOCALES_DIR, default_locale="en", domain=DOMAIN)
    with i18n.context(), i18n.use_locale("en"):
        yield


def record(**fields: object) -> SmsRecord:
    values: dict[str, object] = {
        "sms_id": 1005,
        "request_id": "0f8fad5b-d9cb-469f-a165-70867728950e",
        "phone": "998901234567",
        "message": "Hello",
        "sender": "4546",
        "status": "DELIVERED",
        "parts_count": 1,
        "cost": parse_money(50),
        "created_at": datetime(2026, 11, 27, 11, 45),
    }
    values.update(fields)
    return SmsRecord(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("DELIVERED", "✅ delivered"),
        ("waiting", "⏳ waiting"),
        ("sent", "⏳ waiting"),
        ("ACCEPTED", "⏳ accepted"),
        ("REJECTED", "❌ rejected"),
        ("UNDELIVERABLE", "❌ undeliverable"),
        ("EXPIRED", "❌ expired"),
        ("PARTDELIVERED", "❔ PARTDELIVERED"),
        ("<b>odd</b>", "❔ &lt;b&gt;odd&lt;/b&gt;"),
        (None, "❔ —"),
    ],
)
def test_status_has_a_symbol_and_unknown_ones_are_shown_verbatim(
    status: str | None, expected: str
) -> None:
    assert status_label(status) == expected


def test_line_shows_time_phone_status_parts_cost_and_the_start_of_the_text() -> None:
    line = sms_line(3, record(message="Salom! " + "x" * 100, parts_count=2, cost=parse_money(100)))
    assert line.startswith("<b>3.</b> 27.11.2026 11:45 · +998 90 123 45 67")
    assert "✅ delivered · 2 parts · 100 so'm" in line
    assert "<i>Salom! " + "x" * 33 + "…</i>" in line


def test_missing_fields_show_a_dash() -> None:
    line = sms_line(1, SmsRecord())
    assert line == "<b>1.</b> — · —\n❔ — · parts: — · —\n<i>—</i>"


def test_text_is_cut_before_escaping_so_no_entity_is_broken() -> None:
    line = sms_line(1, record(message="&" * 100))
    preview = line.split("<i>")[1].removesuffix("</i>")
    assert preview == "&amp;" * 40 + "…"
    assert clip("abc", 3) == "abc"
    assert clip("abcd", 3) == "abc…"


def test_a_page_of_hostile_texts_stays_within_the_limit() -> None:
    records = [
        record(sms_id=n, message=HOSTILE, phone="&" * 200, status="<" * 300, sender="&" * 99)
        for n in range(10)
    ]
    text = sms_list(records, "<b>History</b>")
    assert telegram_length(text) <= TELEGRAM_LIMIT
    assert text.count("<b>") == 11  # every entry is still there
    assert not _BROKEN_ENTITY.search(text)


def test_a_page_of_ordinary_texts_keeps_forty_characters() -> None:
    records = [record(sms_id=n, message="a" * 200) for n in range(10)]
    text = sms_list(records, "History")
    assert text.count("a" * 40 + "…") == 10


def test_length_counts_emoji_as_two_units_like_telegram() -> None:
    assert telegram_length("😀a") == 3


def test_split_pieces_fit_rebuild_the_text_and_break_no_entity() -> None:
    text = ("word <&> " * 2000) + "😀" * 3000
    pieces = split_text(text)
    assert len(pieces) > 1
    assert all(telegram_length(piece) <= TELEGRAM_LIMIT for piece in pieces)
    assert "".join(std_html.unescape(piece) for piece in pieces) == text
    assert not any(_BROKEN_ENTITY.search(piece) for piece in pieces)


def test_split_prefers_a_line_break_near_the_end() -> None:
    text = "\n".join(["x" * 99] * 100)  # 9999 characters in lines of 100
    pieces = split_text(text)
    assert all(piece.endswith("\n") for piece in pieces[:-1])


def test_short_details_are_one_card_with_the_whole_text() -> None:
    [card] = sms_details(record(message="Tom & Jerry <3"))
    assert "📨 <b>SMS 1005</b>" in card
    assert "Status: ✅ delivered" in card
    assert "Phone: +998 90 123 45 67" in card
    assert "Parts: 1 · Cost: 50 so'm" in card
    assert "<blockquote>Tom &amp; Jerry &lt;3</blockquote>" in card


def test_long_details_send_the_text_first_and_then_a_card_with_its_start() -> None:
    messages = sms_details(record(message=HOSTILE))
    *pieces, card = messages
    assert all(telegram_length(m) <= TELEGRAM_LIMIT for m in messages)
    assert "".join(std_html.unescape(p) for p in pieces) == HOSTILE
    assert "The whole text is in the messages above." in card
    # A refresh renders the same card again.
    assert sms_details(record(message=HOSTILE))[-1] == card


def test_card_without_an_id_or_text() -> None:
    card = sms_card(SmsRecord(phone="+1 (555) <x>"))
    assert card.startswith("📨 <b>SMS</b>")
    assert "Phone: +1 (555) &lt;x&gt;" in card
    assert "Text: —" in card
