#!/usr/bin/env bash
# Build the codex-broker image without pulling from a container registry (docs/deploy.md).
#
#   scripts/container-image.sh [IMAGE]        # default codex-broker:local
#
# 1. The base: BASE_IMAGE (default local/bookworm). When it is missing, it is made from Debian
#    packages: `debootstrap --variant=minbase bookworm` → `docker import`. It is kept, so the
#    next build skips this (delete it with `docker rmi local/bookworm` to refresh it).
# 2. The image: `docker build --build-arg BASE_IMAGE=…` with the classic builder and the host's
#    network. Classic, because it works with every docker client (a CLI without the buildx
#    plugin has no BuildKit); host network, because a daemon started with --bridge=none (see
#    .ci/run) has no bridge for the RUN steps, which need apt, npm and PyPI. Docker's layer
#    cache makes a rebuild with unchanged sources take seconds.
# Needs root (debootstrap) and a running docker daemon. Prints each step's duration on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE="${1:-${CODEX_BROKER_IMAGE:-codex-broker:local}}"
BASE_IMAGE="${BASE_IMAGE:-local/bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

elapsed() { echo "container-image: $1 took $(($(date +%s) - $2)) s" >&2; }

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "container-image: base $BASE_IMAGE present, kept" >&2
else
  command -v debootstrap >/dev/null || { echo "debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
  start=$(date +%s)
  rootfs="$(mktemp -d /tmp/cb-rootfs.XXXXXX)"
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >&2
  # the same sources a debian:bookworm image has: updates and security fixes too
  cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY_MIRROR bookworm-security main
EOF
  # the host's local CAs (a corporate or TLS-intercepting egress proxy's): the build's apt, npm
  # and PyPI downloads go through the same network as this host's; `ca-certificates` in the
  # image adds them to its bundle. BASE_CA_CERTS="" leaves them out.
  for cert in ${BASE_CA_CERTS-/usr/local/share/ca-certificates/*.crt}; do
    [ -f "$cert" ] && install -D -m 0644 "$cert" "$rootfs/usr/local/share/ca-certificates/$(basename "$cert")"
  done
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . | docker import - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  elapsed "base $BASE_IMAGE (debootstrap + import)" "$start"
fi

start=$(date +%s)
DOCKER_BUILDKIT=0 docker build --force-rm --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" . >&2
elapsed "image $IMAGE (docker build)" "$start"
