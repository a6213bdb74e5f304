"""The one marker for texts defined in one place and translated where they are shown."""

from __future__ import annotations


def N_(msgid: str) -> str:
    """Marks a msgid for extraction (pybabel -k N_); it is translated where it is shown."""
    return msgid
