"""The account session: one token per run of calls, one place for a 401, token changes seen."""

from __future__ import annotations

import pytest

from services.accounts import NoToken, TokenState
from services.devsms import DevsmsUnauthorized
from storage import CredentialRepo
from tests.support.bulk_env import SEND, TOKEN, USER, Env, wait

NEW_TOKEN = "bulk-token-0002"
PHONE = "998901234567"


async def test_a_session_sends_with_the_users_token(env: Env) -> None:
    session = await env.accounts.session(USER)
    result = await session.send(PHONE, "Hello", "4546")
    [request] = env.fake.requests_to(SEND)
    assert request.token == TOKEN
    assert result.sms_id == env.fake.sent[0].sms_id
    assert TOKEN not in repr(session)


async def test_a_401_marks_the_token_invalid_for_sessions_and_single_calls(env: Env) -> None:
    session = await env.accounts.session(USER)
    del env.fake.accounts[TOKEN]  # revoked at the gateway
    with pytest.raises(DevsmsUnauthorized):
        await session.send(PHONE, "Hello", None)
    assert not await env.accounts.has_token(USER)
    assert await session.check() is TokenState.GONE
    with pytest.raises(NoToken):
        await env.accounts.session(USER)

    env.fake.add_account(NEW_TOKEN)
    await env.accounts.connect(USER, NEW_TOKEN)
    del env.fake.accounts[NEW_TOKEN]
    with pytest.raises(DevsmsUnauthorized):
        await env.accounts.send(USER, PHONE, "Hello", None)
    assert not await env.accounts.has_token(USER)


async def test_a_session_sees_the_token_change_but_not_the_same_token_saved_again(
    env: Env,
) -> None:
    session = await env.accounts.session(USER)
    assert await session.check() is TokenState.CURRENT
    await env.accounts.connect(USER, TOKEN)  # encrypted anew
    assert await session.check() is TokenState.CURRENT
    env.fake.add_account(NEW_TOKEN)
    await env.accounts.connect(USER, NEW_TOKEN)
    assert await session.check() is TokenState.CHANGED
    await CredentialRepo(env.db).delete(USER)
    assert await session.check() is TokenState.GONE


async def test_a_token_revoked_mid_job_pauses_it_and_no_row_is_lost_or_sent_twice(
    env: Env,
) -> None:
    env.fake.latency = 0.02
    job_id = await env.job(20)
    runner = env.runner(rate=50.0, concurrency=1)
    await runner.begin(job_id)
    await env.fake.wait_sent(3)
    env.fake.add_account(NEW_TOKEN, balance=1_000_000, sms_price=50)
    del env.fake.accounts[TOKEN]
    job, counts = await wait(env.paused)
    assert job.pause_reason == "token"
    assert not await env.accounts.has_token(USER)
    # The refused row went back: nothing unknown, nothing failed.
    assert (counts.unknown, counts.failed, counts.sent + counts.pending) == (0, 0, 20)

    await env.accounts.connect(USER, NEW_TOKEN)
    assert await runner.resume(job_id)
    _, counts = await wait(env.finished)
    assert counts.sent == 20
    assert len({sms.phone for sms in env.fake.sent}) == 20 == len(env.fake.sent)
