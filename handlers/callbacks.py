"""CallbackData classes: short prefixes, ids only (the packed value must stay under 64 bytes)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from services.languages import Language
from storage.db import SQLITE_INT_MAX

# Database ids travel in callback data, which a client can forge: out-of-range values
# fail unpacking (the button then counts as stale) instead of overflowing SQLite.
ID_MAX: Final = SQLITE_INT_MAX
Id = Annotated[int, Field(ge=0, le=ID_MAX)]
Page = Annotated[int, Field(ge=-1, le=1_000_000)]


def fits_id(value: int) -> bool:
    """Whether `value` can travel as an Id: the gateway's sms_id is not bounded by anything
    we control, and a button built from a larger one would fail after the SMS went out."""
    return 0 <= value <= ID_MAX


class BalanceCb(CallbackData, prefix="bal"):
    """The "Refresh" button under a balance message."""


class LanguageCb(CallbackData, prefix="lng"):
    code: Language


class LogoutCb(CallbackData, prefix="out"):
    confirm: bool


class SendAction(StrEnum):
    SEND = "send"
    CHEAP = "cheap"
    TEXT = "text"
    PHONE = "phone"
    CANCEL = "cancel"


class SendCb(CallbackData, prefix="snd"):
    """Buttons under a send preview. `draft` ties the tap to one preview, so an old
    preview's buttons cannot act on a newer draft."""

    action: SendAction
    draft: Id


class OtpAction(StrEnum):
    TYPE = "type"  # with `tt`, the template type
    GENERATE = "gen"
    SEND = "send"
    CANCEL = "cancel"


class OtpCb(CallbackData, prefix="otp"):
    """Buttons of the /otp dialog: `draft` ties a tap to one dialog, so an old dialog's buttons
    cannot act on a newer one; `tt` is the template type for action "type"."""

    action: OtpAction
    draft: Id
    tt: Annotated[int, Field(ge=0, le=99)] = 0


class HistoryCb(CallbackData, prefix="hst"):
    """History paging and filters: `page` from 0, `flt` a HistoryFilter code."""

    page: Page
    flt: str


class SmsCb(CallbackData, prefix="sms"):
    """Details / refresh of one SMS: by the gateway's sms_id, or by our outbox row id."""

    sms_id: Id = 0
    outbox_id: Id = 0
    refresh: bool = False


class SettingsAction(StrEnum):
    SENDER = "sender"
    RESET = "reset"  # back to the default sender
    THRESHOLD = "threshold"
    ALERTS = "alerts"  # low-balance alerts on/off
    NOTIFY = "notify"  # the next delivery-results mode
    LANG = "lang"


class SettingsCb(CallbackData, prefix="set"):
    action: SettingsAction


class BulkAction(StrEnum):
    TEMPLATE = "tpl"
    START = "start"
    CANCEL = "cancel"
    CHEAP = "cheap"  # the template with the cheaper spelling, and a new dry run
    INTL = "intl"  # Start under the question about rows abroad: not asked again


class BulkCb(CallbackData, prefix="blk"):
    """Buttons of the bulk dialog before a job exists: `draft` ties a tap to one dry run;
    `tpl` is a template id for action TEMPLATE."""

    action: BulkAction
    draft: Id
    tpl: Id = 0


class JobAction(StrEnum):
    OPEN = "open"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    FILE = "file"


class JobCb(CallbackData, prefix="job"):
    """Buttons of one bulk job; the handler checks the job belongs to the tapping user."""

    action: JobAction
    job_id: Id


class TemplateAction(StrEnum):
    LIST = "list"
    NEW = "new"
    OPEN = "open"
    SEND = "send"
    RENAME = "rename"
    EDIT = "edit"
    DELETE = "delete"
    DROP = "drop"  # the confirmed delete


class TemplateCb(CallbackData, prefix="tpl"):
    action: TemplateAction
    tpl: Id = 0


class TokenCb(CallbackData, prefix="tok"):
    """ "Connect a new token" under the notice that devsms stopped accepting the old one."""
