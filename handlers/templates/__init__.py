"""/templates: named SMS texts per user. `{column}` placeholders are filled in /bulk; a template
without them can start /send with its text filled in.

- `dialog`: /templates and the typed steps (name, text, rename, edit);
- `buttons`: the list and each template's buttons;
- `render`: texts and views, pure functions (/bulk uses some of them, from here).
"""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command, StateFilter

from handlers.callbacks import ID_MAX, TemplateAction, TemplateCb
from handlers.filters import Accessible, AnyMenuButton
from handlers.states import TemplateForm
from handlers.templates.buttons import (
    change_button,
    delete_button,
    drop_button,
    list_button,
    new_button,
    open_button,
    send_button,
)
from handlers.templates.dialog import (
    body_received,
    edit_received,
    name_received,
    not_text,
    rename_received,
    show_templates,
)
from handlers.utils import AnswerCallbacks

__all__ = ["ACCESSIBLE", "create_router"]

# A tap on a message Telegram no longer shows the bot (InaccessibleMessage, e.g. older than
# 48 h) can edit nothing: such taps fall through to the "no longer active" answer.
ACCESSIBLE: Final = Accessible()


def create_router() -> Router:
    router = Router(name="templates")
    # Every button is answered once, after its handler; a handler sets the text, if any.
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(show_templates, Command("templates"))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(name_received, TemplateForm.name, *free_text)
    router.message.register(body_received, TemplateForm.body, *free_text)
    router.message.register(rename_received, TemplateForm.rename, *free_text)
    router.message.register(edit_received, TemplateForm.edit, *free_text)
    router.message.register(not_text, StateFilter(TemplateForm), ~F.text)
    buttons = (
        (TemplateAction.LIST, list_button),
        (TemplateAction.NEW, new_button),
        (TemplateAction.OPEN, open_button),
        (TemplateAction.SEND, send_button),
        (TemplateAction.RENAME, change_button),
        (TemplateAction.EDIT, change_button),
        (TemplateAction.DELETE, delete_button),
        (TemplateAction.DROP, drop_button),
    )
    tpl_fits = (F.tpl >= 0) & (F.tpl <= ID_MAX)
    for action, button in buttons:
        router.callback_query.register(
            button, TemplateCb.filter((F.action == action) & tpl_fits), ACCESSIBLE, Accessible()
        )
    return router
