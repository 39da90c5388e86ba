#!/usr/bin/env bash
# A base image for docker/Dockerfile made from Debian's packages, for machines where no
# registry image (python:3.11-slim) can be pulled: Debian bookworm, minimal, with its
# Python 3.11, venv, pip and CA certificates, plus this host's CA bundle (a TLS-inspecting
# proxy's certificate included), so what runs in the image trusts what the host trusts.
#
#   docker/make_base_image.sh [TAG]      # default annotator-base:bookworm
#   docker build -f docker/Dockerfile --build-arg BASE_IMAGE=annotator-base:bookworm .
#
# Needs root, debootstrap and a running Docker engine. An image of that tag already there is
# kept (REBUILD=1 makes it again). About a minute, 180 MB.
set -euo pipefail

TAG=${1:-annotator-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

if [ -z "${REBUILD:-}" ] && docker image inspect "$TAG" >/dev/null 2>&1; then
  echo "base image $TAG is there"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "make_base_image.sh: debootstrap is not installed (apt-get install -y debootstrap)" >&2; exit 1; }

rootfs=$(mktemp -d /tmp/annotator-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$MIRROR" >"$rootfs.log" 2>&1 \
  || { tail -20 "$rootfs.log" >&2; echo "make_base_image.sh: debootstrap failed (log: $rootfs.log)" >&2; exit 1; }
rm -f "$rootfs.log"
cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
  - "$TAG" >/dev/null
echo "base image $TAG made from Debian bookworm ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%d MB", $1/1e6}'))"
