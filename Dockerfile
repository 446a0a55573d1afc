# Slim image: the web process on $PORT and a worker (`python -m bot run`), as a numeric
# non-root user, the database in the /data volume, health checked on /healthz.
#   docker build -t robocall .
#   docker run --env-file .env -p 3000:3000 -v robocall-data:/data robocall
# The base image is pinned to a patch release (the tag; add @sha256:… to pin its digest).
FROM python:3.11.15-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    PORT=3000 \
    DATABASE_PATH=/data/robocall.db

WORKDIR /app

# Dependencies first, at the exact versions of the lock file, in a layer of their own:
# a change to the code does not reinstall them. --no-deps: nothing beyond the lock.
COPY requirements.lock ./
RUN pip install --no-deps -r requirements.lock \
    && pip check

# The app itself runs from its source (PYTHONPATH), so it needs no build step.
COPY bot ./bot
RUN groupadd --gid 10001 robocall \
    && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin robocall \
    && mkdir -p /data \
    && chown 10001:10001 /data

USER 10001:10001
VOLUME /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=2)"]
# The web process and a worker; SIGTERM (docker stop) stops both.
CMD ["python", "-m", "bot", "run"]
