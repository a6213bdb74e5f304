"""FSM states of every dialog; the SQLite storage keeps them across restarts."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class TokenForm(StatesGroup):
    token = State()


class SendForm(StatesGroup):
    phone = State()
    text = State()
    preview = State()


class SettingsForm(StatesGroup):
    sender = State()
    threshold = State()


class BulkForm(StatesGroup):
    source = State()  # waiting for a file or a pasted list of numbers
    text = State()  # waiting for the SMS text or a saved template
    review = State()  # the dry-run report is shown: Start or Cancel


class TemplateForm(StatesGroup):
    name = State()  # a new template's name
    body = State()  # a new template's text
    rename = State()  # a new name for `template_id`
    edit = State()  # a new text for `template_id`


class OtpForm(StatesGroup):
    phone = State()
    template = State()  # waiting for a tap on the template type
    company = State()  # the company name shown in the SMS
    code = State()  # typed digits, or "Generate"
    confirm = State()  # the summary with the gateway's warning: Send or Cancel
