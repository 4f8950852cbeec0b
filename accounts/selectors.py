"""Read paths of the accounts area (no N+1: each returns in a bounded number of queries)."""

from django.db.models import Count, Min
from django.utils import timezone

from .models import (
    AgreementAcceptance,
    AgreementState,
    AgreementVersion,
    ApiKey,
    User,
    Verification,
)

# The states pages compare against, handed on so that a page of a higher app (console)
# reads this app through this module alone.
from .models import Standing as Standing
from .models import VerificationState as VerificationState

# the one standing table, for pages of higher apps (console) that read accounts here
from .standing import Action as Action
from .standing import may as may


def user_by_email(email: str) -> User | None:
    """The user with this email (any case), or None."""
    return User.objects.filter(email__iexact=(email or "").strip()).first()


def approved_verification(user) -> Verification | None:
    """The user's approved real-name verification, or None (R-ACC-2)."""
    if user is None or not getattr(user, "pk", None):
        return None
    return (
        Verification.objects.filter(user_id=user.pk, state=VerificationState.APPROVED)
        .order_by("-reviewed_at", "-id")
        .first()
    )


def latest_verification(user) -> Verification | None:
    return Verification.objects.filter(user_id=user.pk).order_by("-created_at", "-id").first()


def verifications_of(user):
    return Verification.objects.filter(user_id=user.pk).order_by("-created_at", "-id")


def verification_of(user, pk) -> Verification:
    """One of the user's own verifications; another user's id is simply not found."""
    return Verification.objects.get(user_id=user.pk, pk=pk)


def api_keys_of(user):
    return ApiKey.objects.filter(account__user_id=user.pk).order_by("-created_at", "-id")


def agreement_in_force(at=None) -> AgreementVersion | None:
    """The latest published version whose effective date has come at `at` (R-ACC-7)."""
    at = at or timezone.now()
    return (
        AgreementVersion.objects.filter(state=AgreementState.PUBLISHED, effective_at__lte=at)
        .order_by("-effective_at", "-id")
        .first()
    )


def upcoming_agreement(at=None) -> AgreementVersion | None:
    """The next published version announced but not yet in force, if any."""
    at = at or timezone.now()
    return (
        AgreementVersion.objects.filter(state=AgreementState.PUBLISHED, effective_at__gt=at)
        .order_by("effective_at", "id")
        .first()
    )


def current_acceptance(user, at=None) -> AgreementAcceptance | None:
    """The user's acceptance of the version in force at `at`, or None (R-ACC-7)."""
    version = agreement_in_force(at)
    if version is None or user is None or not getattr(user, "pk", None):
        return None
    return (
        AgreementAcceptance.objects.select_related("version")
        .filter(user_id=user.pk, version=version)
        .first()
    )


def acceptances_of(user, versions):
    """{version id: acceptance} for the given versions, one query."""
    ids = [v.pk for v in versions if v is not None]
    return {
        a.version_id: a
        for a in AgreementAcceptance.objects.filter(user_id=user.pk, version_id__in=ids)
    }


def users_with_identity(identity_hash: str) -> list[int]:
    """Ids of users whose verification of this identity was ever approved (R-ACC-4).

    Includes revoked ones: trial funds go to an identity once, so a grant on
    any of these accounts counts for the identity.
    """
    return list(
        Verification.objects.filter(
            identity_hash=identity_hash,
            state__in=[VerificationState.APPROVED, VerificationState.REVOKED],
        )
        .values_list("user_id", flat=True)
        .distinct()
        .order_by("user_id")
    )


# ---------------------------------------------------------------- for the gateway and the ledger
#
# The two reads below serve billing's hottest paths (every charge, every batch): raw SQL
# returning tuples, no ORM instance per row, one statement whatever the number of ids.


def _ids_in(column, ids):
    """`column` in these integer ids: one array parameter (no placeholder per id)."""
    ids = [int(i) for i in ids]
    return f"{column} = ANY(%s::bigint[])", ["{" + ",".join(map(str, ids)) + "}"]


def gateway_keys(raw_keys) -> dict:
    """Many raw API keys → {raw: (key id, balance account id, key state, account standing,
    low-balance threshold)} in ONE query (R-ACC-6, R-ACC-8). Unknown and malformed keys
    are simply absent. The threshold is the column's value as the database returns it
    (None when the user set none)."""
    from django.db import connection

    from .api_keys import hash_secret
    from .models import BalanceAccount

    by_hash = {
        hash_secret(raw): raw for raw in raw_keys if isinstance(raw, str) and 0 < len(raw) <= 200
    }
    if not by_hash:
        return {}
    keys, accounts = ApiKey._meta.db_table, BalanceAccount._meta.db_table
    marks = ", ".join(["%s"] * len(by_hash))
    sql = (
        f"SELECT k.secret_hash, k.id, k.account_id, k.state, a.standing, a.low_balance_threshold"  # noqa: S608
        f" FROM {keys} k JOIN {accounts} a ON a.id = k.account_id WHERE k.secret_hash IN ({marks})"
    )
    with connection.cursor() as cur:
        cur.execute(sql, list(by_hash))
        return {by_hash[row[0]]: tuple(row[1:]) for row in cur.fetchall()}


def api_key_card(key_id) -> dict | None:
    """What a key's owner may read about it through the key itself (billing's /api/v1/me/
    key, issue 27): name, visible prefix, state, created, last used; never the hash."""
    return (
        ApiKey.objects.filter(pk=key_id)
        .values("id", "name", "prefix", "state", "created_at", "last_used_at")
        .first()
    )


def key_prefixes(key_ids) -> dict[int, str]:
    """{key id: visible prefix} for these keys, one query (the user API's usage by key)."""
    return dict(ApiKey.objects.filter(pk__in=list(key_ids)).values_list("id", "prefix"))


def lock_standings(account_ids, *, skip_locked=False) -> dict[int, str]:
    """Lock these balance accounts' rows in ascending id order and return
    {account id: standing}, in ONE query. Must run inside a transaction.

    The first step of the ledger's lock order (billing/README.md, "Lock order"): a
    money movement for an account holds its row while it moves money, so a standing
    change (core.workflow.apply_transition: SELECT … FOR UPDATE of this row) either
    commits before the movement reads the standing here or waits until it commits
    (R-ACC-8). FOR NO KEY UPDATE, which conflicts with that FOR UPDATE and with any
    other UPDATE of the row, queues fairly behind a waiting standing change, and still
    lets rows that reference the account (KEY SHARE) be inserted.
    """
    from django.db import connection, transaction
    from django.db.transaction import TransactionManagementError

    from .models import BalanceAccount

    ids = sorted({int(i) for i in account_ids})
    if not ids:
        return {}
    if not transaction.get_connection().in_atomic_block:
        raise TransactionManagementError("lock_standings() must run inside a transaction.")
    where, params = _ids_in("id", ids)
    lock = " FOR NO KEY UPDATE"
    if skip_locked:  # the usage settler: rows another mover holds wait for its next chunk
        lock += " SKIP LOCKED"
    sql = f"SELECT id, standing FROM {BalanceAccount._meta.db_table} WHERE {where} ORDER BY id"  # noqa: S608
    with connection.cursor() as cur:
        cur.execute(sql + lock, params)
        return dict(cur.fetchall())


# ---------------------------------------------------------------- for the console's pages


def verification_queue():
    """Verifications waiting for review: (how many, the oldest submission), one query."""
    row = Verification.objects.filter(state=VerificationState.SUBMITTED).aggregate(
        n=Count("pk"), oldest=Min("submitted_at")
    )
    return row["n"], row["oldest"]


def customers():
    """Users with their balance account joined in the same query (the customer page
    looks one up here)."""
    return User.objects.select_related("balance_account")


def users_matching(term: str, limit: int = 20) -> list[int]:
    """Ids of users found by email (exact, else a part of it) or phone (its keyed digest,
    as admin search does), for the staff's customer search; at most two small queries."""
    term = (term or "").strip()
    if not term:
        return []
    exact = list(User.objects.filter(email__iexact=term).values_list("pk", flat=True)[:1])
    if exact:
        return exact
    if any(ch.isdigit() for ch in term) and "@" not in term:
        by_phone = list(User.objects.filter(phone=term).values_list("pk", flat=True)[:limit])
        if by_phone:
            return by_phone
    if len(term) < 3:  # a part this short matches half the users
        return []
    found = User.objects.filter(email__icontains=term).order_by("email")
    return list(found.values_list("pk", flat=True)[:limit])
