# seatflow worker image. Used by docker-compose.kafka.yml; see docs/deployment.md.
#
#   docker build -t seatflow:local .
#   docker run --rm -e SEATFLOW_KAFKA_BOOTSTRAP=... -e SEATFLOW_DATABASE_URL=... seatflow:local
#
# `pip install .` installs the service without the `devstack` extra (the embedded broker,
# PostgreSQL and SMTP sink are for development): production points it at real Kafka,
# PostgreSQL and SMTP through SEATFLOW_* settings.
FROM python:3.11-slim-bookworm

# SEATFLOW_HOME: local state (Faust's data directory), not in /app.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SEATFLOW_HOME=/var/lib/seatflow

WORKDIR /app

# The source stays in /app after the install: `seatflow restaurants load
# /app/seatflow/samples/ember-oak.yaml` reads the sample from here.
COPY . /app
RUN pip install . \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/seatflow seatflow \
    && mkdir -p /var/lib/seatflow \
    && chown seatflow:seatflow /var/lib/seatflow

USER seatflow

# HTTP: /health, /metrics, /bookings/{id} (docs/interface.md §6; SEATFLOW_WEB_PORT, default 6066).
EXPOSE 6066

# 200 only when the broker and the database are reachable; urlopen raises on 503.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SEATFLOW_WEB_PORT', '6066') + '/health', timeout=4)"]

# Exec form: seatflow is PID 1 and receives SIGTERM itself (graceful stop: commit, leave group).
ENTRYPOINT ["seatflow"]
CMD ["worker"]
