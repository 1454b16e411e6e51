#!/usr/bin/env bash
# Installs Debian's docker-compose (v1, Python; `docker-compose config` validates a file without a Docker
# daemon: tests/infra/test_compose.py) when it is missing and we are root.
set -euo pipefail
if command -v docker-compose >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "docker-compose is not installed and cannot be installed here (need root + apt-get)" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
