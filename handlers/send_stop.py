"""A single send to a number on the stop list: refused before the preview, with the reason
and a button that removes the number (handlers/stoplist.py), the draft's text kept."""

from __future__ import annotations

from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State
from aiogram.types import Message

from handlers.keyboards import unstop_keyboard
from handlers.states import SendForm
from handlers.stoplist_texts import refused_text
from storage import StopListRepo


async def refused_for_stop_list(
    message: Message,
    state: FSMContext,
    stoplist: StopListRepo,
    user_id: int,
    phone: str,
    *,
    ask_again: State = SendForm.phone,
) -> bool:
    """Whether `phone` (digits) is on the user's stop list; if so the user is told why no
    preview comes, and the dialog waits for another number (or this one, once removed)."""
    entry = await stoplist.entry(user_id, phone)
    if entry is None:
        return False
    await state.set_state(ask_again)
    await message.answer(refused_text(entry), reply_markup=unstop_keyboard(entry.id))
    return True
