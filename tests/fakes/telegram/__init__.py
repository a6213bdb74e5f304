"""The fake Telegram Bot API, by concern; tests/fakes/fake_telegram.py puts it together."""
