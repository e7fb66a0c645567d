# Warden: the agent in a container. Build: docker build -t warden .  (see README, "Deploying")
# State lives on the volume /data (the SQLite database); the config is mounted read-only at
# /config/warden.toml; secrets come from the environment (compose: env_file: .env), never from
# the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY trading ./trading
COPY storage ./storage
RUN pip install . && rm -rf /src

# a dedicated unprivileged user owns the data volume; the code stays root-owned (read-only to it)
RUN groupadd --system --gid 10001 warden \
    && useradd --system --uid 10001 --gid warden --home-dir /data --shell /usr/sbin/nologin warden \
    && mkdir -p /data /config \
    && chown warden:warden /data

ENV WARDEN_DB=/data/warden.db \
    WARDEN_CONFIG=/config/warden.toml

USER warden
WORKDIR /data
VOLUME ["/data"]

# green while the agent runs and has guarded every account within 3 watchdog periods; the
# `|| exit 1` maps a configuration error (exit 2, which Docker reserves) to "unhealthy"
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD warden health || exit 1

# SIGTERM (docker stop) lets the running cycle finish and releases the leases
STOPSIGNAL SIGTERM
ENTRYPOINT ["warden"]
CMD ["run"]
