#!/usr/bin/env bash
# Set up and run the whole test suite (lint + pytest). Extra arguments go to pytest.
# Every test runs on PostgreSQL: DATABASE_URL's server (CI: the system's), or without it a
# throwaway embedded server (scripts/embedded_pg.py) in a temporary directory, removed at
# exit. Without REDIS_URL/Chromium the tests that need them skip and say so;
# PORTAL_REQUIRE_SERVICES=1 (as .ci/run sets) turns those skips into failures.
# The quick loop is the same command: `bash scripts/test.sh tests/test_money.py` (one file),
# `bash scripts/test.sh tests/test_money.py::test_x` (one test); ruff takes well under 1 s.
source "$(dirname "$0")/_venv.sh"
echo "== ruff"
ruff check .
ruff format --check .
if [ -z "${DATABASE_URL:-}" ]; then
  pgtmp=$(mktemp -d -t portal-test-pg.XXXXXX)
  cleanup() {
    python scripts/embedded_pg.py stop "$pgtmp/pg" || true
    rm -rf "$pgtmp"
  }
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  DATABASE_URL=$(python scripts/embedded_pg.py start "$pgtmp/pg" --database portal --throwaway)
  export DATABASE_URL
  db_name="throwaway embedded PostgreSQL in $pgtmp"
fi
echo "== pytest (database: ${db_name:-$DATABASE_URL}, redis: ${REDIS_URL:-none})"
set +e
python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests" >&2
  exit 1
fi
exit "$rc"
