"""Texts and keyboards of /contacts: pure functions of the rows the handlers read."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from handlers.bulk.dry_run import reason_text
from handlers.callbacks import ContactAction, ContactCb, GroupAction, GroupCb
from handlers.plural import ngettext
from handlers.render import count
from handlers.send_texts import phone_error_text
from handlers.sms_render import clip, one_line
from handlers.templates.render import placeholder_list
from services.bulk_plan import Skipped
from services.contacts import (
    FIELD_NAME_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    NAME,
    NAME_MAX,
    PHONE,
    TYPED_MAX,
    BadRow,
    ContactInputError,
    ContactsFile,
)
from services.phones import InvalidPhone, PhoneError, normalize_phone
from storage import ContactRow, GroupRow, Imported

PAGE_SIZE: Final = 10
GROUPS_PAGE: Final = 20
SEARCH_SHOWN: Final = 20
BAD_SHOWN: Final = 10
# A button shows a name and a number; Telegram cuts long labels anyway.
LABEL_NAME: Final = 32
# The card stays far within Telegram's 4096 characters whatever an import brought.
FIELDS_SHOWN: Final = 10
VALUE_SHOWN: Final = 100
GROUPS_SHOWN: Final = 10

ADD_EXAMPLE: Final = "Ali Valiyev, +998 90 123 45 67"


def shown(name: str, limit: int = LABEL_NAME) -> str:
    """A name as shown (raw, escape it after): one line, clipped."""
    return clip(one_line(name), limit)


def phone_shown(digits: str) -> str:
    """ "+998 90 123 45 67" for the stored "998901234567"."""
    try:
        return normalize_phone("+" + digits).international
    except InvalidPhone:
        return "+" + digits


def pages(total: int, size: int) -> int:
    return max(1, -(-total // size))


def _nav(
    builder: InlineKeyboardBuilder, page: int, total: int, size: int, cb: CallbackData
) -> int:
    """◀️ ▶️ for a paged list (`cb` with a `page` field); returns how many buttons it added."""
    added = 0
    for step, label in ((-1, "◀️"), (1, "▶️")):
        if 0 <= page + step < pages(total, size):
            builder.button(text=label, callback_data=cb.model_copy(update={"page": page + step}))
            added += 1
    return added


# --- the address book -------------------------------------------------------------------------


def book_view(
    rows: Sequence[ContactRow], total: int, groups: int, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    lines = [_("📇 <b>Contacts</b>: {n} · groups: {g}").format(n=count(total), g=count(groups))]
    if total:
        lines.append(
            _("Page {page} of {pages}. Tap a contact to open it.").format(
                page=page + 1, pages=pages(total, PAGE_SIZE)
            )
        )
    else:
        lines.append(
            _(
                "No contacts yet: add one, or import a CSV/Excel file or a pasted list. "
                "Their names and other columns fill the {name} placeholders of a group send."
            ).format(name="{" + NAME + "}")
        )
    builder = InlineKeyboardBuilder()
    sizes = _contact_buttons(builder, rows)
    sizes.append(_nav(builder, page, total, PAGE_SIZE, ContactCb(action=ContactAction.LIST)))
    builder.button(text=_("➕ Add"), callback_data=ContactCb(action=ContactAction.ADD))
    builder.button(text=_("📥 Import"), callback_data=ContactCb(action=ContactAction.IMPORT))
    builder.button(text=_("🔎 Search"), callback_data=ContactCb(action=ContactAction.SEARCH))
    builder.button(text=_("👥 Groups"), callback_data=GroupCb(action=GroupAction.LIST))
    sizes += [2, 2]
    if total:
        builder.button(
            text=_("📤 Export CSV"), callback_data=ContactCb(action=ContactAction.EXPORT, page=0)
        )
        builder.button(
            text=_("📤 Export Excel"), callback_data=ContactCb(action=ContactAction.EXPORT, page=1)
        )
        sizes.append(2)
    builder.adjust(*[s for s in sizes if s])
    return "\n".join(lines), builder.as_markup()


def _contact_buttons(builder: InlineKeyboardBuilder, rows: Sequence[ContactRow]) -> list[int]:
    for row in rows:
        builder.button(
            text=f"{shown(row.name)} · {phone_shown(row.phone)}",
            callback_data=ContactCb(action=ContactAction.OPEN, id=row.id),
        )
    return [1] * len(rows)


def search_view(rows: Sequence[ContactRow], query: str) -> tuple[str, InlineKeyboardMarkup]:
    if rows:
        text = _("🔎 Found for «{query}»: {n}").format(
            query=html.quote(shown(query)), n=count(len(rows))
        )
        if len(rows) >= SEARCH_SHOWN:
            text += "\n" + _("Showing the first {n}: type more of the name or number.").format(
                n=SEARCH_SHOWN
            )
    else:
        text = _("Nothing found for «{query}». Send a shorter part, or /cancel.").format(
            query=html.quote(shown(query))
        )
    builder = InlineKeyboardBuilder()
    sizes = _contact_buttons(builder, rows)
    builder.button(text=_("⬅️ Contacts"), callback_data=ContactCb(action=ContactAction.LIST))
    builder.adjust(*sizes, 1)
    return text, builder.as_markup()


def contact_view(row: ContactRow, groups: Sequence[str]) -> tuple[str, InlineKeyboardMarkup]:
    lines = [f"👤 <b>{html.quote(shown(row.name, NAME_MAX))}</b>", phone_shown(row.phone)]
    for name, value in list(row.fields.items())[:FIELDS_SHOWN]:
        key, text = shown(name, FIELD_NAME_MAX), shown(value, VALUE_SHOWN)
        lines.append(f"{html.quote(key)}: {html.quote(text)}")
    if groups:
        names = ", ".join(shown(g) for g in groups[:GROUPS_SHOWN])
        if len(groups) > GROUPS_SHOWN:
            names += ", …"
        lines.append(_("Groups: {names}").format(names=html.quote(names)))
    lines.append(
        _("In a group send: {names}").format(names=placeholder_list([NAME, PHONE, *row.fields]))
    )
    builder = InlineKeyboardBuilder()
    for action, label in (
        (ContactAction.RENAME, _("✏️ Rename")),
        (ContactAction.FIELDS, _("📝 Fields")),
        (ContactAction.GROUPS, _("👥 Groups")),
        (ContactAction.DELETE, _("🗑 Delete")),
    ):
        builder.button(text=label, callback_data=ContactCb(action=action, id=row.id))
    builder.button(text=_("⬅️ Contacts"), callback_data=ContactCb(action=ContactAction.LIST))
    builder.adjust(2, 2, 1)
    return "\n".join(lines), builder.as_markup()


def contact_delete_view(row: ContactRow) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("Yes, delete"), callback_data=ContactCb(action=ContactAction.DROP, id=row.id)
    )
    builder.button(
        text=_("No, keep it"), callback_data=ContactCb(action=ContactAction.OPEN, id=row.id)
    )
    builder.adjust(1)
    text = _("Delete the contact «{name}» ({phone})?").format(
        name=html.quote(shown(row.name)), phone=phone_shown(row.phone)
    )
    return text, builder.as_markup()


def membership_view(
    row: ContactRow, groups: Sequence[tuple[GroupRow, bool]], total: int, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    for group, member in groups:
        mark = "✅" if member else "▫️"
        builder.button(
            text=f"{mark} {shown(group.name)}",
            callback_data=GroupCb(
                action=GroupAction.TOGGLE, id=group.id, contact=row.id, page=page
            ),
        )
    nav = _nav(
        builder, page, total, GROUPS_PAGE, ContactCb(action=ContactAction.GROUPS, id=row.id)
    )
    builder.button(text=_("⬅️ Back"), callback_data=ContactCb(action=ContactAction.OPEN, id=row.id))
    builder.adjust(*([1] * len(groups)), *([nav] if nav else []), 1)
    if total:
        text = _("Groups of «{name}»: tap one to put the contact in or take it out.")
    else:
        text = _("You have no groups yet. Create one in 👥 Groups, then come back here.")
    return text.format(name=html.quote(shown(row.name))), builder.as_markup()


# --- groups -----------------------------------------------------------------------------------


def groups_view(
    groups: Sequence[tuple[GroupRow, bool]], total: int, page: int, *, can_add: bool
) -> tuple[str, InlineKeyboardMarkup]:
    if total:
        text = _("👥 <b>Groups</b>: {n}. Tap one to open it or send to it.").format(n=count(total))
    else:
        text = _(
            "👥 You have no groups yet. A group is a list of your contacts that one text "
            "goes to, with each contact's name filled in."
        )
    builder = InlineKeyboardBuilder()
    for group, _member in groups:
        builder.button(
            text=f"{shown(group.name)} · {count(group.size)}",
            callback_data=GroupCb(action=GroupAction.OPEN, id=group.id),
        )
    nav = _nav(builder, page, total, GROUPS_PAGE, GroupCb(action=GroupAction.LIST))
    if can_add:
        builder.button(text=_("➕ New group"), callback_data=GroupCb(action=GroupAction.NEW))
    builder.button(text=_("⬅️ Contacts"), callback_data=ContactCb(action=ContactAction.LIST))
    builder.adjust(*([1] * len(groups)), *([nav] if nav else []), 1)
    return text, builder.as_markup()


def group_view(group: GroupRow) -> tuple[str, InlineKeyboardMarkup]:
    text = ngettext(
        "👥 <b>{name}</b>: {n} contact", "👥 <b>{name}</b>: {n} contacts", group.size
    ).format(name=html.quote(shown(group.name)), n=count(group.size))
    builder = InlineKeyboardBuilder()
    for action, label in (
        (GroupAction.SEND, _("📤 Send to this group")),
        (GroupAction.MEMBERS, _("👁 Members")),
        (GroupAction.IMPORT, _("📥 Import into this group")),
        (GroupAction.RENAME, _("✏️ Rename")),
        (GroupAction.DELETE, _("🗑 Delete")),
        (GroupAction.LIST, _("⬅️ Groups")),
    ):
        builder.button(text=label, callback_data=GroupCb(action=action, id=group.id))
    builder.adjust(1, 2, 2, 1)
    return text, builder.as_markup()


def members_view(
    group: GroupRow, rows: Sequence[ContactRow], page: int
) -> tuple[str, InlineKeyboardMarkup]:
    if group.size:
        text = ngettext(
            "👥 <b>{name}</b>: {n} contact. Tap it to open it.",
            "👥 <b>{name}</b>: {n} contacts. Tap one to open it.",
            group.size,
        ).format(name=html.quote(shown(group.name)), n=count(group.size))
    else:
        text = _(
            "The group «{name}» is empty. Import a file into it, or open a contact and tick "
            "the group under 👥 Groups."
        ).format(name=html.quote(shown(group.name)))
    builder = InlineKeyboardBuilder()
    sizes = _contact_buttons(builder, rows)
    cb = GroupCb(action=GroupAction.MEMBERS, id=group.id)
    sizes.append(_nav(builder, page, group.size, PAGE_SIZE, cb))
    builder.button(text=_("⬅️ Back"), callback_data=GroupCb(action=GroupAction.OPEN, id=group.id))
    builder.adjust(*[s for s in sizes if s], 1)
    return text, builder.as_markup()


def group_delete_view(group: GroupRow) -> tuple[str, InlineKeyboardMarkup]:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("Yes, delete"), callback_data=GroupCb(action=GroupAction.DROP, id=group.id)
    )
    builder.button(
        text=_("No, keep it"), callback_data=GroupCb(action=GroupAction.OPEN, id=group.id)
    )
    builder.adjust(1)
    text = _("Delete the group «{name}»? Its contacts stay in your address book.").format(
        name=html.quote(shown(group.name))
    )
    return text, builder.as_markup()


# --- input problems and the import's summary ---------------------------------------------------


def input_error_text(exc: ContactInputError) -> str:
    name = html.quote(exc.detail)
    texts = {
        "too_long": ngettext(
            "That is too long: at most {n} character.",
            "That is too long: at most {n} characters.",
            TYPED_MAX,
        ).format(n=TYPED_MAX),
        "no_phone": _(
            "I found no valid phone number in it. Send «name, phone», e.g. «{example}»."
        ).format(example=ADD_EXAMPLE),
        "no_name": _("The name is missing. Send «name, phone», e.g. «{example}».").format(
            example=ADD_EXAMPLE
        ),
        "name_long": ngettext(
            "The name is too long: at most {n} character.",
            "The name is too long: at most {n} characters.",
            NAME_MAX,
        ).format(n=NAME_MAX),
        "field_format": _(
            "Write each field on its own line as «name: value», e.g. «city: Tashkent»."
        ),
        "field_name": ngettext(
            "A field name is 1 to {n} character.",
            "A field name is 1 to {n} characters.",
            FIELD_NAME_MAX,
        ).format(n=FIELD_NAME_MAX),
        "field_reserved": _(
            "Every contact has «{name}» already; choose another field name."
        ).format(name=name),
        "value_long": ngettext(
            "The value of «{name}» is too long: at most {n} character.",
            "The value of «{name}» is too long: at most {n} characters.",
            FIELD_VALUE_MAX,
        ).format(name=name, n=FIELD_VALUE_MAX),
        "too_many_fields": ngettext(
            "A contact has at most {n} field.",
            "A contact has at most {n} fields.",
            FIELDS_MAX,
        ).format(n=FIELDS_MAX),
    }
    return texts[exc.problem]


def shared_phone_error_text(reason: PhoneError) -> str:
    return (
        phone_error_text(reason)
        + " "
        + _("Send «name, phone» instead, e.g. «{example}».").format(example=ADD_EXAMPLE)
    )


def bad_row_text(bad: BadRow) -> str:
    if bad.reason == "name_long":
        reason = ngettext(
            "name longer than {n} character",
            "name longer than {n} characters",
            NAME_MAX,
        ).format(n=NAME_MAX)
    elif bad.reason == "value_long":
        reason = ngettext(
            "a value longer than {n} character",
            "a value longer than {n} characters",
            FIELD_VALUE_MAX,
        ).format(n=FIELD_VALUE_MAX)
    else:
        reason = reason_text(Skipped(bad.row_no, bad.value, bad.reason), 0)
    return _("row {row}: «{value}» — {reason}").format(
        row=bad.row_no, value=html.quote(shown(bad.value)), reason=reason
    )


def import_summary(read: ContactsFile, done: Imported, group: GroupRow | None) -> str:
    lines = [_("📥 <b>Import done</b>"), _("Rows read: {n}").format(n=count(read.rows_read))]
    lines.append(_("➕ Added: {n}").format(n=count(done.added)))
    lines.append(_("🔄 Updated: {n}").format(n=count(done.updated)))
    if read.duplicates:
        lines.append(_("♻️ Duplicates in the file: {n}").format(n=count(read.duplicates)))
    if read.bad:
        lines.append(_("❌ Not imported: {n}").format(n=count(len(read.bad))))
        lines += ["  " + bad_row_text(b) for b in read.bad[:BAD_SHOWN]]
        if len(read.bad) > BAD_SHOWN:
            lines.append("  " + _("…and {n} more.").format(n=count(len(read.bad) - BAD_SHOWN)))
    if done.capped:
        lines.append(
            ngettext(
                "⚠️ {n} contact would have more than {max} fields: the columns past that "
                "were not saved for it.",
                "⚠️ {n} contacts would have more than {max} fields: the columns past that "
                "were not saved for them.",
                done.capped,
            ).format(n=count(done.capped), max=FIELDS_MAX)
        )
    if read.name_column is None:
        lines.append(_("The file has no name column: new contacts are named by their number."))
    if group is not None:
        lines.append(
            _("All of them are in the group «{name}».").format(name=html.quote(shown(group.name)))
        )
    return "\n".join(lines)


def nothing_usable_text(read: ContactsFile) -> str:
    lines = [_("Nothing in it can be imported: no row has a valid phone number.")]
    lines += ["  " + bad_row_text(b) for b in read.bad[:BAD_SHOWN]]
    lines.append(_("Send another file or list, or /cancel."))
    return "\n".join(lines)
