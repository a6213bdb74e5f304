"""What the feature routers read of the bot's configuration, handed to them as data.

bot/factory.py builds it from Settings and gives it to the Dispatcher as ``settings``, so a
handler takes ``settings: HandlerSettings`` by name and handlers/ never imports bot/.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.access import AccessPolicy
from services.schedule_time import QuietHours


@dataclass(frozen=True, slots=True)
class HandlerSettings:
    access: AccessPolicy
    """Who is an admin and whether only approved users are served (ACCESS_MODE)."""
    admin_chat_id: int | None
    default_sender: str
    low_balance_threshold: Decimal
    """For users who set no threshold of their own."""
    sms_max_parts: int
    bulk_max_rows: int
    bulk_jobs_per_user: int
    bulk_rate: float
    """SMS a second of a bulk job: the progress text's time estimate."""
    stoplist_limit: int
    """Most numbers one user's stop list may hold (STOPLIST_LIMIT)."""
    export_part_bytes: int = 50 * 1024 * 1024
    """/export splits files past this size into numbered parts (EXPORT_PART_MB)."""
    quiet_default: QuietHours | None = None
    """Quiet hours of users who set none (QUIET_HOURS)."""
    contacts_limit: int = 10_000
    """Contacts one user may keep in /contacts."""
    contact_groups_limit: int = 100
