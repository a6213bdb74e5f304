"""An idle bot loads only what it uses: what the bench's idle RSS and start-up rows measure.

Each module below is loaded on first need: matplotlib and numpy in the chart process, openpyxl
where a sheet is read or written, Babel's catalogue compiler only for a stale catalogue,
aiohttp's server side only when the web server runs (WEB_PORT, or webhook mode), and the Redis
client only for replicas (REDIS_URL).
"""

from __future__ import annotations

import subprocess
import sys

LAZY = (
    "matplotlib",
    "numpy",
    "openpyxl",
    "babel.messages",
    "aiohttp.web",
    "bot.web",
    # The Redis client and what replicas share through it: only with REDIS_URL.
    "redis",
    "bot.replicas",
    "services.shared_stores",
    # Loaded with the first token encrypted or decrypted.
    "cryptography",
)


def loaded_after(code: str) -> list[str]:
    probe = (
        f"import sys; {code}; "
        f"print(sorted({{m for m in sys.modules for p in {LAZY!r} "
        f"if m == p or m.startswith(p + '.')}}))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return [line for line in out.stdout.strip().splitlines() if line]


def test_importing_the_bot_loads_none_of_them() -> None:
    code = "import bot.__main__, bot.factory, bot.runner, handlers, services, storage"
    assert loaded_after(code) == ["[]"]


def test_the_catalogues_when_fresh_need_no_compiler() -> None:
    # `make` compiled them (the .mo files are newer than the .po files).
    code = "from bot.i18n import create_i18n; create_i18n('en')"
    assert loaded_after(code) == ["[]"]
