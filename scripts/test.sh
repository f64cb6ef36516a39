#!/usr/bin/env bash
# The project's checks and tests, as CI runs them (README, command 2). Run as root on Debian 12:
#   1. ruff, mypy and the import-layer contracts (seconds);
#   2. the unit suite as an unprivileged user (no root, no lab needed: scripts/unit-tests-as-user.sh),
#      at the same time as 1, spread over the cores (pytest-xdist); its output is printed after theirs;
#   3. the lab and end-to-end tests as root (network namespaces, sshd, Docker engines), alone: some of
#      them measure the simulated GPUs' timing, which other work on the same cores would disturb.
# Not root: every test as the current user (the lab tests skip, saying why).
set -euo pipefail
cd "$(dirname "$0")/.."

checks() {  # each runs, whatever the one before said; fails if any failed
  local rc=0
  ruff check src tests benchmarks tasks.py || rc=1
  mypy || rc=1
  lint-imports || rc=1
  return "$rc"
}

if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
  unit_log=$(mktemp -t llmfleet-unit-log.XXXXXX)
  bash scripts/unit-tests-as-user.sh >"$unit_log" 2>&1 &
  unit=$!
  trap 'kill "$unit" 2>/dev/null || true; rm -f "$unit_log"' EXIT
  checks_rc=0
  checks || checks_rc=$?
  unit_rc=0
  wait "$unit" || unit_rc=$?
  cat "$unit_log"
  trap - EXIT
  rm -f "$unit_log"
  if [ "$checks_rc" != 0 ] || [ "$unit_rc" != 0 ]; then
    echo "test.sh: checks exited $checks_rc, unit suite exited $unit_rc" >&2
    exit 1
  fi
  exec python3 -m pytest -q -p no:cacheprovider tests --ignore=tests/unit "$@"
fi
checks
exec python3 -m pytest -q -p no:cacheprovider "$@"
