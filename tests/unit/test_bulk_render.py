"""A bulk job's texts are pure: what they show is read by the caller and passed in, so the
same job reads the same wherever it appears, and rendering needs no database."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace

import pytest
from aiogram.utils.i18n import I18n

from bot.i18n import DOMAIN, LOCALES_DIR
from handlers.bulk import JobFacts, progress_text, result_file
from services.bulk import PAUSE_REFUSED
from storage import BulkRow, JobCounts, JobRow

JOB = JobRow(
    id=7,
    user_id=1,
    state="running",
    pause_reason=None,
    file_name="<list>.csv",
    file_format="csv",
    template="Hi",
    sender=None,
    total=4,
    parts_total=4,
    chat_id=1,
    progress_message_id=10,
    created_at="2026-12-01T10:00:00",
    started_at=None,
    finished_at=None,
    updated_at="2026-12-01T10:00:00",
    summary_sent=False,
    delivery_reported=False,
)


@pytest.fixture(autouse=True)
def english() -> Iterator[None]:
    i18n = I18n(path=LOCALES_DIR, default_locale="en", domain=DOMAIN)
    with i18n.context(), i18n.use_locale("en"):
        yield


def test_a_paused_job_shows_the_refusal_and_the_costs_it_was_given() -> None:
    job = replace(JOB, state="paused", pause_reason=PAUSE_REFUSED)
    facts = JobFacts(
        job, JobCounts(pending=2, sent=1, failed=1), ["50", "$0.005"], "Sender <not> allowed"
    )
    text = progress_text(facts, rate=5)
    assert "📦 <b>Bulk job #7</b> · &lt;list&gt;.csv" in text
    assert "▓▓▓▓▓░░░░░ 50%" in text
    assert "answering: «Sender &lt;not&gt; allowed»" in text
    assert "Sent: 1 · failed: 1 · left: 2" in text
    assert "Cost so far: 50 so'm + $0.005" in text


def test_a_running_job_shows_the_time_left_at_the_rate_it_was_given() -> None:
    facts = JobFacts(JOB, JobCounts(pending=600), [])
    assert "Time left: about 2 min" in progress_text(facts, rate=5)
    assert "Cost so far: —" in progress_text(facts, rate=5)


def test_the_result_file_lists_every_row_it_was_given() -> None:
    rows = [
        BulkRow(7, 1, "998901234567", "Hi", 1, "sent", 11, None, "DELIVERED", "50", None, None),
        BulkRow(7, 2, "998901234568", "Hi", 1, "not_sent", None, None, None, None, None, None),
    ]
    done = replace(JOB, state="done")
    file = result_file(done, rows)
    assert file.filename == "<list>-result-7.csv"
    lines = io.BytesIO(file.data).read().decode("utf-8-sig").splitlines()
    assert lines[0] == "row,phone,sms_id,state,status,error"
    assert lines[1:] == [
        "1,998901234567,11,sent,DELIVERED,",
        "2,998901234568,,probably_not_sent,,",
    ]
