"""Money the platform owed leaves through a payment channel: refunds payable and
rights-holder payable → payment clearing[channel] (R-REF-5, R-REF-6, R-DIS-3)."""

from django.db import transaction

from ..chart import platform_account_id
from ..models import AccountKind, Channel
from .engine import Entry, LedgerError, Leg, replayed, run_idempotent, write
from .settlement import lock_and_settle


def payable_to_channel(
    account, micro: int, *, payable: str, kind: str, channel: str, key: str, memo: str, actor=None
):
    """Money the platform owed has left through a channel: `payable` (a platform account
    kind: refunds or rights-holder payable) → payment clearing[channel]. One transaction,
    idempotent on `key`. Touches no user bucket, but takes the account's locks so all of
    one account's movements stay serialised (billing/README.md, "Lock order")."""
    if channel not in Channel.values:
        raise LedgerError(f"Unknown payment channel {channel!r}.", code="unknown_channel")

    def run():
        with transaction.atomic():
            lock_and_settle([account.pk])
            legs = [
                Leg(platform_account_id(payable), str(payable), -micro),
                Leg(platform_account_id(AccountKind.CLEARING, channel), "clearing", micro),
            ]
            entry = Entry(
                kind,
                account.pk,
                legs,
                idempotency_key=key,
                memo=memo[:200],
                actor_id=getattr(actor, "pk", None),
            )
            (txn,) = write([entry])
            return txn

    return run_idempotent(lambda: replayed(key), run)
