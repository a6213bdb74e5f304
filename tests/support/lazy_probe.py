"""What a fresh interpreter has loaded after importing the bot, and after reading a catalogue.

Importing the bot costs a new interpreter seconds (aiogram's models), so the tests that ask
(tests/unit/test_lazy_imports.py, test_charts.py) share one probe process per session.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from typing import Final

LAZY: Final = (
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
    # Loaded with the first phone number parsed.
    "phonenumbers",
    # Loaded with the web server (the first scrape reads it); metrics count without it.
    "prometheus_client",
)
# Everything an idle bot imports, and the modules that draw charts and write exports.
BOT_MODULES: Final = (
    "bot.__main__",
    "bot.factory",
    "bot.runner",
    "handlers",
    "services",
    "storage",
    "services.charts",
    "services.chart_desk",
    "services.export",
)


@functools.cache
def loaded_lazy_modules() -> dict[str, list[str]]:
    """The modules of LAZY (and their submodules) loaded "after import" of BOT_MODULES, and
    "after catalogue" once ``create_i18n('en')`` read the compiled catalogues too."""
    probe = (
        "import json, sys\n"
        f"lazy = {LAZY!r}\n"
        "def loaded():\n"
        "    return sorted({m for m in sys.modules for p in lazy"
        " if m == p or m.startswith(p + '.')})\n"
        f"import {', '.join(BOT_MODULES)}\n"
        "after_import = loaded()\n"
        "from bot.i18n import create_i18n\n"
        "create_i18n('en')\n"
        "print(json.dumps({'after import': after_import, 'after catalogue': loaded()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    found: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return found
