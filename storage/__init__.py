"""SQLite persistence: the connection, migrations, repositories and the FSM storage.

Imports nothing else of ours: services and handlers depend on storage, never the reverse.
"""

from __future__ import annotations

from storage.alerts import AlertPrefs, AlertRepo, WatchTarget
from storage.bulk import BulkRepo, BulkRow, JobCounts, JobRow
from storage.credentials import CredentialRepo, CredentialRow, CredentialState
from storage.db import Database, utc_now
from storage.fsm import SQLiteStorage
from storage.migrations import LATEST_VERSION, MigrationError, migrate
from storage.outbox import OutboxRepo, OutboxRow, OutboxState
from storage.stoplist import Added, StopEntry, StopListFull, StopListRepo
from storage.templates import TemplateRepo, TemplateRow
from storage.users import UserRepo, UserRow

__all__ = [
    "LATEST_VERSION",
    "Added",
    "AlertPrefs",
    "AlertRepo",
    "BulkRepo",
    "BulkRow",
    "CredentialRepo",
    "CredentialRow",
    "CredentialState",
    "Database",
    "JobCounts",
    "JobRow",
    "MigrationError",
    "OutboxRepo",
    "OutboxRow",
    "OutboxState",
    "SQLiteStorage",
    "StopEntry",
    "StopListFull",
    "StopListRepo",
    "TemplateRepo",
    "TemplateRow",
    "UserRepo",
    "UserRow",
    "WatchTarget",
    "migrate",
    "utc_now",
]
