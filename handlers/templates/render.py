"""/templates: texts and views, pure functions of the rows (shared with /bulk)."""

from __future__ import annotations

from typing import Final

from aiogram import html
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from handlers.keyboards import template_keyboard
from handlers.plural import ngettext
from handlers.render import too_many_parts_text
from handlers.send_texts import quote_cut
from handlers.sms_render import clip, one_line
from services.sms_parts import TooManyParts, check_parts, count_sms
from services.templating import (
    TEMPLATE_NAME_MAX,
    TemplateError,
    placeholders,
    valid_template_name,
)
from storage import TemplateRow

# One message lists them all as buttons; Telegram allows 100 buttons under a message.
MAX_TEMPLATES: Final = 50
BODY_SHOWN: Final = 3000
# Room for the placeholder list beside BODY_SHOWN within Telegram's 4096 characters: a body of
# "{&&&...}" is one placeholder whose name escapes to five times its length.
PLACEHOLDERS_SHOWN: Final = 500
EXAMPLE_PLACEHOLDER: Final = "{name}"


# --- texts shared with /bulk ----------------------------------------------------------------


def template_error_text(exc: TemplateError) -> str:
    problems = {
        "unclosed": _("an opening brace without a closing one"),
        "unopened": _("a closing brace without an opening one"),
        "empty": _("empty braces"),
    }
    return _(
        "The text has {problem} at character {position}. Placeholders look like {example}; "
        "to write a brace itself, double it: {braces}."
    ).format(
        problem=problems.get(exc.problem, exc.problem),
        position=exc.position + 1,
        example=EXAMPLE_PLACEHOLDER,
        braces="{{ }}",
    )


def body_problem(body: str, max_parts: int) -> str | None:
    """Why `body` cannot be a template, or None."""
    if not body:
        return _("The text cannot be empty. Send the text.")
    try:
        placeholders(body)
    except TemplateError as exc:
        return template_error_text(exc)
    try:
        check_parts(body, max_parts)
    except TooManyParts as exc:
        return too_many_parts_text(exc)
    return None


def shown_name(name: str) -> str:
    """A template or placeholder name as shown (raw, escape it after): one line, clipped.

    Typed names are capped at TEMPLATE_NAME_MAX already; a row saved otherwise (an older
    version, a restored database) must still leave every reply and button within limits.
    """
    return clip(one_line(name), TEMPLATE_NAME_MAX)


def placeholder_list(names: list[str]) -> str:
    """HTML: "{a}, {b}, …", clipped names, at most PLACEHOLDERS_SHOWN characters in all."""
    shown: list[str] = []
    used = 0
    for name in names:
        item = html.quote("{" + shown_name(name) + "}")
        used += len(item) + 2
        if used > PLACEHOLDERS_SHOWN:
            shown.append("…")
            break
        shown.append(item)
    return ", ".join(shown)


def template_buttons(rows: list[TemplateRow]) -> list[tuple[int, str]]:
    """(id, name as shown) for the keyboards: the id goes into callback data, never the name."""
    return [(row.id, shown_name(row.name)) for row in rows]


def template_view(row: TemplateRow) -> tuple[str, InlineKeyboardMarkup]:
    names = placeholders(row.body)
    lines = [
        _("📄 <b>{name}</b>").format(name=html.quote(shown_name(row.name))),
        f"<blockquote>{quote_cut(row.body, BODY_SHOWN)}</blockquote>",
    ]
    if names:
        lines.append(_("Placeholders: {names}").format(names=placeholder_list(names)))
        lines.append(_("Use it in /bulk: pick it after sending the spreadsheet."))
    else:
        count = count_sms(row.body)
        lines.append(
            _("{encoding} · characters: {characters} · parts: {parts}").format(
                encoding=count.encoding, characters=count.characters, parts=count.parts
            )
        )
    return "\n".join(lines), template_keyboard(row.id, can_send=not names)


def ask_name_text() -> str:
    return (
        ngettext(
            "Send a name for the new template: up to {n} letter or digit; spaces, _ and - "
            "are allowed.",
            "Send a name for the new template: up to {n} letters or digits; spaces, _ and - "
            "are allowed.",
            TEMPLATE_NAME_MAX,
        ).format(n=TEMPLATE_NAME_MAX)
        + "\n"
        + _("/cancel stops.")
    )


def name_problem(name: str, taken: list[TemplateRow], own_id: int | None = None) -> str | None:
    if not valid_template_name(name):
        return ngettext(
            "A name is up to {n} letter or digit; spaces, _ and - are allowed. Try another.",
            "A name is up to {n} letters or digits; spaces, _ and - are allowed. Try another.",
            TEMPLATE_NAME_MAX,
        ).format(n=TEMPLATE_NAME_MAX)
    if any(row.name.casefold() == name.casefold() and row.id != own_id for row in taken):
        return _("You already have a template named «{name}». Choose another name.").format(
            name=html.quote(name)
        )
    return None
