"""Notices for events other apps announce by signal (connected defensively in apps.py).

Verification results, agreement versions, top-ups and grant changes are
notified by their own services with notify(); only the account standing comes
here, through accounts.signals.standing_changed.
"""

from django.utils import timezone


def on_standing_changed(sender, account, transition=None, **kwargs):
    """R-NOT-1: the user learns their account's standing changed (once per change).

    The staff reason is internal and stays out of the notice; CS explain on request.
    """
    from .services import send_notice

    stamp = account.standing_changed_at or timezone.now()
    send_notice(
        account.user,
        "standing_changed",
        {
            "standing": account.standing,
            "standing_label": account.get_standing_display(),
            "transition": transition or "",
        },
        dedupe_key=f"standing_changed:{account.pk}:{stamp.timestamp():.6f}",
    )
