#!/usr/bin/env bash
# Set up and run the portal on embedded defaults: SQLite, filesystem Celery broker,
# demo data. Starts web, the usage settler and a Celery worker + beat; Ctrl-C stops them all.
source "$(dirname "$0")/_venv.sh"
PORT=${PORT:-8000}
# Safe to stop and start again at any time: migrate and seed_demo are idempotent.
# A busy port (an earlier run still up, another app) moves us to the next free one.
while python - "$PORT" <<'PY'
import socket, sys
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)  # busy
sys.exit(1)
PY
do
  echo "port ${PORT} is busy; trying $((PORT + 1))"
  PORT=$((PORT + 1))
done
mkdir -p var/celery/broker var/celery/processed var/mail
python manage.py migrate --noinput
python manage.py seed_demo
python manage.py collectstatic --noinput -v 0

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
# One worker process with the beat scheduler embedded: enough for the embedded default.
# Its settle_usage job only drains what is pending (a solo worker must not be held for a
# minute); the continuous settler is a process of its own, seconds behind ingestion.
USAGE_SETTLER_SECONDS=0 celery -A config worker --beat --loglevel=INFO --pool=solo \
  --schedule=var/celery/beat-schedule >var/celery/worker.log 2>&1 &
pids+=($!)
python manage.py settle_usage --seconds 31536000 >var/celery/settler.log 2>&1 &
pids+=($!)
echo "Celery worker + beat started (log: var/celery/worker.log); scheduled jobs and their runs:"
echo "  http://127.0.0.1:${PORT}/admin/ops/jobrun/  (schedules: /admin/django_celery_beat/periodictask/)"
echo "Portal serving on port ${PORT}:  http://127.0.0.1:${PORT}/    Admin: http://127.0.0.1:${PORT}/admin/"
python manage.py runserver "127.0.0.1:${PORT}" --noreload &
pids+=($!)
wait -n "${pids[@]}"
