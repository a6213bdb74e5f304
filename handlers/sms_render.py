"""Rendering SMS from the gateway: list lines for /history, the details card for /status.

Everything here comes from the gateway, which echoes what users typed, so every field is cut by
characters FIRST (never in the middle of an "&amp;") and escaped after. Telegram refuses
messages over 4096 characters, so lists shrink their previews until they fit and long texts are
split over several messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.utils.i18n import gettext as _

from handlers.plural import ngettext
from handlers.render import MISSING, count, money
from services.devsms import SmsRecord
from services.i18n import N_
from services.phones import InvalidPhone, normalize_phone

# https://core.telegram.org/bots/api#sendmessage: 1-4096 characters. Measured here on the HTML
# source in UTF-16 units, which is never less than what Telegram counts after parsing.
TELEGRAM_LIMIT: Final = 4096
PREVIEW_CHARS: Final = 40
# (text preview, other gateway fields) in characters, tried in order until a page fits: ten
# texts like "<&>" * 1000 would not fit even at 40 characters each once escaped.
_LIST_STEPS: Final = ((PREVIEW_CHARS, 24), (24, 24), (12, 12), (0, 8))
_CARD_FIELD_CHARS: Final = 64
_CARD_PREVIEW_CHARS: Final = 200
_TIME_FORMAT: Final = "%d.%m.%Y %H:%M"

# Symbol and label by the gateway's status, upper-cased (it writes both "waiting" and
# "DELIVERED"). Anything else is shown verbatim with ❔: see devsms-api.md, "Statuses".
_STATUSES: Final = {
    "DELIVERED": ("✅", N_("delivered")),
    "WAITING": ("⏳", N_("waiting")),
    # Newer gateway answers say "sent" for what older ones call "waiting": the same state.
    "SENT": ("⏳", N_("waiting")),
    "ACCEPTED": ("⏳", N_("accepted")),
    "NEW": ("⏳", N_("queued")),
    "REJECTED": ("❌", N_("rejected")),
    "UNDELIVERABLE": ("❌", N_("undeliverable")),
    "EXPIRED": ("❌", N_("expired")),
}
UNKNOWN_STATUS_SYMBOL: Final = "❔"


def telegram_length(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units (an emoji outside the BMP is two)."""
    return len(text.encode("utf-16-le")) // 2


def clip(text: str, chars: int) -> str:
    """The first ``chars`` characters of raw (unescaped) text, with "…" when something was cut."""
    if len(text) <= chars:
        return text
    return text[:chars].rstrip() + "…"


def one_line(text: str) -> str:
    return " ".join(text.split())


def status_parts(status: str | None, field_chars: int = _CARD_FIELD_CHARS) -> tuple[str, str]:
    """The symbol and the HTML label: ("✅", "delivered"), or ("❔", "PARTDELIVERED") for a
    status this bot does not know."""
    if status is None or not status.strip():
        return UNKNOWN_STATUS_SYMBOL, MISSING
    known = _STATUSES.get(status.strip().upper())
    if known is not None:
        symbol, label = known
        return symbol, _(label)
    return UNKNOWN_STATUS_SYMBOL, html.quote(clip(one_line(status), field_chars))


def status_label(status: str | None, field_chars: int = _CARD_FIELD_CHARS) -> str:
    """HTML: "✅ delivered", or "❔ PARTDELIVERED" for a status this bot does not know."""
    return " ".join(status_parts(status, field_chars))


def phone_label(phone: str | None, field_chars: int = _CARD_FIELD_CHARS) -> str:
    """HTML: "+998 90 123 45 67" when it is a phone number, else what the gateway wrote."""
    if phone is None:
        return MISSING
    # Bounded before parsing: the gateway's field is not ours to trust.
    if len(phone) <= 32:
        try:
            return html.quote(clip(normalize_phone(phone).international, field_chars))
        except InvalidPhone:
            pass
    return html.quote(clip(one_line(phone), field_chars))


def time_label(value: datetime | str | None, field_chars: int = _CARD_FIELD_CHARS) -> str:
    """HTML. The gateway's own wall-clock times are shown as it wrote them; times that came
    with an offset, in UTC."""
    if value is None:
        return MISSING
    if isinstance(value, datetime):
        # The client gives a time written without an offset the gateway's ZoneInfo
        # (services/devsms.py); its wall clock is what the user knows from devsms itself.
        if value.tzinfo is None or isinstance(value.tzinfo, ZoneInfo):
            return value.strftime(_TIME_FORMAT)
        return value.astimezone(UTC).strftime(_TIME_FORMAT) + " UTC"
    return html.quote(clip(one_line(value), field_chars))


def parts_label(parts: int | None) -> str:
    """ "2 parts" in the user's language (plural forms), "parts: —" when the gateway gave none."""
    if parts is None:
        return _("parts: {n}").format(n=MISSING)
    return ngettext("{n} part", "{n} parts", parts).format(n=count(parts))


def text_preview(message: str | None, chars: int) -> str:
    """HTML: the start of the SMS text on one line."""
    text = one_line(message or "")
    return html.quote(clip(text, chars)) if text else MISSING


def sms_line(
    number: int, record: SmsRecord, preview_chars: int = PREVIEW_CHARS, field_chars: int = 24
) -> str:
    """One history entry: number, time and phone; status, parts and cost; the text's start."""
    lines = [
        f"<b>{number}.</b> {time_label(record.created_at, field_chars)}"
        f" · {phone_label(record.phone, field_chars)}",
        f"{status_label(record.status, field_chars)}"
        f" · {parts_label(record.parts_count)}"
        f" · {money(record.cost)}",
    ]
    if preview_chars > 0:
        lines.append(f"<i>{text_preview(record.message, preview_chars)}</i>")
    return "\n".join(lines)


def sms_list(records: Sequence[SmsRecord], header: str, *, first_number: int = 1) -> str:
    """``header`` (HTML) and the numbered entries, within Telegram's limit whatever the texts."""
    text = header
    for preview_chars, field_chars in _LIST_STEPS:
        entries = [
            sms_line(number, record, preview_chars, field_chars)
            for number, record in enumerate(records, start=first_number)
        ]
        text = "\n\n".join([header, *entries])
        if telegram_length(text) <= TELEGRAM_LIMIT:
            return text
    return text  # unreachable for ten entries: the last step bounds each to ~250 characters


def sms_card(
    record: SmsRecord, *, preview_chars: int | None = None, status: str | None = None
) -> str:
    """The details of one SMS: the whole text unless ``preview_chars`` is given.

    ``status`` (HTML) replaces the gateway's status, for a send the gateway has not shown."""
    cut = _CARD_FIELD_CHARS
    title = (
        _("📨 <b>SMS {id}</b>").format(id=record.sms_id)
        if record.sms_id is not None
        else _("📨 <b>SMS</b>")
    )
    lines = [
        title,
        _("Status: {status}").format(status=status or status_label(record.status, cut)),
        _("Phone: {phone}").format(phone=phone_label(record.phone, cut)),
        _("Sender: {sender}").format(
            sender=html.quote(clip(one_line(record.sender), cut)) if record.sender else MISSING
        ),
        _("Parts: {parts} · Cost: {cost}").format(
            parts=count(record.parts_count), cost=money(record.cost)
        ),
        _("Time: {time}").format(time=time_label(record.created_at, cut)),
    ]
    if record.request_id:
        lines.append(
            _("Request id: {id}").format(
                id=f"<code>{html.quote(clip(one_line(record.request_id), cut))}</code>"
            )
        )
    message = record.message or ""
    if not message.strip():
        lines += ["", _("Text: {text}").format(text=MISSING)]
    elif preview_chars is None:
        lines += ["", f"<blockquote>{html.quote(message)}</blockquote>"]
    else:
        lines += [
            "",
            f"<blockquote>{html.quote(clip(message, preview_chars))}</blockquote>",
            _("The whole text is in the messages above."),
        ]
    return "\n".join(lines)


def sms_details(record: SmsRecord, *, status: str | None = None) -> list[str]:
    """Messages to send for one SMS; the last is the card, the one "Refresh" edits.

    A text too long for one message goes first, split; the card then shows only its start, so
    the same card comes out on every refresh and the text messages are never touched.
    """
    card = sms_card(record, status=status)
    if telegram_length(card) <= TELEGRAM_LIMIT:
        return [card]
    return [
        *split_text(record.message or ""),
        sms_card(record, preview_chars=_CARD_PREVIEW_CHARS, status=status),
    ]


def split_text(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Escaped pieces of ``text``, each within ``limit``; cut by characters before escaping,
    at a space or line break when one is near the end, and never inside an entity."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        size, end, last_break = 0, start, -1
        while end < len(text):
            cost = _escaped_length(text[end])
            if size + cost > limit:
                break
            size += cost
            end += 1
            if text[end - 1] in " \n":
                last_break = end
        if end < len(text) and last_break > start + (end - start) // 2:
            end = last_break
        piece = text[start:end]
        # Telegram refuses a message that is only whitespace.
        if piece.strip():
            pieces.append(html.quote(piece))
        start = end
    return pieces


def _escaped_length(char: str) -> int:
    return telegram_length(html.quote(char))
