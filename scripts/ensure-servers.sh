#!/usr/bin/env bash
# Installs the server binaries the test suite starts (redis-server, PostgreSQL) when they
# are missing and we are root, and systemd-analyze (package systemd), which the tests of
# deploy/systemd run, and chromium for the dashboard's browser tests. Without root it only reports what is missing.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The dashboard's browser tests drive Debian's Chromium headless (Playwright, no download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  echo "Installing ${need[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian packages start system services we do not use; the tests start their own.
  service redis-server stop >/dev/null 2>&1 || true
  service postgresql stop >/dev/null 2>&1 || true
else
  echo "Missing ${need[*]} and not root: install them, or tests needing them will be skipped" \
       "(and fail under CI=true)." >&2
fi
