# syntax=docker/dockerfile:1.7
# One image for every codex-broker service; the service is chosen by the container command
# (`python -m codex_broker.<service>`), see compose.yaml and k8s/.
#
# Every stage starts from BASE_IMAGE, a plain Debian bookworm; everything else (Python, Node for
# the Codex launcher, git, gh, ripgrep) are Debian packages. So the image builds without pulling
# from a container registry: build a base from Debian packages and pass it, e.g.
#   debootstrap --variant=minbase bookworm rootfs http://deb.debian.org/debian \
#     && tar -C rootfs -c . | docker import - local/bookworm
#   docker build --build-arg BASE_IMAGE=local/bookworm -t codex-broker:local .
# (docs/deploy.md, "Build the image").

ARG BASE_IMAGE=debian:bookworm-slim
ARG CODEX_VERSION=0.169.0
ARG UV_VERSION=0.13.8

# ---- Codex CLI (pinned) and the Python dependencies from the lock file ---------------------------
FROM ${BASE_IMAGE} AS build
ARG CODEX_VERSION
ARG UV_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
RUN npm install --global --no-audit --no-fund "@openai/codex@${CODEX_VERSION}" \
 && codex --version
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
# the venv is made with the Debian python3 the runtime stage has at the same path
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/bin/python3
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY src src
COPY libs libs
COPY services services
RUN /opt/uv/bin/uv sync --frozen --no-dev --all-packages --no-editable

# ---- Runtime ------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
# git, gh and rg are what Codex's shell reaches for (docs/services/git-identity.md relies on gh)
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 nodejs git gh ripgrep ca-certificates openssh-client tini \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s /usr/local/lib/node_modules/@openai/codex/bin/codex.js /usr/local/bin/codex \
 && codex --version && git --version && gh --version && rg --version
COPY --from=build /app/.venv /app/.venv
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin broker \
 && mkdir -p /data && chown broker:broker /data
ENV PATH=/app/.venv/bin:$PATH \
    DATA_ROOT=/data \
    CODEX_BIN=/usr/local/bin/codex \
    PYTHONUNBUFFERED=1
USER broker
WORKDIR /data
# Every service serves /healthz on METRICS_PORT (the http-api also on HTTP_API_PORT); compose
# gives each its own METRICS_PORT. tests/deploy/test_smoke.py runs this command against each one.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request; p=os.environ.get('METRICS_PORT') or os.environ.get('HTTP_API_PORT','3000'); urllib.request.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=4)"
ENTRYPOINT ["tini", "--", "python", "-m"]
CMD ["codex_broker.orchestrator"]
