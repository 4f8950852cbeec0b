#!/usr/bin/env bash
# Run every benchmark in bench/ (bench_*.py) and print one table.
# Needs DATABASE_URL pointing at PostgreSQL (pgbench runs on the same database).
source "$(dirname "$0")/../scripts/_venv.sh"
exec python bench/run.py "$@"
