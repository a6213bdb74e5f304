"""The bulk runner against the fake gateway: exactly once, pacing, pauses, resume, reconcile."""

from __future__ import annotations

import sqlite3
import time
from decimal import Decimal
from typing import Any

import pytest

from services.access import AccessPolicy
from services.accounts import NoToken
from services.bulk import (
    PAUSE_ACCESS,
    PAUSE_BALANCE,
    PAUSE_ERROR,
    PAUSE_GATEWAY,
    PAUSE_REFUSED,
    PAUSE_TOKEN,
    PAUSE_TOKEN_CHANGED,
    REFUSALS_TO_PAUSE,
    RateLimiter,
    ShortOfBalance,
)
from services.devsms import Balance
from services.events import Event, JobProgress
from services.sending import SmsSender
from storage import BulkRow, OutboxRepo, UserRepo
from storage.bulk import RowState
from storage.users import Access
from tests.support.bulk_env import SEND, TOKEN, USER, Env, wait

NEW_TOKEN = "bulk-token-0002"


async def test_every_row_reaches_the_gateway_exactly_once(env: Env) -> None:
    job_id = await env.job(60)
    runner = env.runner()
    assert await runner.begin(job_id)
    assert not await runner.begin(job_id)  # a second Start does nothing
    job, counts = await wait(env.finished)
    assert job.state == "done"
    assert (counts.sent, counts.left) == (60, 0)
    phones = [sms.phone for sms in env.fake.sent]
    assert len(phones) == len(set(phones)) == 60
    rows = await env.bulk.all_rows(job_id)
    assert all(row.sms_id is not None and row.cost == "50" for row in rows)


async def test_pacing_follows_the_rate() -> None:
    limiter = RateLimiter(50.0)
    started = time.monotonic()
    for _ in range(26):
        await limiter.wait()
    # 25 intervals of 20 ms: never faster than the rate (an upper bound would be a timed test).
    assert time.monotonic() - started >= 0.48


async def test_a_refused_row_fails_and_the_job_goes_on(env: Env) -> None:
    job_id = await env.job(10)
    env.fake.fail_next(
        1, status=400, body='{"success": false, "error": "Raqam bloklangan"}', path=SEND
    )
    await env.runner().begin(job_id)
    _, counts = await wait(env.finished)
    assert (counts.sent, counts.failed) == (9, 1)
    [failed] = await env.bulk.rows_in(job_id, ("failed",))
    assert failed.error == "Raqam bloklangan"


async def test_exhausted_balance_pauses_and_resume_finishes_without_duplicates(env: Env) -> None:
    env.fake.accounts[TOKEN].balance = Decimal(50 * 5)
    job_id = await env.job(12)
    runner = env.runner(concurrency=1)
    await runner.begin(job_id)
    job, counts = await wait(env.paused)
    assert job.pause_reason == PAUSE_BALANCE
    assert counts.sent == 5 and counts.pending == 7
    env.fake.accounts[TOKEN].balance = Decimal(1_000_000)
    assert await runner.resume(job_id)
    _, counts = await wait(env.finished)
    assert counts.sent == 12
    assert len(env.fake.requests_to(SEND)) == 13  # 12 sent + the one refused for balance
    assert len({sms.phone for sms in env.fake.sent}) == 12


async def test_repeated_gateway_errors_pause_and_unknown_rows_are_reconciled(env: Env) -> None:
    job_id = await env.job(8)
    # The gateway takes the SMS but answers 502: the bot cannot know it went out.
    env.fake.fail_next(3, status=502, body="<html>bad gateway</html>", path=SEND, process=True)
    runner = env.runner(concurrency=1)
    await runner.begin(job_id)
    job, counts = await wait(env.paused)
    assert job.pause_reason == PAUSE_GATEWAY
    assert counts.unknown == 3
    await runner.resume(job_id)
    _, counts = await wait(env.finished)
    # The three reappear in the history and are settled as sent; nothing was sent twice.
    assert (counts.sent, counts.unknown, counts.not_sent) == (8, 0, 0)
    assert len(env.fake.sent) == 8


async def test_an_unknown_row_not_in_the_history_at_the_end_stays_unclear(env: Env) -> None:
    job_id = await env.job(4)
    env.fake.fail_next(1, status=500, path=SEND)  # answered 500 without processing
    await env.runner(concurrency=1).begin(job_id)
    job, counts = await wait(env.finished)
    # A slow gateway may list it later: not concluded at the job's end (the delivery tracker
    # goes on looking, see test_tracker), but the job is over.
    assert job.state == "done"
    assert (counts.sent, counts.unknown, counts.not_sent, counts.failed) == (3, 1, 0, 0)
    assert len(env.fake.sent) == 3


async def test_restart_turns_rows_caught_mid_request_into_unknown_and_resumes(env: Env) -> None:
    job_id = await env.job(10)
    # As if a previous process claimed two rows, sent one of them, and was killed.
    await env.bulk.set_job_state(job_id, "running", allowed_from=("ready",))
    [first, second] = await env.bulk.next_pending(job_id, 2)
    await env.bulk.claim(job_id, first.row_no)
    await env.bulk.claim(job_id, second.row_no)
    await env.accounts.devsms.send_sms(TOKEN, first.phone, first.message)

    runner = env.runner()
    await runner.start()
    _, counts = await wait(env.finished)
    assert (counts.sent, counts.unknown, counts.not_sent) == (9, 1, 0)
    assert len(env.fake.sent) == 9
    assert len({sms.phone for sms in env.fake.sent}) == 9  # the first row was not sent again


async def test_a_single_sms_sent_earlier_is_not_claimed_by_an_unknown_bulk_row(env: Env) -> None:
    job_id = await env.job(1)
    [row] = await env.bulk.next_pending(job_id, 1)
    # The user sent the same text to the same number on its own, and it went out.
    outcome = await SmsSender(env.accounts, OutboxRepo(env.db)).send(
        USER, row.phone, row.message, None
    )
    assert outcome.result is not None and outcome.result.sms_id is not None
    # Then the job's only row was caught mid-request and never reached the gateway.
    await env.bulk.set_job_state(job_id, "running", allowed_from=("ready",))
    await env.bulk.claim(job_id, row.row_no)
    await env.bulk.finish_row(job_id, row.row_no, "unknown", error="timeout")
    job = await env.bulk.get_job(job_id)
    assert job is not None

    assert await env.runner().reconcile(job) == 0
    [settled] = await env.bulk.all_rows(job_id)
    assert (settled.state, settled.sms_id) == ("unknown", None)
    assert len(env.fake.sent) == 1


async def test_identical_unknown_bulk_rows_take_the_history_in_order(env: Env) -> None:
    job_id = await env.job(1)
    [row] = await env.bulk.next_pending(job_id, 1)
    more = await env.bulk.create_job(
        USER,
        template="x",
        sender=None,
        file_name="y.csv",
        file_format="csv",
        rows=[(2, row.phone, row.message, 1), (3, row.phone, row.message, 1)],
    )
    await env.bulk.set_job_state(more, "running", allowed_from=("ready",))
    sms_ids = []
    for row_no in (2, 3):
        await env.bulk.claim(more, row_no)
        sent = await env.accounts.devsms.send_sms(TOKEN, row.phone, row.message)
        sms_ids.append(sent.sms_id)
        await env.bulk.finish_row(more, row_no, "unknown", error="timeout")
    job = await env.bulk.get_job(more)
    assert job is not None

    assert await env.runner().reconcile(job) == 2
    assert [r.sms_id for r in await env.bulk.all_rows(more)] == sms_ids


async def test_cancel_stops_sending(env: Env) -> None:
    job_id = await env.job(200)
    runner = env.runner(rate=20.0, concurrency=1)
    await runner.begin(job_id)
    await env.fake.wait_sent(3)
    assert await runner.cancel(job_id)
    await runner.stop()
    job = await env.bulk.get_job(job_id)
    assert job is not None and job.state == "cancelled"
    counts = await env.bulk.counts(job_id)
    assert counts.pending > 150
    assert counts.sending == 0
    assert len(env.fake.sent) == counts.sent


# --- faults of the bot itself ------------------------------------------------------------------


async def test_a_worker_that_raises_pauses_the_job_and_its_row_is_never_resent(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await env.job(6)
    finish_row = env.bulk.finish_row
    broken: list[int] = []

    async def fails_once(job: int, row_no: int, state: RowState, **kwargs: Any) -> None:
        if state == "sent" and row_no == 4 and not broken:  # the third row
            broken.append(row_no)
            raise sqlite3.OperationalError("database is locked")
        await finish_row(job, row_no, state, **kwargs)

    monkeypatch.setattr(env.bulk, "finish_row", fails_once)
    runner = env.runner(concurrency=1)
    await runner.begin(job_id)
    job, counts = await wait(env.paused)  # the owner is told
    assert (job.state, job.pause_reason) == ("paused", PAUSE_ERROR)
    # The SMS of that row went out but its result was lost: unknown, not pending.
    [unknown] = await env.bulk.rows_in(job_id, ("unknown",))
    assert broken == [unknown.row_no] == [4]
    assert (counts.sent, counts.unknown, counts.pending, counts.sending) == (2, 1, 3, 0)
    assert not runner.is_running(job_id)

    assert await runner.resume(job_id)
    _, counts = await wait(env.finished)
    # The unknown row is found in the history; nothing was sent twice.
    assert (counts.sent, counts.unknown) == (6, 0)
    assert len(env.fake.requests_to(SEND)) == 6
    assert len({sms.phone for sms in env.fake.sent}) == 6


async def test_a_failing_producer_pauses_the_job_instead_of_leaving_it_running(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await env.job(3)
    next_pending = env.bulk.next_pending
    calls = 0

    async def fails_first(job: int, limit: int) -> list[BulkRow]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise sqlite3.OperationalError("disk I/O error")
        return await next_pending(job, limit)

    monkeypatch.setattr(env.bulk, "next_pending", fails_first)
    runner = env.runner()
    await runner.begin(job_id)
    job, counts = await wait(env.paused)
    assert job.pause_reason == PAUSE_ERROR
    assert counts.pending == 3 and env.fake.sent == []
    assert await runner.resume(job_id)
    _, counts = await wait(env.finished)
    assert counts.sent == 3


async def test_a_failing_progress_report_does_not_stop_the_job(env: Env) -> None:
    class Broken:
        async def emit(self, event: Event) -> None:
            if isinstance(event, JobProgress):
                raise RuntimeError("telegram is down")
            await env.emit(event)

    job_id = await env.job(5)
    runner = env.runner(concurrency=1, progress_every=0.0, notices=Broken())
    await runner.begin(job_id)
    job, counts = await wait(env.finished)
    assert (job.state, counts.sent) == ("done", 5)


# --- a refusal that repeats ---------------------------------------------------------------------


async def test_the_same_refusal_row_after_row_pauses_the_job(env: Env) -> None:
    job_id = await env.job(20)
    refusal = '{"success": false, "error": "Yuboruvchi nomi tasdiqlanmagan"}'
    env.fake.fail_next(100, status=403, body=refusal, path=SEND)  # every send refused
    runner = env.runner(concurrency=1)
    await runner.begin(job_id)
    job, counts = await wait(env.paused)
    assert job.pause_reason == PAUSE_REFUSED
    assert (counts.failed, counts.pending) == (REFUSALS_TO_PAUSE, 20 - REFUSALS_TO_PAUSE)
    assert len(env.fake.requests_to(SEND)) == REFUSALS_TO_PAUSE
    assert await env.bulk.last_failure(job_id) == "Yuboruvchi nomi tasdiqlanmagan"

    env.fake.clear_faults()  # the owner got the sender approved
    assert await runner.resume(job_id)
    _, counts = await wait(env.finished)
    # Resume sends only the rows still pending; the refused ones keep the gateway's text.
    assert (counts.sent, counts.failed) == (20 - REFUSALS_TO_PAUSE, REFUSALS_TO_PAUSE)
    failed = await env.bulk.rows_in(job_id, ("failed",))
    assert {row.error for row in failed} == {"Yuboruvchi nomi tasdiqlanmagan"}
    assert len(env.fake.requests_to(SEND)) == 20


async def test_different_refusals_do_not_pause(env: Env) -> None:
    job_id = await env.job(8)
    for n in range(REFUSALS_TO_PAUSE + 1):
        env.fake.fail_next(
            status=400, body=f'{{"success": false, "error": "Raqam {n} bloklangan"}}', path=SEND
        )
    await env.runner(concurrency=1).begin(job_id)
    _, counts = await wait(env.finished)
    assert (counts.failed, counts.sent) == (REFUSALS_TO_PAUSE + 1, 8 - REFUSALS_TO_PAUSE - 1)


# --- the owner's token changes ------------------------------------------------------------------


async def test_a_new_token_pauses_the_job_and_resume_goes_on_with_it(env: Env) -> None:
    env.fake.add_account(NEW_TOKEN, balance=1_000_000, sms_price=50)
    env.fake.latency = 0.02
    job_id = await env.job(40)
    runner = env.runner(rate=50.0, concurrency=1)
    await runner.begin(job_id)
    await env.fake.wait_sent(3)
    await env.accounts.connect(USER, NEW_TOKEN)
    sent_before = len(env.fake.requests_to(SEND))
    job, counts = await wait(env.paused)
    assert job.pause_reason == PAUSE_TOKEN_CHANGED
    # At most the request already in flight left with the old token.
    old = [r for r in env.fake.requests_to(SEND) if r.token == TOKEN]
    assert len(old) <= sent_before + 1
    assert counts.pending > 0

    assert await runner.resume(job_id)
    _, counts = await wait(env.finished)
    assert counts.sent == 40
    assert [r for r in env.fake.requests_to(SEND) if r.token == TOKEN] == old
    assert len({sms.phone for sms in env.fake.sent}) == 40 == len(env.fake.sent)


async def test_resume_refuses_when_the_balance_does_not_cover_the_rest(env: Env) -> None:
    env.fake.add_account(NEW_TOKEN, balance=100, sms_price=50)  # two SMS
    job_id = await env.job(5)
    await env.bulk.set_job_state(job_id, "paused", allowed_from=("ready",), reason="user")
    await env.accounts.connect(USER, NEW_TOKEN)
    runner = env.runner()
    with pytest.raises(ShortOfBalance) as refused:
        await runner.resume(job_id)
    assert refused.value.cost.missing is not None
    assert refused.value.cost.missing.amount == 150
    job = await env.bulk.get_job(job_id)
    assert job is not None and job.state == "paused"
    assert env.fake.requests_to(SEND) == []

    env.fake.accounts[NEW_TOKEN].balance = Decimal(250)  # exactly enough
    assert await runner.resume(job_id)
    _, counts = await wait(env.finished)
    assert counts.sent == 5


async def test_pausing_a_users_jobs_stops_their_sending(env: Env) -> None:
    env.fake.latency = 0.02
    job_id = await env.job(50)
    runner = env.runner(rate=50.0, concurrency=1)
    await runner.begin(job_id)
    await env.fake.wait_sent(2)
    assert await runner.pause_jobs_of(USER, PAUSE_ACCESS) == [job_id]
    await runner.stop()
    job = await env.bulk.get_job(job_id)
    assert job is not None and (job.state, job.pause_reason) == ("paused", PAUSE_ACCESS)
    counts = await env.bulk.counts(job_id)
    assert counts.pending > 40 and counts.sending == 0
    assert len(env.fake.requests_to(SEND)) == counts.sent


async def test_a_resume_that_races_a_deny_does_not_send(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = UserRepo(env.db)
    await users.set_access(USER, Access.ALLOWED)
    job_id = await env.job(5)
    await env.bulk.set_job_state(job_id, "paused", allowed_from=("ready",), reason="user")
    runner = env.runner(users=users, policy=AccessPolicy(allowlist=True))
    recent_balance = env.accounts.recent_balance

    async def denied_meanwhile(user_id: int, max_age: float = 60.0) -> Balance:
        # /deny arrives while Resume waits for the balance: the job is paused, so it finds
        # nothing running to pause.
        await users.set_access(USER, Access.DENIED)
        assert await runner.pause_jobs_of(USER, PAUSE_ACCESS) == []
        return await recent_balance(user_id, max_age)

    monkeypatch.setattr(env.accounts, "recent_balance", denied_meanwhile)
    await runner.resume(job_id)
    job, _counts = await wait(env.paused)
    assert (job.state, job.pause_reason) == ("paused", PAUSE_ACCESS)
    assert env.fake.requests_to(SEND) == []


async def test_a_job_of_a_denied_user_not_begun_yet_does_not_begin(env: Env) -> None:
    job_id = await env.job(3)  # created by Start, begin() not called yet
    runner = env.runner()
    assert await runner.pause_jobs_of(USER, PAUSE_ACCESS) == [job_id]
    assert not await runner.begin(job_id)
    job = await env.bulk.get_job(job_id)
    assert job is not None and (job.state, job.pause_reason) == ("paused", PAUSE_ACCESS)
    assert env.fake.requests_to(SEND) == []


async def test_a_token_gone_before_reconciling_pauses_for_the_token(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = await env.job(2)
    env.fake.fail_next(1, status=500, path=SEND)  # one row unknown: the history is needed

    async def no_token(*args: object, **kwargs: object) -> None:
        raise NoToken

    monkeypatch.setattr(env.accounts, "history", no_token)
    runner = env.runner(concurrency=1)
    await runner.begin(job_id)
    job, counts = await wait(env.paused)
    assert job.pause_reason == PAUSE_TOKEN
    assert (counts.sent, counts.unknown) == (1, 1)
    assert not runner.is_running(job_id)


async def test_the_same_token_connected_again_is_no_change(env: Env) -> None:
    env.fake.latency = 0.02
    job_id = await env.job(20)
    await env.runner(rate=50.0, concurrency=1).begin(job_id)
    await env.fake.wait_sent(2)
    await env.accounts.connect(USER, TOKEN)  # stored encrypted anew
    job, counts = await wait(env.finished)
    assert (job.state, counts.sent) == ("done", 20)
    assert env.paused.empty()
