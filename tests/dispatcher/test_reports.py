"""/stats and /export (handlers/reports) through the Dispatcher: charts, period switches, fast
taps, periods, typed ranges and their errors, empty periods, files and their parts."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiogram.methods import SendDocument
from openpyxl import load_workbook

from bot.config import Settings
from bot.factory import build_app
from handlers.reports.stats import chart_of
from services.charts import PNG_MAGIC, ChartSpec
from services.traffic import AfterRound, TrafficSync
from storage.alerts import WatchTarget
from storage.traffic import NewRecord
from tests.conftest import GOOD_TOKEN, OTHER_TOKEN, make_settings
from tests.fakes.fake_devsms import FakeDevsms
from tests.support.harness import Harness, button_data, make_bot
from tests.support.recording import RecordingSession, SentMessage

USER = 1
NOW = dt.datetime.now(dt.UTC)


async def connect(app: Harness, lang: str = "en", *, synced: bool = True) -> None:
    """A user with a token whose account the traffic sync has looked at (unless `synced` is
    False: a token just connected, before its first look)."""
    await app.send("/start", USER, lang)
    await app.send(GOOD_TOKEN, USER, lang)
    if synced:
        await app.services.traffic.save_sync_state(USER, None)


def traffic_sync(app: Harness, after_round: Sequence[AfterRound] = ()) -> TrafficSync:
    """The bot's traffic sync over the app's services (bot/background.py builds the same)."""
    return TrafficSync(
        app.services.traffic,
        app.services.alerts,
        app.services.accounts,
        interval=60,
        max_pages=2,
        concurrency=1,
        backfill_days=30,
        first_looks=app.shared.first_looks,
        after_round=after_round,
    )


def record(n: int, status: str, at: dt.datetime, **fields: object) -> NewRecord:
    values: dict[str, object] = {
        "sms_id": 10_000 + n,
        "request_id": f"req-{n}",
        "phone": "998901234567",
        "message": f"Code {n}",
        "sender": "4546",
        "parts": 1,
        "cost": Decimal(50),
        "currency": "UZS",
        "status": status,
        "created_at": at,
    }
    values.update(fields)
    return NewRecord(**values)  # type: ignore[arg-type]


async def traffic_today(app: Harness) -> None:
    """Five SMS an hour ago: three delivered, one rejected, one waiting; balance 10,000."""
    at = NOW - dt.timedelta(hours=1)
    statuses = ["DELIVERED", "DELIVERED", "DELIVERED", "REJECTED", "waiting"]
    await app.services.traffic.merge(
        USER, [record(n, s, at + dt.timedelta(seconds=n)) for n, s in enumerate(statuses)]
    )
    await app.services.traffic.record_balance(USER, Decimal(10_000), "UZS")


def photos(app: Harness) -> list[SentMessage]:
    return [m for m in app.session.chat(USER) if m.photo is not None]


def documents(app: Harness) -> list[SentMessage]:
    return [m for m in app.session.chat(USER) if m.file is not None]


def labels(message: SentMessage) -> list[str]:
    return [label for label, _ in message.buttons()]


# --- /stats ----------------------------------------------------------------------------------


async def test_stats_sends_a_chart_with_the_weeks_numbers(app: Harness) -> None:
    await connect(app)
    await traffic_today(app)
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    assert chart.photo is not None and chart.photo.startswith(PNG_MAGIC)
    assert "Last 7 days" in chart.text
    assert "SMS: 5 · delivered 3, not delivered 1, waiting 1" in chart.text
    assert "Delivery rate: 75.0%" in chart.text
    # 250 so'm over 7 days: 35.71 a day; 10,000 lasts 280 days at that pace.
    assert "Spent: 250 so'm · 35.71 so'm a day · 0.7 SMS a day" in chart.text
    assert "Balance: 10\u00a0000 so'm · lasts ≈ 280 days at this pace" in chart.text
    assert labels(chart) == ["• 7 days", "30 days", "90 days"]


async def test_stats_handler_returns_before_the_chart_is_drawn(app: Harness) -> None:
    """The chart is the desk's job: the handler hands it over and returns."""
    await connect(app)
    sent = await app.send("/stats")
    assert sent == []
    assert app.services.charts.pending(USER) == 1
    await app.services.charts.idle()
    assert len(photos(app)) == 1


async def test_a_period_button_redraws_the_same_photo(app: Harness) -> None:
    await connect(app)
    await traffic_today(app)
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    before = chart.photo
    await app.tap(chart, "30 days")
    assert app.answers()[-1].text == "Drawing the chart…"
    await app.services.charts.idle()
    [chart] = photos(app)
    assert chart.edits == 1 and chart.photo != before
    assert "Last 30 days" in chart.text
    assert labels(chart) == ["7 days", "• 30 days", "90 days"]
    # 250 so'm over 30 days.
    assert "8.33 so'm a day" in chart.text and "lasts ≈ 1\u00a0200 days" in chart.text


async def test_fast_taps_draw_the_running_chart_and_the_last_tap_only(app: Harness) -> None:
    await connect(app)
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    await app.tap(chart, "30 days")  # runs
    await app.tap_data(chart, _data(chart, "90 days"))  # waits...
    await app.tap_data(chart, _data(chart, "7 days"))  # ...and is replaced by this one
    assert app.services.charts.pending(USER) == 2
    await app.services.charts.idle()
    [chart] = photos(app)
    assert chart.edits == 2
    assert "Last 7 days" in chart.text and labels(chart)[0] == "• 7 days"


def _data(message: SentMessage, label: str) -> str:
    [data] = [d for text, d in message.buttons() if text.endswith(label)]
    assert data is not None
    return data


async def test_stats_of_an_empty_account_says_so(app: Harness) -> None:
    await connect(app)
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    assert "No SMS in these days." in chart.text
    assert "Delivery rate" not in chart.text
    assert "Spent: 0 so'm" in chart.text


async def test_stats_in_russian(app: Harness) -> None:
    await connect(app, "ru")
    await traffic_today(app)
    await app.send("/stats", USER, "ru")
    await app.services.charts.idle()
    [chart] = photos(app)
    assert "Последние 7 дней" in chart.text
    assert "доставлено 3, не доставлено 1, в ожидании 1" in chart.text
    assert "при таком темпе хватит ≈ на 280 дней" in chart.text
    assert labels(chart) == ["• 7 дней", "30 дней", "90 дней"]


async def test_a_forged_period_or_a_tap_on_a_text_message_changes_nothing(
    app: Harness,
) -> None:
    await connect(app)
    [menu] = await app.send("/export")
    await app.tap_data(menu, "sts:30")
    assert app.answers()[-1].text == "This button is no longer active."
    await app.tap_data(menu, "sts:14")
    assert app.services.charts.pending(USER) == 0
    assert photos(app) == []


@pytest.fixture
async def slow_app(tmp_path: Path, devsms: FakeDevsms) -> AsyncIterator[Harness]:
    settings: Settings = make_settings(tmp_path, devsms.url, chart_time_limit=0.001)
    session = RecordingSession()
    async with build_app(settings, bot=make_bot(session)) as built:
        yield Harness.of(built, session)


async def test_a_chart_past_its_time_limit_is_reported(slow_app: Harness) -> None:
    app = slow_app
    await connect(app)
    await app.send("/stats")
    await app.services.charts.idle()
    assert photos(app) == []
    assert "Could not draw the chart right now" in app.last().text


# --- /export ---------------------------------------------------------------------------------


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


async def test_export_this_month_as_csv(app: Harness) -> None:
    await connect(app)
    at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    await app.services.traffic.merge(
        USER,
        [
            record(1, "DELIVERED", at, message='=HYPERLINK("http://evil")'),
            record(2, "REJECTED", at + dt.timedelta(seconds=1), cost=Decimal(100), parts=2),
        ],
    )
    [menu] = await app.send("/export")
    assert "Asia/Tashkent" in menu.text
    assert labels(menu) == ["This month", "Last month", "Type the dates", "✖️ Cancel"]
    [choice] = await app.tap(menu, "This month")
    assert choice.message_id == menu.message_id
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=5))).date()
    first = today.replace(day=1)
    shown = first.isoformat() if first == today else f"{first.isoformat()} – {today.isoformat()}"
    assert f"Period: {shown}\n" in choice.text
    assert labels(choice) == ["CSV", "Excel (XLSX)", "✖️ Cancel"]
    await app.tap(choice, "CSV")
    await app.services.exports.idle()
    [document] = documents(app)
    assert document.file_name == f"sms-{today.replace(day=1).isoformat()}_{today}.csv"
    assert "· 2 SMS" in document.text and "Part" not in document.text
    header, *rows = csv_rows(document.file or b"")
    assert header == ["Time", "Phone", "Text", "Parts", "Cost", "Status", "Sent from",
                      "Bulk job", "Template"]  # fmt: skip
    local = (at + dt.timedelta(hours=5)).replace(tzinfo=None, microsecond=0)
    assert rows[0][0] == local.isoformat(sep=" ")
    assert rows[0][1:] == ["998901234567", "'=HYPERLINK(\"http://evil\")", "1", "50",
                           "DELIVERED", "elsewhere", "", ""]  # fmt: skip
    assert rows[1][3:6] == ["2", "100", "REJECTED"]
    assert "✅ Exported 2 SMS" in app.session.messages[(USER, menu.message_id)].text


async def test_export_last_month_as_xlsx_with_a_summary(app: Harness) -> None:
    await connect(app, "ru")
    today = dt.datetime.now(dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=5))).date()
    last_month_day = today.replace(day=1) - dt.timedelta(days=3)
    at = dt.datetime.combine(last_month_day, dt.time(12), tzinfo=dt.UTC)
    await app.services.traffic.merge(
        USER, [record(1, "DELIVERED", at), record(2, "waiting", at, sms_id=20_002)]
    )
    [menu] = await app.send("/export", USER, "ru")
    [choice] = await app.tap(menu, "Прошлый месяц")
    await app.tap(choice, "Excel (XLSX)")
    await app.services.exports.idle()
    [document] = documents(app)
    assert (document.file_name or "").endswith(".xlsx")
    book = load_workbook(io.BytesIO(document.file or b""))
    assert book.sheetnames == ["SMS", "Итоги"]
    sheet = book["SMS"]
    assert [c.value for c in sheet[1]][:3] == ["Время", "Телефон", "Текст"]
    assert sheet.max_row == 3
    summary = {row[0].value: row[1].value for row in book["Итоги"].iter_rows()}
    assert summary["SMS"] == 2 and summary["Доставлены"] == 1
    assert summary["Расход, сум"] == 100


async def test_an_empty_period_says_so_plainly(app: Harness) -> None:
    await connect(app)
    [menu] = await app.send("/export")
    [choice] = await app.tap(menu, "Last month")
    await app.tap(choice, "CSV")
    await app.services.exports.idle()
    done = choice
    assert "There are no SMS from" in done.text and "Nothing to export" in done.text
    assert documents(app) == []


async def test_typed_range_and_its_errors(app: Harness) -> None:
    await connect(app)
    await app.services.traffic.merge(
        USER, [record(1, "DELIVERED", dt.datetime(2026, 11, 10, 8, tzinfo=dt.UTC))]
    )
    [menu] = await app.send("/export")
    [ask] = await app.tap(menu, "Type the dates")
    assert "first and the last day" in ask.text and ask.buttons() == []
    assert await app.state_of() == "ExportForm:range"
    cases = {
        "november": "could not read two dates",
        "2026-11-31 2026-12-01": "could not read two dates",
        "2026-11-30 2026-11-01": "before the first one",
        "2024-01-01 2026-11-30": "more than a year",
        "2099-01-01 2099-01-02": "starts after today",
    }
    for typed, expected in cases.items():
        [reply] = await app.send(typed)
        assert expected in reply.text and "For example" in reply.text
        assert await app.state_of() == "ExportForm:range"
    [choice] = await app.send("2026-11-01 2026-11-30")
    assert "Period: 2026-11-01 – 2026-11-30" in choice.text
    assert await app.state_of() is None
    await app.tap(choice, "CSV")
    await app.services.exports.idle()
    [document] = documents(app)
    assert document.file_name == "sms-2026-11-01_2026-11-30.csv"
    assert len(csv_rows(document.file or b"")) == 2


async def test_typed_range_takes_text_only_and_cancel_leaves(app: Harness) -> None:
    await connect(app)
    [menu] = await app.send("/export")
    await app.tap(menu, "Type the dates")
    [reply] = await app.send_sticker()
    assert "as a text message" in reply.text
    [cancelled] = await app.send("/cancel")
    assert cancelled.text.startswith("Cancelled.")
    assert await app.state_of() is None


async def test_cancel_button(app: Harness) -> None:
    await connect(app)
    [menu] = await app.send("/export")
    [done] = await app.tap(menu, "✖️ Cancel")
    assert done.text == "Export cancelled." and done.buttons() == []


async def test_forged_format_buttons_export_nothing(app: Harness) -> None:
    await connect(app)
    [menu] = await app.send("/export")
    first = dt.date(2026, 1, 1).toordinal()
    for data in (
        f"exp:fmt:csv:{first}:{first - 1}",  # backwards
        f"exp:fmt:csv:{first}:{first + 400}",  # too long
        f"exp:fmt::{first}:{first}",  # no format
        # Day 1 of year 1: its midnight in Tashkent is before datetime's first moment in UTC
        # (OverflowError, "Something went wrong"); days a year ahead are no export either.
        "exp:fmt:csv:1:1",
        f"exp:fmt:csv:{NOW.date().toordinal() + 400}:{NOW.date().toordinal() + 400}",
    ):
        await app.tap_data(menu, data)
        assert app.answers()[-1].text == "This button is no longer active."
    assert documents(app) == []


@pytest.fixture
async def small_parts_app(tmp_path: Path, devsms: FakeDevsms) -> AsyncIterator[Harness]:
    settings = make_settings(tmp_path, devsms.url, export_part_mb=0.01)  # 10 kB
    session = RecordingSession()
    async with build_app(settings, bot=make_bot(session)) as built:
        yield Harness.of(built, session)


async def test_a_large_export_comes_in_numbered_parts(small_parts_app: Harness) -> None:
    app = small_parts_app
    await connect(app)
    at = dt.datetime(2026, 11, 10, 8, tzinfo=dt.UTC)
    await app.services.traffic.merge(
        USER,
        [record(n, "DELIVERED", at + dt.timedelta(seconds=n), message="x" * 60 + str(n))
         for n in range(600)],
    )  # fmt: skip
    [menu] = await app.send("/export")
    await app.tap(menu, "Type the dates")
    [choice] = await app.send("2026-11-10 2026-11-10")
    await app.tap(choice, "CSV")
    await app.services.exports.idle()
    parts = documents(app)
    assert len(parts) > 2
    assert all(len(p.file or b"") <= int(0.01 * 1024 * 1024) for p in parts)
    assert [p.file_name for p in parts] == [
        f"sms-2026-11-10_2026-11-10-part{n}.csv" for n in range(1, len(parts) + 1)
    ]
    assert f"Part 1 of {len(parts)}" in parts[0].text and "600 SMS" in parts[0].text
    texts = [row[2] for p in parts for row in csv_rows(p.file or b"")[1:]]
    assert texts == ["x" * 60 + str(n) for n in range(600)]


async def test_exports_at_once_are_bounded(app: Harness) -> None:
    await connect(app)
    [menu] = await app.send("/export")
    [choice] = await app.tap(menu, "This month")
    # Another user's export holds the only slots.
    assert app.services.exports.take(98) and app.services.exports.take(99)
    await app.tap(choice, "CSV")
    await app.services.exports.idle()
    answer = app.answers()[-1]
    assert answer.text is not None and "Try again in a minute" in answer.text
    assert answer.show_alert
    assert documents(app) == []


async def test_menu_and_help_list_both_commands(app: Harness) -> None:
    from bot.commands import commands_for

    for lang, stats, export in (
        ("en", "Charts of SMS and spending", "SMS of a period as a file"),
        ("ru", "Графики SMS и расходов", "SMS за период файлом"),
        ("uz", "SMS va xarajatlar grafiklari", "Davrdagi SMSlar fayl koʻrinishida"),
    ):
        menu = {c.command: c.description for c in commands_for(app.services.i18n, lang)}
        assert menu["stats"] == stats and menu["export"] == export
    await connect(app)
    [help_text] = await app.send("/help")
    assert "/stats — charts" in help_text.text and "/export — SMS of a period" in help_text.text


async def test_chart_texts_are_in_the_users_language(app: Harness) -> None:
    """What the picture says (title, axes, legend) comes translated into the chart process."""
    await connect(app, "ru")
    drawn: list[ChartSpec] = []
    desk = app.services.charts
    draw = desk.draw

    async def spy(spec: ChartSpec) -> bytes:
        drawn.append(spec)
        return await draw(spec)

    desk.draw = spy  # type: ignore[method-assign]
    await app.send("/stats", USER, "ru")
    await desk.idle()
    [spec] = drawn
    assert spec.labels.title == "SMS и расходы за последние 7 дней"
    assert (spec.labels.sms_axis, spec.labels.spent_axis) == ("SMS в день", "Расход в день, сум")
    assert (spec.labels.delivered, spec.labels.failed) == ("Доставлены", "Не доставлены")
    assert len(spec.days) == 7


async def test_a_chart_whose_message_is_gone_comes_as_a_new_photo(app: Harness) -> None:
    await connect(app)
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    data = _data(chart, "30 days")
    chart.deleted = True  # the user deleted it; an old copy of its buttons is still tapped
    await app.tap_data(chart, data)
    await app.services.charts.idle()
    fresh = [m for m in photos(app) if not m.deleted]
    assert len(fresh) == 1 and fresh[0].message_id != chart.message_id
    assert "Last 30 days" in fresh[0].text and labels(fresh[0])[1] == "• 30 days"


async def test_export_again_while_typing_dates_starts_over(app: Harness) -> None:
    await connect(app)
    [menu] = await app.send("/export")
    await app.tap(menu, "Type the dates")
    [again] = await app.send("/export")
    assert "Choose the period" in again.text
    assert await app.state_of() is None


async def test_export_counts_days_in_the_users_zone(app: Harness) -> None:
    """A user in Moscow (UTC+3): 22:30 UTC on 9 Nov is already 10 Nov for them, 03:30 in
    Tashkent's default; their typed day and the times in the file are Moscow's."""
    await connect(app)
    await app.services.users.set_timezone(USER, "Europe/Moscow")
    late = dt.datetime(2026, 11, 9, 22, 30, tzinfo=dt.UTC)  # 10 Nov 01:30 in Moscow
    early = dt.datetime(2026, 11, 9, 20, 30, tzinfo=dt.UTC)  # 9 Nov 23:30 in Moscow
    await app.services.traffic.merge(
        USER, [record(1, "DELIVERED", late), record(2, "DELIVERED", early)]
    )
    [menu] = await app.send("/export")
    assert "Europe/Moscow" in menu.text
    await app.tap(menu, "Type the dates")
    [choice] = await app.send("2026-11-10")
    await app.tap(choice, "CSV")
    await app.services.exports.idle()
    [document] = documents(app)
    _header, *rows = csv_rows(document.file or b"")
    assert [(r[0], r[2]) for r in rows] == [("2026-11-10 01:30:00", "Code 1")]


def test_the_users_zone_or_tashkent() -> None:
    from types import SimpleNamespace

    from handlers.reports.zone import zone_name

    assert zone_name(SimpleNamespace(timezone=None)) == "Asia/Tashkent"  # type: ignore[arg-type]
    moscow = SimpleNamespace(timezone="Europe/Moscow")
    assert zone_name(moscow) == "Europe/Moscow"  # type: ignore[arg-type]
    unknown = SimpleNamespace(timezone="Mars/Olympus")
    assert zone_name(unknown) == "Asia/Tashkent"  # type: ignore[arg-type]


async def test_stats_of_a_dollar_account_speak_dollars(app: Harness, devsms: FakeDevsms) -> None:
    devsms.add_account("devsms-usd-token-0003", balance="10", sms_price="0.005", currency="USD")
    await app.send("/start", USER, "en")
    await app.send("devsms-usd-token-0003", USER, "en")
    await app.services.traffic.save_sync_state(USER, None)  # its first look was taken
    at = NOW - dt.timedelta(hours=1)
    await app.services.traffic.merge(
        USER,
        [record(n, "DELIVERED", at, cost=Decimal("0.005"), currency="USD") for n in range(7)],
    )
    await app.services.traffic.record_balance(USER, Decimal(10), "USD")
    drawn: list[ChartSpec] = []
    draw = app.services.charts.draw

    async def spy(spec: ChartSpec) -> bytes:
        drawn.append(spec)
        return await draw(spec)

    app.services.charts.draw = spy  # type: ignore[method-assign]
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    # 7 × $0.005 over 7 days: $0.005 a day, and $10 lasts 2,000 days at that pace.
    assert "Spent: $0.035 · $0.005 a day" in chart.text
    assert "Balance: $10.00 · lasts ≈ 2\u00a0000 days" in chart.text
    assert drawn[0].labels.spent_axis == "Spent a day, $"
    assert sum(p.spent for p in drawn[0].days) == Decimal("0.035")


async def test_export_names_the_bulk_job_and_tells_bot_sends_apart(app: Harness) -> None:
    await connect(app)
    bulk = app.services.bulk
    job_id = await bulk.create_job(
        USER,
        template="Hi {name}",
        sender=None,
        file_name="clients.xlsx",
        file_format="xlsx",
        rows=[(1, "998901234567", "Hi Ali", 1)],
    )
    await bulk.finish_row(job_id, 1, "sent", sms_id=30_001, request_id="bulk-req-1")
    at = dt.datetime(2026, 11, 10, 8, tzinfo=dt.UTC)
    await app.services.traffic.merge(
        USER,
        [
            record(1, "DELIVERED", at, sms_id=30_001, request_id="bulk-req-1", message="Hi Ali"),
            record(2, "DELIVERED", at + dt.timedelta(seconds=1)),
        ],
    )
    [menu] = await app.send("/export")
    await app.tap(menu, "Type the dates")
    [choice] = await app.send("2026-11-10")
    await app.tap(choice, "CSV")
    await app.services.exports.idle()
    [document] = documents(app)
    _header, *rows = csv_rows(document.file or b"")
    assert [(r[2], r[6], r[7]) for r in rows] == [
        ("Hi Ali", "this bot", f"#{job_id} clients.xlsx"),
        ("Code 2", "elsewhere", ""),
    ]


async def test_a_month_tapped_while_dates_are_awaited_ends_the_wait(app: Harness) -> None:
    await connect(app)
    [first] = await app.send("/export")
    [second] = await app.send("/export")
    await app.tap(second, "Type the dates")
    assert await app.state_of() == "ExportForm:range"
    [choice] = await app.tap(first, "Last month")
    assert "Choose the file format" in choice.text
    assert await app.state_of() is None


async def test_a_chart_job_whose_token_went_meanwhile_draws_without_a_balance(
    app: Harness,
) -> None:
    # Found by the fuzz test: a chart job that runs after /logout read the balance of a token
    # that was gone and failed (NoToken) instead of drawing.
    await connect(app)
    [confirm] = await app.send("/logout")
    await app.tap_data(confirm, "out:1")
    i18n = app.services.i18n
    with i18n.context(), i18n.use_locale("en"):
        spec, caption = await chart_of(
            app.services.traffic, app.services.accounts, USER, "Asia/Tashkent", 30
        )
    assert len(spec.days) == 30 and "Last 30 days" in caption and "lasts" not in caption


async def test_a_text_button_tapped_on_a_chart_is_only_told_it_is_inactive(
    app: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by the fuzz test: a template's Delete (data forged onto the chart's photo) made
    # the bot edit a text the photo does not have, and the user saw "something went wrong".
    await connect(app)
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    saved = await app.services.templates.save(1, "Promo", "Hi")
    await app.tap_data(chart, f"tpl:delete:{saved.id}")
    assert app.answers()[-1].text == "This button is no longer active."
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    assert "Something went wrong" not in app.last().text


async def test_export_names_the_template_a_send_was_made_from(
    app: Harness, devsms: FakeDevsms
) -> None:
    await connect(app)
    [listing] = await app.send("/templates")
    await app.tap(listing, "New template")
    await app.send("Hours")
    [saved] = await app.send("We are open 9-18")
    await app.tap(saved, "Send with this text")
    [preview] = await app.send("+998 90 123 45 67")
    await app.tap(preview, "Send")
    # A typed text afterwards is not from a template, even right after one.
    [again] = await app.send("/send 998901234568 Typed by hand")
    await app.tap(again, "Send")
    assert len(devsms.sent) == 2
    await traffic_sync(app).sync_user(USER)
    [menu] = await app.send("/export")
    [choice] = await app.tap(menu, "This month")
    await app.tap(choice, "CSV")
    await app.services.exports.idle()
    [document] = documents(app)
    _header, *rows = csv_rows(document.file or b"")
    assert sorted((r[2], r[6], r[8]) for r in rows) == [
        ("Typed by hand", "this bot", ""),
        ("We are open 9-18", "this bot", "Hours"),
    ]


async def test_a_new_account_is_looked_at_before_the_next_round(
    app: Harness, devsms: FakeDevsms
) -> None:
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    devsms.sent_elsewhere(GOOD_TOKEN, "998901234567", "Hi", status="DELIVERED", at=at)
    await connect(app, synced=False)
    # Before the first look: said so, not an empty chart or an empty file.
    [early] = await app.send("/stats")
    assert "The first look at your account is under way" in early.text
    assert photos(app) == []
    [export] = await app.send("/export")
    assert "The first look at your account is under way" in export.text
    # The token handler left a note for the sync; its task (not the handler) reads the account
    # right away, long before the next round (60 s here).
    looked = asyncio.Event()

    async def after_round(target: WatchTarget, _now: dt.datetime) -> None:
        if target.user_id == USER:
            looked.set()

    sync = traffic_sync(app, [after_round])
    clock = asyncio.get_running_loop().time
    serving = asyncio.create_task(sync.serve_first_looks(clock() + 60))
    try:
        async with asyncio.timeout(10):
            await looked.wait()
    finally:
        serving.cancel()
    assert not await app.services.traffic.never_synced(USER)
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    assert "SMS: 1" in chart.text and "delivered 1" in chart.text
    [menu] = await app.send("/export")
    assert labels(menu)[0] == "This month"


async def test_a_chart_button_before_the_first_look_of_a_new_token(app: Harness) -> None:
    await connect(app)
    await app.send("/stats")
    await app.services.charts.idle()
    [chart] = photos(app)
    await app.send("/token")
    # Another token (the same one again keeps the record): the account it opens is not read yet.
    await app.send(OTHER_TOKEN)
    await app.tap(chart, "30 days")
    assert "The first look at your account is under way" in (app.answers()[-1].text or "")
    assert len(photos(app)) == 1


async def test_an_export_does_not_hold_its_users_chat(
    app: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole export ran inside the handler (reading, writing, uploads of up to ten
    minutes a part) while aiogram held the user's chat: their /balance waited behind it."""
    await connect(app)
    await traffic_today(app)
    [menu] = await app.send("/export")
    [choice] = await app.tap(menu, "This month")
    upload = asyncio.Event()
    record_call = app.session.make_request

    async def slow_upload(bot: Any, method: Any, timeout: int | None = None) -> Any:  # noqa: ASYNC109 (BaseSession API)
        if isinstance(method, SendDocument):
            await upload.wait()  # a big part on a slow link
        return await record_call(bot, method, timeout)

    monkeypatch.setattr(app.session, "make_request", slow_upload)
    csv_button = button_data(choice, "CSV")
    await asyncio.wait_for(app.tap_data(choice, csv_button), 10)
    replies = await asyncio.wait_for(app.send("/balance"), 10)
    [balance] = [m for m in replies if "Balance: " in m.text]
    assert documents(app) == []
    # A second tap while it runs is told so, not queued behind it.
    await app.tap_data(choice, csv_button)
    assert app.answers()[-1].text == (
        "Your previous export is still being prepared: its files come to this chat."
    )
    upload.set()
    await app.services.exports.idle()
    [document] = documents(app)
    chat = app.session.chat(USER)
    assert chat.index(balance) < chat.index(document)
    assert "✅ Exported 5 SMS" in choice.text
