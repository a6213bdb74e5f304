"""A checker of Telegram's HTML subset: what parse_mode=HTML accepts.

The rules themselves live in tests/support/telegram_rules.py, shared with the recording
session and the e2e fake; this is the list-of-problems view the property tests use.
"""

from __future__ import annotations

from tests.support.telegram_rules import TelegramRefusal, parse_html


def telegram_html_problems(text: str) -> list[str]:
    """Why Telegram would refuse `text` with parse_mode=HTML (empty list: it would not)."""
    try:
        parse_html(text)
    except TelegramRefusal as refusal:
        return [refusal.description]
    return []
