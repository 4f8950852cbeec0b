"""Celery application.

With REDIS_URL / CELERY_BROKER_URL unset the broker is kombu's filesystem
transport under var/celery, so a first run needs no Redis at all.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Two queues (issue 24): money clocks never wait behind notice delivery. After a killed
# worker the grant expiry ran again only after 84 s, queued behind 10,000 notices on the
# one worker. Workers serve both (`-Q money,notices,celery`, scripts/run.sh); with one
# worker per queue in production, the money queue is never blocked by mail.
MONEY_QUEUE, NOTICES_QUEUE = "money", "notices"
NOTICE_JOBS = frozenset(
    {
        "deliver_notices",
        "grant_expiry_reminders",
        "grant_expired_notices",
        "dispute_reminders",
        "package_expiry_reminders",
    }
)
MONEY_TASKS = frozenset({"refunds.pay_out_alipay_line"})


def route_task(name, args, kwargs, options, task=None, **kw):
    """The queue of a task: notice jobs → notices; every other job (expiry, deadlines,
    settlement, payouts, reconciliation) and the money tasks → money; anything else
    stays on Celery's default queue."""
    if name.startswith("ops.job."):
        job = name.removeprefix("ops.job.")
        return {"queue": NOTICES_QUEUE if job in NOTICE_JOBS else MONEY_QUEUE}
    if name in MONEY_TASKS:
        return {"queue": MONEY_QUEUE}
    return None


app.conf.task_routes = (route_task,)
