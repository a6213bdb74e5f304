"""The catalogues as a native reader meets them (issue 16).

Every text that counts a noun is a plural entry; every entry is translated; the glossary in
locales/glossary.toml holds in every translation; Uzbek uses ʻ/ʼ, never the ASCII apostrophe,
and never glues a suffix to a /command. The checks read the catalogues and the glossary, so the
texts other changes add are held to the same rules.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

LOCALES = Path(__file__).resolve().parents[2] / "locales"
TRANSLATED = ("uz", "ru")

# Placeholders that hold a count. A text where one of them is followed by a noun ("{n} rows",
# "{parts} SMS parts") must be a plural entry; "Rows: {n}" or "{done} of {total}" need none.
COUNT_NAMES = (
    "n count parts rows days users total sent failed delivered done pages sms jobs left unknown "
    "found limit excess have new valid blocked waiting allowed denied characters contacts groups "
    "files hours minutes seconds templates numbers"
)
COUNTS = frozenset(COUNT_NAMES.split())
# Words after a count that are not the noun it counts ("{n} more", "{n} of {m}").
NOT_NOUN_WORDS = "of more less and or to are is was were in on at a the so instead than"
NOT_NOUNS = frozenset(NOT_NOUN_WORDS.split())
MORE = frozenset({"more", "less"})
PLACEHOLDER = re.compile(r"\{(\w+)\}")
HIDDEN = re.compile(r"<code>.*?</code>|<[^>]*>|\{[^{}]*\}", re.S)
COMMAND = re.compile(r"/[a-z_]+\b")


@cache
def catalogue(language: str) -> Catalog:
    with (LOCALES / language / "LC_MESSAGES" / "messages.po").open("rb") as file:
        return read_po(file, locale=language)


@cache
def glossary() -> dict[str, Any]:
    return tomllib.loads((LOCALES / "glossary.toml").read_text(encoding="utf-8"))


def entries(language: str) -> list[Message]:
    return [message for message in catalogue(language) if message.id]


def singular(message: Message) -> str:
    return message.id[0] if message.pluralizable else message.id


def translations(message: Message) -> list[str]:
    return list(message.string) if message.pluralizable else [message.string]


def counted_nouns(msgid: str) -> list[str]:
    """The count placeholders of an English text that a noun follows."""
    found = []
    for match in PLACEHOLDER.finditer(msgid):
        if match.group(1) not in COUNTS:
            continue
        rest = msgid[match.end() :]
        word = re.match(r"[ \u00a0]+([^\W\d_]+)", rest)
        if word and word.group(1).lower() in MORE:
            word = re.match(r"[ \u00a0]+[^\W\d_]+[ \u00a0]+([^\W\d_]+)", rest)
        if word and word.group(1).lower() not in NOT_NOUNS:
            found.append(match.group(1))
    return found


def visible(text: str) -> str:
    """A translation without its placeholders, tags and code."""
    return HIDDEN.sub(" ", text)


def test_counted_nouns_are_found() -> None:
    assert counted_nouns("All {n} rows that will be skipped.") == ["n"]
    assert counted_nouns("about {days} more days") == ["days"]
    assert counted_nouns("Rows read: {n}") == []
    assert counted_nouns("… and {n} more") == []
    assert counted_nouns("{done} of {total}") == []
    assert counted_nouns("{amount} so'm left") == []


def test_texts_that_count_a_noun_are_plural() -> None:
    exceptions = glossary()["plural_exceptions"]
    offenders = [
        message.id
        for message in entries("en")
        if not message.pluralizable and counted_nouns(message.id) and message.id not in exceptions
    ]
    assert offenders == []


def test_plural_entries_have_every_form() -> None:
    for language, forms in (("uz", 2), ("ru", 3), ("en", 2)):
        assert catalogue(language).num_plurals == forms
        for message in entries(language):
            if message.pluralizable:
                assert len(message.string) == forms, (language, message.id)


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_entry_is_translated(language: str) -> None:
    allowed = set(glossary()["untranslated"][language])
    offenders = [
        singular(message)
        for message in entries(language)
        if any(not text or text == singular(message) for text in translations(message))
        and singular(message) not in allowed
    ]
    assert offenders == []


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_follow_the_glossary(language: str) -> None:
    offenders = []
    for term in glossary()["term"]:
        wanted = term.get(f"{language}_require")
        banned = term.get(f"{language}_forbid")
        if wanted is None and banned is None:
            continue
        for message in entries(language):
            if not re.search(term["msgid"], visible(COMMAND.sub(" ", singular(message)))):
                continue
            for text in translations(message):
                shown = visible(text)
                if (wanted and not re.search(wanted, shown)) or (
                    banned and re.search(banned, shown)
                ):
                    offenders.append((term["concept"], singular(message), text))
    assert offenders == []


def test_uzbek_has_no_ascii_apostrophe_in_a_word() -> None:
    apostrophe = re.compile(r"[^\W\d_]['’‘`][^\W\d_]")
    offenders = [
        text
        for message in entries("uz")
        for text in translations(message)
        if apostrophe.search(visible(text))
    ]
    assert offenders == []


def test_uzbek_glues_no_suffix_to_a_command() -> None:
    glued = re.compile(r"/[a-z_]+(?:['ʼʻ’-][^\W\d_]|[ \u00a0](?:ni|da|ga|dan|ning|dagi)\b)")
    offenders = [
        text for message in entries("uz") for text in translations(message) if glued.search(text)
    ]
    assert offenders == []


@pytest.mark.parametrize("language", ("uz", "ru", "en"))
def test_translations_keep_the_placeholders(language: str) -> None:
    for message in entries(language):
        expected = set(PLACEHOLDER.findall(singular(message)))
        for text in translations(message):
            if text:
                assert set(PLACEHOLDER.findall(text)) == expected, (language, message.id)
