#!/usr/bin/env bash
# Run the unit suite as an unprivileged user (default: nobody), from a copy of the working tree and
# a virtualenv of Debian's python3: proof that unit tests need no root, no lab, no namespace.
# Usage: bash scripts/unit-tests-as-user.sh [pytest args...]   (run as root; CI does)
# The tests are spread over LLMFLEET_UNIT_WORKERS pytest-xdist workers (default: one per core; 0: none).
set -euo pipefail
cd "$(dirname "$0")/.."
user=${LLMFLEET_TEST_USER:-nobody}
group=$(id -gn "$user")
venv=${LLMFLEET_UNIT_VENV:-/var/cache/llmfleet/unit-venv}
work=$(mktemp -d /tmp/llmfleet-unit.XXXXXX)
trap 'rm -rf "$work"' EXIT

# the tracked and new (not ignored) files as they are now: the tests of this change, not of HEAD
git ls-files -z --cached --others --exclude-standard | xargs -0 tar -cf - --no-recursion 2>/dev/null | tar -xf - -C "$work"
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$work[lab,test]" 2>&1 | grep -v "^WARNING: Running pip as" >&2 || true
chown -R "$user:$group" "$work"
cd "$work"
exec setpriv --reuid="$user" --regid="$group" --clear-groups --reset-env \
  env HOME="$work" PATH="$venv/bin:/usr/bin:/bin" LLMFLEET_ARCHIVE="$work/archive" \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider -n "${LLMFLEET_UNIT_WORKERS:-auto}" tests/unit "$@"
