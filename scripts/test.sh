#!/usr/bin/env bash
# The project's checks and tests, as CI runs them (README, command 2). Run as root on Debian 12:
#   1. ruff, mypy and the import-layer contracts (seconds);
#   2. the unit suite as an unprivileged user (no root, no lab needed: scripts/unit-tests-as-user.sh);
#   3. the lab and end-to-end tests as root (network namespaces, sshd, Docker engines).
# Not root: every test as the current user (the lab tests skip, saying why).
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check src tests benchmarks tasks.py
mypy
lint-imports
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  bash scripts/unit-tests-as-user.sh
  exec python3 -m pytest -q -p no:cacheprovider tests --ignore=tests/unit "$@"
fi
exec python3 -m pytest -q -p no:cacheprovider "$@"
