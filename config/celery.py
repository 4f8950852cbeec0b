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
