#!/usr/bin/env bash
# PostgreSQL as in production (README "PostgreSQL roles"): the tables belong to an owner
# role that runs the migrations; the portal connects as an owner-less role that may never
# UPDATE, DELETE or TRUNCATE postings, ledger transactions, audit records or usage events
# (settings.DB_APPEND_ONLY_TABLES, DB_SETTLE_ONLY_COLUMNS) nor switch the ledger triggers off.
#
#   ADMIN_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
#   PORTAL_DB=portal PORTAL_OWNER_ROLE=portal_owner PORTAL_APP_DB_ROLE=portal_app \
#   bash scripts/db_roles.sh
#
# Creates the owner role and the database (owned by it) when missing, migrates as the
# owner, runs `manage.py setup_db_roles`, checks that the portal's role is refused an
# UPDATE of each append-only table, and prints the DATABASE_URL the portal then runs with.
# Passwords (optional): PORTAL_OWNER_DB_PASSWORD, PORTAL_APP_DB_PASSWORD.
source "$(dirname "$0")/_venv.sh"
ADMIN_DATABASE_URL=${ADMIN_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORTAL_DB=${PORTAL_DB:-portal}
OWNER=${PORTAL_OWNER_ROLE:-portal_owner}
export PORTAL_APP_DB_ROLE=${PORTAL_APP_DB_ROLE:-portal_app}
base=${ADMIN_DATABASE_URL%/*}          # postgres://user[:pw]@host:port
hostpart=${base#*@}                    # host:port
auth() { local user=$1 pw=$2; if [ -n "$pw" ]; then echo "$user:$pw"; else echo "$user"; fi; }
OWNER_URL="postgres://$(auth "$OWNER" "${PORTAL_OWNER_DB_PASSWORD:-}")@${hostpart}/${PORTAL_DB}"
APP_URL="postgres://$(auth "$PORTAL_APP_DB_ROLE" "${PORTAL_APP_DB_PASSWORD:-}")@${hostpart}/${PORTAL_DB}"

psql "$ADMIN_DATABASE_URL" -v ON_ERROR_STOP=1 -q \
  -v owner="$OWNER" -v app="$PORTAL_APP_DB_ROLE" -v db="$PORTAL_DB" \
  -v pw="${PORTAL_OWNER_DB_PASSWORD:-}" -v apppw="${PORTAL_APP_DB_PASSWORD:-}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', :'app')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'owner', :'pw') WHERE :'pw' <> '' \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'app', :'apppw') WHERE :'apppw' <> '' \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SQL

DATABASE_URL="$OWNER_URL" python manage.py migrate --noinput -v 0
DATABASE_URL="$OWNER_URL" python manage.py setup_db_roles
# the proof, as the portal's role: the books and the case history cannot be rewritten
for table in billing_posting billing_ledgertransaction core_auditrecord; do
  if psql "$APP_URL" -q -c "UPDATE ${table} SET id = id" 2>/dev/null; then
    echo "ERROR: ${PORTAL_APP_DB_ROLE} may UPDATE ${table}" >&2
    exit 1
  fi
done
DATABASE_URL="$APP_URL" python manage.py check -v 0
echo "The portal runs with: DATABASE_URL=${APP_URL}"
