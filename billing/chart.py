"""The platform side of the chart of accounts (R-LED-1) and a per-process id cache.

Platform accounts are created by migration and again after a test flush
(post_migrate), so the hot settlement path never has to create them.
"""

from .models import AccountKind, Channel

PLATFORM_ACCOUNTS = [(AccountKind.CLEARING, ch.value) for ch in Channel] + [
    (AccountKind.REVENUE, ""),
    (AccountKind.PROMOTION_EXPENSE, ""),
    (AccountKind.REFUNDS_PAYABLE, ""),
    (AccountKind.RIGHTS_HOLDER_PAYABLE, ""),
]

_ids: dict[tuple[str, str], int] = {}


def ensure_platform_accounts(model=None, **kwargs):
    from .models import LedgerAccount

    model = model or LedgerAccount
    for kind, channel in PLATFORM_ACCOUNTS:
        model.objects.get_or_create(owner=None, kind=str(kind), channel=channel)
    _ids.clear()


def platform_account_id(kind, channel="") -> int:
    key = (str(kind), channel)
    cached = _ids.get(key)
    if cached is None:
        from .models import LedgerAccount

        cached = LedgerAccount.objects.get_or_create(owner=None, kind=key[0], channel=channel)[0].pk
        _ids[key] = cached
    return cached


def on_post_migrate(sender, **kwargs):
    _ids.clear()
    if sender.label == "billing":
        ensure_platform_accounts()
