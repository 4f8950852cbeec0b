from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _sync_jobs(sender, using="default", **kwargs):
    from django.db import connections

    tables = connections[using].introspection.table_names()
    if "django_celery_beat_periodictask" not in tables:
        return
    from .services import sync_periodic_tasks

    sync_periodic_tasks()


def _login_locked_out(sender, request=None, username=None, ip_address=None, **kwargs):
    """django-axes locked a login out: staff see it on the alert board (the address and a
    masked login name only)."""
    from .services import raise_alert

    name = username or ""
    local, _, domain = name.partition("@")
    masked = f"{local[:2]}***@{domain}" if domain else f"{name[:2]}***"
    raise_alert(
        "login_lockout",
        f"Logins for {masked} from {ip_address} locked out after repeated failures.",
        {"ip_address": ip_address, "login": masked},
        key=f"login-lockout:{ip_address}:{masked}"[:200],
    )


class OpsConfig(AppConfig):
    name = "ops"
    verbose_name = _("Operations (jobs and alerts)")

    def ready(self):
        from django.utils.module_loading import autodiscover_modules

        # Every app's jobs.py registers its @job functions; then each gets its Celery task.
        autodiscover_modules("jobs")
        from . import tasks

        tasks.register_all()
        post_migrate.connect(_sync_jobs, sender=self, dispatch_uid="ops.sync_jobs")
        try:
            from axes.signals import user_locked_out
        except ImportError:  # pragma: no cover - axes is in requirements.txt
            return
        user_locked_out.connect(_login_locked_out, dispatch_uid="ops.login_locked_out")
