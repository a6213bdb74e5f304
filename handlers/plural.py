"""aiogram's ngettext, typed for the counts this bot shows."""

from __future__ import annotations

from aiogram.utils.i18n import ngettext as current_ngettext


def ngettext(singular: str, plural: str, n: int | None) -> str:
    """The form for `n` in the current update's locale. A count the gateway did not give (None,
    shown as "—") takes the form of 0 instead of failing in gettext's plural rule."""
    return current_ngettext(singular, plural, 0 if n is None else n)
