"""Set up the PostgreSQL role the portal runs as (issue 13: production cannot be opened by
one mistake).

Run it as the OWNER of the tables (the role that runs `migrate`), after every migrate:

    DATABASE_URL=postgres://portal_owner@db/portal python manage.py migrate
    DATABASE_URL=postgres://portal_owner@db/portal python manage.py setup_db_roles

The portal's own role (PORTAL_APP_DB_ROLE, default `portal_app`) owns nothing: it may
read and write the tables the portal needs, but never UPDATE, DELETE or TRUNCATE the
append-only tables (settings.DB_APPEND_ONLY_TABLES: postings, ledger transactions, audit
records; usage events only settled, settings.DB_SETTLE_ONLY_COLUMNS), never
disable their triggers (only an owner may ALTER TABLE; `session_replication_role` needs a
superuser), and never create or alter tables. Idempotent: grants are re-applied to every
table and sequence, and default privileges cover tables the owner creates later.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection


class Command(BaseCommand):
    help = "Create or update the owner-less PostgreSQL role the portal connects as."

    def add_arguments(self, parser):
        parser.add_argument(
            "--app-role",
            default=settings.PORTAL_APP_DB_ROLE,
            help="Name of the portal's role (default: settings.PORTAL_APP_DB_ROLE).",
        )
        parser.add_argument(
            "--password-env",
            default="PORTAL_APP_DB_PASSWORD",
            help="Environment variable holding the role's password (none: unchanged).",
        )

    def handle(self, *args, app_role, password_env, **options):
        q = connection.ops.quote_name
        role = q(app_role)
        with connection.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            owner, database = cur.fetchone()
            if owner == app_role:
                raise CommandError("Run this as the tables' owner, not as the portal's role.")
            cur.execute(
                "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
            )
            may_manage_roles = cur.fetchone()[0]
            cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [app_role])
            exists = cur.fetchone() is not None
            if not exists and not may_manage_roles:
                raise CommandError(
                    f"Role {app_role} does not exist and {owner} may not create roles: "
                    "create it first as an administrator (scripts/db_roles.sh does)."
                )
            if not exists:
                cur.execute(f"CREATE ROLE {role} LOGIN")
            password = os.environ.get(password_env)
            if may_manage_roles:
                cur.execute(
                    f"ALTER ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                    "NOREPLICATION NOBYPASSRLS NOINHERIT"
                )
                if password:
                    cur.execute(f"ALTER ROLE {role} PASSWORD %s", [password])
            cur.execute(
                "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolbypassrls OR rolreplication"
                " FROM pg_roles WHERE rolname = %s",
                [app_role],
            )
            if cur.fetchone()[0]:
                raise CommandError(f"{app_role} has administrative attributes: remove them.")
            cur.execute(f"GRANT CONNECT ON DATABASE {q(database)} TO {role}")
            cur.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            cur.execute(f"REVOKE CREATE ON SCHEMA public FROM {role}")
            cur.execute(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
            )
            cur.execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}")
            cur.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}"
            )
            cur.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                f"GRANT USAGE, SELECT ON SEQUENCES TO {role}"
            )
            tables = list(settings.DB_APPEND_ONLY_TABLES)
            for table in tables:
                cur.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {q(table)} FROM {role}")
            settle_only = dict(settings.DB_SETTLE_ONLY_COLUMNS)
            for table, columns in settle_only.items():
                cur.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {q(table)} FROM {role}")
                cols = ", ".join(q(c) for c in columns)
                cur.execute(f"GRANT UPDATE ({cols}) ON {q(table)} TO {role}")
            cur.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner = %s",
                [app_role],
            )
            if cur.fetchone()[0]:
                raise CommandError(f"{app_role} owns tables: it must own nothing.")
        self.stdout.write(
            f"Role {app_role}: may read and write the portal's tables in {database}; "
            f"append-only (no UPDATE/DELETE/TRUNCATE): {', '.join(tables) or '-'}; "
            f"settled once (UPDATE of the settlement's columns only): "
            f"{', '.join(settle_only) or '-'}; owns nothing."
        )
