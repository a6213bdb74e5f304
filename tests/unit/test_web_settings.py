"""Webhook and web server settings as `python -m bot` reads them: bad combinations stop
start-up with one clear line and exit code 2; secrets may come from /run/secrets files."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

import bot.__main__ as entry
from bot.__main__ import load_settings
from bot.config import Settings
from tests.conftest import BOT_TOKEN

SECRET: Final = "Abc_-123"


def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    monkeypatch.setattr(entry, "SECRETS_DIR", tmp_path / "no-secrets")
    monkeypatch.setenv("BOT_TOKEN", BOT_TOKEN)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def refusal(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    **env: str,
) -> str:
    clean_env(monkeypatch, tmp_path, **env)
    with pytest.raises(SystemExit) as caught:
        load_settings()
    assert caught.value.code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"TELEGRAM_MODE": "webhook"},
            "TELEGRAM_MODE=webhook needs PUBLIC_BASE_URL and WEBHOOK_SECRET to be set",
        ),
        (
            {"TELEGRAM_MODE": "webhook", "WEBHOOK_SECRET": SECRET},
            "TELEGRAM_MODE=webhook needs PUBLIC_BASE_URL to be set",
        ),
        (
            {"TELEGRAM_MODE": "webhook", "PUBLIC_BASE_URL": "https://bot.example.com"},
            "TELEGRAM_MODE=webhook needs WEBHOOK_SECRET to be set",
        ),
        (
            {"PUBLIC_BASE_URL": "http://bot.example.com"},
            "PUBLIC_BASE_URL must be an https:// URL",
        ),
        (
            {"PUBLIC_BASE_URL": "https://bot.example.com/?a=1"},
            "PUBLIC_BASE_URL must be an https:// URL",
        ),
        ({"WEBHOOK_SECRET": "has space"}, "WEBHOOK_SECRET must be 1-256 of A-Z"),
        ({"WEBHOOK_SECRET": "x" * 257}, "WEBHOOK_SECRET must be 1-256 of A-Z"),
        ({"WEBHOOK_PATH": "telegram"}, "WEBHOOK_PATH must be a path like /telegram"),
        ({"TELEGRAM_MODE": "hooks"}, "TELEGRAM_MODE"),
        ({"WEB_PORT": "70000"}, "WEB_PORT"),
    ],
)
def test_a_bad_web_setting_stops_start_up_with_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    expected: str,
) -> None:
    line = refusal(monkeypatch, tmp_path, capsys, **env)
    assert line.startswith("Configuration error: " + expected), line
    assert "has space" not in line  # a secret is never repeated


def test_polling_needs_nothing_new_and_runs_no_web_server(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean_env(monkeypatch, tmp_path)
    settings = load_settings()
    assert (settings.telegram_mode, settings.web_port_in_use) == ("polling", None)
    clean_env(monkeypatch, tmp_path, WEB_PORT="9001")
    assert load_settings().web_port_in_use == 9001


def test_webhook_mode_listens_on_8080_unless_told(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env = {
        "TELEGRAM_MODE": "webhook",
        "PUBLIC_BASE_URL": "https://bot.example.com/",
        "WEBHOOK_SECRET": SECRET,
    }
    clean_env(monkeypatch, tmp_path, **env)
    settings = load_settings()
    assert settings.web_port_in_use == 8080
    assert settings.webhook_url == "https://bot.example.com/telegram"
    clean_env(monkeypatch, tmp_path, WEB_PORT="8443", **env)
    assert load_settings().web_port_in_use == 8443


def test_secrets_come_from_files_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "webhook_secret").write_text(SECRET + "\n")
    (secrets / "encryption_key").write_text("from-the-file\n")
    clean_env(monkeypatch, tmp_path, ENCRYPTION_KEY="from-the-environment")
    monkeypatch.setattr(entry, "SECRETS_DIR", secrets)
    settings = load_settings()
    assert settings.webhook_secret is not None
    assert settings.webhook_secret.get_secret_value() == SECRET
    assert settings.encryption_key is not None
    assert settings.encryption_key.get_secret_value() == "from-the-environment"
