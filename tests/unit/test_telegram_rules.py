"""The shared Telegram validator: each rule with accepted and refused examples, then the same
calls through aiogram against both users of it (the dispatcher-level recording session and
the e2e fake Bot API), which must answer alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from tests.fakes.fake_telegram import FakeTelegram
from tests.support import telegram_rules as rules
from tests.support.harness import BOT_TOKEN, Harness, make_bot
from tests.support.recording import RecordingSession
from tests.support.telegram_rules import TelegramRefusal

GRINNING: Final = "😀"  # outside the BMP: one code point, two UTF-16 units
FLAG: Final = "🇺🇿"  # two code points, four UTF-16 units
USER: Final = 1001


def refusal(call: Any, *args: Any) -> str:
    with pytest.raises(TelegramRefusal) as caught:
        call(*args)
    return caught.value.description


# --- UTF-16 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "units"),
    [("", 0), ("abc", 3), ("я", 1), (GRINNING, 2), (FLAG, 4), ("𝕏", 2), ("e\u0301", 2)],
)
def test_length_is_counted_in_utf16_units(text: str, units: int) -> None:
    assert rules.utf16_len(text) == units


def test_entity_offsets_are_utf16_units() -> None:
    text, entities = rules.parse_html(f"{GRINNING}<b>x</b> &lt;<i>{FLAG}</i>")
    assert text == f"{GRINNING}x <{FLAG}"
    assert entities == [
        {"type": "bold", "offset": 2, "length": 1},
        {"type": "italic", "offset": 5, "length": 4},
    ]


# --- HTML -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "<b>b</b><strong>s</strong><i>i</i><em>e</em><u>u</u><ins>n</ins>",
        "<s>s</s><strike>k</strike><del>d</del>",
        '<span class="tg-spoiler">s</span> <tg-spoiler>t</tg-spoiler>',
        '<a href="https://t.me/x?a=1&amp;b=2">link</a>',
        "<code>x</code> <pre>y</pre>",
        '<pre><code class="language-python">x</code></pre>',
        "<blockquote>q</blockquote> <blockquote expandable>q</blockquote>",
        '<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>',
        "<b>bold <i>italic <u>under</u></i></b>",
        "&lt;script&gt;&amp; &quot; &#128512; &#x1F600;",
        "<STRONG>caps</STRONG>",
    ],
)
def test_html_telegram_accepts(text: str) -> None:
    rules.parse_html(text)


@pytest.mark.parametrize(
    "text",
    [
        "<script>x</script>",  # an unknown tag
        "<br/>",
        "<b/>",
        "<b>bold",  # unclosed
        "bold</b>",  # closes nothing
        "<b><i>x</b></i>",  # crossed
        "<b",  # an unfinished tag
        "a & b",  # a bare ampersand
        "a < b",
        "1 > 0",
        "&nbsp;",  # only &lt; &gt; &amp; &quot; are named
        "&copy;",
        "&amp",  # no semicolon
        "&#0;",  # not a character
        "&#xD800;",  # a lone surrogate
        "<!-- hi -->",
        "<b class='x'>x</b>",  # attributes the tag does not take
        '<span class="other">x</span>',
        "<span>x</span>",
        '<code class="language-py">x</code>',  # a language outside <pre>
        '<pre><code class="python">x</code></pre>',
        "<tg-emoji>x</tg-emoji>",  # no emoji-id
    ],
)
def test_html_telegram_refuses_with_its_error_text(text: str) -> None:
    assert refusal(rules.parse_html, text).startswith("Bad Request: can't parse entities: ")


def test_unknown_tag_error_names_tag_and_byte_offset() -> None:
    assert refusal(rules.parse_html, "я<x>") == (
        'Bad Request: can\'t parse entities: Unsupported start tag "x" at byte offset 2'
    )


# --- lengths --------------------------------------------------------------------------------


def test_message_text_limit_is_4096_utf16_units_after_parsing() -> None:
    rules.check_message_text("a" * 4096, None)
    rules.check_message_text(GRINNING * 2048, None)
    rules.check_message_text("<b>" + "&lt;" * 4096 + "</b>", "HTML")  # tags are free
    # 2049 code points only, but 4098 units: counting code points let this through.
    assert refusal(rules.check_message_text, GRINNING * 2049, None) == rules.TEXT_TOO_LONG
    assert refusal(rules.check_message_text, "a" * 4097, None) == rules.TEXT_TOO_LONG
    assert refusal(rules.check_message_text, "&lt;" * 4097, "HTML") == rules.TEXT_TOO_LONG


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "<b> </b>"])
def test_message_text_must_not_be_empty(text: str) -> None:
    assert refusal(rules.check_message_text, text, "HTML") == rules.TEXT_EMPTY


def test_caption_limit_is_1024_utf16_units() -> None:
    rules.check_caption(GRINNING * 512, "HTML")
    rules.check_caption("", "HTML")  # a file may go without a caption
    assert refusal(rules.check_caption, GRINNING * 513, "HTML") == rules.CAPTION_TOO_LONG


def test_callback_answer_limit_is_200_utf16_units() -> None:
    rules.check_callback_answer_text(GRINNING * 100)
    rules.check_callback_answer_text(None)
    assert refusal(rules.check_callback_answer_text, GRINNING * 101) == rules.ANSWER_TOO_LONG


# --- keyboards ------------------------------------------------------------------------------


def inline(*rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"inline_keyboard": list(rows)}


def button(data: str, text: str = "go") -> dict[str, Any]:
    return {"text": text, "callback_data": data}


@pytest.mark.parametrize("data", ["x", "a" * 64, "я" * 32, GRINNING * 16])
def test_callback_data_of_1_to_64_bytes_is_accepted(data: str) -> None:
    rules.check_reply_markup(inline([button(data)]))


@pytest.mark.parametrize("data", ["", "a" * 65, "я" * 32 + "a", GRINNING * 16 + "a"])
def test_callback_data_is_limited_in_utf8_bytes(data: str) -> None:
    markup = inline([button(data)])
    assert refusal(rules.check_reply_markup, markup) == rules.BUTTON_DATA_INVALID


def test_button_texts_must_not_be_empty() -> None:
    assert refusal(rules.check_reply_markup, inline([button("x", " ")])) == (
        rules.BUTTON_TEXT_EMPTY
    )
    assert "Text must be non-empty" in refusal(
        rules.check_reply_markup, {"keyboard": [[{"text": ""}]]}
    )
    assert "Text buttons are unallowed" in refusal(
        rules.check_reply_markup, inline([{"text": "no action"}])
    )


def test_inline_keyboard_size_limits() -> None:
    rules.check_reply_markup(inline(*[[button(str(i)) for i in range(8)]] * 12))
    too_wide = inline([button(str(i)) for i in range(9)])
    too_many = inline(*[[button(str(i)) for i in range(8)]] * 13)
    assert refusal(rules.check_reply_markup, too_wide) == rules.MARKUP_TOO_LONG
    assert refusal(rules.check_reply_markup, too_many) == rules.MARKUP_TOO_LONG


# --- state ----------------------------------------------------------------------------------


def test_a_callback_query_takes_one_answer() -> None:
    queries = rules.CallbackQueries()
    assert refusal(queries.answer, "never-delivered", {}) == rules.CALLBACK_TOO_OLD
    queries.offer("q1")
    queries.answer("q1", {"text": "ok"})
    assert refusal(queries.answer, "q1", {}) == rules.CALLBACK_TOO_OLD
    queries.offer("q1")  # the same update delivered again keeps the query answered
    assert refusal(queries.answer, "q1", {}) == rules.CALLBACK_TOO_OLD
    queries.offer("q2")
    assert refusal(queries.answer, "q2", {"text": "x" * 201}) == rules.ANSWER_TOO_LONG


def test_not_modified_compares_what_the_user_sees() -> None:
    bold = dict(zip(("text", "entities"), rules.parse_html("<b>x</b>"), strict=True))
    strong = dict(zip(("text", "entities"), rules.parse_html("<strong>x</strong>"), strict=True))
    markup = inline([button("a")])
    assert refusal(rules.check_modified, bold, strong, markup, markup) == rules.NOT_MODIFIED
    assert refusal(rules.check_modified, bold, bold, None, None) == rules.NOT_MODIFIED
    rules.check_modified(bold, strong, markup, None)  # the keyboard goes
    rules.check_modified(bold, {"text": "x", "entities": []}, None, None)  # bold goes


def test_edits_and_deletes_need_a_live_message() -> None:
    rules.check_editable(exists=True, from_bot=True)
    rules.check_deletable(exists=True)
    assert refusal(rules.check_editable, False, False) == rules.EDIT_NOT_FOUND
    assert refusal(rules.check_editable, True, False) == rules.CANT_EDIT
    assert refusal(rules.check_deletable, False) == rules.DELETE_NOT_FOUND


# --- both levels answer alike ---------------------------------------------------------------


@pytest.fixture(params=["recording session", "e2e fake"])
async def bot(request: pytest.FixtureRequest) -> AsyncIterator[Bot]:
    if request.param == "recording session":
        yield make_bot(RecordingSession())
        return
    fake = FakeTelegram(BOT_TOKEN)
    await fake.start()
    client = Bot(
        BOT_TOKEN,
        session=AiohttpSession(api=TelegramAPIServer.from_base(fake.url)),
        default=DefaultBotProperties(parse_mode="HTML"),
    )
    try:
        yield client
    finally:
        await client.session.close()
        await fake.stop()


async def refused(call: Any) -> str:
    with pytest.raises(TelegramBadRequest) as caught:
        await call
    return caught.value.message


async def test_both_levels_refuse_what_telegram_refuses(bot: Bot) -> None:
    assert (await refused(bot.send_message(USER, "<x>"))).startswith(
        "Bad Request: can't parse entities: "
    )
    assert await refused(bot.send_message(USER, GRINNING * 2049)) == rules.TEXT_TOO_LONG
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="go", callback_data="я" * 33)]]
    )
    assert await refused(bot.send_message(USER, "x", reply_markup=markup)) == (
        rules.BUTTON_DATA_INVALID
    )
    sent = await bot.send_message(USER, "<b>x</b>")
    assert await refused(
        bot.edit_message_text("<strong>x</strong>", chat_id=USER, message_id=sent.message_id)
    ) == (rules.NOT_MODIFIED)
    await bot.delete_message(USER, sent.message_id)
    assert await refused(bot.delete_message(USER, sent.message_id)) == rules.DELETE_NOT_FOUND
    assert await refused(bot.edit_message_text("y", chat_id=USER, message_id=sent.message_id)) == (
        rules.EDIT_NOT_FOUND
    )
    assert (
        await refused(bot.edit_message_text("y", chat_id=USER, message_id=987_654))
        == rules.EDIT_NOT_FOUND
    )
    assert await refused(bot.answer_callback_query("never-delivered")) == rules.CALLBACK_TOO_OLD


async def test_recording_session_knows_the_users_messages_and_queries() -> None:
    session = RecordingSession()
    bot = make_bot(session)
    harness = Harness(dp=None, bot=bot, session=session, services=None, shared=None)  # type: ignore[arg-type]
    user_message = harness.message(USER, text="hi")
    session.receive(user_message)
    session.callbacks.offer("q1")

    assert await refused(
        bot.edit_message_text("y", chat_id=USER, message_id=user_message.message_id)
    ) == (rules.CANT_EDIT)
    assert await bot.delete_message(USER, user_message.message_id)
    assert await refused(bot.delete_message(USER, user_message.message_id)) == (
        rules.DELETE_NOT_FOUND
    )
    assert await bot.answer_callback_query("q1", text="ok")
    assert await refused(bot.answer_callback_query("q1")) == rules.CALLBACK_TOO_OLD
    assert [description for _, description in session.refused] == [
        rules.CANT_EDIT,
        rules.DELETE_NOT_FOUND,
        rules.CALLBACK_TOO_OLD,
    ]
