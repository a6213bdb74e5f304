"""/contacts: a per-user address book with groups, and sending to a group through /bulk.

- `book`: the pages, search, and one contact (add, rename, fields, delete);
- `groups`: groups, who is in which, and "Send to this group";
- `files`: import (CSV/XLSX/pasted lines) and export;
- `views`: the texts and keyboards, pure functions of what the callers read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter

from handlers.callbacks import ContactAction, ContactCb, GroupAction, GroupCb
from handlers.contacts import book, files, groups
from handlers.filters import Accessible, AnyMenuButton, MenuButton
from handlers.keyboards import BTN_CONTACTS
from handlers.states import ContactForm
from handlers.templates import ACCESSIBLE
from handlers.utils import AnswerCallbacks

CONTACT_BUTTONS: tuple[tuple[ContactAction, Callable[..., Any]], ...] = (
    (ContactAction.LIST, book.list_button),
    (ContactAction.OPEN, book.open_button),
    (ContactAction.ADD, book.add_button),
    (ContactAction.SEARCH, book.search_button),
    (ContactAction.RENAME, book.change_button),
    (ContactAction.FIELDS, book.change_button),
    (ContactAction.DELETE, book.delete_button),
    (ContactAction.DROP, book.drop_button),
    (ContactAction.GROUPS, groups.membership_button),
    (ContactAction.IMPORT, files.import_button),
    (ContactAction.EXPORT, files.export_button),
)
GROUP_BUTTONS: tuple[tuple[GroupAction, Callable[..., Any]], ...] = (
    (GroupAction.LIST, groups.list_button),
    (GroupAction.OPEN, groups.open_button),
    (GroupAction.NEW, groups.new_button),
    (GroupAction.MEMBERS, groups.members_button),
    (GroupAction.RENAME, groups.rename_button),
    (GroupAction.DELETE, groups.delete_button),
    (GroupAction.DROP, groups.drop_button),
    (GroupAction.TOGGLE, groups.toggle_button),
    (GroupAction.SEND, groups.send_button),
    (GroupAction.IMPORT, files.group_import_button),
)


def create_router() -> Router:
    router = Router(name="contacts")
    # Buttons that need no text are answered after their handler; those that show one
    # answer themselves and disable the middleware's answer.
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(book.show_book, Command("contacts"))
    router.message.register(book.show_book, MenuButton(BTN_CONTACTS))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(book.add_typed, ContactForm.add, *free_text)
    router.message.register(book.add_shared, ContactForm.add, F.contact)
    router.message.register(book.add_not_understood, ContactForm.add, ~F.text)
    router.message.register(book.search_received, ContactForm.search, *free_text)
    router.message.register(book.rename_received, ContactForm.rename, *free_text)
    router.message.register(book.fields_received, ContactForm.fields, *free_text)
    router.message.register(files.file_received, ContactForm.import_file, F.document)
    router.message.register(files.lines_pasted, ContactForm.import_file, *free_text)
    router.message.register(groups.name_received, ContactForm.group_name, *free_text)
    router.message.register(groups.rename_received, ContactForm.group_rename, *free_text)
    router.message.register(book.not_text, StateFilter(ContactForm), ~F.text)
    on_message = (ACCESSIBLE, Accessible())
    for action, button in CONTACT_BUTTONS:
        router.callback_query.register(button, ContactCb.filter(F.action == action), *on_message)
    for group_action, group_button in GROUP_BUTTONS:
        router.callback_query.register(
            group_button, GroupCb.filter(F.action == group_action), *on_message
        )
    return router
