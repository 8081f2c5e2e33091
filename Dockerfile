# The hubbub app image: the library, its `hubbub` CLI and the example app.
# Every setting comes from the environment (HUBBUB_URL, HUBBUB_TOPOLOGY, ...):
# see docs/operations.md. One image runs `hubbub topology apply` once and
# `hubbub consume --subscriber NAME` per subscriber (docker-compose.yml).
# PYTHON_IMAGE: any image with Python >= 3.10, pip and useradd on the PATH
# (`make compose-test` builds from an offline stand-in, docs/operations.md).
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY hubbub ./hubbub
# Not installed (the wheel ships hubbub alone): `hubbub consume` imports the
# handlers of example_app from its working directory, /app.
COPY example_app ./example_app
RUN pip install ".[console]" \
    && useradd --system --uid 10001 --no-create-home --home-dir /app hubbub \
    && mkdir -p /app/outbox \
    && chown hubbub /app/outbox

# Not root: the app needs no privilege, only the broker URL and its topology.
USER 10001
ENV HUBBUB_TOPOLOGY=/app/example_app/topology.yaml HUBBUB_OUTBOX=/app/outbox/actions.jsonl
# Prometheus /metrics and /healthz of `hubbub consume` (HUBBUB_METRICS_PORT);
# `hubbub console` (HUBBUB_CONSOLE_PORT).
EXPOSE 9100 8470
ENTRYPOINT ["hubbub"]
CMD ["--help"]
