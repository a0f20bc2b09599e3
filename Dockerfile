# syntax=docker/dockerfile:1
# One image for the bridge (`event-bridge serve`, the default) and the example
# Django project (compose.yaml's `web` service). Build: docker build -t event-bridge .
# Only PyPI and Docker Hub are needed: uv comes from PyPI, the dependencies from uv.lock.

# --- builder: the locked virtualenv in /app/.venv ---------------------------------
FROM python:3.11-slim AS builder

# Keep in step with EVENT_BRIDGE_UV_VERSION in scripts/lib.sh.
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"

# Compile .pyc now (the runtime user cannot write them), copy rather than hard-link
# out of uv's cache, and use this image's Python, never a downloaded one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app

# Dependencies first, so that editing the code does not reinstall them.
# `--group example`: what the example Django project needs (DRF, dj-database-url, psycopg).
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --group example --no-install-project

# Then the project itself, installed as a wheel (not editable): the runtime stage
# needs no source for the packages.
COPY README.md ./
COPY schemas ./schemas
COPY producer ./producer
COPY bridge ./bridge
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --group example --no-editable

# --- runtime: the virtualenv, the example project, a non-root user ----------------
FROM python:3.11-slim

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BRIDGE_STATE_DIR=/var/lib/event-bridge

# User `bridge`, UID/GID 10001, and the directories it writes: the bridge's history
# and the example's SQLite database (both named volumes in compose.yaml).
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin bridge \
    && install -d -o bridge -g bridge -m 0750 /var/lib/event-bridge /var/lib/example

WORKDIR /app
COPY --from=builder /app/.venv /app/.venv
COPY example ./example

USER 10001:10001

# 4000: the bridge (/ws, /api/*); 8000: the example Django project.
EXPOSE 4000 8000

CMD ["event-bridge", "serve", "--host", "0.0.0.0"]
