"""/stats (charts of SMS and spending) and /export (a period's SMS as CSV or XLSX)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter

from handlers.callbacks import ExportAction, ExportCb, StatsCb
from handlers.filters import Accessible, AnyMenuButton
from handlers.reports.export import (
    cancel_export,
    format_chosen,
    last_month_chosen,
    range_not_text,
    range_typed,
    start_export,
    this_month_chosen,
    type_chosen,
)
from handlers.reports.render import STATS_DAYS
from handlers.reports.stats import show_stats, switch_days
from handlers.states import ExportForm
from handlers.utils import AnswerCallbacks

__all__ = ["create_router"]


def create_router() -> Router:
    router = Router(name="reports")
    # Every button is answered once, after its handler; a handler sets the text, if any.
    router.callback_query.middleware(AnswerCallbacks())
    router.message.register(show_stats, Command("stats"))
    router.message.register(start_export, Command("export"))
    free_text = (F.text, ~F.text.startswith("/"), ~AnyMenuButton())
    router.message.register(range_typed, ExportForm.range, *free_text)
    router.message.register(range_not_text, StateFilter(ExportForm), ~F.text)
    router.callback_query.register(
        switch_days, StatsCb.filter(F.days.in_(STATS_DAYS)), Accessible()
    )
    router.callback_query.register(
        this_month_chosen, ExportCb.filter(F.action == ExportAction.THIS_MONTH), Accessible()
    )
    router.callback_query.register(
        last_month_chosen, ExportCb.filter(F.action == ExportAction.LAST_MONTH), Accessible()
    )
    router.callback_query.register(
        type_chosen, ExportCb.filter(F.action == ExportAction.TYPE), Accessible()
    )
    router.callback_query.register(
        format_chosen, ExportCb.filter(F.action == ExportAction.FORMAT), Accessible()
    )
    router.callback_query.register(
        cancel_export, ExportCb.filter(F.action == ExportAction.CANCEL), Accessible()
    )
    return router
