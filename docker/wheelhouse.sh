#!/usr/bin/env bash
# The wheels the image installs, fetched with this machine's pip configuration (`pip config
# list`: index, find-links, constraints, certificate) into docker/wheels/, so that
#   docker build -f docker/Dockerfile --build-arg PIP_OPTIONS=--no-index ...
# needs no package index (the torch wheel too: a CPU wheel in pip's find-links is taken over
# the index's). pip runs inside the base image, so environment markers are those of the
# image's Python (bookworm's 3.11.2 needs async-timeout, 3.11.3+ does not), with the host's
# settings and the local folders they name mounted read-only.
#
#   docker/wheelhouse.sh BASE_IMAGE [TORCH_VERSION]
#
# Wheels are kept between runs in $ANNOTATOR_WHEEL_CACHE (default
# ~/.cache/sentiment-annotator/wheels); docker/wheels/ is made again only when the
# requirements, the torch version or the base image change.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_IMAGE=${1:?usage: docker/wheelhouse.sh BASE_IMAGE [TORCH_VERSION]}
TORCH_VERSION=${2:-2.13.0}
PYTHON=${PYTHON:-python3}
CACHE=${ANNOTATOR_WHEEL_CACHE:-$HOME/.cache/sentiment-annotator/wheels}
OUT=docker/wheels
mkdir -p "$CACHE" "$OUT"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{ "$PYTHON" docker/requirements.py; echo "torch==$TORCH_VERSION"; } >"$work/requirements.txt"
stamp=$({ cat "$work/requirements.txt"; docker image inspect -f '{{.Id}}' "$BASE_IMAGE"; } \
  | sha256sum | cut -c1-16)
if [ "$(cat "$OUT/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "wheels for these requirements are in $OUT ($(ls "$OUT" | grep -c '\.whl$') wheels)"
  exit 0
fi

# The host's effective pip settings as one config file, and the local paths they name.
"$PYTHON" -m pip config list 2>/dev/null | "$PYTHON" -c '
import os, shlex, sys
conf, mounts = {}, set()
for line in sys.stdin:  # section.name=value; the environment (":env:") comes last and wins
    key, _, value = line.strip().partition("=")
    value = shlex.split(value)[0] if value else ""
    conf[key.split(".", 1)[1]] = value
    for word in value.split():
        path = word.removeprefix("file://")
        if word.startswith("file://"):  # a local index: its pages link files beside it
            path = os.path.dirname(path.rstrip("/"))
        if path.startswith("/") and os.path.exists(path):
            mounts.add(path)
lines = ["[global]"] + [f"{name} = {value}" for name, value in conf.items()]
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
print("\n".join(sorted(mounts)))
' "$work/pip.conf" >"$work/mounts"
volumes=()
while read -r path; do [ -n "$path" ] && volumes+=(-v "$path:$path:ro"); done <"$work/mounts"

rm -f "$OUT"/*.whl "$OUT/.stamp"
# the cache first (no download for a wheel fetched before), then what pip is configured with
docker run --rm --network host --user "$(id -u):$(id -g)" -e HOME=/tmp \
  -e PIP_CONFIG_FILE=/work/pip.conf -v "$work:/work:ro" "${volumes[@]}" \
  -v "$(realpath "$CACHE"):/cache:ro" -v "$(realpath "$OUT"):/wheels" "$BASE_IMAGE" \
  python3 -m pip wheel -q --wheel-dir /wheels --find-links /cache -r /work/requirements.txt \
  2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }
cp -l -n "$OUT"/*.whl "$CACHE"/ 2>/dev/null || cp -n "$OUT"/*.whl "$CACHE"/
echo "$stamp" >"$OUT/.stamp"
echo "$(ls "$OUT" | grep -c '\.whl$') wheels in $OUT ($(du -sh "$OUT" | cut -f1))"
