STAFF_PERMISSIONS = {
    "cs_agent": ["ops.view_staffalert"],
    "finance_approver": [
        "ops.view_jobrun",
        "ops.run_job",
        "ops.view_staffalert",
        "ops.acknowledge_staffalert",
        "django_celery_beat.view_periodictask",
        "django_celery_beat.change_periodictask",
    ],
    "risk_officer": ["ops.view_jobrun", "ops.view_staffalert", "ops.acknowledge_staffalert"],
}
