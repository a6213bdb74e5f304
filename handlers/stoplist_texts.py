"""The texts of the stop list, in the user's language: /stoplist itself, and what the send
paths say when they leave a number out. Pure functions of their arguments and the locale."""

from __future__ import annotations

from typing import Final

from aiogram import html
from aiogram.utils.i18n import gettext as _

from handlers.plural import ngettext
from handlers.render import count
from handlers.send_texts import phone_error_text, quote_cut
from services.phones import InvalidPhone, PhoneError, normalize_phone
from storage import Added, StopEntry, StopListFull

PAGE_SIZE: Final = 10
INVALID_SHOWN: Final = 5
VALUE_SHOWN: Final = 40
# Notes are kept up to services.stoplist.NOTE_MAX characters; a page shows the start of each,
# so ten of them, escaped, stay well within Telegram's 4096 characters.
NOTE_SHOWN: Final = 60


def shown_phone(digits: str) -> str:
    """ "+998 90 123 45 67" for a stored number (digits, country code first)."""
    try:
        return normalize_phone("+" + digits).international
    except InvalidPhone:  # stored by an older rule: shown as it is
        return "+" + digits


def added_on(entry: StopEntry) -> str:
    return entry.added_at[:10]


def list_text(entries: list[StopEntry], page: int, total: int, limit: int) -> str:
    if not total:
        return (
            _("⛔ <b>Stop list</b>")
            + "\n"
            + _(
                "Your stop list is empty. Numbers on it never get an SMS from your account: "
                "/send refuses them and /bulk leaves them out."
            )
            + "\n"
            + _("Add numbers by hand or import a file with a phone column.")
        )
    pages = -(-total // PAGE_SIZE)
    lines = [
        ngettext(
            "⛔ <b>Stop list</b>: {n} of at most {limit} number",
            "⛔ <b>Stop list</b>: {n} of at most {limit} numbers",
            limit,
        ).format(n=count(total), limit=count(limit)),
        _("They never get an SMS from your account: /send refuses them, /bulk leaves them out."),
        "",
    ]
    for number, entry in enumerate(entries, start=page * PAGE_SIZE + 1):
        line = f"{number}. {shown_phone(entry.phone)} · {added_on(entry)}"
        if entry.note:
            line += f" · <i>{quote_cut(entry.note, NOTE_SHOWN)}</i>"
        lines.append(line)
    if pages > 1:
        lines += ["", _("Page {page} of {pages}").format(page=page + 1, pages=pages)]
    lines.append(_("Tap ❌ to remove a number."))
    return "\n".join(lines)


def ask_add_text(limit: int) -> str:
    return (
        _(
            "Send the numbers to add, one or several: one per line or separated by commas. "
            "Text after a number on the same line is kept as its note, e.g. "
            "«+998 90 123 45 67 asked to stop»."
        )
        + "\n"
        + _("A CSV or Excel (.xlsx) file with a phone column works too.")
        + "\n"
        + ngettext(
            "The stop list holds at most {limit} number.",
            "The stop list holds at most {limit} numbers.",
            limit,
        ).format(limit=count(limit))
        + "\n"
        + _("/cancel stops.")
    )


def ask_import_text(limit: int) -> str:
    return (
        _(
            "Send a CSV or Excel (.xlsx) file with a column of phone numbers; a column named "
            "«note» or «reason» becomes the notes. Pasted numbers work too."
        )
        + "\n"
        + ngettext(
            "The stop list holds at most {limit} number.",
            "The stop list holds at most {limit} numbers.",
            limit,
        ).format(limit=count(limit))
        + "\n"
        + _("/cancel stops.")
    )


def ask_remove_text() -> str:
    return (
        _("Send the numbers to remove from the stop list, one per line or separated by commas.")
        + "\n"
        + _("/cancel stops.")
    )


def not_understood_text() -> str:
    return (
        _("Send the numbers as a text message, or a CSV or .xlsx file.")
        + "\n"
        + _("/cancel stops.")
    )


def invalid_numbers_text(invalid: list[tuple[str, PhoneError]]) -> str:
    lines = [_("These are not phone numbers, so nothing was changed:")]
    for value, reason in invalid[:INVALID_SHOWN]:
        lines.append(f"«{quote_cut(value, VALUE_SHOWN)}» — {phone_error_text(reason)}")
    if len(invalid) > INVALID_SHOWN:
        more = len(invalid) - INVALID_SHOWN
        lines.append(ngettext("… and {n} more", "… and {n} more", more).format(n=more))
    lines.append(_("Send the corrected numbers, e.g. +998 90 123 45 67, or /cancel."))
    return "\n".join(lines)


def no_numbers_text() -> str:
    return _("I found no phone number there. Send numbers such as +998 90 123 45 67, or /cancel.")


def full_text(exc: StopListFull) -> str:
    return ngettext(
        "The stop list holds at most {limit} number. It has {have}, and these would add "
        "{new} more, so nothing was added. Remove some numbers first, or add fewer.",
        "The stop list holds at most {limit} numbers. It has {have}, and these would add "
        "{new} more, so nothing was added. Remove some numbers first, or add fewer.",
        exc.limit,
    ).format(limit=count(exc.limit), have=count(exc.have), new=count(exc.new))


def file_too_long_text(limit: int) -> str:
    return (
        ngettext(
            "The file has more rows than the stop list can hold ({limit} number), so nothing "
            "was added. Send a shorter file.",
            "The file has more rows than the stop list can hold ({limit} numbers), so "
            "nothing was added. Send a shorter file.",
            limit,
        ).format(limit=count(limit))
        + "\n"
        + _("/cancel stops.")
    )


def added_text(result: Added, skipped_rows: int = 0) -> str:
    lines = [
        ngettext(
            "✅ {n} number added to the stop list.",
            "✅ {n} numbers added to the stop list.",
            result.added,
        ).format(n=count(result.added))
    ]
    if result.already:
        lines.append(
            ngettext("{n} was on it already.", "{n} were on it already.", result.already).format(
                n=count(result.already)
            )
        )
    if skipped_rows:
        lines.append(
            ngettext(
                "{n} row of the file has no valid number and was skipped.",
                "{n} rows of the file have no valid number and were skipped.",
                skipped_rows,
            ).format(n=count(skipped_rows))
        )
    lines.append(_("Numbers on the stop list: {n}").format(n=count(result.total)))
    return "\n".join(lines)


def removed_text(removed: list[str], missing: list[str]) -> str:
    lines = [
        ngettext(
            "🗑 {n} number removed from the stop list.",
            "🗑 {n} numbers removed from the stop list.",
            len(removed),
        ).format(n=count(len(removed)))
    ]
    if missing:
        shown = ", ".join(missing[:INVALID_SHOWN]) + (" …" if len(missing) > INVALID_SHOWN else "")
        lines.append(_("Not on the stop list: {numbers}").format(numbers=shown))
    return "\n".join(lines)


def refused_text(entry: StopEntry) -> str:
    """A single send to a number on the stop list: why, and how to go on."""
    lines = [
        _("⛔ {phone} is on your stop list (since {date}), so no SMS goes to it.").format(
            phone=shown_phone(entry.phone), date=added_on(entry)
        )
    ]
    if entry.note:
        lines.append(_("Note: {note}").format(note=html.quote(entry.note)))
    lines.append(
        _(
            "To send to it anyway, remove it from the stop list (the button below, or "
            "/stoplist). Or send another number; /cancel stops."
        )
    )
    return "\n".join(lines)


def unstopped_text(entry: StopEntry) -> str:
    return _("✅ {phone} was removed from your stop list.").format(phone=shown_phone(entry.phone))


def left_out_text(n: int) -> str:
    """Bulk: rows whose numbers are on the stop list (the dry run, the job, its summary)."""
    return ngettext(
        "⛔ {n} number on your stop list was left out.",
        "⛔ {n} numbers on your stop list were left out.",
        n,
    ).format(n=count(n))
