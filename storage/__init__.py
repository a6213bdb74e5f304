"""SQLite persistence: the connection, migrations, repositories and the FSM storage.

Imports nothing else of ours: services and handlers depend on storage, never the reverse.
"""

from __future__ import annotations

from storage.alerts import AlertPrefs, AlertRepo, WatchTarget
from storage.broadcasts import BroadcastRepo, BroadcastRow
from storage.bulk import BulkRepo, BulkRow, JobCounts, JobRow
from storage.callbacks import CallbackRepo, CallbackTarget
from storage.contacts import (
    ContactLimit,
    ContactRepo,
    ContactRow,
    GroupLimit,
    GroupRow,
    Imported,
    NewContact,
)
from storage.credentials import CredentialRepo, CredentialRow, CredentialState
from storage.db import Database, utc_now, yield_to_users
from storage.fsm import SQLiteStorage
from storage.insights import InsightPrefs, InsightRepo
from storage.migrations import LATEST_VERSION, MigrationError, migrate
from storage.outbox import OutboxKind, OutboxRepo, OutboxRow, OutboxState
from storage.schedule import ScheduledRow, ScheduleRepo
from storage.stoplist import Added, StopEntry, StopListFull, StopListRepo
from storage.templates import TemplateRepo, TemplateRow
from storage.traffic import DayTotals, Forecast, Origin, Outcome, Totals, TrafficRepo, TrafficRow
from storage.users import UserRepo, UserRow

__all__ = [
    "LATEST_VERSION",
    "Added",
    "AlertPrefs",
    "AlertRepo",
    "BroadcastRepo",
    "BroadcastRow",
    "BulkRepo",
    "BulkRow",
    "CallbackRepo",
    "CallbackTarget",
    "ContactLimit",
    "ContactRepo",
    "ContactRow",
    "CredentialRepo",
    "CredentialRow",
    "CredentialState",
    "Database",
    "DayTotals",
    "Forecast",
    "GroupLimit",
    "GroupRow",
    "Imported",
    "InsightPrefs",
    "InsightRepo",
    "JobCounts",
    "JobRow",
    "MigrationError",
    "NewContact",
    "Origin",
    "OutboxKind",
    "OutboxRepo",
    "OutboxRow",
    "OutboxState",
    "Outcome",
    "SQLiteStorage",
    "ScheduleRepo",
    "ScheduledRow",
    "StopEntry",
    "StopListFull",
    "StopListRepo",
    "TemplateRepo",
    "TemplateRow",
    "Totals",
    "TrafficRepo",
    "TrafficRow",
    "UserRepo",
    "UserRow",
    "WatchTarget",
    "migrate",
    "utc_now",
    "yield_to_users",
]
