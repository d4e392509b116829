# syntax=docker/dockerfile:1.7
# One image for every codex-broker service; the service is chosen by the container command
# (`python -m codex_broker.<service>`), see compose.yaml and k8s/.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- Codex CLI (pinned) -------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS codex
RUN npm install --global --no-audit --no-fund @openai/codex@0.169.0 \
 && codex --version

# ---- Python dependencies from the lock file -------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.8
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs/pyproject.toml libs/pyproject.toml
COPY services/ingress-slack/pyproject.toml services/ingress-slack/pyproject.toml
COPY services/ingress-feishu/pyproject.toml services/ingress-feishu/pyproject.toml
COPY services/orchestrator/pyproject.toml services/orchestrator/pyproject.toml
COPY services/codex-runner/pyproject.toml services/codex-runner/pyproject.toml
COPY services/http-api/pyproject.toml services/http-api/pyproject.toml
COPY src src
COPY libs/src libs/src
COPY services services
RUN uv sync --frozen --no-dev --all-packages --no-editable

# ---- Runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ripgrep ca-certificates openssh-client tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=codex /usr/local/bin/node /usr/local/bin/node
COPY --from=codex /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/@openai/codex/bin/codex.js /usr/local/bin/codex
COPY --from=build /app/.venv /app/.venv
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin broker \
 && mkdir -p /data && chown broker:broker /data
ENV PATH=/app/.venv/bin:$PATH \
    DATA_ROOT=/data \
    CODEX_BIN=/usr/local/bin/codex \
    PYTHONUNBUFFERED=1
USER broker
WORKDIR /data
# Every service serves /healthz on METRICS_PORT (the http-api on HTTP_API_PORT).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request; p=os.environ.get('METRICS_PORT') or os.environ.get('HTTP_API_PORT','3000'); urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"
ENTRYPOINT ["tini", "--", "python", "-m"]
CMD ["codex_broker.orchestrator"]
