"""FSM states of every dialog; the SQLite storage keeps them across restarts."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class TokenForm(StatesGroup):
    token = State()


class SendForm(StatesGroup):
    phone = State()
    text = State()
    preview = State()


class SettingsForm(StatesGroup):
    sender = State()
    threshold = State()
