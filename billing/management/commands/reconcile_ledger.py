"""manage.py reconcile_ledger [--account ID] — prove cached balances equal the ledger."""

from django.core.management.base import BaseCommand, CommandError

from billing.services.reconcile import reconcile, reconcile_all


class Command(BaseCommand):
    help = (
        "Compare every cached balance (bucket, lot, grant) with the sum of its postings and "
        "check that every transaction balances. Exit status 1 on any drift (R-LED-4)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--account", type=int, help="Balance account id (default: all)")
        parser.add_argument("--batch-size", type=int, default=200_000)
        parser.add_argument("--alert", action="store_true", help="Raise a staff alert on drift")

    def handle(self, *args, account=None, batch_size=200_000, alert=False, **options):
        if account is not None:
            from accounts.models import BalanceAccount

            if not BalanceAccount.objects.filter(pk=account).exists():
                raise CommandError(f"No balance account {account}.")
            report = reconcile(account)
        else:
            report = reconcile_all(batch_size=batch_size, alert=alert)
        self.stdout.write(report.summary())
        if not report.ok:
            raise CommandError("Ledger drift found.", returncode=1)
