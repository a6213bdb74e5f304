"""Schema migrations, numbered by `PRAGMA user_version` on SQLite and by the row of
`schema_version` on PostgreSQL (storage/pg_migrations.py applies them there).

MIGRATIONS[0] takes a database from version 0 to 1, MIGRATIONS[1] from 1 to 2, and so on.
Never edit a script that has shipped: append a new one.

A migration is a plain string of SQLite DDL, translated for PostgreSQL by rules, or a
`Migration(sqlite=..., postgres=...)` when PostgreSQL needs its own text. The portable subset
that needs no second text:
- types INTEGER (64-bit on both: BIGINT), TEXT (byte order on both: COLLATE "C" unless the
  column names a collation), BLOB (BYTEA), REAL (DOUBLE PRECISION);
  `INTEGER PRIMARY KEY AUTOINCREMENT` (an identity column); an `INTEGER PRIMARY KEY` without
  AUTOINCREMENT is NOT filled in by PostgreSQL: give the id (Telegram's user id) yourself;
- `COLLATE NOCASE` (an ICU collation that ignores case, created on PostgreSQL);
- CREATE TABLE / INDEX (partial indexes included), ALTER TABLE ADD COLUMN / RENAME TO,
  DROP TABLE, INSERT ... SELECT: a table rebuild (create the new one, copy, drop, rename)
  works, and identity sequences are moved past copied ids after every migration;
- `WITHOUT ROWID` is dropped, PRAGMA statements are skipped; comments go;
- not portable, so give `postgres=`: triggers, views using SQLite functions, DEFAULT
  expressions with SQLite functions, a type other than the four (a type is the word after
  the column's name, so a column may be called `text`).
Queries in the repositories keep to the same spirit: `?` placeholders, ON CONFLICT (...) DO
UPDATE/NOTHING instead of INSERT OR REPLACE/IGNORE, RETURNING, CASE, COALESCE, no SQLite-only
functions (json_*, strftime, printf, scalar max()/min()), LIKE made explicit about case
(`lower(x) LIKE lower(?)`), integers where integers are compared (no bools for INTEGER
columns in WHERE), and every non-aggregated column of a grouped SELECT in its GROUP BY.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Final

import aiosqlite

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    """A migration whose PostgreSQL text is not the translation of its SQLite one."""

    sqlite: str
    postgres: str | None = None  # None: translated (storage/pg_migrations.py)


def sqlite_text(migration: str | Migration) -> str:
    return migration.sqlite if isinstance(migration, Migration) else migration


_V1: Final = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,  -- the Telegram user id
    language TEXT NULL,
    first_name TEXT,
    username TEXT,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE TABLE credentials (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    token_encrypted BLOB NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('valid', 'invalid')),
    created_at TEXT,
    updated_at TEXT
);
CREATE TABLE fsm (
    key TEXT PRIMARY KEY,
    state TEXT,
    data TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT
);
"""

_V2: Final = """
ALTER TABLE users ADD COLUMN sender TEXT NULL;  -- the user's default sender name
ALTER TABLE users ADD COLUMN is_active INTEGER NOT NULL DEFAULT 1;
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    message TEXT NOT NULL,
    sender TEXT,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'sent', 'failed', 'unknown', 'not_sent')),
    sms_id INTEGER,
    request_id TEXT,
    status TEXT,
    parts_count INTEGER,
    total_cost TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX outbox_user_recent ON outbox (user_id, id DESC);
CREATE INDEX outbox_sms_id ON outbox (sms_id);
CREATE INDEX outbox_request_id ON outbox (request_id);
"""

_V3: Final = """
-- Access control (ACCESS_MODE=allowlist): pending until an admin allows or denies.
ALTER TABLE users ADD COLUMN access TEXT NOT NULL DEFAULT 'pending'
    CHECK (access IN ('pending', 'allowed', 'denied'));
ALTER TABLE users ADD COLUMN access_asked INTEGER NOT NULL DEFAULT 0;
-- What a user wants to be told, and what the watcher last saw (hysteresis survives restarts).
CREATE TABLE alert_prefs (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    threshold_unit TEXT NOT NULL DEFAULT 'som' CHECK (threshold_unit IN ('som', 'sms')),
    threshold_value TEXT NULL,  -- NULL: LOW_BALANCE_THRESHOLD
    balance_alerts INTEGER NOT NULL DEFAULT 1,
    delivery_notify TEXT NOT NULL DEFAULT 'failures'
        CHECK (delivery_notify IN ('all', 'failures', 'off')),
    below INTEGER NOT NULL DEFAULT 0,
    last_balance TEXT,
    checked_at TEXT,
    alerted_at TEXT,
    invalid_notified INTEGER NOT NULL DEFAULT 0
);
-- Delivery tracking of sent SMS, with growing intervals.
ALTER TABLE outbox ADD COLUMN next_check_at TEXT;
ALTER TABLE outbox ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN result_notified INTEGER NOT NULL DEFAULT 0;
CREATE INDEX outbox_tracking ON outbox (next_check_at) WHERE next_check_at IS NOT NULL;
"""

_V4: Final = """
-- Message templates with {column} placeholders, per user.
CREATE TABLE templates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user_id, name)
);
-- Bulk jobs: every row's state is written before and after its request, so a job resumes
-- after a crash at the first row never sent, and a row caught mid-request becomes 'unknown'.
CREATE TABLE bulk_jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL
        CHECK (state IN ('ready', 'running', 'paused', 'cancelled', 'done')),
    pause_reason TEXT,
    file_name TEXT,
    file_format TEXT NOT NULL DEFAULT 'csv',
    template TEXT NOT NULL,
    sender TEXT,
    total INTEGER NOT NULL DEFAULT 0,
    parts_total INTEGER NOT NULL DEFAULT 0,
    chat_id INTEGER,
    progress_message_id INTEGER,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL,
    summary_sent INTEGER NOT NULL DEFAULT 0,
    delivery_reported INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX bulk_jobs_user ON bulk_jobs (user_id, id DESC);
CREATE INDEX bulk_jobs_state ON bulk_jobs (state);
CREATE TABLE bulk_rows (
    job_id INTEGER NOT NULL REFERENCES bulk_jobs(id) ON DELETE CASCADE,
    row_no INTEGER NOT NULL,  -- the line/row number in the user's file
    phone TEXT NOT NULL,
    message TEXT NOT NULL,
    parts INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'not_sent')),
    sms_id INTEGER,
    request_id TEXT,
    status TEXT,
    cost TEXT,
    error TEXT,
    updated_at TEXT,
    PRIMARY KEY (job_id, row_no)
) WITHOUT ROWID;
CREATE INDEX bulk_rows_state ON bulk_rows (job_id, state, row_no);
"""

_SCHEDULE: Final = """
-- The user's clock: their time zone (NULL: Asia/Tashkent) and quiet hours, "HH:MM-HH:MM" in
-- that zone or "off" (NULL: QUIET_HOURS, 21:00-09:00 unless configured otherwise).
ALTER TABLE users ADD COLUMN timezone TEXT NULL;
ALTER TABLE users ADD COLUMN quiet_hours TEXT NULL;
-- Sends to start later: one SMS, or a bulk job kept 'ready' until its time. 'started' is set
-- in the transaction that records the send (the outbox row, or the job going 'running'), so
-- an item is never started twice; 'missed' waits for its owner's decision.
CREATE TABLE scheduled (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('sms', 'bulk')),
    phone TEXT,
    message TEXT,
    sender TEXT,
    job_id INTEGER REFERENCES bulk_jobs(id) ON DELETE CASCADE,
    due_at TEXT NOT NULL,  -- UTC
    state TEXT NOT NULL DEFAULT 'waiting'
        CHECK (state IN ('waiting', 'started', 'cancelled', 'missed', 'failed')),
    ignore_quiet INTEGER NOT NULL DEFAULT 0,  -- "Send now": the owner asked for it now
    outbox_id INTEGER,
    reason TEXT,  -- why it failed or was missed
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX scheduled_due ON scheduled (state, due_at);
CREATE INDEX scheduled_user ON scheduled (user_id, state, due_at);
-- A job its owner started (or resumed) inside quiet hours runs on until this moment (UTC).
CREATE TABLE job_quiet (
    job_id INTEGER PRIMARY KEY REFERENCES bulk_jobs(id) ON DELETE CASCADE,
    until TEXT NOT NULL
);
"""

_TRAFFIC: Final = """
-- The whole account's traffic from get_history (storage/traffic.py), whoever sent each SMS.
CREATE TABLE traffic (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sms_id INTEGER,
    request_id TEXT,
    phone TEXT,
    message TEXT,
    sender TEXT,
    parts INTEGER,
    cost_micros INTEGER,  -- millionths of `currency`: exact sums in SQL
    currency TEXT,
    status TEXT,  -- the gateway's, verbatim
    created_at TEXT NOT NULL,  -- UTC
    origin TEXT NOT NULL CHECK (origin IN ('bot', 'bulk', 'elsewhere')),
    outbox_id INTEGER,
    job_id INTEGER,
    template TEXT,
    -- failure watch: 0 not looked at, > 0 the notice that told it, -1 passed over
    failure_noticed INTEGER NOT NULL DEFAULT 0,
    first_seen_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX traffic_sms_id ON traffic (user_id, sms_id) WHERE sms_id IS NOT NULL;
CREATE INDEX traffic_request_id ON traffic (user_id, request_id) WHERE request_id IS NOT NULL;
CREATE INDEX traffic_user_time ON traffic (user_id, created_at, id);
CREATE INDEX traffic_failures ON traffic (user_id, created_at)
    WHERE failure_noticed = 0 AND origin = 'elsewhere';
CREATE INDEX traffic_noticed ON traffic (user_id, failure_noticed) WHERE failure_noticed > 0;
-- Where the sync goes on reading older history (offset from the newest entry).
CREATE TABLE traffic_sync (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    resume_offset INTEGER,
    synced_at TEXT,
    rounds INTEGER NOT NULL DEFAULT 0
);
-- The balances the watcher saw: one per user per hour, a hundred days.
CREATE TABLE balance_snapshots (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    taken_at TEXT NOT NULL,
    amount_micros INTEGER NOT NULL,
    currency TEXT NOT NULL,
    PRIMARY KEY (user_id, taken_at)
) WITHOUT ROWID;
-- Matching history entries to bulk rows without reading every job's rows.
CREATE INDEX bulk_rows_sms_id ON bulk_rows (sms_id) WHERE sms_id IS NOT NULL;
CREATE INDEX bulk_rows_request_id ON bulk_rows (request_id) WHERE request_id IS NOT NULL;
-- When a bulk row went out (its updated_at moves with every status): the admin summary's days.
ALTER TABLE bulk_rows ADD COLUMN sent_at TEXT;
CREATE INDEX traffic_phone ON traffic (user_id, phone, created_at);
-- Failure watch and digest: opt-in per user; what was last told survives restarts.
CREATE TABLE insight_prefs (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    failure_watch INTEGER NOT NULL DEFAULT 0,
    rate_threshold INTEGER,  -- percent; NULL: no delivery-rate warning
    rate_window_sent TEXT,  -- the last hour (UTC start) a rate warning went out for
    failure_sent_at TEXT,  -- when the last failure notice went out (one per hour at most)
    digest TEXT NOT NULL DEFAULT 'off' CHECK (digest IN ('off', 'daily', 'weekly')),
    digest_hour INTEGER NOT NULL DEFAULT 9 CHECK (digest_hour BETWEEN 0 AND 23),
    digest_last_period TEXT,  -- the first local day of the last period a digest went out for
    updated_at TEXT
);
"""

_STOPLIST: Final = """
-- Numbers that must never get an SMS from this user's account (the stop list).
CREATE TABLE stoplist (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,  -- digits, country code first (services/phones.py)
    note TEXT,
    added_at TEXT NOT NULL,
    UNIQUE (user_id, phone)
);
CREATE INDEX stoplist_user_recent ON stoplist (user_id, id DESC);
-- A bulk row whose number is on the owner's stop list is never sent: 'stopped'. SQLite cannot
-- change a CHECK constraint in place, so bulk_rows is rebuilt with every column and index it
-- has at this point, _TRAFFIC's included (sent_at and the two lookup indexes): this script
-- must stay after _TRAFFIC, and a later change to bulk_rows must come after this one.
CREATE TABLE bulk_rows_stoplist (
    job_id INTEGER NOT NULL REFERENCES bulk_jobs(id) ON DELETE CASCADE,
    row_no INTEGER NOT NULL,
    phone TEXT NOT NULL,
    message TEXT NOT NULL,
    parts INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'unknown', 'not_sent',
                         'stopped')),
    sms_id INTEGER,
    request_id TEXT,
    status TEXT,
    cost TEXT,
    error TEXT,
    updated_at TEXT,
    sent_at TEXT,
    PRIMARY KEY (job_id, row_no)
) WITHOUT ROWID;
INSERT INTO bulk_rows_stoplist (job_id, row_no, phone, message, parts, state, sms_id,
    request_id, status, cost, error, updated_at, sent_at)
    SELECT job_id, row_no, phone, message, parts, state, sms_id, request_id, status, cost, error,
    updated_at, sent_at FROM bulk_rows;
DROP TABLE bulk_rows;
ALTER TABLE bulk_rows_stoplist RENAME TO bulk_rows;
CREATE INDEX bulk_rows_state ON bulk_rows (job_id, state, row_no);
CREATE INDEX bulk_rows_sms_id ON bulk_rows (sms_id) WHERE sms_id IS NOT NULL;
CREATE INDEX bulk_rows_request_id ON bulk_rows (request_id) WHERE request_id IS NOT NULL;
"""

_OTP: Final = """
-- OTP sends (type universal_otp) beside plain ones, and the country (ISO region) of a number
-- outside Uzbekistan: its price is what the gateway charged last time (services/pricing.py).
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'sms' CHECK (kind IN ('sms', 'otp'));
ALTER TABLE outbox ADD COLUMN country TEXT NULL;
CREATE INDEX outbox_country ON outbox (user_id, country, id) WHERE country IS NOT NULL;
"""

_CONTACTS: Final = """
-- The address book (/contacts): a contact per normalised number and user; `fields` is a JSON
-- object of extra values (column -> text) that fill a template's placeholders.
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    phone TEXT NOT NULL,  -- digits, country code first
    fields TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (user_id, phone)
);
CREATE INDEX contacts_by_name ON contacts (user_id, name COLLATE NOCASE, id);
CREATE TABLE contact_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL COLLATE NOCASE,
    created_at TEXT NOT NULL,
    UNIQUE (user_id, name)
);
CREATE TABLE contact_group_members (
    group_id INTEGER NOT NULL REFERENCES contact_groups(id) ON DELETE CASCADE,
    contact_id INTEGER NOT NULL REFERENCES contacts(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, contact_id)
) WITHOUT ROWID;
CREATE INDEX contact_group_members_contact ON contact_group_members (contact_id);
"""

_SEND_TEMPLATE: Final = """
-- The saved template a single send (or a scheduled one) was made from, by its name at the
-- time of the send: /export's template column (storage/traffic.py copies it when it matches
-- the history entry to the outbox row). NULL: the text was typed.
ALTER TABLE outbox ADD COLUMN template TEXT NULL;
ALTER TABLE scheduled ADD COLUMN template TEXT NULL;
"""

_CALLBACKS: Final = """
-- Delivery reports pushed by the gateway (services/callbacks.py): a send made while
-- PUBLIC_BASE_URL is set carries a callback URL with a random token. Only the token's SHA-256
-- is kept, written in the transaction that records the send (an outbox row, or a bulk row's
-- claim), so a callback can name nothing but a send the bot made. No reference to outbox or
-- bulk_rows: a later rebuild of those tables must not cascade into this one.
CREATE TABLE delivery_callbacks (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    outbox_id INTEGER NULL,
    job_id INTEGER NULL,
    row_no INTEGER NULL,
    created_at TEXT NOT NULL,
    CHECK ((outbox_id IS NULL) <> (job_id IS NULL))
) WITHOUT ROWID;
CREATE INDEX delivery_callbacks_created ON delivery_callbacks (created_at);
"""

_REVIEW_FIXES: Final = """
-- When a waiting item held by its owner's quiet hours may start: the end of those hours (UTC),
-- written by the scheduler; NULL: at due_at. Rounds select on it, so held items never fill a
-- round ahead of other users' due sends. Cleared when the owner's zone or quiet hours change.
ALTER TABLE scheduled ADD COLUMN release_at TEXT NULL;
CREATE INDEX scheduled_release ON scheduled (COALESCE(release_at, due_at), id)
    WHERE state = 'waiting';
-- The failure watch's rows: outside SMS that failed and were not looked at yet. The index of
-- all outside rows not looked at held every DELIVERED one forever, and each round read them.
CREATE INDEX traffic_watched ON traffic (user_id, created_at, id)
    WHERE failure_noticed = 0 AND origin = 'elsewhere'
    AND UPPER(COALESCE(status, '')) IN ('REJECTED', 'UNDELIVERABLE');
-- Admin broadcasts survive a restart: each target is claimed before its message goes out and
-- settled after it; 'unknown': claimed when the process stopped, maybe sent, never again.
CREATE TABLE broadcasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    admin_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    report_chat INTEGER NOT NULL,  -- the admin's report message, edited with the tally
    report_message INTEGER NOT NULL,
    language TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'finished', 'stopped')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE broadcast_targets (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'claimed', 'unknown',
        'delivered', 'blocked', 'failed', 'skipped')),
    PRIMARY KEY (broadcast_id, user_id)
) WITHOUT ROWID;
CREATE INDEX broadcast_targets_state ON broadcast_targets (broadcast_id, state, user_id);
"""

_LEASES: Final = """
-- Background work exactly once across replicas sharing this database (storage/leases.py).
-- A named lease for work done by one replica per round (a traffic round, a digest pass):
-- taken when free or expired, `fence` grows with every new holder so a stale holder's late
-- writes can be refused. `until` is ISO-8601 UTC like every *_at column.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT,
    until TEXT,
    fence INTEGER NOT NULL DEFAULT 0
);
-- A balance round is split per user: the round number a user was claimed in, by whom, and
-- until when the claim holds (NULL once the check is done).
ALTER TABLE alert_prefs ADD COLUMN balance_round INTEGER;
ALTER TABLE alert_prefs ADD COLUMN lease_owner TEXT;
ALTER TABLE alert_prefs ADD COLUMN lease_until TEXT;
-- A running bulk job is sent by the one replica holding its lease; a survivor takes over an
-- expired lease with a higher fence. next_slot_us (microseconds since the epoch) paces the
-- job's rows across replicas: advanced atomically for every row.
ALTER TABLE bulk_jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE bulk_jobs ADD COLUMN lease_until TEXT;
ALTER TABLE bulk_jobs ADD COLUMN lease_fence INTEGER NOT NULL DEFAULT 0;
ALTER TABLE bulk_jobs ADD COLUMN next_slot_us BIGINT;
-- Who claimed a row ('sending') and under which job fence: a new holder turns only the rows
-- of older fences into 'unknown' (they may have gone out), never a live replica's.
ALTER TABLE bulk_rows ADD COLUMN lease_owner TEXT;
ALTER TABLE bulk_rows ADD COLUMN claim_fence INTEGER;
-- The replica that recorded a single send: at start-up a replica turns into 'unknown' only
-- its own previous incarnation's sends left 'pending' (and anybody's long past any timeout).
ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
"""

_ALERT_OWED: Final = """
-- A low-balance alert is owed from the check that saw the balance cross below the threshold
-- until it was handed to Telegram: a replica that dies in between leaves it owed, and the
-- next check of the user (on a survivor) tells it, where the 'below' flag alone would say
-- the user had been told.
ALTER TABLE alert_prefs ADD COLUMN alert_owed INTEGER NOT NULL DEFAULT 0;
-- The checks of a balance round claimed and not finished (a dead replica's, once expired).
CREATE INDEX alert_prefs_open_checks ON alert_prefs (balance_round, lease_until)
    WHERE lease_until IS NOT NULL;
"""

MIGRATIONS: Final[tuple[str | Migration, ...]] = (
    _V1,
    _V2,
    _V3,
    _V4,
    _SCHEDULE,
    _TRAFFIC,
    _STOPLIST,
    _OTP,
    _CONTACTS,
    _SEND_TEMPLATE,
    _CALLBACKS,
    _REVIEW_FIXES,
    _LEASES,
    _ALERT_OWED,
)
LATEST_VERSION: Final = len(MIGRATIONS)


class MigrationError(RuntimeError):
    """The database cannot be brought to the schema this code expects."""


async def schema_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def migrate(conn: aiosqlite.Connection, *, target: int | None = None) -> int:
    """Applies the missing migrations in order, up to `target` (default: the latest).

    Each script runs in one transaction together with its version bump, so a failure
    leaves the database at the previous version. Returns the final version.
    """
    scripts = MIGRATIONS
    goal = len(scripts) if target is None else target
    if not 0 <= goal <= len(scripts):
        raise ValueError(f"target version {goal} is outside 0..{len(scripts)}")
    version = await schema_version(conn)
    if version > len(scripts):
        # An older build must not write into a schema it does not understand.
        raise MigrationError(
            f"database schema version {version} is newer than this code knows "
            f"({len(scripts)}); run a newer version of the bot"
        )
    for number in range(version + 1, goal + 1):
        # executescript() commits any open transaction before it starts, so the
        # transaction has to live inside the script itself.
        text = sqlite_text(scripts[number - 1])
        script = f"BEGIN IMMEDIATE;\n{text}\nPRAGMA user_version = {number};\nCOMMIT;"
        try:
            await conn.executescript(script)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise MigrationError(f"migration to schema version {number} failed: {exc}") from exc
        logger.info("database schema migrated to version %s", number)
        version = number
    return version
