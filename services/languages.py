"""The languages the bot speaks, one list for the settings, the menus and the filters.

Each has a catalogue under locales/; the order is the one the language menu shows.
"""

from __future__ import annotations

from typing import Final, Literal

Language = Literal["uz", "ru", "en"]
LANGUAGES: Final[tuple[Language, ...]] = ("uz", "ru", "en")
