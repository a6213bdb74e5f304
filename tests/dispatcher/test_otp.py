"""/otp as a user walks it: every step, every wrong input, cancel everywhere, and the outcomes."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.methods import SetMyCommands

from bot.factory import create_dispatcher
from storage import OutboxKind
from tests.conftest import GOOD_TOKEN
from tests.fakes.fake_devsms import ERR_MODERATION, FakeDevsms
from tests.support.harness import Harness, button_data
from tests.support.recording import SentMessage

SEND = "/send_sms.php"


async def connect(app: Harness, user_id: int = 1, lang: str = "en") -> None:
    await app.send("/start", user_id, lang)
    await app.send(GOOD_TOKEN, user_id, lang)


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


async def to_code_step(app: Harness, phone: str = "+998 90 123 45 67") -> SentMessage:
    await app.send("/otp")
    _, kinds = await app.send(phone)
    *_, ask_name = await app.tap(kinds, "2 — password")
    assert "company name" in ask_name.text
    [ask_code] = await app.send("Oila Market")
    return ask_code


async def to_confirm(app: Harness, code: str = "4821") -> SentMessage:
    await to_code_step(app)
    [confirm] = await app.send(code)
    return confirm


async def test_the_dialog_sends_one_otp_with_the_fields_chosen(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    [ask] = await app.send("/otp")
    assert "Verification code by SMS" in ask.text
    assert "📱 My own number" in ask.reply_buttons()
    recipient, kinds = await app.send("+998 90 123-45-67")
    assert "+998 90 123 45 67" in recipient.text
    assert "1 — confirmation of an operation" in kinds.text
    assert "2 — password" in kinds.text
    assert labels(kinds) == ["1 — confirm an operation", "2 — password", "✖️ Cancel"]
    *_, ask_name = await app.tap(kinds, "1 — confirm")
    assert "Template: confirmation of an operation." in ask_name.text
    [ask_code] = await app.send("  Oila   Market ")
    assert labels(ask_code) == ["🎲 Generate a code", "✖️ Cancel"]
    [confirm] = await app.send("48 21")

    assert "To: +998 90 123 45 67" in confirm.text
    assert "Company name: Oila Market" in confirm.text
    assert "Code: <code>4821</code>" in confirm.text
    assert "Price: 50 so'm per SMS part" in confirm.text
    assert (
        "if its moderation refuses the company name, the SMS is <b>not</b> sent, but the "
        "balance <b>is</b> charged" in confirm.text
    )
    assert labels(confirm) == ["✅ Send the code", "✖️ Cancel"]
    assert devsms.requests_to(SEND) == []  # nothing leaves without the tap

    [result] = await app.tap(confirm, "Send the code")
    [request] = devsms.requests_to(SEND)
    assert request.json == {
        "phone": "998901234567",
        "type": "universal_otp",
        "template_type": 1,
        "service_name": "Oila Market",
        "otp_code": "4821",
    }
    assert "✅ <b>Code sent</b> to +998 90 123 45 67." in result.text
    assert "Balance: 9\u00a0950 so'm" in result.text
    assert labels(result) == ["🔄 Refresh status"]
    [row] = await app.services.outbox.recent(1, 10)
    assert (row.kind, row.state, row.sms_id) == (OutboxKind.OTP, "sent", devsms.sent[0].sms_id)
    assert await app.state_of() is None


async def test_generate_makes_a_six_digit_code(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    ask_code = await to_code_step(app)
    *_, confirm = await app.tap(ask_code, "Generate")
    shown = confirm.text
    [result] = await app.tap(confirm, "Send the code")
    code = devsms.requests_to(SEND)[0].json["otp_code"]
    assert len(code) == 6 and code.isdigit()
    assert f"Code: <code>{code}</code>" in shown
    assert f"Code: <code>{code}</code>" in result.text  # the sender must know it afterwards


async def test_wrong_inputs_are_explained_and_change_nothing(app: Harness) -> None:
    await connect(app)
    await app.send("/otp")
    [bad_phone] = await app.send("12")
    assert "too short" in bad_phone.text and "Example:" in bad_phone.text
    [sticker_reply] = await app.send_sticker()
    assert "text message" in sticker_reply.text
    _, kinds = await app.send("901234567")
    [hint] = await app.send("1")
    assert "Use the buttons" in hint.text
    await app.tap(kinds, "2 — password")
    for name, problem in [
        ("X" * 31, "too long: at most 30 characters"),
        ("A", "too short: at least 2 characters"),
        ("***", "at least one letter or digit"),
    ]:
        [reply] = await app.send(name)
        assert problem in reply.text and "Send the company name again" in reply.text
    assert await app.state_of() == "OtpForm:company"
    await app.send("Shop")
    for code, problem in [
        ("12", "too short: at least 4 digits"),
        ("1234567890", "too long: at most 8 digits"),
        ("12ab", "digits only"),
    ]:
        [reply] = await app.send(code)
        assert problem in reply.text and "Type the code again" in reply.text
    assert await app.state_of() == "OtpForm:code"


@pytest.mark.parametrize("step", ["template", "code", "confirm"])
async def test_cancel_at_every_step_sends_nothing(
    app: Harness, devsms: FakeDevsms, step: str
) -> None:
    await connect(app)
    await app.send("/otp")
    _, kinds = await app.send("901234567")
    message = kinds
    if step != "template":
        await app.tap(kinds, "2 — password")
        [message] = await app.send("Shop")
    if step == "confirm":
        [message] = await app.send("123456")
    [cancelled] = await app.tap(message, "Cancel")
    assert "Cancelled. Nothing was sent." in cancelled.text
    assert await app.state_of() is None
    assert devsms.requests_to(SEND) == []


async def test_cancel_command_and_menu_button_leave_the_typed_steps(app: Harness) -> None:
    await connect(app)
    await app.send("/otp")
    [reply] = await app.send("✖️ Cancel")
    assert "Cancelled" in reply.text
    assert await app.state_of() is None
    await to_code_step(app)
    [reply] = await app.send("/cancel")
    assert "Cancelled." in reply.text
    assert await app.state_of() is None


async def test_a_shared_contact_is_the_recipient_and_cancel_works_at_the_name(
    app: Harness,
) -> None:
    await connect(app)
    await app.send("/otp")
    recipient, kinds = await app.send_contact("998911234567")
    assert "+998 91 123 45 67" in recipient.text
    await app.tap(kinds, "1 — confirm")
    [sticker_reply] = await app.send_sticker()
    assert "text message" in sticker_reply.text
    assert await app.state_of() == "OtpForm:company"
    [reply] = await app.send("/cancel")
    assert "Cancelled." in reply.text
    assert await app.state_of() is None


async def test_a_refused_company_name_says_not_sent_but_charged(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    devsms.refused_service_names.add("Oila Market")
    confirm = await to_confirm(app)
    [result] = await app.tap(confirm, "Send the code")
    assert "refused this code: it was <b>not</b> sent" in result.text
    assert ERR_MODERATION.replace("'", "&#x27;") in result.text or ERR_MODERATION in result.text
    assert "charges the balance all the same" in result.text
    assert "Nothing was sent or charged" not in result.text
    assert devsms.accounts[GOOD_TOKEN].balance == 9_950


async def test_a_timeout_is_unknown_and_never_resent(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    confirm = await to_confirm(app)
    devsms.fail_next(1, path=SEND, hang=5)  # the client gives up after 2 s
    send = button_data(confirm, "Send the code")
    [result] = await app.tap_data(confirm, send)
    assert "did not answer in time" in result.text
    assert "may or may not have gone out" in result.text
    assert labels(result) == ["🔎 Check status"]
    [again] = await app.tap_data(confirm, send)
    assert "no longer active" in app.answers()[-1].text
    assert again.message_id == confirm.message_id
    assert len(devsms.requests_to(SEND)) == 1
    [row] = await app.services.outbox.recent(1, 10)
    assert row.state == "unknown"


async def test_check_status_settles_an_unknown_otp_from_the_history(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    confirm = await to_confirm(app, code="905512")
    devsms.fail_next(1, path=SEND, hang=5)
    [result] = await app.tap(confirm, "Send the code")
    assert "did not answer in time" in result.text
    gateway_sms = devsms.sent[0]  # the gateway did take it, writing its own text
    assert "905512" in gateway_sms.message and gateway_sms.message != "905512"

    details = await app.tap(result, "Check status")
    assert any(f"{gateway_sms.sms_id}" in m.text for m in details)
    [row] = await app.services.outbox.recent(1, 10)
    assert (row.state, row.sms_id) == ("sent", gateway_sms.sms_id)
    assert len(devsms.requests_to(SEND)) == 1


async def test_double_taps_send_once(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    confirm = await to_confirm(app)
    send = button_data(confirm, "Send the code")
    await asyncio.gather(app.tap_data(confirm, send), app.tap_data(confirm, send))
    assert len(devsms.requests_to(SEND)) == 1


async def test_an_unreachable_gateway_sends_nothing_and_shows_the_confirm_again(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    confirm = await to_confirm(app)
    await devsms.stop()
    result, again = await app.tap(confirm, "Send the code")
    assert "the code was <b>not</b> sent" in result.text
    assert "<code>4821</code>" in again.text and "✅ Send the code" in labels(again)
    assert await app.state_of() == "OtpForm:confirm"


async def test_an_old_dialogs_buttons_do_nothing(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    old = await to_confirm(app)
    await to_confirm(app)  # a new dialog
    await app.tap(old, "Send the code")
    assert "no longer active" in app.answers()[-1].text
    assert devsms.requests_to(SEND) == []


async def test_an_international_number_says_the_price_comes_after_sending(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await app.send("/otp")
    _, kinds = await app.send("+7 916 123 45 67")
    await app.tap(kinds, "1 — confirm")
    await app.send("Shop")
    [confirm] = await app.send("1234")
    assert "international, the price is known only after sending" in confirm.text
    assert "per SMS part" not in confirm.text


async def test_otp_is_in_the_command_menu_and_help_in_three_languages(app: Harness) -> None:
    await app.dp.emit_startup(bot=app.bot)
    menus = {call.language_code: call.commands for call in app.session.of(SetMyCommands)}
    described = {
        lang: next(c.description for c in menus[lang] if c.command == "otp")
        for lang in ("uz", "ru", "en")
    }
    assert described == {
        "en": "Send a one-time verification code",
        "ru": "Отправить одноразовый код",
        "uz": "Bir martalik tasdiqlash kodini yuborish",
    }
    [help_text] = await app.send("/help")
    assert "/otp — send a one-time verification code by SMS" in help_text.text


async def test_the_dialog_speaks_russian_and_uzbek(app: Harness) -> None:
    await connect(app, lang="ru")
    await app.send("/otp", lang="ru")
    _, kinds = await app.send("901234567", lang="ru")
    assert "подтверждение операции" in kinds.text
    await connect(app, user_id=2, lang="uz")
    await app.send("/otp", 2, "uz")
    _, kinds = await app.send("901234567", 2, "uz")
    assert "amaliyotni tasdiqlash" in kinds.text


async def test_a_number_stopped_before_send_is_refused_and_another_can_be_typed(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    await to_code_step(app)
    confirm = await to_confirm(app)
    await app.services.stoplist.add(1, [("998901234567", "asked to stop")], limit=100)
    [refused] = await app.tap(confirm, "Send the code")
    assert "stop list" in refused.text
    assert labels(refused) == ["🗑 Remove from stop list"]
    assert devsms.requests_to(SEND) == []
    # The dialog goes on: another number leads to the next step, the old code is gone.
    context = app.dp.fsm.get_context(app.bot, chat_id=1, user_id=1)
    assert "code" not in await context.get_data()
    _, kinds = await app.send("+998 90 765 43 21")
    assert "2 — password" in labels(kinds)


@pytest.mark.parametrize(
    ("lang", "button"),
    [("en", "🔐 One-time code"), ("ru", "🔐 Одноразовый код"), ("uz", "🔐 Bir martalik kod")],
)
async def test_the_main_menu_button_starts_the_dialog(
    app: Harness, lang: str, button: str
) -> None:
    await connect(app, lang=lang)
    [ask] = await app.send(button, 1, lang)
    assert await app.state_of() == "OtpForm:phone"
    assert ask.text


async def fsm_rows(app: Harness) -> list[str]:
    """What FSM storage (a database table) holds for anyone: state and data as stored."""
    rows = await app.services.db.fetchall("SELECT key, state, data FROM fsm")
    return [f"{row['key']} {row['state']} {row['data']}" for row in rows]


async def test_the_code_never_reaches_fsm_storage(app: Harness, devsms: FakeDevsms) -> None:
    await connect(app)
    confirm = await to_confirm(app, "73 95 04 18")
    assert "<code>73950418</code>" in confirm.text
    stored = await fsm_rows(app)
    assert any("OtpForm:confirm" in row for row in stored)
    assert not any("73950418" in row or '"code"' in row for row in stored)
    # A generated code neither.
    ask_code = await to_code_step(app)
    *_, generated = await app.tap(ask_code, "Generate a code")
    code = generated.text.split("<code>")[1].split("</code>")[0]
    assert not any(code in row for row in await fsm_rows(app))
    await app.tap(generated, "Send the code")
    [sent] = devsms.requests_to(SEND)
    assert code in str(sent.json)


async def test_after_a_restart_send_asks_for_the_code_again(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    confirm = await to_confirm(app, "5307")
    app.dp = create_dispatcher(app.services, app.shared)  # a restart: memory is gone
    *_, asked = await app.tap(confirm, "Send the code")
    assert "Nothing was sent" in asked.text and "Type the code again" in asked.text
    assert labels(asked) == ["🎲 Generate a code", "✖️ Cancel"]
    assert devsms.requests_to(SEND) == []
    [again] = await app.send("5307")
    assert "<code>5307</code>" in again.text
    await app.tap(again, "Send the code")
    assert len(devsms.requests_to(SEND)) == 1
