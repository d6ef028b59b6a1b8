# Feature Store API image: Python 3.11 slim, runtime dependencies only, a non-root user.
# Build: docker build -t feature-store-api .   Run: docker run -p 8000:8000 feature-store-api
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WEB_CONCURRENCY=2

# A fixed numeric uid so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lock changes. The lock pins every package,
# transitive ones included, with its hashes; pip refuses anything else. The service is not a package:
# it runs from /app.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock

# The code stays owned by root (read-only to the service); only data/ is writable, for the embedded store.
COPY . .
RUN python -m compileall -q main.py serve.py api components core middlewares \
    && mkdir -p data \
    && chown app:app data

USER 10001:10001

EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health', timeout=2)"]

# `python -m serve` runs uvicorn with the settings' connection limits and timeouts (core/http_server.py):
# workers from WEB_CONCURRENCY, port 8000 (PORT). On SIGTERM it stops accepting, lets in-flight requests
# finish for up to GRACEFUL_SHUTDOWN_SECONDS (20), then the app flushes pending events for up to
# SHUTDOWN_FLUSH_SECONDS before exiting.
CMD ["python", "-m", "serve"]
