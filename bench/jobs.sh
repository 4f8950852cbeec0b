#!/usr/bin/env bash
# Job benchmarks (PostgreSQL): expire 1,000,000 trial grants through the expire_grants job
# next to a plain SQL UPDATE of the same rows (target ratio <= 5), and reconcile 100,000
# accounts with 10,000,000 postings. Uses (drops and recreates) a dedicated database:
#   BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/portal_jobs_bench)
# Smaller run: BENCH_GRANTS=100000 BENCH_ACCOUNTS=10000 BENCH_POSTINGS=1000000 bash bench/jobs.sh
source "$(dirname "$0")/../scripts/_venv.sh"
url=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/portal_jobs_bench}
db=${url##*/}
case "$db" in
  *bench*) ;;
  *) echo "jobs bench: refusing to reset '$db' (its name must contain 'bench')" >&2; exit 2 ;;
esac
admin_url=${url%/*}/postgres
python - "$admin_url" "$db" <<'PY'
import sys

import psycopg

with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    conn.execute(f'DROP DATABASE IF EXISTS "{sys.argv[2]}" WITH (FORCE)')
    conn.execute(f'CREATE DATABASE "{sys.argv[2]}"')
PY
export DATABASE_URL=$url PORTAL_VAR_DIR=${PORTAL_VAR_DIR:-$(mktemp -d)}
python manage.py migrate --noinput -v 0
exec python bench/jobs_bench.py
