"""Keyboards; every label goes through gettext in the user's language."""

from __future__ import annotations

from functools import lru_cache
from typing import Final

from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder, ReplyKeyboardBuilder

from handlers.callbacks import (
    BalanceCb,
    BulkAction,
    BulkCb,
    GroupAction,
    GroupCb,
    JobAction,
    JobCb,
    LanguageCb,
    LogoutCb,
    OtpAction,
    OtpCb,
    SendAction,
    SendCb,
    SettingsAction,
    SettingsCb,
    SmsCb,
    StopAction,
    StopCb,
    TemplateAction,
    TemplateCb,
    fits_id,
)
from services.i18n import N_
from services.languages import Language

# Menu labels are msgids: handlers match them in every language (see filters.MenuButton).
BTN_SEND: Final = N_("📤 Send SMS")
BTN_BALANCE: Final = N_("💰 Balance")
BTN_HISTORY: Final = N_("📜 History")
BTN_STATUS: Final = N_("🔎 Status")
BTN_SETTINGS: Final = N_("⚙️ Settings")
BTN_CONTACTS: Final = N_("📇 Contacts")
BTN_OTP: Final = N_("🔐 One-time code")

BTN_CANCEL: Final = N_("✖️ Cancel")
BTN_MY_NUMBER: Final = N_("📱 My own number")
MENU_BUTTONS: Final = (
    BTN_SEND,
    BTN_BALANCE,
    BTN_HISTORY,
    BTN_STATUS,
    BTN_SETTINGS,
    BTN_CONTACTS,
    BTN_OTP,
    BTN_CANCEL,
)

LANGUAGE_NAMES: Final[dict[Language, str]] = {
    "uz": "🇺🇿 Oʻzbekcha",
    "ru": "🇷🇺 Русский",
    "en": "🇬🇧 English",
}


def main_menu() -> ReplyKeyboardMarkup:
    builder = ReplyKeyboardBuilder()
    builder.button(text=_(BTN_SEND))
    builder.button(text=_(BTN_BALANCE))
    builder.button(text=_(BTN_HISTORY))
    builder.button(text=_(BTN_STATUS))
    builder.button(text=_(BTN_SETTINGS))
    builder.button(text=_(BTN_CONTACTS))
    builder.button(text=_(BTN_OTP))
    builder.adjust(1, 2, 2, 2)
    return builder.as_markup(resize_keyboard=True, is_persistent=True)


def balance_keyboard() -> InlineKeyboardMarkup:
    return _refresh_keyboard(_("🔄 Refresh"))


@lru_cache(maxsize=8)
def _refresh_keyboard(label: str) -> InlineKeyboardMarkup:
    """One markup per language, shared by every /balance answer (nothing changes it): the
    builder's copies were a tenth of the /balance handler's CPU (make bench, section 1)."""
    button = InlineKeyboardButton(text=label, callback_data=BalanceCb().pack())
    return InlineKeyboardMarkup(inline_keyboard=[[button]])


def language_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        builder.button(text=name, callback_data=LanguageCb(code=code))
    builder.adjust(3)
    return builder.as_markup()


def logout_keyboard() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("Yes, delete everything"), callback_data=LogoutCb(confirm=True))
    builder.button(text=_("No, keep it"), callback_data=LogoutCb(confirm=False))
    builder.adjust(1)
    return builder.as_markup()


def phone_keyboard() -> ReplyKeyboardMarkup:
    builder = ReplyKeyboardBuilder()
    builder.add(KeyboardButton(text=_(BTN_MY_NUMBER), request_contact=True))
    builder.button(text=_(BTN_CANCEL))
    builder.adjust(1)
    return builder.as_markup(resize_keyboard=True, one_time_keyboard=True)


def preview_keyboard(draft: int, *, cheaper: bool, can_send: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if can_send:
        builder.button(
            text=_("✅ Send"), callback_data=SendCb(action=SendAction.SEND, draft=draft)
        )
        builder.button(
            text=_("🕒 Send later"), callback_data=SendCb(action=SendAction.LATER, draft=draft)
        )
    if cheaper:
        builder.button(
            text=_("🪶 Cheaper spelling"),
            callback_data=SendCb(action=SendAction.CHEAP, draft=draft),
        )
    builder.button(
        text=_("✏️ Change text"), callback_data=SendCb(action=SendAction.TEXT, draft=draft)
    )
    builder.button(
        text=_("📞 Change number"), callback_data=SendCb(action=SendAction.PHONE, draft=draft)
    )
    builder.button(text=_("✖️ Cancel"), callback_data=SendCb(action=SendAction.CANCEL, draft=draft))
    builder.adjust(1)
    return builder.as_markup()


def sent_keyboard(sms_id: int | None, outbox_id: int) -> InlineKeyboardMarkup:
    """Under a send result: refresh by the gateway's id, or look the outbox row up when the
    gateway's answer was lost (the status handler reconciles it through the history)."""
    builder = InlineKeyboardBuilder()
    if sms_id is not None and fits_id(sms_id):
        builder.button(
            text=_("🔄 Refresh status"), callback_data=SmsCb(sms_id=sms_id, refresh=True)
        )
    else:
        builder.button(text=_("🔎 Check status"), callback_data=SmsCb(outbox_id=outbox_id))
    return builder.as_markup()


def settings_keyboard(has_own_sender: bool, *, alerts_on: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("✏️ Change sender"), callback_data=SettingsCb(action=SettingsAction.SENDER)
    )
    if has_own_sender:
        builder.button(
            text=_("↩️ Default sender"), callback_data=SettingsCb(action=SettingsAction.RESET)
        )
    builder.button(
        text=_("🔔 Alert threshold"), callback_data=SettingsCb(action=SettingsAction.THRESHOLD)
    )
    builder.button(
        text=_("🔕 Turn alerts off") if alerts_on else _("🔔 Turn alerts on"),
        callback_data=SettingsCb(action=SettingsAction.ALERTS),
    )
    builder.button(
        text=_("📬 Delivery results"), callback_data=SettingsCb(action=SettingsAction.NOTIFY)
    )
    builder.button(text=_("🌐 Language"), callback_data=SettingsCb(action=SettingsAction.LANG))
    builder.button(text=_("🌍 Time zone"), callback_data=SettingsCb(action=SettingsAction.ZONE))
    builder.button(text=_("🌙 Quiet hours"), callback_data=SettingsCb(action=SettingsAction.QUIET))
    builder.button(
        text=_("📈 Failure watch and digest"),
        callback_data=SettingsCb(action=SettingsAction.INSIGHTS),
    )
    builder.button(text=_("⛔ Stop list"), callback_data=StopCb(action=StopAction.OPEN))
    builder.adjust(1)
    return builder.as_markup()


# --- templates and bulk sending ----------------------------------------------------------------


def templates_keyboard(templates: list[tuple[int, str]], *, can_add: bool) -> InlineKeyboardMarkup:
    """One button per (id, name), then "New template"."""
    builder = InlineKeyboardBuilder()
    for template_id, name in templates:
        builder.button(
            text=f"📄 {name}",
            callback_data=TemplateCb(action=TemplateAction.OPEN, tpl=template_id),
        )
    if can_add:
        builder.button(
            text=_("➕ New template"), callback_data=TemplateCb(action=TemplateAction.NEW)
        )
    builder.adjust(1)
    return builder.as_markup()


def template_keyboard(template_id: int, *, can_send: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if can_send:
        builder.button(
            text=_("📤 Send with this text"),
            callback_data=TemplateCb(action=TemplateAction.SEND, tpl=template_id),
        )
    builder.button(
        text=_("✏️ Rename"),
        callback_data=TemplateCb(action=TemplateAction.RENAME, tpl=template_id),
    )
    builder.button(
        text=_("📝 Edit text"),
        callback_data=TemplateCb(action=TemplateAction.EDIT, tpl=template_id),
    )
    builder.button(
        text=_("🗑 Delete"),
        callback_data=TemplateCb(action=TemplateAction.DELETE, tpl=template_id),
    )
    builder.button(text=_("⬅️ All templates"), callback_data=TemplateCb(action=TemplateAction.LIST))
    if can_send:
        builder.adjust(1, 2, 1, 1)
    else:
        builder.adjust(2, 1, 1)
    return builder.as_markup()


def template_delete_keyboard(template_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("Yes, delete"),
        callback_data=TemplateCb(action=TemplateAction.DROP, tpl=template_id),
    )
    builder.button(
        text=_("No, keep it"),
        callback_data=TemplateCb(action=TemplateAction.OPEN, tpl=template_id),
    )
    builder.adjust(2)
    return builder.as_markup()


def bulk_templates_keyboard(draft: int, templates: list[tuple[int, str]]) -> InlineKeyboardMarkup:
    """Saved templates to pick as the text of a bulk send."""
    builder = InlineKeyboardBuilder()
    for template_id, name in templates:
        builder.button(
            text=f"📄 {name}",
            callback_data=BulkCb(action=BulkAction.TEMPLATE, draft=draft, tpl=template_id),
        )
    builder.adjust(1)
    return builder.as_markup()


def bulk_start_keyboard() -> InlineKeyboardMarkup:
    """Under /bulk's first question: a contact group instead of a file."""
    builder = InlineKeyboardBuilder()
    builder.button(text=_("👥 Send to a group"), callback_data=GroupCb(action=GroupAction.LIST))
    return builder.as_markup()


def bulk_review_keyboard(
    draft: int, *, can_start: bool, cheaper: bool = False
) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if can_start:
        builder.button(
            text=_("🚀 Start"), callback_data=BulkCb(action=BulkAction.START, draft=draft)
        )
        builder.button(
            text=_("🕒 Send later"), callback_data=BulkCb(action=BulkAction.LATER, draft=draft)
        )
    builder.button(text=_("✖️ Cancel"), callback_data=BulkCb(action=BulkAction.CANCEL, draft=draft))
    if cheaper:
        builder.button(
            text=_("🪶 Cheaper spelling"),
            callback_data=BulkCb(action=BulkAction.CHEAP, draft=draft),
        )
    builder.adjust(2)
    return builder.as_markup()


def bulk_abroad_keyboard(draft: int, *, later: bool = False) -> InlineKeyboardMarkup:
    """Start (or Send later) once more, the rows abroad included knowingly (see the dry run's
    question)."""
    builder = InlineKeyboardBuilder()
    if later:
        builder.button(
            text=_("🕒 Send later, rows abroad included"),
            callback_data=BulkCb(action=BulkAction.LATER_INTL, draft=draft),
        )
    else:
        builder.button(
            text=_("🚀 Start, rows abroad included"),
            callback_data=BulkCb(action=BulkAction.INTL, draft=draft),
        )
    builder.button(text=_("✖️ Cancel"), callback_data=BulkCb(action=BulkAction.CANCEL, draft=draft))
    builder.adjust(1)
    return builder.as_markup()


def job_keyboard(job_id: int, state: str) -> InlineKeyboardMarkup | None:
    """Buttons for a job in `state`: none while it waits to start."""
    builder = InlineKeyboardBuilder()
    if state == "running":
        builder.button(
            text=_("⏸ Pause"), callback_data=JobCb(action=JobAction.PAUSE, job_id=job_id)
        )
        builder.button(
            text=_("✖️ Cancel"), callback_data=JobCb(action=JobAction.CANCEL, job_id=job_id)
        )
    elif state == "paused":
        builder.button(
            text=_("▶️ Resume"), callback_data=JobCb(action=JobAction.RESUME, job_id=job_id)
        )
        builder.button(
            text=_("✖️ Cancel"), callback_data=JobCb(action=JobAction.CANCEL, job_id=job_id)
        )
    elif state in ("done", "cancelled"):
        builder.button(
            text=_("📎 Result file"), callback_data=JobCb(action=JobAction.FILE, job_id=job_id)
        )
    else:
        return None
    builder.adjust(2)
    return builder.as_markup()


def open_job_keyboard(job_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("📦 Open job #{id}").format(id=job_id),
        callback_data=JobCb(action=JobAction.OPEN, job_id=job_id),
    )
    return builder.as_markup()


def jobs_keyboard(job_ids: list[int]) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for job_id in job_ids:
        builder.button(
            text=f"#{job_id}", callback_data=JobCb(action=JobAction.OPEN, job_id=job_id)
        )
    builder.adjust(5)
    return builder.as_markup()


# --- the stop list -----------------------------------------------------------------------------


def stoplist_keyboard(
    entries: list[tuple[int, str]], page: int, *, more: bool
) -> InlineKeyboardMarkup:
    """One remove button per (entry id, number as shown), paging, then the list's actions."""
    builder = InlineKeyboardBuilder()
    sizes: list[int] = []
    for entry_id, shown in entries:
        builder.button(
            text=f"❌ {shown}",
            callback_data=StopCb(action=StopAction.DROP, entry=entry_id, page=page),
        )
        sizes.append(1)
    paging = 0
    if page > 0:
        builder.button(text="◀️", callback_data=StopCb(action=StopAction.PAGE, page=page - 1))
        paging += 1
    if more:
        builder.button(text="▶️", callback_data=StopCb(action=StopAction.PAGE, page=page + 1))
        paging += 1
    if paging:
        sizes.append(paging)
    actions = [(StopAction.ADD, _("➕ Add")), (StopAction.IMPORT, _("📥 Import a file"))]
    if entries:
        actions += [(StopAction.REMOVE, _("➖ Remove")), (StopAction.EXPORT, _("📤 Export"))]
    for action, label in actions:
        builder.button(text=label, callback_data=StopCb(action=action, page=page))
    sizes += [2] * ((len(actions) + 1) // 2)
    builder.adjust(*sizes)
    return builder.as_markup()


def unstop_keyboard(entry_id: int) -> InlineKeyboardMarkup:
    """Under a send refused for the stop list."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("🗑 Remove from stop list"),
        callback_data=StopCb(action=StopAction.UNSTOP, entry=entry_id),
    )
    return builder.as_markup()


# --- /otp ----------------------------------------------------------------------------------------


def otp_template_keyboard(draft: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("1 — confirm an operation"),
        callback_data=OtpCb(action=OtpAction.TYPE, draft=draft, tt=1),
    )
    builder.button(
        text=_("2 — password"), callback_data=OtpCb(action=OtpAction.TYPE, draft=draft, tt=2)
    )
    builder.button(text=_("✖️ Cancel"), callback_data=OtpCb(action=OtpAction.CANCEL, draft=draft))
    builder.adjust(1)
    return builder.as_markup()


def otp_code_keyboard(draft: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("🎲 Generate a code"), callback_data=OtpCb(action=OtpAction.GENERATE, draft=draft)
    )
    builder.button(text=_("✖️ Cancel"), callback_data=OtpCb(action=OtpAction.CANCEL, draft=draft))
    builder.adjust(1)
    return builder.as_markup()


def otp_confirm_keyboard(draft: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("✅ Send the code"), callback_data=OtpCb(action=OtpAction.SEND, draft=draft)
    )
    builder.button(text=_("✖️ Cancel"), callback_data=OtpCb(action=OtpAction.CANCEL, draft=draft))
    builder.adjust(1)
    return builder.as_markup()
