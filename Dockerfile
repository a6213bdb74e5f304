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
# REQUIRE_ENCRYPTION_KEY: the container refuses to start without ENCRYPTION_KEY rather than
# generate a key onto the data volume, where one backup would hold both tokens and their key.
ENV PATH="/venv/bin:$PATH" PYTHONUNBUFFERED=1 DATABASE_PATH=/app/data/bot.sqlite3 \
    REQUIRE_ENCRYPTION_KEY=1
USER bot
VOLUME ["/app/data"]
CMD ["python", "-m", "bot"]
