"""CallbackData classes: short prefixes, ids only (the packed value must stay under 64 bytes)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class BalanceCb(CallbackData, prefix="bal"):
    """The "Refresh" button under a balance message."""


class LanguageCb(CallbackData, prefix="lng"):
    code: str


class LogoutCb(CallbackData, prefix="out"):
    confirm: bool


class SendCb(CallbackData, prefix="snd"):
    """Buttons under a send preview. `draft` ties the tap to one preview, so an old
    preview's buttons cannot act on a newer draft."""

    action: str  # see SendAction
    draft: int


class HistoryCb(CallbackData, prefix="hst"):
    """History paging and filters: `page` from 0, `flt` a HistoryFilter code."""

    page: int
    flt: str


class SmsCb(CallbackData, prefix="sms"):
    """Details / refresh of one SMS: by the gateway's sms_id, or by our outbox row id."""

    sms_id: int = 0
    outbox_id: int = 0
    refresh: bool = False


class SettingsCb(CallbackData, prefix="set"):
    action: str
