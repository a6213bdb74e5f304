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
    zone = State()  # a typed IANA time zone name
    quiet = State()  # typed quiet hours, "21:00-09:00" or "off"


class BulkForm(StatesGroup):
    source = State()  # waiting for a file or a pasted list of numbers
    text = State()  # waiting for the SMS text or a saved template
    review = State()  # the dry-run report is shown: Start or Cancel


class TemplateForm(StatesGroup):
    name = State()  # a new template's name
    body = State()  # a new template's text
    rename = State()  # a new name for `template_id`
    edit = State()  # a new text for `template_id`


class HistoryForm(StatesGroup):
    phone = State()  # the number /history searches for


class InsightsForm(StatesGroup):
    rate = State()  # the lowest delivery rate (percent) before a warning


class ExportForm(StatesGroup):
    range = State()  # waiting for two typed dates


class ScheduleForm(StatesGroup):
    when = State()  # a quick choice or a typed date and time for the draft in FSM data


class StopListForm(StatesGroup):
    add = State()  # numbers typed or pasted, or a file, to add
    remove = State()  # numbers typed or pasted to remove


class OtpForm(StatesGroup):
    phone = State()
    template = State()  # waiting for a tap on the template type
    company = State()  # the company name shown in the SMS
    code = State()  # typed digits, or "Generate"
    confirm = State()  # the summary with the gateway's warning: Send or Cancel


class ContactForm(StatesGroup):
    add = State()  # "name, phone" typed, or a shared Telegram contact
    import_file = State()  # a file or pasted lines; `group` in data: also into that group
    search = State()
    rename = State()  # a new name for contact `contact`
    fields = State()  # fields of contact `contact`
    group_name = State()  # a new group's name
    group_rename = State()  # a new name for group `group`
