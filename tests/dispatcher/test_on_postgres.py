"""The bot's main paths with DATABASE_URL on PostgreSQL: onboarding, /send's confirm, /history,
bulk jobs, a restart. The tests are the SQLite suite's own (imported below): this module's
`settings` points them at a PostgreSQL schema of their own, dropped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import Settings
from storage.pg import PostgresDatabase
from tests.conftest import GOOD_TOKEN, make_settings
from tests.dispatcher.test_bulk import (
    MAX_ROWS,
    bulk_app,
    test_csv_dry_run_then_each_valid_row_gets_exactly_one_sms,
    test_double_start_makes_one_job,
    test_jobs_started_before_a_restart_are_resumed,
    test_pause_resume_and_cancel,
)
from tests.dispatcher.test_history import (
    test_history_pages_by_ten_and_paging_edits_the_same_message,
    test_history_settles_a_send_that_timed_out,
)
from tests.dispatcher.test_onboarding import (
    test_dialog_survives_a_restart,
    test_logout_asks_first_then_deletes_everything,
    test_start_asks_for_the_token_and_a_good_token_shows_balance_and_menu,
    test_token_command_replaces_the_token_and_a_bad_one_keeps_the_old,
)
from tests.dispatcher.test_send import (
    test_dialog_previews_then_sends_exactly_one_sms,
    test_second_tap_and_concurrent_taps_send_once,
    test_slow_gateway_is_reported_unknown_and_never_resent,
    test_unknown_send_can_be_checked_later_and_is_reconciled,
)
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness
from tests.support.services import migrated_postgres_schema

__all__ = [
    "bulk_app",
    "test_csv_dry_run_then_each_valid_row_gets_exactly_one_sms",
    "test_dialog_previews_then_sends_exactly_one_sms",
    "test_dialog_survives_a_restart",
    "test_double_start_makes_one_job",
    "test_history_pages_by_ten_and_paging_edits_the_same_message",
    "test_history_settles_a_send_that_timed_out",
    "test_jobs_started_before_a_restart_are_resumed",
    "test_logout_asks_first_then_deletes_everything",
    "test_pause_resume_and_cancel",
    "test_second_tap_and_concurrent_taps_send_once",
    "test_slow_gateway_is_reported_unknown_and_never_resent",
    "test_start_asks_for_the_token_and_a_good_token_shows_balance_and_menu",
    "test_token_command_replaces_the_token_and_a_bad_one_keeps_the_old",
    "test_unknown_send_can_be_checked_later_and_is_reconciled",
]


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with migrated_postgres_schema() as dsn:
        yield dsn


@pytest.fixture
def settings(tmp_path: Path, devsms: FakeDevsms, postgres_url: str) -> Settings:
    return make_settings(
        tmp_path, devsms.url, bulk_rate=200, bulk_max_rows=MAX_ROWS, database_url=postgres_url
    )


@pytest.fixture(autouse=True)
def _every_test_here_is_on_postgresql(settings: Settings) -> None:
    # The imported tests take this module's `settings`; were they not, this would fail.
    assert settings.database_url is not None


async def test_the_bot_keeps_its_rows_in_postgresql_not_in_a_file(
    app: Harness, settings: Settings
) -> None:
    await app.send("/start", 1, "en")
    await app.send(GOOD_TOKEN, 1, "en")
    db = app.services.db
    assert isinstance(db, PostgresDatabase)
    row = await db.fetchone("SELECT state, token_encrypted FROM credentials WHERE user_id = 1")
    assert row is not None and row["state"] == "valid"
    assert GOOD_TOKEN.encode() not in bytes(row["token_encrypted"])  # encrypted at rest
    assert await app.services.accounts.token_for(1) == GOOD_TOKEN
    assert not settings.database_path.exists()
