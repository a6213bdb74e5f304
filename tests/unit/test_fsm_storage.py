"""The SQLite FSM storage: dialogs survive restarts, and only JSON goes in."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey

from storage import Database, SQLiteStorage

KEY = StorageKey(bot_id=7, chat_id=1001, user_id=1001)


class SendForm(StatesGroup):
    phone = State()
    text = State()


@pytest.fixture
def storage(db: Database) -> SQLiteStorage:
    return SQLiteStorage(db)


async def row_count(db: Database) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM fsm")
    assert row is not None
    return int(row[0])


async def test_state_accepts_state_objects_strings_and_none(storage: SQLiteStorage) -> None:
    assert await storage.get_state(KEY) is None
    await storage.set_state(KEY, SendForm.phone)
    assert await storage.get_state(KEY) == "SendForm:phone"
    await storage.set_state(KEY, "SendForm:text")
    assert await storage.get_state(KEY) == SendForm.text.state
    await storage.set_state(KEY, None)
    assert await storage.get_state(KEY) is None


async def test_data_round_trip_and_update(storage: SQLiteStorage) -> None:
    assert await storage.get_data(KEY) == {}
    data = {"phone": "998901234567", "parts": 2, "ok": True, "tags": ["a", "b"], "x": None}
    await storage.set_data(KEY, data)
    assert await storage.get_data(KEY) == data

    merged = await storage.update_data(KEY, {"parts": 3, "text": "Salom dunyo ✓"})
    assert merged == {**data, "parts": 3, "text": "Salom dunyo ✓"}
    assert await storage.get_data(KEY) == merged
    assert await storage.get_value(KEY, "text") == "Salom dunyo ✓"
    assert await storage.get_value(KEY, "missing", "default") == "default"

    # Returned dicts are copies: changing one does not change the stored data.
    merged["parts"] = 99
    assert (await storage.get_data(KEY))["parts"] == 3


async def test_state_and_data_are_independent(storage: SQLiteStorage, db: Database) -> None:
    await storage.set_state(KEY, SendForm.phone)
    await storage.set_data(KEY, {"a": 1})
    await storage.set_state(KEY, None)
    assert await storage.get_data(KEY) == {"a": 1}  # clearing the state keeps the data
    await storage.set_state(KEY, SendForm.text)
    await storage.set_data(KEY, {})
    assert await storage.get_state(KEY) == "SendForm:text"  # clearing data keeps the state
    assert await row_count(db) == 1


async def test_empty_data_without_state_deletes_the_row(
    storage: SQLiteStorage, db: Database
) -> None:
    await storage.set_state(KEY, SendForm.phone)
    await storage.set_data(KEY, {"a": 1})
    await storage.set_state(KEY, None)
    await storage.set_data(KEY, {})
    assert await row_count(db) == 0
    # Clearing a key that was never set leaves nothing behind either.
    await storage.set_state(StorageKey(bot_id=7, chat_id=5, user_id=5), None)
    assert await row_count(db) == 0


async def test_keys_keep_chats_threads_and_destinies_apart(storage: SQLiteStorage) -> None:
    keys = [
        KEY,
        StorageKey(bot_id=7, chat_id=-100, user_id=1001),
        StorageKey(bot_id=7, chat_id=-100, user_id=1001, thread_id=5),
        StorageKey(bot_id=7, chat_id=1001, user_id=1001, destiny="other"),
        StorageKey(bot_id=7, chat_id=1001, user_id=1001, business_connection_id="bc1"),
        StorageKey(bot_id=8, chat_id=1001, user_id=1001),
    ]
    for number, key in enumerate(keys):
        await storage.set_data(key, {"n": number})
    assert [(await storage.get_data(key))["n"] for key in keys] == list(range(len(keys)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"when": object()}, "JSON-serialisable"),
        ({"pair": (1, 2)}, "'pair'"),
        ({1: "int key"}, "keys: 1$"),
        ({"nan": float("nan")}, "JSON-serialisable"),
        ({"nested": {"set": {1, 2}}}, "JSON-serialisable"),
    ],
)
async def test_non_json_data_fails_at_once(
    storage: SQLiteStorage, data: dict[object, object], message: str
) -> None:
    await storage.set_data(KEY, {"kept": True})
    with pytest.raises(TypeError, match=message):
        await storage.set_data(KEY, data)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await storage.update_data(KEY, data)  # type: ignore[arg-type]
    assert await storage.get_data(KEY) == {"kept": True}


async def test_non_dict_data_is_refused(storage: SQLiteStorage) -> None:
    with pytest.raises(DataNotDictLikeError):
        await storage.set_data(KEY, [("a", 1)])  # type: ignore[arg-type]


async def test_stored_as_plain_json(storage: SQLiteStorage, db: Database) -> None:
    await storage.set_state(KEY, SendForm.phone)
    await storage.set_data(KEY, {"phone": "998901234567"})
    row = await db.fetchone("SELECT key, state, data FROM fsm")
    assert row is not None
    assert tuple(row) == ("7:1001:1001:::default", "SendForm:phone", '{"phone":"998901234567"}')


async def test_dialog_survives_reopening_the_database(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite3"
    db = await Database.open(path)
    storage = SQLiteStorage(db)
    context = FSMContext(storage=storage, key=KEY)
    await context.set_state(SendForm.text)
    await context.update_data(phone="998901234567", draft="Salom")
    await storage.close()
    # close() leaves the shared database open for the repositories.
    assert await db.fetchone("SELECT 1") is not None
    await db.close()

    reopened = await Database.open(path)
    try:
        context = FSMContext(storage=SQLiteStorage(reopened), key=KEY)
        assert await context.get_state() == "SendForm:text"
        assert await context.get_data() == {"phone": "998901234567", "draft": "Salom"}
        await context.clear()
        assert await context.get_state() is None
        assert await context.get_data() == {}
    finally:
        await reopened.close()


async def test_concurrent_updates_keep_every_key(storage: SQLiteStorage) -> None:
    await asyncio.gather(*(storage.update_data(KEY, {f"k{i}": i}) for i in range(20)))
    assert await storage.get_data(KEY) == {f"k{i}": i for i in range(20)}
