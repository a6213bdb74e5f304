"""The bulk runner against the fake gateway: exactly once, pacing, pauses, resume, reconcile."""

from __future__ import annotations

import time
from decimal import Decimal

from services.bulk import PAUSE_BALANCE, PAUSE_GATEWAY, RateLimiter
from services.sending import SmsSender
from storage import OutboxRepo
from tests.support.bulk_env import SEND, TOKEN, USER, Env, wait


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


async def test_unknown_rows_that_never_arrived_become_not_sent(env: Env) -> None:
    job_id = await env.job(4)
    env.fake.fail_next(1, status=500, path=SEND)  # answered 500 without processing
    await env.runner(concurrency=1).begin(job_id)
    _, counts = await wait(env.finished)
    assert (counts.sent, counts.not_sent) == (3, 1)
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
    assert (counts.sent, counts.not_sent) == (9, 1)
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

    assert await env.runner().reconcile(job) == 1
    [settled] = await env.bulk.all_rows(job_id)
    assert (settled.state, settled.sms_id) == ("not_sent", None)
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
