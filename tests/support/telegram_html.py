"""A checker of Telegram's HTML subset: what parse_mode=HTML accepts."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Final

# https://core.telegram.org/bots/api#html-style
ALLOWED_TAGS: Final = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "code",
        "pre",
        "a",
        "blockquote",
        "tg-spoiler",
        "span",
    }
)
# "All <, > and & symbols that are not a part of a tag or an HTML entity must be replaced with
# the corresponding HTML entities"; only these named entities are supported.
_ENTITY: Final = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#x[0-9a-fA-F]+);")


class _TelegramHtml(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.problems: list[str] = []
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"tag <{tag}> is not allowed")
        names = [name for name, _ in attrs]
        allowed: list[str] = []
        if tag == "a":
            allowed = ["href"]
        elif tag == "span":
            allowed = ["class"] if attrs == [("class", "tg-spoiler")] else []
        elif tag == "code" and self.open[-1:] == ["pre"]:
            allowed = ["class"]
        elif tag == "blockquote":
            allowed = ["expandable"]
        if any(name not in allowed for name in names):
            self.problems.append(f"<{tag}> has attributes {attrs}")
        self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.problems.append(f"self-closing <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
            return
        self.open.pop()

    def handle_data(self, data: str) -> None:
        for char in "<>":
            if char in data:
                self.problems.append(f"bare {char!r} in {data!r}")

    def handle_comment(self, data: str) -> None:
        self.problems.append(f"comment <!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.problems.append(f"declaration <!{decl}>")

    def unknown_decl(self, data: str) -> None:
        self.problems.append(f"declaration <![{data}]>")

    def handle_pi(self, data: str) -> None:
        self.problems.append(f"processing instruction <?{data}>")


def telegram_html_problems(text: str) -> list[str]:
    """Why Telegram would refuse `text` with parse_mode=HTML (empty list: it would not)."""
    parser = _TelegramHtml()
    parser.feed(text)
    parser.close()
    problems = parser.problems
    if parser.open:
        problems.append(f"unclosed {parser.open}")
    stray = [m.start() for m in re.finditer("&", text) if not _ENTITY.match(text, m.start())]
    if stray:
        problems.append(f"bare '&' at {stray[:5]}")
    return problems
