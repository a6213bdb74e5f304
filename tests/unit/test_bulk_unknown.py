"""A bulk row whose request may have reached the gateway is never put back and sent again."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.bulk_env import SEND, Env, wait


async def test_connection_closed_while_reading_the_answer_is_not_sent_again(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = aiohttp.ClientResponse.read
    closed: list[str] = []

    async def closed_once(self: aiohttp.ClientResponse) -> bytes:
        # aiohttp's StreamReader raises this when the connection dies while the answer is
        # read: the gateway already has the SMS.
        if self.url.path.endswith(SEND) and not closed:
            closed.append(self.url.path)
            raise RuntimeError("Connection closed.")
        return await real_read(self)

    monkeypatch.setattr(aiohttp.ClientResponse, "read", closed_once)
    job_id = await env.job(5)
    await env.runner(concurrency=1).begin(job_id)
    _, counts = await wait(env.finished)

    assert closed
    phones = [sms.phone for sms in env.fake.sent]
    assert len(phones) == len(set(phones)) == 5  # the row was not put back and resent
    assert len(env.fake.requests_to(SEND)) == 5
    assert counts.sent + counts.unknown == 5
