"""Hostile input for the pure parts: property tests that the per-module unit tests lack.

Already covered elsewhere, so not repeated here: normalize_phone raising only InvalidPhone
(test_phones), parse_money on any text (test_money), parse_history on any JSON
(test_devsms_client), the parts counter against a reference (test_sms_parts), read_table on any
bytes (test_spreadsheet).

The Telegram HTML rules themselves live in tests/support/telegram_rules.py (the one validator the
recording session, the e2e fake and the fuzz test share); the first tests here pin them down.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final, Literal, get_args, get_origin

import pytest
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import I18n
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import handlers
from bot.i18n import DOMAIN, LOCALES_DIR
from handlers.callbacks import BulkAction, BulkCb, SettingsAction, SettingsCb
from handlers.history import HistoryFilter
from handlers.sms_render import TELEGRAM_LIMIT, sms_details, sms_list, telegram_length
from handlers.status import parse_sms_ref
from services.devsms import SmsRecord, parse_sms_record
from services.languages import LANGUAGES
from services.money import MAX_ABS_AMOUNT, Money, parse_money
from services.phones import PhoneNumber, extract_phone_and_text, normalize_phone
from services.schedule_time import Quick
from tests.support.telegram_rules import TelegramRefusal, parse_html

# --- Telegram HTML -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "<script>&",
        "a & b",
        "a < b",
        "1 > 0",
        "<b>bold",
        "<b><i>x</b></i>",
        "<br/>",
        "<b class='x'>x</b>",
        "&nbsp;",
        "&amp",
        "<!-- hi -->",
        '<span class="other">x</span>',
    ],
)
def test_html_checker_flags_what_telegram_refuses(text: str) -> None:
    with pytest.raises(TelegramRefusal):
        parse_html(text)


@pytest.mark.parametrize(
    "text",
    [
        "plain",
        "<b>x</b> &lt;script&gt;&amp; &quot; &#128512; &#x1F600;",
        '<a href="https://t.me/x?a=1&amp;b=2">link</a>',
        '<pre><code class="language-python">x</code></pre>',
        '<span class="tg-spoiler">s</span> <tg-spoiler>t</tg-spoiler>',
        "<blockquote expandable>q</blockquote>",
        "<STRONG>caps</STRONG>",
    ],
)
def test_html_checker_accepts_telegram_html(text: str) -> None:
    parse_html(text)  # raises TelegramRefusal on what Telegram would refuse


# --- CallbackData --------------------------------------------------------------------------

INT64: Final = 2**63
# The values the handlers build each `str` field from. A new class or field must be added
# here: a free-text field would put no bound on the packed size.
STR_VALUES: Final[dict[tuple[str, str], tuple[str, ...]]] = {
    ("LanguageCb", "code"): LANGUAGES,
    ("HistoryCb", "flt"): tuple(HistoryFilter),
    ("ScheduleCb", "choice"): ("", *Quick),
}


def _subclasses(cls: type[CallbackData]) -> Iterator[type[CallbackData]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def callback_classes() -> list[type[CallbackData]]:
    """Every CallbackData class defined anywhere under handlers/."""
    for module in pkgutil.iter_modules(handlers.__path__, "handlers."):
        importlib.import_module(module.name)
    return sorted(
        (cls for cls in _subclasses(CallbackData) if cls.__module__.startswith("handlers.")),
        key=lambda cls: cls.__name__,
    )


CALLBACK_CLASSES: Final = callback_classes()


def _field_values(cls: type[CallbackData], name: str, info: Any) -> st.SearchStrategy[Any]:
    annotation = info.annotation
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        # Ids are SQLite/gateway int64; the ends are tried too, so the limit is not just luck.
        # A field may narrow that (callbacks.Id, Page): stay within what it accepts.
        low = max([-INT64, *(m.ge for m in info.metadata if hasattr(m, "ge"))])
        high = min([INT64, *(m.le for m in info.metadata if hasattr(m, "le"))])
        return st.integers(low, high) | st.sampled_from([low, high])
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        return st.sampled_from(list(annotation))
    if annotation is str:
        values = STR_VALUES.get((cls.__name__, name))
        assert values, f"add the values of {cls.__name__}.{name} to STR_VALUES"
        return st.sampled_from(values)
    if get_origin(annotation) is Literal:
        return st.sampled_from(get_args(annotation))
    raise AssertionError(f"{cls.__name__}.{name}: no strategy for {annotation!r}")


def legal_callback_data(cls: type[CallbackData]) -> st.SearchStrategy[CallbackData]:
    fields = {name: _field_values(cls, name, info) for name, info in cls.model_fields.items()}
    return st.fixed_dictionaries(fields).map(lambda values: cls(**values))


@pytest.mark.parametrize(
    ("packed", "value"),
    [
        ("set:sender", SettingsCb(action=SettingsAction.SENDER)),
        ("set:reset", SettingsCb(action=SettingsAction.RESET)),
        ("set:threshold", SettingsCb(action=SettingsAction.THRESHOLD)),
        ("set:alerts", SettingsCb(action=SettingsAction.ALERTS)),
        ("set:notify", SettingsCb(action=SettingsAction.NOTIFY)),
        ("set:lang", SettingsCb(action=SettingsAction.LANG)),
        ("blk:tpl:12:7", BulkCb(action=BulkAction.TEMPLATE, draft=12, tpl=7)),
        ("blk:start:12:0", BulkCb(action=BulkAction.START, draft=12)),
        ("blk:cancel:12:0", BulkCb(action=BulkAction.CANCEL, draft=12)),
    ],
)
def test_buttons_sent_before_the_actions_became_enums_still_unpack(
    packed: str, value: CallbackData
) -> None:
    # The strings buttons already in chats carry: they must keep meaning the same action.
    assert value.pack() == packed
    assert type(value).unpack(packed) == value


def test_every_callback_class_is_found() -> None:
    # The discovery itself could silently find nothing; these live in three modules.
    names = {cls.__name__ for cls in CALLBACK_CLASSES}
    assert {"SmsCb", "JobCb", "TemplateCb", "AccessCb", "UsersCb", "BroadcastCb"} <= names
    prefixes = [cls.__prefix__ for cls in CALLBACK_CLASSES]
    assert len(prefixes) == len(set(prefixes)), "two classes share a prefix"


@pytest.mark.parametrize("cls", CALLBACK_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_packed_callback_data_fits_telegrams_64_bytes_and_reads_back(
    cls: type[CallbackData], data: st.DataObject
) -> None:
    value = data.draw(legal_callback_data(cls))
    packed = value.pack()
    assert len(packed.encode("utf-8")) <= 64, packed
    assert cls.unpack(packed) == value


callback_text = st.one_of(
    st.text(max_size=80),
    st.text(alphabet="0123456789:-+_ .eE1TtFfx", max_size=64),
    st.lists(
        st.one_of(st.text(max_size=25), st.integers().map(str), st.sampled_from(["", "1", "0"])),
        max_size=6,
    ).map(":".join),
)


@pytest.mark.parametrize("cls", CALLBACK_CLASSES, ids=lambda cls: cls.__name__)
@settings(max_examples=150, deadline=None)
@given(tail=callback_text)
def test_unpacking_any_string_fails_only_as_the_filter_expects(
    cls: type[CallbackData], tail: str
) -> None:
    # aiogram's CallbackData.filter() treats ValueError/TypeError as "not this button"; any
    # other exception from a forged button would reach the errors router.
    for data in (tail, f"{cls.__prefix__}:{tail}"):
        try:
            value = cls.unpack(data)
        except (ValueError, TypeError):
            continue
        assert isinstance(value, cls)


# --- gateway values --------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=30)
    | st.text(alphabet="0123456789 .,$-+eE", max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values | st.decimals() | st.decimals(places=40))
def test_parse_money_of_any_gateway_value_is_none_or_printable_money(value: object) -> None:
    money = parse_money(value)
    if money is None:
        return
    assert isinstance(money, Money)
    assert money.amount.is_finite()
    assert abs(money.amount) < MAX_ABS_AMOUNT
    # What the bot then does with it: show it.
    assert 0 < len(money.format()) < 64


sms_keys = st.sampled_from(
    [
        "id",
        "sms_id",
        "request_id",
        "phone",
        "message",
        "from",
        "sender",
        "status",
        "parts",
        "parts_count",
        "cost",
        "total_cost",
        "price",
        "created_at",
        "date",
        "sent_at",
    ]
)
sms_like = st.dictionaries(sms_keys | st.text(max_size=8), json_values, max_size=10)

_OPTIONAL_FIELD_TYPES: Final = {
    "sms_id": int,
    "request_id": str,
    "phone": str,
    "message": str,
    "sender": str,
    "status": str,
    "parts_count": int,
    "cost": Money,
}


@settings(max_examples=300, deadline=None)
@given(json_values | sms_like)
def test_parse_sms_record_of_any_json_has_the_declared_field_types(payload: object) -> None:
    record = parse_sms_record(payload)
    if not isinstance(payload, dict):
        assert record is None
        return
    assert isinstance(record, SmsRecord)
    for name, kind in _OPTIONAL_FIELD_TYPES.items():
        value = getattr(record, name)
        assert value is None or (isinstance(value, kind) and not isinstance(value, bool)), name


# --- what users type -------------------------------------------------------------------------

quick_form = st.one_of(
    st.text(max_size=60),
    st.tuples(
        st.sampled_from(["+998 90 123 45 67", "901234567", "+7 916 123-45-67", "12", "+", ""]),
        st.text(max_size=30),
    ).map(" ".join),
    st.text(alphabet="+0123456789 -()", max_size=40),
)


@settings(max_examples=300, deadline=None)
@given(quick_form)
def test_quick_send_form_never_raises_and_keeps_a_text(args: str) -> None:
    found = extract_phone_and_text(args)
    if found is None:
        return
    phone, text = found
    assert isinstance(phone, PhoneNumber)
    assert normalize_phone("+" + phone.digits) == phone
    assert text and text == text.strip() and args.rstrip().endswith(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"\A[0-9]{1,25}\Z") | st.uuids().map(str))
def test_status_argument_is_an_int64_id_a_uuid_or_nothing(text: str) -> None:
    ref = parse_sms_ref(text)
    if ref is None:
        return
    assert (ref.sms_id is None) != (ref.request_id is None)
    if ref.sms_id is not None:
        # It goes to SQLite and into SmsCb: both hold int64 only.
        assert 0 < ref.sms_id < INT64


# --- rendering what the gateway sends -----------------------------------------------------

hostile_text = st.one_of(
    st.text(max_size=50),
    st.text(alphabet="<>&\"'; /abc\n😀", max_size=300),
    st.sampled_from(["<script>&", "&amp;", "</blockquote>", "<b>", "&#0;", "<" * 5000]),
)
rendered_record = st.builds(
    SmsRecord,
    sms_id=st.none() | st.integers(-INT64, INT64),
    request_id=st.none() | hostile_text,
    phone=st.none() | hostile_text | st.just("998901234567"),
    message=st.none() | hostile_text | st.text(alphabet="<&ab 😀", min_size=3000, max_size=9000),
    sender=st.none() | hostile_text,
    status=st.none() | hostile_text | st.sampled_from(["DELIVERED", "waiting"]),
    parts_count=st.none() | st.integers(-INT64, INT64),
    cost=st.none() | json_scalars.map(parse_money),
    created_at=st.none() | hostile_text | st.datetimes(),
)


@pytest.fixture(scope="module")
def i18n() -> I18n:
    return I18n(path=LOCALES_DIR, default_locale="en", domain=DOMAIN)


@pytest.mark.parametrize("language", LANGUAGES)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(rendered_record, min_size=1, max_size=11))
def test_gateway_records_render_as_valid_telegram_html_within_the_limit(
    i18n: I18n, language: str, records: list[SmsRecord]
) -> None:
    with i18n.context(), i18n.use_locale(language):
        messages = [sms_list(records[:10], "<b>History</b>"), *sms_details(records[-1])]
    for text in messages:
        parse_html(text)  # raises TelegramRefusal on what Telegram would refuse
        assert 0 < telegram_length(text) <= TELEGRAM_LIMIT
    assert "<script>" not in "".join(messages)


def test_hostile_money_decimal_is_refused_not_printed_for_pages() -> None:
    # Decimals the JSON decoder never makes, but a caller might pass: no megabyte output.
    assert parse_money(Decimal("1E+999999")) is None
    tiny = parse_money(Decimal("1E-999999"))
    assert tiny is not None and len(tiny.format()) < 64
