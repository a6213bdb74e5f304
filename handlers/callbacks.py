"""CallbackData classes: short prefixes, ids only (the packed value must stay under 64 bytes)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData


class BalanceCb(CallbackData, prefix="bal"):
    """The "Refresh" button under a balance message."""


class LanguageCb(CallbackData, prefix="lng"):
    code: str


class LogoutCb(CallbackData, prefix="out"):
    confirm: bool
