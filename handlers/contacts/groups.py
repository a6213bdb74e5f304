"""Contact groups: list, create, rename, delete, members, who is in which, and sending to one
through the /bulk dialog (the same dry run, Start and job as a file)."""

from __future__ import annotations

import logging
from contextlib import suppress

from aiogram import Bot, html
from aiogram.exceptions import TelegramBadRequest
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.callback_answer import CallbackAnswer
from aiogram.utils.i18n import gettext as _

from handlers.bulk.dialog import offer_text
from handlers.bulk.lists import Lists
from handlers.callbacks import ContactCb, GroupCb
from handlers.config import HandlerSettings
from handlers.contacts.book import existing
from handlers.contacts.views import (
    GROUPS_PAGE,
    PAGE_SIZE,
    group_delete_view,
    group_view,
    groups_view,
    members_view,
    membership_view,
    pages,
    shown,
)
from handlers.plural import ngettext
from handlers.render import count
from handlers.states import ContactForm
from handlers.utils import edit_or_keep
from services.bulk_plan import SourceCache
from services.templating import TEMPLATE_NAME_MAX, valid_template_name
from services.upload_worker import UploadWorker
from storage import ContactRepo, GroupLimit, GroupRow, TemplateRepo
from storage.users import UserRow

logger = logging.getLogger(__name__)


def group_limit_text(limit: int) -> str:
    return ngettext(
        "You have {n} group, the most I keep. Delete it first.",
        "You have {n} groups, the most I keep. Delete one first.",
        limit,
    ).format(n=count(limit))


async def groups_page(
    contacts: ContactRepo, user_id: int, page: int, limit: int
) -> tuple[str, InlineKeyboardMarkup]:
    total = await contacts.count_groups(user_id)
    page = min(max(page, 0), pages(total, GROUPS_PAGE) - 1)
    rows = await contacts.groups(user_id, offset=page * GROUPS_PAGE, limit=GROUPS_PAGE)
    return groups_view(rows, total, page, can_add=total < limit)


async def list_button(
    query: CallbackQuery,
    callback_data: GroupCb,
    message: Message,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    limit = settings.contact_groups_limit
    text, keyboard = await groups_page(contacts, query.from_user.id, callback_data.page, limit)
    await edit_or_keep(message, text, keyboard)


async def existing_group(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> GroupRow | None:
    """The tapped group; if it is gone the tap is told and the groups shown instead."""
    group = await contacts.get_group(query.from_user.id, callback_data.id)
    if group is None:
        callback_answer.text = _("This group no longer exists.")
        limit = settings.contact_groups_limit
        with suppress(TelegramBadRequest):
            await edit_or_keep(message, *await groups_page(contacts, query.from_user.id, 0, limit))
    return group


async def open_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    group = await existing_group(
        query, callback_answer, callback_data, message, contacts, settings
    )
    if group is not None:
        await edit_or_keep(message, *group_view(group))


async def members_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    group = await existing_group(
        query, callback_answer, callback_data, message, contacts, settings
    )
    if group is None:
        return
    page = min(max(callback_data.page, 0), pages(group.size, PAGE_SIZE) - 1)
    rows = await contacts.page(
        query.from_user.id, offset=page * PAGE_SIZE, limit=PAGE_SIZE, group_id=group.id
    )
    await edit_or_keep(message, *members_view(group, rows, page))


async def new_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    message: Message,
    state: FSMContext,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    if await contacts.count_groups(query.from_user.id) >= settings.contact_groups_limit:
        callback_answer.text = group_limit_text(settings.contact_groups_limit)
        callback_answer.show_alert = True
        return
    await state.set_state(ContactForm.group_name)
    await state.set_data({})
    await message.answer(ask_name_text() + "\n" + _("/cancel stops."))


def ask_name_text() -> str:
    return ngettext(
        "Send a name for the new group: up to {n} letter or digit; spaces, _ and - are allowed.",
        "Send a name for the new group: up to {n} letters or digits; spaces, _ and - are allowed.",
        TEMPLATE_NAME_MAX,
    ).format(n=TEMPLATE_NAME_MAX)


def name_problem(name: str) -> str | None:
    if valid_template_name(name):
        return None
    return ngettext(
        "A name is up to {n} letter or digit; spaces, _ and - are allowed. Try another.",
        "A name is up to {n} letters or digits; spaces, _ and - are allowed. Try another.",
        TEMPLATE_NAME_MAX,
    ).format(n=TEMPLATE_NAME_MAX)


def taken_text(name: str) -> str:
    return _("You already have a group named «{name}». Choose another name.").format(
        name=html.quote(name)
    )


async def name_received(
    message: Message, state: FSMContext, contacts: ContactRepo, settings: HandlerSettings
) -> None:
    assert message.text is not None and message.from_user is not None
    name = " ".join(message.text.split())
    problem = name_problem(name)
    if problem is not None:
        await message.answer(problem + "\n" + _("/cancel stops."))
        return
    try:
        group = await contacts.create_group(
            message.from_user.id, name, limit=settings.contact_groups_limit
        )
    except GroupLimit:
        await state.clear()
        await message.answer(group_limit_text(settings.contact_groups_limit))
        return
    if group is None:
        await message.answer(taken_text(name) + "\n" + _("/cancel stops."))
        return
    await state.clear()
    text, keyboard = group_view(group)
    await message.answer(_("✅ Group created.") + "\n\n" + text, reply_markup=keyboard)


async def rename_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    state: FSMContext,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    group = await existing_group(
        query, callback_answer, callback_data, message, contacts, settings
    )
    if group is None:
        return
    await state.set_state(ContactForm.group_rename)
    await state.set_data({"group": group.id})
    await message.answer(
        _("Send the new name for «{name}».").format(name=html.quote(shown(group.name)))
        + "\n"
        + _("/cancel keeps the current one.")
    )


async def rename_received(message: Message, state: FSMContext, contacts: ContactRepo) -> None:
    assert message.text is not None and message.from_user is not None
    user_id = message.from_user.id
    group_id = (await state.get_data()).get("group")
    group = await contacts.get_group(user_id, group_id) if isinstance(group_id, int) else None
    if group is None:
        await state.clear()
        await message.answer(_("This group no longer exists."))
        return
    name = " ".join(message.text.split())
    problem = name_problem(name)
    if problem is None and not await contacts.rename_group(user_id, group.id, name):
        problem = taken_text(name)
    if problem is not None:
        await message.answer(problem + "\n" + _("/cancel keeps the current one."))
        return
    await state.clear()
    renamed = await contacts.get_group(user_id, group.id)
    if renamed is not None:
        text, keyboard = group_view(renamed)
        await message.answer(_("✅ Group renamed.") + "\n\n" + text, reply_markup=keyboard)


async def delete_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    group = await existing_group(
        query, callback_answer, callback_data, message, contacts, settings
    )
    if group is not None:
        await edit_or_keep(message, *group_delete_view(group))


async def drop_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    contacts: ContactRepo,
    settings: HandlerSettings,
) -> None:
    group = await existing_group(
        query, callback_answer, callback_data, message, contacts, settings
    )
    if group is None:
        return
    await contacts.delete_group(query.from_user.id, group.id)
    callback_answer.text = _("Group deleted.")
    limit = settings.contact_groups_limit
    await edit_or_keep(message, *await groups_page(contacts, query.from_user.id, 0, limit))


async def toggle_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    contacts: ContactRepo,
) -> None:
    """A tick in a contact's groups: puts it into the group or takes it out."""
    row = await existing(query, callback_answer, callback_data.contact, message, contacts)
    if row is None:
        return
    user_id = query.from_user.id
    member = await contacts.is_member(callback_data.id, row.id)
    # set_member checks that the group is the user's: an id from a forged button changes nothing.
    if not await contacts.set_member(user_id, callback_data.id, row.id, not member):
        callback_answer.text = _("This group no longer exists.")
    await show_membership(message, contacts, row.id, user_id, callback_data.page)


async def show_membership(
    message: Message, contacts: ContactRepo, contact_id: int, user_id: int, page: int
) -> None:
    row = await contacts.get(user_id, contact_id)
    if row is None:
        return
    total = await contacts.count_groups(user_id)
    page = min(max(page, 0), pages(total, GROUPS_PAGE) - 1)
    groups = await contacts.groups(
        user_id, offset=page * GROUPS_PAGE, limit=GROUPS_PAGE, contact_id=row.id
    )
    await edit_or_keep(message, *membership_view(row, groups, total, page))


async def send_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: GroupCb,
    message: Message,
    bot: Bot,
    state: FSMContext,
    bulk_sources: SourceCache,
    uploads: UploadWorker,
    templates: TemplateRepo,
    contacts: ContactRepo,
    settings: HandlerSettings,
    user_row: UserRow,
) -> None:
    """The group becomes the list of a /bulk dialog, which goes on with the text."""
    group = await existing_group(
        query, callback_answer, callback_data, message, contacts, settings
    )
    if group is None:
        return
    if group.size == 0:
        callback_answer.text = _("The group «{name}» is empty: add contacts to it first.").format(
            name=shown(group.name)
        )
        callback_answer.show_alert = True
        return
    lists = Lists.of(bot, bulk_sources, uploads, contacts, settings, user_row)
    source = await lists.group(group.id)
    if source is None:
        return
    await state.clear()
    lists.sources.drop(user_row.id)
    await offer_text(message, state, lists, templates, source, {"group": str(group.id)})


async def membership_button(
    query: CallbackQuery,
    callback_answer: CallbackAnswer,
    callback_data: ContactCb,
    message: Message,
    contacts: ContactRepo,
) -> None:
    """A contact's groups, each with a tick to put it in or take it out."""
    row = await existing(query, callback_answer, callback_data.id, message, contacts)
    if row is not None:
        await show_membership(message, contacts, row.id, row.user_id, callback_data.page)
