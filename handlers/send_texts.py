"""The texts of /send: the questions, the preview and the outcome.

Pure functions of their arguments and the current locale; other dialogs that quote an SMS or
ask for a phone number share them."""

from __future__ import annotations

from typing import Final

from aiogram import html
from aiogram.utils.i18n import gettext as _

from handlers.plural import ngettext
from handlers.render import MISSING, money, not_enough_text
from handlers.sms_render import status_label
from services.devsms import Balance, SendResult
from services.phones import PhoneError, PhoneNumber
from services.pricing import Cost, PartPrice, cost_at
from services.sending import Outcome, SendOutcome
from services.sms_parts import cheaper_spelling, count_sms, describe_char

EXAMPLE_PHONE: Final = "+998 90 123 45 67"
# Room for the quoted SMS inside Telegram's 4096 characters, with the rest of the preview.
PREVIEW_TEXT_LIMIT: Final = 3000
RESULT_TEXT_LIMIT: Final = 200


def quote_cut(text: str, limit: int) -> str:
    """Escaped text of at most `limit` characters; cut on the raw text so no entity breaks."""
    quoted = html.quote(text)
    if len(quoted) <= limit:
        return quoted
    low, high = 0, len(text)
    while low < high:  # the longest raw prefix whose escaped form (plus "…") fits
        middle = (low + high + 1) // 2
        if len(html.quote(text[:middle])) + 1 <= limit:
            low = middle
        else:
            high = middle - 1
    return html.quote(text[:low]) + "…"


def ask_phone_text() -> str:
    return (
        _(
            "Whom to send to? Type the phone number, e.g. {example}, or attach a contact "
            "(📎 → Contact)."
        ).format(example=EXAMPLE_PHONE)
        + "\n"
        + _("/cancel stops sending.")
    )


def phone_error_text(reason: PhoneError) -> str:
    if reason is PhoneError.TOO_SHORT:
        return _("This number is too short.")
    if reason is PhoneError.TOO_LONG:
        return _("This number is too long.")
    if reason is PhoneError.INVALID:
        return _("There is no such phone number.")
    return _("That is not a phone number.")


def price_lines(parts: int, price: PartPrice, balance: Balance) -> tuple[list[str], Cost]:
    """The cost lines of a preview: local, abroad at a known rate, or abroad unknown."""
    if price.known_after_sending:
        return [_("Cost: international, the price is known only after sending.")], Cost(None, None)
    cost = cost_at(parts, price.price, balance)
    lines = [
        _("Cost: {parts} × {price} = {total}").format(
            parts=parts, price=money(price.price), total=money(cost.total)
        )
    ]
    if price.abroad:
        lines.append(_("(the rate devsms.uz charged for your last SMS to this country)"))
    lines.append(_("Balance after sending: {balance}").format(balance=money(cost.after)))
    return lines, cost


def preview_text(
    phone: PhoneNumber, text: str, sender: str, balance: Balance, price: PartPrice | None = None
) -> tuple[str, bool, bool]:
    """The preview, whether sending is possible, and whether a cheaper spelling is offered.
    ``price`` is services.pricing.part_price for the number (default: the local price)."""
    count = count_sms(text)
    price = price or PartPrice(balance.sms_price, abroad=not phone.is_uzbek)
    lines = [_("📤 <b>Check before sending</b>"), ""]
    lines.append(_("To: {phone}").format(phone=phone.international))
    if not phone.is_uzbek:
        lines.append(_("🌍 This number is outside Uzbekistan: international rates apply."))
    lines.append(_("From: {sender}").format(sender=html.quote(sender)))
    lines.append(_("Text:"))
    lines.append(f"<blockquote>{quote_cut(text, PREVIEW_TEXT_LIMIT)}</blockquote>")
    lines.append(
        _("{encoding} · characters: {characters} · parts: {parts}").format(
            encoding=count.encoding, characters=count.characters, parts=count.parts
        )
    )
    cost_lines, cost = price_lines(count.parts, price, balance)
    lines += cost_lines
    can_send = cost.enough
    if cost.missing is not None:
        lines.append(not_enough_text(cost.missing))
    cheaper = False
    if count.non_gsm:
        names = ", ".join(html.quote(describe_char(ch)) for ch in count.non_gsm[:8])
        lines.append("")
        lines.append(
            _(
                "ℹ️ These characters switch the SMS to UCS-2 (70 characters per part): {chars}"
            ).format(chars=names)
        )
        alternative = cheaper_spelling(text)
        if alternative is not None and count_sms(alternative).parts < count.parts:
            cheaper = True
            parts = count_sms(alternative).parts
            lines.append(
                ngettext(
                    "With plain apostrophes and quotes it would take {parts} part instead of "
                    "{was}.",
                    "With plain apostrophes and quotes it would take {parts} parts instead of "
                    "{was}.",
                    parts,
                ).format(parts=parts, was=count.parts)
            )
    return "\n".join(lines), can_send, cheaper


def country_line(result: SendResult) -> str:
    """The country the gateway billed a send abroad for, as it named it."""
    if result.country and result.country_code:
        named = f"{result.country} ({result.country_code})"
    else:
        named = result.country or result.country_code or MISSING
    return _("🌍 Billed as a send to: {country}").format(country=html.quote(named))


def result_text(phone: PhoneNumber, text: str, outcome: SendOutcome) -> str:
    summary = _("To {phone}: {text}").format(
        phone=phone.international, text=quote_cut(text, RESULT_TEXT_LIMIT)
    )
    if outcome.outcome is Outcome.SENT and outcome.result is not None:
        return sent_text(summary, outcome.result)
    if outcome.outcome is Outcome.UNKNOWN:
        return unknown_text(summary)
    if outcome.outcome is Outcome.STOPPED:
        return stopped_text(phone)
    if outcome.outcome is Outcome.TOKEN_REJECTED:
        return _(
            "devsms.uz no longer accepts your token, so the SMS was not sent. "
            "Send /token to connect a new one."
        )
    if outcome.outcome is Outcome.NO_TOKEN:
        return no_token_text(summary)
    return gateway_refused_text(summary, outcome.gateway_text)


def sent_text(summary: str, result: SendResult) -> str:
    lines = [
        _("✅ <b>Sent.</b>"),
        summary,
        _("SMS id: {sms_id} · status: {status}").format(
            sms_id=result.sms_id or MISSING, status=status_label(result.status)
        ),
        _("Request id: {request_id}").format(
            request_id=f"<code>{html.quote(result.request_id)}</code>"
            if result.request_id
            else MISSING
        ),
        _("Parts: {parts} · cost: {cost}").format(
            parts=result.parts_count or MISSING, cost=money(result.total_cost)
        ),
        _("Balance: {balance}").format(balance=money(result.balance)),
    ]
    if result.country or result.country_code:
        lines.insert(-1, country_line(result))
    return "\n".join(lines)


def unknown_text(summary: str) -> str:
    return "\n".join(
        [
            _("⚠️ <b>devsms.uz did not answer in time.</b>"),
            summary,
            _(
                "The SMS may or may not have gone out. It will not be sent again "
                "automatically: check /history in a minute before sending it again."
            ),
        ]
    )


def stopped_text(phone: PhoneNumber) -> str:
    # Put on the stop list after the preview (or the scheduling) was made.
    return (
        _("⛔ Not sent: {phone} is on your stop list. Nothing was sent or charged.").format(
            phone=phone.international
        )
        + "\n"
        + _("Remove it from the stop list to send to it, or send another number; /cancel stops.")
    )


def no_token_text(summary: str) -> str:
    return "\n".join(
        [
            _(
                "No devsms token is connected any more (it was removed or cannot be "
                "read), so the SMS was <b>not</b> sent."
            ),
            summary,
            _("Connect one with /token, then send it again."),
        ]
    )


def gateway_refused_text(summary: str, gateway_text: str | None) -> str:
    refused = _("❌ devsms.uz refused this SMS. Nothing was sent or charged.")
    if gateway_text:
        refused += "\n" + _("Its answer: «{text}»").format(text=html.quote(gateway_text))
    return refused + "\n" + summary
