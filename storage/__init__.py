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
from storage.outbox import OutboxKind, OutboxRepo, OutboxRow, OutboxState
from storage.templates import TemplateRepo, TemplateRow
from storage.users import UserRepo, UserRow

__all__ = [
    "LATEST_VERSION",
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
    "OutboxKind",
    "OutboxRepo",
    "OutboxRow",
    "OutboxState",
    "SQLiteStorage",
    "TemplateRepo",
    "TemplateRow",
    "UserRepo",
    "UserRow",
    "WatchTarget",
    "migrate",
    "utc_now",
]
