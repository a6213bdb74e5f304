"""Translations: Babel catalogues under locales/, chosen per user by a middleware."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from aiogram.types import TelegramObject, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from bot.config import Settings
from services.languages import LANGUAGES

LOCALES_DIR: Final = Path(__file__).resolve().parent.parent / "locales"
DOMAIN: Final = "messages"

# Telegram clients in Central Asia often run in Russian when no Uzbek build is chosen.
_RUSSIAN_SPEAKING: Final = frozenset({"ru", "be", "kk", "ky", "tg", "uk"})


def compile_catalogues(locales_dir: Path = LOCALES_DIR) -> None:
    """Build any missing or stale .mo file, so `python -m bot` works even without `make`."""
    for po_path in locales_dir.glob(f"*/LC_MESSAGES/{DOMAIN}.po"):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        # Babel's catalogue reader and writer (0.8 MB) only when a catalogue is stale: `make`
        # and the Docker image compile them, so a running bot normally never needs them.
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        with po_path.open("rb") as po_file:
            catalog = read_po(po_file, locale=po_path.parent.parent.name)
        tmp_path = mo_path.with_suffix(".mo.tmp")
        with tmp_path.open("wb") as mo_file:
            write_mo(mo_file, catalog, use_fuzzy=True)
        tmp_path.replace(mo_path)


def create_i18n(default_language: str) -> I18n:
    compile_catalogues()
    return I18n(path=LOCALES_DIR, default_locale=default_language, domain=DOMAIN)


def language_for(telegram_code: str | None, settings: Settings) -> str:
    """uz → Uzbek, ru (and neighbours) → Russian, others → English or DEFAULT_LANGUAGE."""
    if not telegram_code:
        return settings.default_language
    code = telegram_code.split("-")[0].lower()
    if code in LANGUAGES:
        return code
    if code in _RUSSIAN_SPEAKING:
        return "ru"
    return settings.default_language if settings.default_language_is_explicit else "en"


class UserLocaleMiddleware(I18nMiddleware):
    """The language the user chose (kept in the database), else one derived from Telegram."""

    def __init__(self, i18n: I18n, settings: Settings) -> None:
        super().__init__(i18n)
        self._settings = settings

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        user_row = data.get("user_row")
        if user_row is not None and user_row.language in LANGUAGES:
            return str(user_row.language)
        user: User | None = data.get("event_from_user")
        return language_for(user.language_code if user else None, self._settings)
