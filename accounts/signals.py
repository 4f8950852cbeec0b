"""Signals other areas hang behaviour on (see /work/contracts.md), plus R-ACC-1."""

from django.db.models.signals import post_save
from django.dispatch import Signal, receiver

from .models import User

# Sent inside the approval transaction: receivers (e.g. the trial-funds grant)
# commit or roll back together with the approval. kwargs: verification.
verification_approved = Signal()
# Sent inside accounts.services.change_standing's transaction.
# kwargs: account, transition, actor, reason.
standing_changed = Signal()
# Sent inside the publish transaction. kwargs: version.
agreement_published = Signal()


@receiver(post_save, sender=User, dispatch_uid="accounts.create_balance_account")
def create_balance_account(sender, instance, created, raw=False, **kwargs):
    """Every user gets exactly one balance account, in the user's own transaction (R-ACC-1)."""
    if created and not raw:
        from .services import open_balance_account

        open_balance_account(instance)
