#!/usr/bin/env bash
# CI only (.ci/run): start Debian's PgBouncer from ops/pgbouncer/pgbouncer.ini in front of
# the local PostgreSQL, on port $1 (default 6433), trusting local connections, any
# database name passed through (the tests' own database included). Prints its URL prefix.
set -euo pipefail
port=${1:-6433}
here=$(cd "$(dirname "$0")" && pwd)
dir=/tmp/portal-ci-pgbouncer
mkdir -p "$dir"
# The shipped settings, with the addresses, files and authentication of a CI box.
sed -e "s|^portal = .*|* = host=127.0.0.1 port=5432|" \
    -e "s|^listen_port = .*|listen_port = ${port}|" \
    -e "s|^unix_socket_dir = .*|unix_socket_dir = ${dir}|" \
    -e "s|^auth_type = .*|auth_type = trust|" \
    -e "s|^auth_file = .*|auth_file = ${dir}/userlist.txt|" \
    -e "s|^admin_users = .*|admin_users = postgres|" \
    -e "s|^logfile = .*|logfile = ${dir}/pgbouncer.log|" \
    -e "s|^pidfile = .*|pidfile = ${dir}/pgbouncer.pid|" \
    "$here/pgbouncer.ini" >"$dir/pgbouncer.ini"
echo '"postgres" ""' >"$dir/userlist.txt"
if [ -f "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
  kill "$(cat "$dir/pgbouncer.pid")"  # an earlier CI run's, with an older config
  sleep 1
fi
if [ "$(id -u)" = 0 ]; then
  chown -R postgres "$dir"
  pgbouncer -d -u postgres "$dir/pgbouncer.ini"  # PgBouncer refuses to run as root
else
  pgbouncer -d "$dir/pgbouncer.ini"
fi
for _ in $(seq 30); do pg_isready -h 127.0.0.1 -p "$port" -q && break; sleep 0.2; done
pg_isready -h 127.0.0.1 -p "$port" >/dev/null
echo "postgres://postgres@127.0.0.1:${port}/"
