# One image for every codex-broker service; the service is chosen by the container command
# (`python -m codex_broker.<service>`), see compose.yaml and k8s/.
#
# Every stage starts from BASE_IMAGE, a plain Debian bookworm; everything else (Python, Node for
# the Codex launcher, git, gh, ripgrep) are Debian packages. So the image builds without pulling
# from a container registry (no `# syntax=` line either: BuildKit would fetch that frontend):
# `scripts/container-image.sh` makes a base from Debian packages and builds on it, i.e.
#   debootstrap --variant=minbase bookworm rootfs http://deb.debian.org/debian \
#     && tar -C rootfs -c . | docker import - local/bookworm
#   docker build --network host --build-arg BASE_IMAGE=local/bookworm -t codex-broker:local .
# (docs/deploy.md, "Build the image"; tests/deploy/test_container.py builds and runs it).

ARG BASE_IMAGE=debian:bookworm-slim
ARG CODEX_VERSION=0.169.0
ARG UV_VERSION=0.13.8

# ---- The workspace's pyproject.toml files and the lock, nothing else -----------------------------
# so that the dependencies' layer below is rebuilt only when one of these changes, not on every
# source change (the COPY of this stage's output is cached by content)
FROM ${BASE_IMAGE} AS manifests
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY libs libs
COPY services services
RUN find libs services -type f ! -name pyproject.toml -delete

# ---- Codex CLI (pinned) and the Python dependencies from the lock file ---------------------------
FROM ${BASE_IMAGE} AS build
ARG CODEX_VERSION
ARG UV_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv nodejs npm ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# npm, pip and uv trust the system bundle (Debian's CAs plus any local one the base carries,
# e.g. an egress proxy's: docs/deploy.md) rather than each tool's own copy
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN npm install --global --no-audit --no-fund "@openai/codex@${CODEX_VERSION}" \
 && codex --version
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
# the venv is made with the Debian python3 the runtime stage has at the same path
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/bin/python3
WORKDIR /app
COPY --from=manifests /app/ ./
RUN /opt/uv/bin/uv sync --frozen --no-dev --all-packages --no-install-workspace
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
