"""The bot's own web server (aiohttp's, the one aiogram's webhook support uses).

server.py builds the application and runs it; each feature adds its routes from its own
module (health.py, webhook.py, metrics.py, delivery.py).
"""
