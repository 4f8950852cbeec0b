"""A slow job for the kill test: each batch handles one pending notice, then pauses."""

import os
import time

from django.db import transaction

JOB = "test_killable_job"


def _batch(now, batch_size):
    from notices.models import Notice

    with transaction.atomic():
        batch = list(
            Notice.objects.select_for_update(skip_locked=True)
            .filter(read_at__isnull=True)
            .order_by("id")[:batch_size]
        )
        Notice.objects.filter(pk__in=[n.pk for n in batch]).update(read_at=now)
    time.sleep(float(os.environ.get("SLOW_JOB_PAUSE", "0")))  # set in the worker only
    return len(batch)


def register():
    from ops import framework, tasks

    if JOB not in framework.REGISTRY:
        framework.job(JOB, schedule=60, batch_size=1, max_batches=1000)(_batch)
        tasks.task_for(framework.REGISTRY[JOB])
    return framework.REGISTRY[JOB]


def unregister():
    from ops import framework

    framework.REGISTRY.pop(JOB, None)
