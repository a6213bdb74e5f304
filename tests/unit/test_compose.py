"""compose.yaml cannot run here (no Docker engine): what can be checked without one is."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import pytest
import yaml

from bot.config import Settings
from tests.conftest import BOT_TOKEN

REPO_ROOT: Final = Path(__file__).resolve().parents[2]
SETTINGS: Final = {name.upper() for name in Settings.model_fields}
DOMAIN: Final = "bot.example.com"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def interpolate(value: str) -> str:
    """Compose's ${NAME:?message} with BOT_DOMAIN set, as the operator runs it."""
    return re.sub(r"\$\{BOT_DOMAIN(:\?[^}]*)?\}", DOMAIN, value)


def test_every_setting_the_bot_gets_exists(compose: dict[str, Any]) -> None:
    bot = compose["services"]["bot"]
    names = set(bot["environment"]) | {name.upper() for name in bot["secrets"]}
    assert names - SETTINGS == set()
    # Each secret is a file the operator keeps beside compose.yaml, not on the data volume.
    for name in bot["secrets"]:
        assert compose["secrets"][name]["file"] == f"./secrets/{name}"
    assert bot["volumes"] == ["bot-data:/app/data"]
    assert bot["environment"]["DATABASE_PATH"].startswith("/app/data/")


def test_the_bot_service_is_a_valid_webhook_configuration(compose: dict[str, Any]) -> None:
    env = {
        name: interpolate(str(value))
        for name, value in compose["services"]["bot"]["environment"].items()
    }
    secrets = {
        "BOT_TOKEN": BOT_TOKEN,
        "WEBHOOK_SECRET": "s3cret_-token",
        "ENCRYPTION_KEY": "ZTJlLXRlc3Qta2V5LW5vdC1hLXNlY3JldC0wMDAwMDA=",
        # secrets/database_url as compose.yaml's comment tells the operator to write it.
        "DATABASE_URL": "postgresql://bot:pw_-0123@postgres:5432/bot",
    }
    settings = Settings(**{name.lower(): value for name, value in {**env, **secrets}.items()})
    assert settings.telegram_mode == "webhook"
    assert settings.webhook_url == f"https://{DOMAIN}/telegram"
    assert settings.web_port_in_use == 8080
    assert settings.database_target == secrets["DATABASE_URL"]
    assert settings.redis_url is not None


def test_replicas_share_postgres_and_redis_and_name_themselves(compose: dict[str, Any]) -> None:
    services = compose["services"]
    bot = services["bot"]
    assert bot["deploy"]["replicas"] == "${BOT_REPLICAS:-2}"
    # REPLICA_ID is the host name compose gives each container: one fixed value would make
    # every replica the same lease holder.
    assert "REPLICA_ID" not in bot["environment"]
    assert "container_name" not in bot and "hostname" not in bot
    # The password is a secret file, never in the environment or in this file.
    assert "DATABASE_URL" not in bot["environment"]
    assert "database_url" in bot["secrets"]
    redis_host = urlsplit(bot["environment"]["REDIS_URL"]).hostname
    assert redis_host == "redis" and redis_host in services
    for name in ("postgres", "redis"):
        assert bot["depends_on"][name]["condition"] == "service_healthy"
        assert services[name]["healthcheck"]["test"]
        [volume] = services[name]["volumes"]
        assert volume.split(":")[0] in compose["volumes"]
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == ("/run/secrets/postgres_password")
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    assert compose["secrets"]["postgres_password"]["file"] == "./secrets/postgres_password"
    # The user and database the operator's DATABASE_URL names (compose.yaml's comment).
    assert "postgres:5432/bot" in (REPO_ROOT / "compose.yaml").read_text(encoding="utf-8")
    assert (postgres["environment"]["POSTGRES_USER"], postgres["environment"]["POSTGRES_DB"]) == (
        "bot",
        "bot",
    )
    assert "--dbname=bot" in postgres["healthcheck"]["test"]


def test_health_checks_ask_the_bot_and_caddy_waits_for_it(compose: dict[str, Any]) -> None:
    bot, caddy = compose["services"]["bot"], compose["services"]["caddy"]
    port = bot["environment"]["WEB_PORT"]
    assert f"http://127.0.0.1:{port}/readyz" in " ".join(bot["healthcheck"]["test"])
    assert caddy["depends_on"]["bot"]["condition"] == "service_healthy"
    assert "healthcheck" in caddy
    # Caddy proxies to the bot's port, and keeps health and metrics off the internet.
    caddyfile = (REPO_ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    assert f"reverse_proxy bot:{port}" in caddyfile
    # Every replica's container, looked up again and again, in turn.
    assert re.search(rf"^\s*dynamic a bot {port}\b", caddyfile, re.M)
    assert re.search(r"^\s*lb_policy round_robin$", caddyfile, re.M)
    assert re.search(r"@internal path /healthz /readyz /metrics", caddyfile)
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]


def test_the_image_checks_its_health_on_the_port_it_serves() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "WEB_PORT=8080" in dockerfile
    assert re.search(r"HEALTHCHECK .*\n.*/healthz", dockerfile)
