#!/usr/bin/env bash
# The project's checks and tests, as CI runs them (README, command 2). Run as root on Debian 12:
#   1. ruff, mypy and the import-layer contracts (seconds);
#   2. the unit suite as an unprivileged user (no root, no lab needed: scripts/unit-tests-as-user.sh),
#      at the same time as 1, spread over the cores (pytest-xdist); its output is printed after theirs;
#   3. the lab tests that measure the simulated GPUs' timing (marked `alone`), as root, after 1 and 2, by themselves;
#   4. then the other lab and end-to-end tests on two workers with a lab each (most of their time is waiting on
#      simulated GPUs, SSH and Docker): tests/parallel_labs.py.
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
  # The timing tests first, on a fresh lab and by themselves; that lab stays up for worker gw0 of the rest
  # (its hosts already hold the images), which takes it down at its end; the trap does if nothing ran there.
  trap 'python3 -m llmfleet lab.down >/dev/null 2>&1 || true' EXIT
  alone_rc=0
  LLMFLEET_TEST_LAB_KEEP=1 python3 -m pytest -q -p no:cacheprovider --durations=6 -m alone tests --ignore=tests/unit \
    "$@" || alone_rc=$?
  lab_rc=0
  LLMFLEET_TEST_LAB_PER_WORKER=1 python3 -m pytest -q -p no:cacheprovider -n "${LLMFLEET_TEST_LAB_WORKERS:-2}" \
    --dist loadfile --durations=12 -m "not alone" tests --ignore=tests/unit "$@" || lab_rc=$?
  no_tests=5  # pytest's code when the arguments selected nothing (e.g. -k picking tests of one part only)
  if [ "$lab_rc" = "$no_tests" ] && [ "$alone_rc" = "$no_tests" ]; then exit "$no_tests"; fi
  for rc in "$lab_rc" "$alone_rc"; do
    if [ "$rc" != 0 ] && [ "$rc" != "$no_tests" ]; then
      echo "test.sh: timing tests exited $alone_rc, other lab tests exited $lab_rc" >&2
      exit 1
    fi
  done
  exit 0
fi
checks
exec python3 -m pytest -q -p no:cacheprovider "$@"
