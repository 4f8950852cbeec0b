"""Proofs the settlement tests share (R-USE-5, R-LED-1, R-LED-4): the books are exact
after chunked settlement, and a plain one-by-one reference of R-USE-2/R-USE-3."""

from collections import defaultdict

from django.db import connection

from billing.models import UsageEvent
from billing.services.reconcile import reconcile


def usage_transactions_exact(*, all_settled=True):
    """Every usage ledger transaction balances (postings sum to zero), its revenue
    posting equals the sum of its events' amounts, each bucket's postings equal minus
    the sum of its events' parts, every event's parts add up to its amount, and all of
    a transaction's events belong to its account. With `all_settled`, no event is
    pending. Returns the number of usage transactions."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT t.id, t.account_id, p.bucket, SUM(p.amount_micro)"
            " FROM billing_ledgertransaction t JOIN billing_posting p ON p.transaction_id = t.id"
            " WHERE t.kind = 'usage' GROUP BY t.id, t.account_id, p.bucket"
        )
        postings = defaultdict(dict)
        owner = {}
        for txn, account, bucket, micro in cur.fetchall():
            postings[txn][bucket] = int(micro)
            owner[txn] = account
    events = defaultdict(lambda: defaultdict(int))
    for c in UsageEvent.objects.filter(transaction__isnull=False).values():
        txn = c["transaction_id"]
        parts = (
            c["trial_micro"],
            c["discount_micro"],
            c["cash_micro"],
            c["arrears_micro"],
            c["package_micro"],  # resource packages (issue 23)
        )
        assert sum(parts) == c["amount_micro"], f"event {c['request_id']}: parts {parts}"
        assert min(parts) >= 0
        assert c["account_id"] == owner.get(txn), f"event {c['request_id']} in another's txn"
        e = events[txn]
        e["revenue"] += c["amount_micro"]
        e["trial"] -= c["trial_micro"]
        e["discount"] -= c["discount_micro"]
        e["cash"] -= c["cash_micro"]
        e["arrears"] -= c["arrears_micro"]
        e["package"] -= c["package_micro"]
    assert set(events) == set(postings), "a usage transaction without events, or vice versa"
    for txn, sums in postings.items():
        assert sum(sums.values()) == 0, f"usage transaction {txn} does not balance: {sums}"
        expected = {k: v for k, v in events[txn].items() if v}
        assert {k: v for k, v in sums.items() if v} == expected, (txn, sums, expected)
    if all_settled:
        assert not UsageEvent.objects.filter(transaction__isnull=True).exists()
    return len(postings)


def assert_books_exact(*, all_settled=True):
    """The whole ledger: cache == postings, every transaction balances, the grand total
    is zero, each usage transaction equals its events (reconcile_all), and, proved again
    here independently, every usage transaction is exact. Returns the number of usage
    transactions."""
    report = reconcile(None)
    assert report.ok, report.summary()
    return usage_transactions_exact(all_settled=all_settled)


def reference_parts(amounts, sources):
    """One-by-one R-USE-2/R-USE-3 on plain numbers: `sources` is [(bucket, micro)] in
    deduction order; returns [(trial, discount, cash, arrears)] per event and what is
    left in each source."""
    left = [[bucket, micro] for bucket, micro in sources]
    out = []
    for amount in amounts:
        parts = {"trial": 0, "discount": 0, "cash": 0, "arrears": 0}
        need = amount
        for src in left:
            take = min(need, src[1])
            src[1] -= take
            parts[src[0]] += take
            need -= take
        parts["arrears"] += need
        out.append((parts["trial"], parts["discount"], parts["cash"], parts["arrears"]))
    return out, [m for _, m in left]


def parts_of(charge):
    return (charge.trial_micro, charge.discount_micro, charge.cash_micro, charge.arrears_micro)
