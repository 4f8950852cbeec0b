"""Load demo data (idempotent) and print the demo logins.

Each app may ship `<app>/demo.py` with `seed(context)` and, for what needs every
app's setup first (usage drawn on the trial and top-ups, say), `seed_activity(context)`.
All `seed` functions run in INSTALLED_APPS order (lowest layer first), then all
`seed_activity` functions; they share `context` (a dict: users, notes to print).
"""

from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction


class Command(BaseCommand):
    help = "Create demo users, staff and data for a first look at the portal."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            # demo logins share one published password: never on a production database
            raise CommandError("seed_demo refuses to run in production (PORTAL_ENV=production).")
        context = {"logins": [], "notes": []}
        modules = []
        for config in apps.get_app_configs():
            try:
                modules.append(import_module(f"{config.name}.demo"))
            except ModuleNotFoundError:
                continue
        with transaction.atomic():
            for phase in ("seed", "seed_activity"):
                for module in modules:
                    if hasattr(module, phase):
                        getattr(module, phase)(context)
        self.stdout.write(self.style.SUCCESS("Demo data ready. Demo logins:"))
        for role, email, password in context["logins"]:
            self.stdout.write(f"  {role:<20} {email:<32} password: {password}")
        for note in context["notes"]:
            self.stdout.write(f"  - {note}")
