"""CallbackData classes: short prefixes, ids only (the packed value must stay under 64 bytes)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal

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
    LATER = "later"


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


class HistorySearchCb(CallbackData, prefix="hsq"):
    """/history's "Search by phone number": asks for the number."""


class FailuresCb(CallbackData, prefix="fls"):
    """ "Show them" under a failure-watch notice: the SMS that notice told about."""

    batch: Id


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
    ZONE = "zone"  # the time zone
    QUIET = "quiet"  # quiet hours, typed
    QUIET_OFF = "quiet_off"
    QUIET_DEFAULT = "quiet_std"  # back to QUIET_HOURS
    INSIGHTS = "insights"  # failure watch, delivery-rate warning, digest (InsightsCb)


class SettingsCb(CallbackData, prefix="set"):
    action: SettingsAction


class InsightsAction(StrEnum):
    WATCH = "watch"  # failure watch on/off
    RATE = "rate"  # asks for the delivery-rate threshold
    DIGEST = "digest"  # the next digest mode: off, daily, weekly
    HOURS = "hours"  # shows the hours to choose from
    HOUR = "hour"  # `hour` chosen
    BACK = "back"  # from the hours back to the insights settings, unchanged


class InsightsCb(CallbackData, prefix="ins"):
    """The insights part of /settings; `hour` (0-23) with action HOUR."""

    action: InsightsAction
    hour: Annotated[int, Field(ge=0, le=23)] = 0


class BulkAction(StrEnum):
    TEMPLATE = "tpl"
    START = "start"
    CANCEL = "cancel"
    LATER = "later"  # send later: choose a time
    FORCE = "force"  # start anyway, inside quiet hours
    AT_END = "atend"  # start when quiet hours end
    CHEAP = "cheap"  # the template with the cheaper spelling, and a new dry run
    INTL = "intl"  # Start under the question about rows abroad: not asked again
    LATER_INTL = "lintl"  # Send later under the same question: not asked again


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


class StatsCb(CallbackData, prefix="sts"):
    """The 7/30/90 days buttons under a /stats chart (the router takes those three only)."""

    days: Annotated[int, Field(ge=1, le=366)]


class ExportAction(StrEnum):
    THIS_MONTH = "this"
    LAST_MONTH = "last"
    TYPE = "type"  # the user types the dates
    FORMAT = "fmt"  # the file: `fmt` and the period's days
    CANCEL = "cancel"


class ExportCb(CallbackData, prefix="exp"):
    """/export's buttons; a chosen period travels as day ordinals (date.toordinal)."""

    action: ExportAction
    fmt: Literal["", "csv", "xlsx"] = ""
    first: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    last: Annotated[int, Field(ge=0, le=1_000_000)] = 0


class ScheduleAction(StrEnum):
    PICK = "pick"  # a quick choice of time (`choice`) for the draft being scheduled
    ABORT = "abort"  # leave choosing a time: nothing is scheduled
    NOW = "now"  # send a scheduled item now
    CANCEL = "cancel"  # cancel a scheduled item
    LIST = "list"  # /scheduled


class ScheduleCb(CallbackData, prefix="sch"):
    """`draft` ties a quick choice to one question; `item` is a scheduled item's id (checked
    against the tapping user)."""

    action: ScheduleAction
    item: Id = 0
    draft: Id = 0
    choice: str = ""


class ZoneCb(CallbackData, prefix="tz"):
    """A time zone from the short list (services.schedule_time.ZONE_CHOICES), by position."""

    index: Annotated[int, Field(ge=0, le=50)]


class StopAction(StrEnum):
    OPEN = "open"  # the list as a new message (from /settings)
    PAGE = "page"  # a page of the list, edited in place
    ADD = "add"
    IMPORT = "import"
    REMOVE = "remove"  # asks for numbers to remove
    EXPORT = "export"
    DROP = "drop"  # one entry's button in the list
    UNSTOP = "unstop"  # "Remove from stop list" under a refused send


class StopCb(CallbackData, prefix="stp"):
    """Stop list buttons: `entry` is a stop-list row id (never the number itself)."""

    action: StopAction
    entry: Id = 0
    page: Page = 0


class ContactAction(StrEnum):
    LIST = "list"  # the address book's page `page`
    OPEN = "open"
    ADD = "add"
    IMPORT = "import"
    EXPORT = "export"  # `page` 0: CSV, 1: XLSX
    SEARCH = "search"
    RENAME = "rename"
    FIELDS = "fields"
    GROUPS = "groups"  # the contact's groups to tick, page `page`
    DELETE = "delete"
    DROP = "drop"  # the confirmed delete


class ContactCb(CallbackData, prefix="ct"):
    """/contacts: `id` is a contact id; the handler checks it belongs to the tapping user."""

    action: ContactAction
    id: Id = 0
    page: Page = 0


class GroupAction(StrEnum):
    LIST = "list"
    OPEN = "open"
    NEW = "new"
    MEMBERS = "members"
    IMPORT = "import"
    SEND = "send"
    RENAME = "rename"
    DELETE = "delete"
    DROP = "drop"  # the confirmed delete
    TOGGLE = "toggle"  # put `contact` into the group or take it out


class GroupCb(CallbackData, prefix="cg"):
    """Contact groups: `id` a group id, `contact` a contact id (TOGGLE), `page` a list page."""

    action: GroupAction
    id: Id = 0
    page: Page = 0
    contact: Id = 0
