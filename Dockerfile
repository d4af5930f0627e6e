# Task API image: a build stage makes a virtual environment from the hashed lock, the runtime
# stage copies it beside the source and runs as an unprivileged user.
#
#   docker build -t task-api .
#   docker run --rm --env-file .env.production task-api python -m backend migrate up
#   docker run -d -p 8000:8000 --env-file .env.production task-api
#
# BASE_IMAGE is any Debian-like image with Python 3.11 as `python3` and its venv module:
# the official python:3.11-slim-bookworm (default), or Debian bookworm with the python3 and
# python3-venv packages (what tests/container builds with debootstrap when no registry can be
# reached). Both stages use it, so the venv's interpreter path is the same in each.
#
# Production settings come from the environment (README "Deploying"): ENVIRONMENT=production
# (the default), DATABASE_URL (the pooled URL), DATABASE_MIGRATION_URL (direct), JWT_SECRET,
# CORS_ORIGINS. compose.yaml runs it with PostgreSQL and PgBouncer.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build

# Only for builds behind a package mirror or a TLS-inspecting proxy (pip reads both from the
# environment; build arguments stay out of the final image).
ARG PIP_INDEX_URL
ARG PIP_CERT

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Exactly the locked versions, every file checked against its sha256: the versions the test
# suite ran (requirements.lock is the runtime part of uv.lock; scripts/lock.py writes it).
COPY requirements.lock /tmp/requirements.lock
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.lock \
    && /opt/venv/bin/pip uninstall --yes --quiet pip setuptools


FROM ${BASE_IMAGE} AS runtime

# The app's user owns nothing but its data folder, so it can change none of its own code.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin app

# The source is not pip-installed: backend/ and migrations/ sit side by side in /app (the
# migrations are found next to the package) and PYTHONPATH makes `python -m backend` work
# from any directory.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2

WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY LICENSE ./
COPY migrations ./migrations
COPY backend ./backend
RUN python3 -m compileall -q backend
# Development mode (ENVIRONMENT=development, no DATABASE_URL) keeps its embedded PostgreSQL and
# generated secret in /app/.data; mount a volume there to keep them.
RUN mkdir .data && chown app:app .data

USER app
EXPOSE 8000

# Liveness: /health answers without touching the database (use /health/ready for readiness).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

# serve reads HOST, PORT, WEB_CONCURRENCY and FORWARDED_ALLOW_IPS from the environment.
CMD ["python", "-m", "backend", "serve"]
