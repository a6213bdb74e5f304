"""The texts of /otp: the questions, the confirm step with the gateway's warning, the outcome.

Pure functions of their arguments and the current locale."""

from __future__ import annotations

from aiogram import html
from aiogram.utils.i18n import gettext as _

from handlers.plural import ngettext
from handlers.render import MISSING, money
from handlers.send_texts import EXAMPLE_PHONE, result_text
from services.devsms import Balance
from services.otp import (
    CODE_MAX,
    CODE_MIN,
    SERVICE_NAME_MAX,
    SERVICE_NAME_MIN,
    TEMPLATE_CONFIRM,
    CodeProblem,
    NameProblem,
    OtpRequest,
)
from services.phones import PhoneNumber
from services.pricing import PartPrice
from services.sending import Outcome, SendOutcome


def cancel_hint() -> str:
    return _("/cancel stops.")


def ask_phone_text() -> str:
    return (
        _("🔐 <b>Verification code by SMS</b>")
        + "\n"
        + _(
            "devsms.uz sends the code in its approved template, with your company name. "
            "Whom to send it to? Type the number, e.g. {example}, or attach a contact."
        ).format(example=EXAMPLE_PHONE)
        + "\n"
        + cancel_hint()
    )


def ask_template_text(phone: PhoneNumber) -> str:
    return "\n".join(
        [
            _("To: {phone}").format(phone=phone.international),
            _("What is the code for? Tap one:"),
            _(
                "1 — confirmation of an operation: the SMS asks to confirm an action (a payment, "
                "a login) with the code."
            ),
            _("2 — password: the SMS gives the code as a one-time password."),
            cancel_hint(),
        ]
    )


def template_name(template_type: int) -> str:
    if template_type == TEMPLATE_CONFIRM:
        return _("confirmation of an operation")
    return _("password")


def ask_company_text(template_type: int) -> str:
    return "\n".join(
        [
            _("Template: {name}.").format(name=template_name(template_type)),
            _(
                "Now send your company name as it should appear in the SMS ({low} to {high} "
                "characters, one line)."
            ).format(low=SERVICE_NAME_MIN, high=SERVICE_NAME_MAX),
            _("devsms.uz's moderation checks this name automatically."),
            cancel_hint(),
        ]
    )


def name_error_text(problem: NameProblem) -> str:
    if problem is NameProblem.TOO_LONG:
        text = ngettext(
            "This name is too long: at most {n} character.",
            "This name is too long: at most {n} characters.",
            SERVICE_NAME_MAX,
        ).format(n=SERVICE_NAME_MAX)
    elif problem is NameProblem.TOO_SHORT:
        text = ngettext(
            "This name is too short: at least {n} character.",
            "This name is too short: at least {n} characters.",
            SERVICE_NAME_MIN,
        ).format(n=SERVICE_NAME_MIN)
    elif problem is NameProblem.CONTROL:
        text = _("The name must be one line, without line breaks or invisible characters.")
    elif problem is NameProblem.NO_LETTERS:
        text = _("The name needs at least one letter or digit.")
    else:
        text = _("The name cannot be empty.")
    return text + "\n" + _("Send the company name again, e.g. «Oila Market».")


def ask_code_text() -> str:
    return "\n".join(
        [
            _("Now type the code: {low} to {high} digits. Or tap «Generate a code».").format(
                low=CODE_MIN, high=CODE_MAX
            ),
            cancel_hint(),
        ]
    )


def code_error_text(problem: CodeProblem) -> str:
    if problem is CodeProblem.TOO_SHORT:
        text = ngettext(
            "This code is too short: at least {n} digit.",
            "This code is too short: at least {n} digits.",
            CODE_MIN,
        ).format(n=CODE_MIN)
    elif problem is CodeProblem.TOO_LONG:
        text = ngettext(
            "This code is too long: at most {n} digit.",
            "This code is too long: at most {n} digits.",
            CODE_MAX,
        ).format(n=CODE_MAX)
    else:
        text = _("The code may contain digits only.")
    return text + "\n" + _("Type the code again, e.g. 4821, or tap «Generate a code».")


def code_lost_text() -> str:
    """Send tapped when the code is no longer kept (a restart, or an hour went by)."""
    return (
        _("Nothing was sent: for safety I keep a code only for a while, and this one is gone.")
        + "\n"
        + _("Type the code again, e.g. 4821, or tap «Generate a code».")
    )


def confirm_text(phone: PhoneNumber, otp: OtpRequest, price: PartPrice, balance: Balance) -> str:
    lines = [
        _("🔐 <b>Check before sending</b>"),
        "",
        _("To: {phone}").format(phone=phone.international),
        _("Template: {name}.").format(name=template_name(otp.template_type)),
        _("Company name: {name}").format(name=html.quote(otp.service_name)),
        _("Code: <code>{code}</code>").format(code=otp.code),
    ]
    if price.known_after_sending:
        lines.append(_("Cost: international, the price is known only after sending."))
    else:
        lines.append(
            _("Price: {price} per SMS part; the template's length decides the parts.").format(
                price=money(price.price)
            )
        )
    lines.append(_("Balance: {balance}").format(balance=money(balance.balance)))
    lines.append("")
    lines.append(
        _(
            "⚠️ <b>devsms.uz warns:</b> if its moderation refuses the company name, the SMS is "
            "<b>not</b> sent, but the balance <b>is</b> charged."
        )
    )
    return "\n".join(lines)


def outcome_text(phone: PhoneNumber, otp: OtpRequest, outcome: SendOutcome) -> str:
    label = _("code for {name}").format(name=otp.service_name)
    if outcome.outcome is Outcome.SENT and outcome.result is not None:
        result = outcome.result
        return "\n".join(
            [
                _("✅ <b>Code sent</b> to {phone}.").format(phone=phone.international),
                _("Code: <code>{code}</code>").format(code=otp.code),
                _("SMS id: {sms_id} · status: {status}").format(
                    sms_id=result.sms_id or MISSING, status=html.quote(result.status or MISSING)
                ),
                _("Parts: {parts} · cost: {cost}").format(
                    parts=result.parts_count or MISSING, cost=money(result.total_cost)
                ),
                _("Balance: {balance}").format(balance=money(result.balance)),
            ]
        )
    if outcome.outcome is Outcome.UNKNOWN:
        return "\n".join(
            [
                _("⚠️ <b>devsms.uz did not answer in time.</b>"),
                _("To {phone}: {text}").format(phone=phone.international, text=html.quote(label)),
                _("Code: <code>{code}</code>").format(code=otp.code),
                _(
                    "The code may or may not have gone out. It will not be sent again "
                    "automatically: check /history in a minute before sending another one."
                ),
            ]
        )
    if outcome.outcome is Outcome.REFUSED:
        refused = _("❌ devsms.uz refused this code: it was <b>not</b> sent.")
        if outcome.gateway_text:
            refused += "\n" + _("Its answer: «{text}»").format(
                text=html.quote(outcome.gateway_text)
            )
        return (
            refused
            + "\n"
            + _(
                "If the company name was refused by moderation, devsms.uz charges the balance "
                "all the same: see /balance."
            )
        )
    return result_text(phone, label, outcome)


def not_sent_text() -> str:
    return (
        _("⚠️ Could not reach devsms.uz: the code was <b>not</b> sent.")
        + "\n"
        + _("Here it is again; try in a minute.")
    )
