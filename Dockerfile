# seatflow worker image. Used by docker-compose.kafka.yml; see docs/deployment.md §10.
#
#   docker build -t seatflow:local .
#   docker run --rm -e SEATFLOW_KAFKA_BOOTSTRAP=... -e SEATFLOW_DATABASE_URL=... seatflow:local
#
# Both architectures from one machine (BuildKit runs the other one under QEMU):
#   docker buildx build --platform linux/amd64,linux/arm64 -t REGISTRY/seatflow:TAG --push .
#
# Lean: `pip install .` installs the service without the `devstack` extra (pgserver's private
# PostgreSQL, the Tansu broker binary, the SMTP sink; pgserver was the amd64-only wheel);
# production points it at real Kafka, PostgreSQL and SMTP through SEATFLOW_* settings. The
# build stage has a compiler because faust-streaming ships no linux/arm64 wheel (pip builds
# it from source there); the final stage gets only the finished virtualenv, no compiler,
# no source tree.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src
RUN python -m venv /opt/seatflow \
    && /opt/seatflow/bin/pip install .


FROM python:3.11-slim-bookworm

# SEATFLOW_HOME: local state (Faust's data directory), not in /app.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/seatflow/bin:$PATH \
    SEATFLOW_HOME=/var/lib/seatflow

COPY --from=build /opt/seatflow /opt/seatflow

# The sample restaurant stays readable at a fixed path: `seatflow restaurants load
# /app/seatflow/samples/ember-oak.yaml` (docker-compose.kafka.yml's init service).
WORKDIR /app
COPY seatflow/samples /app/seatflow/samples

# A numeric USER, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 seatflow \
    && useradd --system --uid 10001 --gid seatflow --create-home --home-dir /home/seatflow seatflow \
    && mkdir -p /var/lib/seatflow \
    && chown seatflow:seatflow /var/lib/seatflow

USER 10001:10001

# HTTP: /health, /metrics, /bookings/{id} (docs/interface.md §6; SEATFLOW_WEB_PORT, default 6066).
EXPOSE 6066

# 200 only when the broker and the database are reachable; urlopen raises on 503.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SEATFLOW_WEB_PORT', '6066') + '/health', timeout=4)"]

# Exec form: seatflow is PID 1 and receives SIGTERM itself (graceful stop: commit, leave group).
ENTRYPOINT ["seatflow"]
CMD ["worker"]
