# syntax=docker/dockerfile:1
# Two images, each with only the dependencies of what it runs:
#   bridge   `event-bridge serve` with the `server` extra, and no Django. The last stage,
#            so the default: docker build -t event-bridge .
#   example  the example Django project (compose.yaml's `web` and `relay`) with the
#            `django` extra and the `example` group, and no bridge server:
#            docker build --target example -t event-bridge-example .
# Only PyPI and Docker Hub are needed: uv comes from PyPI, the dependencies from uv.lock.

# --- builder: uv and the lock, shared by the two builders below ---------------------
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
COPY pyproject.toml uv.lock ./

# Each builder makes the locked virtualenv /app/.venv: its dependencies first, so that
# editing the code does not reinstall them, then the project itself as a wheel (not
# editable), so that the runtime stage needs no source for the packages. Both `uv sync`
# of a builder take the same extras and groups.

# --- bridge-builder: the `server` extra (websockets, aio-pika, click, h11, ...) -------
FROM builder AS bridge-builder
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra server --no-install-project
COPY README.md ./
COPY schemas ./schemas
COPY messaging ./messaging
COPY producer ./producer
COPY bridge ./bridge
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra server --no-editable

# --- example-builder: the `django` extra and what the example project needs ----------
# (`--group example`: DRF, dj-database-url, psycopg).
FROM builder AS example-builder
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra django --group example --no-install-project
COPY README.md ./
COPY schemas ./schemas
COPY messaging ./messaging
COPY producer ./producer
COPY bridge ./bridge
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra django --group example --no-editable

# --- runtime: what both images run on: Python, the virtualenv's PATH, a user ---------
FROM python:3.11-slim AS runtime

ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# User `app`, UID/GID 10001. Each image then creates the directory it writes.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

WORKDIR /app

# --- example: the example Django project, for compose.yaml's `web` and `relay` ------
FROM runtime AS example

# The example's SQLite database (the web-data volume in compose.yaml).
RUN install -d -o app -g app -m 0750 /var/lib/example

COPY --from=example-builder /app/.venv /app/.venv
COPY example ./example

USER 10001:10001

# 8000: the example Django project.
EXPOSE 8000

# compose.yaml's `web` migrates first and `relay` runs event_bridge_relay instead.
CMD ["python", "example/manage.py", "runserver", "--noreload", "0.0.0.0:8000"]

# --- bridge: `event-bridge serve`, the default image ---------------------------------
FROM runtime AS bridge

ENV BRIDGE_STATE_DIR=/var/lib/event-bridge

# The bridge's history (the bridge-state volume in compose.yaml).
RUN install -d -o app -g app -m 0750 /var/lib/event-bridge

COPY --from=bridge-builder /app/.venv /app/.venv
# The example's catalog only, for compose.yaml's `--catalog api_rest.events` (with
# PYTHONPATH=/app/example): it imports pydantic and schemas, no Django, and its
# package's __init__.py is empty. Your own image copies your events module the same way.
COPY example/api_rest/__init__.py example/api_rest/events.py ./example/api_rest/

USER 10001:10001

# 4000: the bridge (/ws, /api/*).
EXPOSE 4000

CMD ["event-bridge", "serve", "--host", "0.0.0.0"]
