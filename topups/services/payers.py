"""Who paid (R-TOP-3): a named payer who is not the verified holder makes a lot third-party."""

from accounts.selectors import approved_verification


def _normalize_name(name):
    return "".join((name or "").split()).casefold()


def holder_names(user):
    """The names a non-third-party payer may carry: the verified legal or company name."""
    verification = approved_verification(user)
    if verification is None:
        return set()
    names = {
        getattr(verification, "legal_name", "") or "",
        getattr(verification, "company_name", "") or "",
    }
    return {_normalize_name(n) for n in names if n}


def is_third_party(user, payer_name):
    """R-TOP-3: a named payer who is not the verified holder makes the lot third-party.

    A channel that reports no payer name (Alipay without buyer_user_name)
    cannot be judged and is not marked.
    """
    if not _normalize_name(payer_name):
        return False
    return _normalize_name(payer_name) not in holder_names(user)
