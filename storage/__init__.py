"""SQLite persistence: the connection, migrations, repositories and the FSM storage.

Imports nothing else of ours: services and handlers depend on storage, never the reverse.
"""

from __future__ import annotations

from storage.alerts import AlertPrefs, AlertRepo, WatchTarget
from storage.credentials import CredentialRepo, CredentialRow, CredentialState
from storage.db import Database, utc_now
from storage.fsm import SQLiteStorage
from storage.migrations import LATEST_VERSION, MigrationError, migrate
from storage.outbox import OutboxRepo, OutboxRow, OutboxState
from storage.users import UserRepo, UserRow

__all__ = [
    "LATEST_VERSION",
    "AlertPrefs",
    "AlertRepo",
    "CredentialRepo",
    "CredentialRow",
    "CredentialState",
    "Database",
    "MigrationError",
    "OutboxRepo",
    "OutboxRow",
    "OutboxState",
    "SQLiteStorage",
    "UserRepo",
    "UserRow",
    "WatchTarget",
    "migrate",
    "utc_now",
]
