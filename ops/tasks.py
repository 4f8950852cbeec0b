"""One Celery task per registered job, named ``ops.job.<name>``: the worker runs it
through ops.services.run_job (leased, logged). Made by OpsConfig.ready once every
app's jobs.py is loaded; Celery's autodiscovery imports this module too."""

from celery import shared_task

from .framework import all_jobs
from .services import run_job


def task_for(spec):
    """The job's Celery task, made on first use."""
    if spec.task is None:

        @shared_task(name=spec.task_name, ignore_result=True)
        def run(triggered_by="beat", user_id=None):
            return run_job(spec.name, triggered_by=triggered_by, user_id=user_id).pk

        spec.task = run
    return spec.task


def register_all():
    for spec in all_jobs():
        task_for(spec)


register_all()
