#!/usr/bin/env bash
# Set up and run the portal on embedded defaults: PostgreSQL from a wheel with its data in
# var/pg (unless DATABASE_URL names a server), filesystem Celery broker, demo data. Starts
# web, the usage settler and a Celery worker + beat; Ctrl-C stops them all (and the server).
source "$(dirname "$0")/_venv.sh"
PORT=${PORT:-8000}
VAR=${PORTAL_VAR_DIR:-var}  # as config/settings.py: broker, mail, media, the server's data

pids=()
embedded_pg=
cleanup() {
  if [ "${#pids[@]}" -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if [ -n "$embedded_pg" ]; then python scripts/embedded_pg.py stop "$VAR/pg" --owner-pid $$; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$VAR/celery/broker" "$VAR/celery/processed" "$VAR/mail"
# Metrics of every process summed at /ops/metrics/ (prometheus_client multiprocess mode):
# each process writes its counters to files here; a fresh start counts from zero.
export PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$VAR/prometheus}
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -name '*.db' -delete
if [ -z "${DATABASE_URL:-}" ]; then
  # A restart reuses $VAR/pg. A second run.sh on this tree while the first still serves is
  # refused (scripts/embedded_pg.py says how to share the first one's server instead).
  set +e
  url=$(python scripts/embedded_pg.py start "$VAR/pg" --database portal --owner-pid $$)
  rc=$?
  set -e
  [ "$rc" -eq 0 ] || exit "$rc"
  embedded_pg=1
  export DATABASE_URL=$url
  echo "Embedded PostgreSQL (data in $VAR/pg, stops with this script): DATABASE_URL=${url}"
fi
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
python manage.py migrate --noinput
python manage.py seed_demo
python manage.py collectstatic --noinput -v 0

# One worker process with the beat scheduler embedded: enough for the embedded default.
# Its settle_usage job only drains what is pending (a solo worker must not be held for a
# minute); the continuous settler is a process of its own, seconds behind ingestion.
# It serves both queues (config/celery.py, issue 24): money clocks on `money`, mail on
# `notices`; in production run one worker per queue so mail never delays a money clock.
USAGE_SETTLER_SECONDS=0 celery -A config worker --beat --loglevel=INFO --pool=solo \
  -Q money,notices,celery \
  --schedule="$VAR/celery/beat-schedule" >"$VAR/celery/worker.log" 2>&1 &
pids+=($!)
python manage.py settle_usage --seconds 31536000 >"$VAR/celery/settler.log" 2>&1 &
pids+=($!)
echo "Celery worker + beat started (log: $VAR/celery/worker.log); scheduled jobs and their runs:"
echo "  http://127.0.0.1:${PORT}/admin/ops/jobrun/  (schedules: /admin/django_celery_beat/periodictask/)"
echo "Portal serving on port ${PORT}:  http://127.0.0.1:${PORT}/    Admin: http://127.0.0.1:${PORT}/admin/"
python manage.py runserver "127.0.0.1:${PORT}" --noreload &
pids+=($!)
wait -n "${pids[@]}"
