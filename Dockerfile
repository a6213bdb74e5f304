# Build stage: wheels and compiled catalogues.
FROM python:3.11-slim AS build
WORKDIR /app
COPY requirements.txt .
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r requirements.txt
COPY locales/ locales/
RUN /venv/bin/pybabel compile --use-fuzzy -d locales -D messages

# Runtime stage: only the virtualenv and the code, run as an unprivileged user.
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 bot && mkdir -p /app/data && chown bot:bot /app/data
WORKDIR /app
COPY --from=build /venv /venv
COPY --from=build /app/locales/ locales/
COPY bot/ bot/
COPY handlers/ handlers/
COPY services/ services/
COPY storage/ storage/
# Bytecode at build time: the unprivileged user cannot write __pycache__ under /app, and
# compiling the bot's ~30,000 lines at every start cost 0.3-0.5 s and the compiler's memory.
RUN /venv/bin/python -m compileall -q bot handlers services storage
# REQUIRE_ENCRYPTION_KEY: the container refuses to start without ENCRYPTION_KEY rather than
# generate a key onto the data volume, where one backup would hold both tokens and their key.
# WEB_HOST/WEB_PORT: the web server (/healthz, /readyz, the webhook) always runs in the image,
# so the HEALTHCHECK below has something to ask; publish the port only through a proxy.
ENV PATH="/venv/bin:$PATH" PYTHONUNBUFFERED=1 DATABASE_PATH=/app/data/bot.sqlite3 \
    REQUIRE_ENCRYPTION_KEY=1 WEB_HOST=0.0.0.0 WEB_PORT=8080
USER bot
VOLUME ["/app/data"]
EXPOSE 8080
# Liveness: the event loop answers. (Readiness, /readyz, is for the orchestrator to ask.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WEB_PORT', '8080'), timeout=4)"]
CMD ["python", "-m", "bot"]
