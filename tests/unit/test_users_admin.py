"""UserRepo's admin side: access decisions, the one-time access request, counts and pages."""

from __future__ import annotations

import pytest

from storage import CredentialRepo, Database
from storage.users import Access, UserRepo

ALI, BOB, CAT, DAN = 1001, 2002, 3003, 4004


@pytest.fixture
async def users(db: Database) -> UserRepo:
    repo = UserRepo(db)
    for user_id, name, username in (
        (ALI, "Ali", "ali"),
        (BOB, "Bob", None),
        (CAT, "Cat", "cat"),
        (DAN, "Dan", None),
    ):
        await repo.upsert_seen(user_id, name, username)
    return repo


async def test_access_starts_pending_and_follows_the_decisions(users: UserRepo) -> None:
    assert await users.get_access(ALI) == Access.PENDING
    assert await users.get_access(999) is None
    await users.set_access(ALI, Access.ALLOWED)
    await users.set_access(BOB, Access.DENIED)
    assert await users.get_access(ALI) == Access.ALLOWED
    assert await users.get_access(BOB) == Access.DENIED
    await users.set_access(ALI, Access.DENIED)
    assert await users.get_access(ALI) == Access.DENIED
    # The decision survives the user writing again.
    await users.upsert_seen(BOB, "Bobby", "bob")
    assert await users.get_access(BOB) == Access.DENIED


async def test_an_admin_can_allow_someone_who_never_wrote(users: UserRepo) -> None:
    await users.set_access(777, Access.ALLOWED)
    assert await users.get_access(777) == Access.ALLOWED
    # When they do write, their name arrives and the approval stays.
    row = await users.upsert_seen(777, "Newcomer", None)
    assert row.first_name == "Newcomer"
    assert await users.get_access(777) == Access.ALLOWED


async def test_access_request_is_marked_once_per_user(users: UserRepo) -> None:
    assert await users.mark_access_asked(ALI) is True
    assert await users.mark_access_asked(ALI) is False
    assert await users.mark_access_asked(BOB) is True
    assert await users.mark_access_asked(999) is False  # no such user


async def test_counts_for_the_summary(db: Database, users: UserRepo) -> None:
    credentials = CredentialRepo(db)
    await credentials.save(ALI, b"cipher-a")
    await credentials.save(BOB, b"cipher-b")
    await credentials.mark_invalid(BOB)
    await users.set_active(CAT, False)
    await users.set_access(ALI, Access.ALLOWED)
    await users.set_access(DAN, Access.DENIED)
    await users.mark_access_asked(BOB)
    await users.mark_access_asked(DAN)

    counts = await users.counts()
    assert (counts.total, counts.blocked, counts.valid_tokens) == (4, 1, 1)
    # DAN asked but was denied: only BOB is still waiting.
    assert (counts.allowed, counts.waiting, counts.denied) == (1, 1, 1)


async def test_empty_database_counts_zero(db: Database) -> None:
    counts = await UserRepo(db).counts()
    assert (counts.total, counts.blocked, counts.valid_tokens, counts.waiting) == (0, 0, 0, 0)


async def test_pages_go_in_first_seen_order_with_token_state(
    db: Database, users: UserRepo
) -> None:
    # DAN came first, ALI last; the rest share a second and fall back to the id.
    await db.execute(
        "UPDATE users SET created_at = '2024-01-01T00:00:00+00:00' WHERE id = ?", (DAN,)
    )
    await db.execute(
        "UPDATE users SET created_at = '2030-01-01T00:00:00+00:00' WHERE id = ?", (ALI,)
    )
    credentials = CredentialRepo(db)
    await credentials.save(BOB, b"cipher-b")
    await credentials.save(CAT, b"cipher-c")
    await credentials.mark_invalid(CAT)
    await users.set_active(BOB, False)
    await users.set_access(CAT, Access.ALLOWED)

    first = await users.list_page(0, 3)
    second = await users.list_page(3, 3)
    assert [entry.id for entry in first] == [DAN, BOB, CAT]
    assert [entry.id for entry in second] == [ALI]
    assert await users.list_page(6, 3) == []

    dan, bob, cat = first
    assert (dan.first_name, dan.username, dan.token_state, dan.is_active) == (
        "Dan",
        None,
        None,
        True,
    )
    assert (bob.token_state, bob.is_active, bob.access) == ("valid", False, Access.PENDING)
    assert (cat.token_state, cat.access) == ("invalid", Access.ALLOWED)
    assert second[0].username == "ali"


async def test_broadcast_targets_are_active_users_with_a_valid_token(
    db: Database, users: UserRepo
) -> None:
    credentials = CredentialRepo(db)
    for user_id in (ALI, BOB, CAT):
        await credentials.save(user_id, b"cipher")
    await credentials.mark_invalid(BOB)
    await users.set_active(CAT, False)
    await users.set_access(ALI, Access.ALLOWED)
    assert await users.broadcast_targets() == [(ALI, Access.ALLOWED)]

    await users.set_active(CAT, True)
    assert await users.broadcast_targets() == [(ALI, Access.ALLOWED), (CAT, Access.PENDING)]
