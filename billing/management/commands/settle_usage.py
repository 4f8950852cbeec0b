"""manage.py settle_usage: settle pending metered usage now (R-USE-5)."""

import argparse

from django.core.management.base import BaseCommand

from billing.services.settlement import pending_summary, run_settler


class Command(BaseCommand):
    help = (
        "Settle pending usage events against balances. Without --seconds it settles "
        "what is pending and stops; with --seconds N it keeps settling for N seconds "
        "(a continuous settler: it settles only the accounts of the slots it holds, so "
        "several of them, on one host or many, share the work)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seconds", type=float, default=0.0)
        parser.add_argument("--chunk", type=int, default=None, help="events per chunk")
        parser.add_argument(
            "--slots",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="settle only the accounts of the slots this settler holds "
            "(default: on with --seconds, off without)",
        )

    def handle(self, *args, seconds, chunk, slots, **options):
        settled = run_settler(seconds=seconds, chunk=chunk, slots=slots)
        left = pending_summary()
        self.stdout.write(
            f"settled {settled} events; pending now {left['events']} ({left['amount']})"
        )
