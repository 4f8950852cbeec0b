#!/usr/bin/env bash
# Set up and run the whole test suite (lint + pytest). Extra arguments go to pytest.
# Without DATABASE_URL/REDIS_URL the service-backed tests skip and say so;
# PORTAL_REQUIRE_SERVICES=1 (as .ci/run sets) turns those skips into failures.
source "$(dirname "$0")/_venv.sh"
echo "== ruff"
ruff check .
ruff format --check .
echo "== pytest (database: ${DATABASE_URL:-embedded SQLite}, redis: ${REDIS_URL:-none})"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
