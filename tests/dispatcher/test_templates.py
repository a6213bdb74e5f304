"""/templates: save, list, rename, change, delete; use one in /send and in /bulk."""

from __future__ import annotations

from handlers.sms_render import TELEGRAM_LIMIT, telegram_length
from tests.conftest import GOOD_TOKEN
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.recording import SentMessage


async def connect(app: Harness, user_id: int = 1) -> None:
    await app.send("/start", user_id)
    await app.send(GOOD_TOKEN, user_id)


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


async def create(app: Harness, name: str, body: str) -> SentMessage:
    [listing] = await app.send("/templates")
    await app.tap(listing, "New template")
    await app.send(name)
    [saved] = await app.send(body)
    return saved


async def test_save_list_rename_edit_delete(app: Harness) -> None:
    await connect(app)
    [empty] = await app.send("/templates")
    assert "You have no templates yet" in empty.text
    assert labels(empty) == ["➕ New template"]
    [ask_name] = await app.tap(empty, "New template")
    assert "Send a name for the new template" in ask_name.text
    [ask_body] = await app.send("Greeting")
    assert "Now send the text of «Greeting»" in ask_body.text
    [saved] = await app.send("Hello {name}, your code is {code} <b>")
    assert "✅ Template saved." in saved.text
    assert "📄 <b>Greeting</b>" in saved.text
    assert "Hello {name}, your code is {code} &lt;b&gt;" in saved.text
    assert "Placeholders: {name}, {code}" in saved.text
    # Placeholders need a spreadsheet: no "Send with this text" here.
    assert labels(saved) == ["✏️ Rename", "📝 Edit text", "🗑 Delete", "⬅️ All templates"]

    [listing] = await app.send("/templates")
    assert "Your templates</b> (1)" in listing.text
    assert labels(listing) == ["📄 Greeting", "➕ New template"]

    [opened] = await app.tap(listing, "Greeting")
    await app.tap(opened, "Rename")
    [renamed] = await app.send("Welcome")
    assert "📄 <b>Welcome</b>" in renamed.text
    await app.tap(renamed, "Edit text")
    [changed] = await app.send("Welcome aboard!")
    assert "Welcome aboard!" in changed.text
    assert labels(changed)[0] == "📤 Send with this text"

    [confirm] = await app.tap(changed, "Delete")
    assert "Delete the template «Welcome»?" in confirm.text
    [after] = await app.tap(confirm, "Yes, delete")
    assert "You have no templates yet" in after.text
    assert await app.services.templates.list(1) == []


async def test_bad_names_and_texts_are_explained(app: Harness) -> None:
    await connect(app)
    await create(app, "Promo", "Sale today")
    [listing] = await app.send("/templates")
    await app.tap(listing, "New template")
    [bad] = await app.send("Promo! <2025>")
    assert "A name is up to 32 letters or digits" in bad.text
    [taken] = await app.send("promo")
    assert "You already have a template named «promo»" in taken.text
    await app.send("Reminder")
    [unclosed] = await app.send("Pay {sum until Friday")
    assert "an opening brace without a closing one at character 5" in unclosed.text
    [empty] = await app.send("Pay {} now")
    assert "empty braces at character 5" in empty.text
    [saved] = await app.send("Pay {sum} until Friday, {{VIP}}")
    assert "✅ Template saved." in saved.text
    assert "Placeholders: {sum}" in saved.text
    assert [t.name for t in await app.services.templates.list(1)] == ["Promo", "Reminder"]


async def test_template_starts_send_with_its_text(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    saved = await create(app, "Hours", "We are open 9-18")
    [ask_phone] = await app.tap(saved, "Send with this text")
    assert "Whom to send to?" in ask_phone.text
    [preview] = await app.send("+998 90 123 45 67")
    assert "We are open 9-18" in preview.text
    assert "To: +998 90 123 45 67" in preview.text
    await app.tap(preview, "Send")
    assert [(s.phone, s.message) for s in devsms.sent] == [("998901234567", "We are open 9-18")]


async def test_template_with_placeholders_is_offered_in_bulk(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await create(app, "Debt", "{name}, please pay {sum}")
    await create(app, "Typo", "{nmae}, hello")
    await app.send("/bulk")
    [ask_text] = await app.send_document("d.csv", b"name,phone,sum\nAli,901234567,100\n")
    assert labels(ask_text) == ["📄 Debt", "📄 Typo"]
    [refused] = await app.tap(ask_text, "Typo")
    assert "These placeholders match no column: {nmae}." in refused.text
    [review] = await app.tap(ask_text, "Debt")
    assert "Ali, please pay 100" in review.text
    assert "✅ To send: 1" in review.text


async def test_another_users_template_is_not_reachable(app: Harness) -> None:
    await connect(app, user_id=1)
    await connect(app, user_id=2)
    saved = await create(app, "Secret", "Only mine")
    delete, send = button_data(saved, "Delete"), button_data(saved, "Send with this text")
    # User 2 forges user 1's template id into callback data.
    await app.tap_data(saved, delete, user_id=2)
    assert app.answers()[-1].text == "This template no longer exists."
    await app.tap_data(saved, send, user_id=2)
    assert app.answers()[-1].text == "This template no longer exists."
    assert await app.state_of(2) is None
    assert [t.name for t in await app.services.templates.list(1)] == ["Secret"]
    assert await app.services.templates.list(2) == []


def assert_within_telegram_limits(message: SentMessage) -> None:
    assert telegram_length(message.text) <= TELEGRAM_LIMIT, telegram_length(message.text)
    for label, data in message.buttons():
        assert telegram_length(label) <= 64, label
        assert data is not None and len(data.encode()) <= 64, data


async def test_a_long_stored_name_is_clipped_in_every_reply_and_button(app: Harness) -> None:
    # Typed names are capped; this row comes from elsewhere (an older version, a restore).
    await connect(app)
    long_name = "Ж" * 3000 + "\n" + "&" * 1000
    await app.services.templates.save(1, long_name, "Hello")
    [listing] = await app.send("/templates")
    [(label, _), _new] = listing.buttons()
    assert label == "📄 " + "Ж" * 32 + "…"
    [opened] = await app.tap(listing, "ЖЖЖ")
    assert f"📄 <b>{'Ж' * 32}…</b>" in opened.text
    [ask] = await app.tap(opened, "Rename")
    assert f"Send the new name for «{'Ж' * 32}…»." in ask.text
    await app.send("/cancel")
    [confirm] = await app.tap(opened, "Delete")
    assert f"Delete the template «{'Ж' * 32}…»?" in confirm.text
    await app.send("/bulk")
    [ask_text] = await app.send_document("d.csv", b"name,phone\nAli,901234567\n")
    assert labels(ask_text) == ["📄 " + "Ж" * 32 + "…"]
    for message in (listing, opened, ask, confirm, ask_text):
        assert_within_telegram_limits(message)


async def test_a_placeholder_that_escapes_long_still_fits_one_message(app: Harness) -> None:
    # One placeholder of 1500 "&": the name escapes to 7500 characters of HTML.
    await connect(app)
    saved = await create(app, "Amp", "{" + "&" * 1500 + "}")
    assert saved.text.startswith("✅ Template saved.")
    assert "Placeholders: {" + "&amp;" * 32 + "…}" in saved.text
    assert_within_telegram_limits(saved)
    await app.send("/bulk")
    [ask_text] = await app.send_document("d.csv", b"name,phone\nAli,901234567\n")
    [refused] = await app.tap(ask_text, "Amp")
    assert "These placeholders match no column: {" + "&amp;" * 32 + "…}." in refused.text
    assert_within_telegram_limits(refused)


async def test_a_name_longer_than_32_is_refused_with_the_limit(app: Harness) -> None:
    for user_id, lang, expected in (
        (1, "en", "A name is up to 32 letters or digits"),
        (2, "ru", "Название — до 32 букв или цифр"),
    ):
        await app.send("/start", user_id, lang=lang)
        await app.send(GOOD_TOKEN, user_id, lang=lang)
        [listing] = await app.send("/templates", user_id, lang=lang)
        await app.tap(listing, "➕", user_id, lang=lang)
        [refused] = await app.send("N" * 33, user_id, lang=lang)
        assert expected in refused.text
        assert await app.services.templates.list(user_id) == []


async def test_one_parts_limit_for_send_templates_and_bulk(
    app: Harness, devsms: FakeDevsms
) -> None:
    """A text of 11 parts (the limit is 10) goes out through no path: typed into /send,
    saved as a template, a template saved under a higher limit, or a bulk row."""
    await connect(app)
    long = "x" * (153 * 10 + 1)
    refusal = "This text needs 11 SMS parts; at most 10 are allowed."
    await app.send("/send")
    await app.send("901234567")
    [typed] = await app.send(long)
    assert refusal in typed.text
    await app.send("/cancel")

    [listing] = await app.send("/templates")
    await app.tap(listing, "New template")
    await app.send("Long")
    [saving] = await app.send(long)
    assert refusal in saving.text
    await app.send("/cancel")

    await app.services.templates.save(1, "Older", long)  # saved when the limit was higher
    [listing] = await app.send("/templates")
    [opened] = await app.tap(listing, "Older")
    assert await app.tap(opened, "Send with this text") == []
    answer = app.answers()[-1]
    assert answer.show_alert and refusal in (answer.text or "")
    assert await app.state_of(1) is None  # no send dialog holds the text

    await app.send("/bulk")
    [ask_text] = await app.send_document("d.csv", b"phone\n901234567\n")
    [review] = await app.tap(ask_text, "Older")
    assert "the text needs 11 SMS parts, more than 10" in review.text
    assert "✅ To send: 0" in review.text
    assert devsms.sent == []


async def test_all_templates_button_shows_the_list_and_answers_each_tap_once(
    app: Harness,
) -> None:
    await connect(app)
    saved = await create(app, "Promo", "Sale today")
    before = len(app.answers())
    [listing] = await app.tap(saved, "All templates")
    assert "Your templates</b> (1)" in listing.text
    assert labels(listing) == ["📄 Promo", "➕ New template"]
    [opened] = await app.tap(listing, "Promo")
    assert "📄 <b>Promo</b>" in opened.text
    # Each tap gets one answer, without a text (the spinner just stops).
    assert [answer.text for answer in app.answers()[before:]] == [None, None]
