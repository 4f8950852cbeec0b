from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import User


@receiver(post_save, sender=User, dispatch_uid="accounts.create_balance_account")
def create_balance_account(sender, instance, created, raw=False, **kwargs):
    """Every user gets exactly one balance account, in the user's own transaction (R-ACC-1)."""
    if created and not raw:
        from .services import open_balance_account

        open_balance_account(instance)
