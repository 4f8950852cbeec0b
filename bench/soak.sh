#!/usr/bin/env bash
# Soak with faults (issue 26, README "Operations: faults survived"): mixed traffic for
# SOAK_MINUTES (default 30; SOAK_MINUTES=3 for the developers' form) against an embedded
# PostgreSQL, a Redis, gunicorn, two settlers and a Celery worker that it owns and starts
# in SOAK_DIR (default: a new temporary directory); kills and restarts them on the way and
# prints one table. Exit status 0 when the target is met (0 lost, 0 drift, no 5xx outside
# the PostgreSQL restart, every fault healed within 60 s).
source "$(dirname "$0")/../scripts/_venv.sh"
exec python bench/soak.py
