#!/usr/bin/env bash
# What the tests need from the system (npm test's pretest step, and .ci/run): installs the missing
# Debian packages when run as root, otherwise stops at once with the exact command to run.
# Nothing is skipped silently: a test whose tool is missing would fail, so this runs first.
set -euo pipefail

need=()
# Google's protobuf runtime: the independent reference of the wire-format tests.
command -v protoc >/dev/null 2>&1 || need+=(protobuf-compiler)
# Debian's python3-protobuf is importable by Debian's python3 (a pyenv python3 on PATH cannot see it).
/usr/bin/python3 -c 'import google.protobuf' >/dev/null 2>&1 || need+=(python3-protobuf)
# The brokers and databases the tests start on free ports (unless a Docker engine runs them).
[ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# The broker-cluster failover test (test/faults/broker-cluster.test.ts) runs three NATS nodes (MQTT + JetStream).
[ -x "${TERA_CDC_NATS_SERVER:-/usr/sbin/nats-server}" ] || need+=(nats-server)
# The Redis sink's fault and contract tests start their own redis-server.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
# Headless browser of the gateway's end-to-end tests (test/gateway), driven by playwright-core.
[ -x "${TERA_CDC_CHROMIUM:-/usr/bin/chromium}" ] || need+=(chromium)

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "npm test needs these Debian packages: ${need[*]}" >&2
  echo "install them, then run npm test again:  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "npm test needs ${need[*]} (Debian package names) and this machine has no apt-get: install their equivalents" >&2
  exit 1
fi
echo "npm test: installing the missing Debian packages: ${need[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
