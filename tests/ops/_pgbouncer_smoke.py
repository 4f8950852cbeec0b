"""Run by tests/ops/test_pgbouncer.py in a process of its own, with DATABASE_URL naming
PgBouncer: gateway usage and authorize through Django, a settlement drain, a reconcile."""

import json
import os
import sys


def main(tag):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test import Client

    from bench.seed import create_accounts
    from billing.services.reconcile import reconcile_all
    from billing.services.settlement import run_settler

    raw = f"sk-pgb-{tag}-key-material"
    create_accounts([(f"pgb-{tag}@pgb.local", raw, f"sk-pb{tag}"[:16])], "10.00")
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {settings.GATEWAY_SERVICE_TOKEN}"}
    answers = []
    for n in range(5):
        body = {"request_id": f"pgb-{tag}-{n}", "api_key": raw, "model": "m", "amount": "0.25"}
        r = client.post(
            "/api/v1/gateway/usage", json.dumps(body), content_type="application/json", **auth
        )
        answers.append(r.status_code)
    r = client.post(
        "/api/v1/gateway/authorize",
        json.dumps({"api_key": raw}),
        content_type="application/json",
        **auth,
    )
    answers.append(r.status_code)
    settled = run_settler(seconds=0, slots=False)  # a one-off drain: no session advisory lock
    report = reconcile_all()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM billing_usageevent"
            " WHERE request_id LIKE %s AND transaction_id IS NOT NULL",
            [f"pgb-{tag}-%"],
        )
        done = cur.fetchone()[0]
    db = settings.DATABASES["default"]
    print(
        json.dumps(
            {
                "answers": answers,
                "settled": settled,
                "settled_events": done,
                "findings": len(report.drifts),
                "server_side_cursors_off": db["DISABLE_SERVER_SIDE_CURSORS"],
                "port": db["PORT"],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
