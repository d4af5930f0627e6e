# Task API image. Not built in CI (no Docker engine there); see README "Docker".
#
#   docker build -t task-api .
#   docker run --rm -p 8000:8000 --env-file .env.production task-api
#
# Production settings come from the environment: ENVIRONMENT=production (the default),
# DATABASE_URL (Neon's pooled URL), DATABASE_MIGRATION_URL (direct URL), JWT_SECRET,
# CORS_ORIGINS. Apply migrations once per release before starting replicas:
#   docker run --rm --env-file .env.production task-api python -m backend migrate up
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    WEB_CONCURRENCY=2

WORKDIR /app

# The same install step as .ci/run, without the test extras. Editable on purpose: the
# migrations/ folder is found next to the backend/ package in the source tree.
COPY pyproject.toml README.md ./
COPY backend ./backend
COPY migrations ./migrations
RUN pip install -e .

# Run as an unprivileged user that owns nothing it could overwrite.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
USER app

EXPOSE 8000

# Liveness: /health answers without touching the database (use /health/ready for readiness).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8000') + '/health', timeout=4)"]

# serve reads HOST, PORT, WEB_CONCURRENCY and FORWARDED_ALLOW_IPS from the environment.
CMD ["python", "-m", "backend", "serve"]
