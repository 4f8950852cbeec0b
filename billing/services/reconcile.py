"""Proof that cached balances equal the ledger (R-LED-4) and that every
transaction balances (R-LED-1). Set-based: GROUP BY over id ranges, never a
loop per account, so the nightly run scales to millions of postings."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from ops.services import raise_alert

from ..micro import from_micro

log = logging.getLogger(__name__)


@dataclass
class Drift:
    what: str  # bucket | lot_remaining | lot_held | grant | transaction
    object_id: int
    account_id: int | None
    cached: int  # micro-units (for a transaction: its number of postings)
    ledger: int  # micro-units (for a transaction: the sum of its postings)

    def __str__(self):
        if self.what.startswith("dangling"):
            return f"{self.what} #{self.object_id}: refers to a row that does not exist"
        if self.what == "usage_without_charge":
            return f"usage transaction #{self.object_id} has no charge row (request id lost)"
        if self.what == "charge_vs_postings":
            return (
                f"usage transaction #{self.object_id} (account {self.account_id}): its "
                f"events charge {from_micro(self.cached).amount} but its postings take "
                f"{from_micro(self.ledger).amount}, or their parts differ from them"
            )
        if self.what == "transaction":
            total = from_micro(self.ledger).amount
            return f"transaction #{self.object_id}: {self.cached} postings summing to {total}"
        return (
            f"{self.what} #{self.object_id} (account {self.account_id}): cached "
            f"{from_micro(self.cached).amount} ≠ ledger {from_micro(self.ledger).amount}"
        )


@dataclass
class ReconciliationReport:
    account_id: int | None
    checked_at: object = field(default_factory=timezone.now)
    drifts: list[Drift] = field(default_factory=list)
    postings_total_micro: int | None = None  # whole ledger only

    @property
    def ok(self) -> bool:
        return not self.drifts and not self.postings_total_micro

    def summary(self) -> str:
        scope = f"account {self.account_id}" if self.account_id else "whole ledger"
        if self.ok:
            return (
                f"Ledger reconciled ({scope}): cached balances equal the postings, "
                "every transaction sums to zero."
            )
        lines = [f"Ledger drift ({scope}): {len(self.drifts)} finding(s)."]
        if self.postings_total_micro:
            lines.append(
                f"All postings sum to {from_micro(self.postings_total_micro).amount}, not zero."
            )
        lines += [str(d) for d in self.drifts[:50]]
        return "\n".join(lines)


_BUCKETS = """
SELECT la.id, la.owner_id, la.balance_micro, COALESCE(p.s, 0)
  FROM billing_ledgeraccount la
  LEFT JOIN (SELECT ledger_account_id, SUM(amount_micro) AS s FROM billing_posting
              WHERE {pfilter} GROUP BY ledger_account_id) p ON p.ledger_account_id = la.id
 WHERE la.owner_id IS NOT NULL AND {filter} AND la.balance_micro <> COALESCE(p.s, 0)
"""
_LOTS = """
SELECT l.id, l.account_id, l.remaining_micro, COALESCE(p.c, 0), l.held_micro, COALESCE(p.h, 0)
  FROM billing_lot l
  LEFT JOIN (SELECT lot_id,
                    SUM(CASE WHEN bucket = 'cash' THEN amount_micro ELSE 0 END) AS c,
                    SUM(CASE WHEN bucket = 'hold' THEN amount_micro ELSE 0 END) AS h
               FROM billing_posting WHERE lot_id IS NOT NULL AND {pfilter} GROUP BY lot_id) p
         ON p.lot_id = l.id
 WHERE {filter} AND (l.remaining_micro <> COALESCE(p.c, 0) OR l.held_micro <> COALESCE(p.h, 0))
"""
_GRANTS = """
SELECT g.id, g.account_id, g.remaining_micro, COALESCE(p.s, 0)
  FROM billing_grant g
  LEFT JOIN (SELECT grant_id, SUM(amount_micro) AS s FROM billing_posting
              WHERE grant_id IS NOT NULL AND {pfilter} GROUP BY grant_id) p ON p.grant_id = g.id
 WHERE {filter} AND g.remaining_micro <> COALESCE(p.s, 0)
"""
# resource packages (issue 23): each holding's cache is the sum of its postings
_HOLDINGS = """
SELECT h.id, h.account_id, h.remaining_micro, COALESCE(p.s, 0)
  FROM billing_packageholding h
  LEFT JOIN (SELECT holding_id, SUM(amount_micro) AS s FROM billing_posting
              WHERE holding_id IS NOT NULL AND {pfilter} GROUP BY holding_id) p
         ON p.holding_id = h.id
 WHERE {filter} AND h.remaining_micro <> COALESCE(p.s, 0)
"""
_TXNS = """
SELECT t.id, t.account_id, COALESCE(p.n, 0), COALESCE(p.s, 0)
  FROM billing_ledgertransaction t
  LEFT JOIN (SELECT transaction_id, COUNT(*) AS n, SUM(amount_micro) AS s FROM billing_posting
              WHERE {pfilter} GROUP BY transaction_id) p ON p.transaction_id = t.id
 WHERE {filter} AND (COALESCE(p.n, 0) < 2 OR COALESCE(p.s, 0) <> 0)
"""

# The hot tables have no database foreign keys (see models.Posting): prove here
# that every reference they hold points at an existing row.
_DANGLING_POSTINGS = """
SELECT p.id FROM billing_posting p
  LEFT JOIN billing_ledgertransaction t ON t.id = p.transaction_id
  LEFT JOIN billing_ledgeraccount la ON la.id = p.ledger_account_id
  LEFT JOIN billing_lot l ON l.id = p.lot_id
  LEFT JOIN billing_grant g ON g.id = p.grant_id
  LEFT JOIN billing_packageholding h ON h.id = p.holding_id
 WHERE {filter} AND (t.id IS NULL OR la.id IS NULL
        OR (p.lot_id IS NOT NULL AND l.id IS NULL)
        OR (p.grant_id IS NOT NULL AND g.id IS NULL)
        OR (p.holding_id IS NOT NULL AND h.id IS NULL))
 LIMIT 1000
"""
_DANGLING_CHARGES = """
SELECT c.id FROM billing_usageevent c
  LEFT JOIN billing_ledgertransaction t ON t.id = c.transaction_id
  LEFT JOIN accounts_balanceaccount a ON a.id = c.account_id
 WHERE {filter} AND ((c.transaction_id IS NOT NULL AND t.id IS NULL) OR a.id IS NULL)
 LIMIT 1000
"""
_DANGLING_TXNS = """
SELECT t.id FROM billing_ledgertransaction t
  LEFT JOIN accounts_balanceaccount a ON a.id = t.account_id
 WHERE {filter} AND t.account_id IS NOT NULL AND a.id IS NULL
 LIMIT 1000
"""

# Cross-checks between tables (issue 13): an account's cash bucket is the sum of its lots'
# remaining money, its trial and discount buckets the sum of those grants' remaining money;
# every usage transaction's postings are exactly its events' parts; no usage transaction
# lost its charge rows (the request ids that make a replay safe).
_BUCKET_VS_PARTS = """
SELECT la.id, la.owner_id, la.balance_micro, COALESCE(x.s, 0)
  FROM billing_ledgeraccount la
  LEFT JOIN (SELECT account_id, {kind_col} AS kind, SUM(remaining_micro) AS s
               FROM {table} WHERE {pfilter} GROUP BY {group}) x
         ON x.account_id = la.owner_id AND x.kind = la.kind
 WHERE la.kind IN ({kinds}) AND {filter} AND la.balance_micro <> COALESCE(x.s, 0)
"""
# A usage transaction settles one account's events of one chunk (R-USE-5): the events'
# parts, summed, are exactly its postings per bucket, and their amounts its revenue.
_CHARGE_VS_POSTINGS = """
SELECT t.id, t.account_id, COALESCE(c.amount, 0), COALESCE(p.r, 0)
  FROM billing_ledgertransaction t
  LEFT JOIN (SELECT transaction_id, SUM(trial_micro) AS t, SUM(discount_micro) AS d,
                    SUM(cash_micro) AS c, SUM(arrears_micro) AS a, SUM(package_micro) AS k,
                    SUM(amount_micro) AS amount
               FROM billing_usageevent WHERE transaction_id IN (
                 SELECT id FROM billing_ledgertransaction t WHERE {filter} AND t.kind = 'usage')
              GROUP BY transaction_id) c ON c.transaction_id = t.id
  LEFT JOIN (SELECT transaction_id,
                    SUM(CASE WHEN bucket = 'trial' THEN amount_micro ELSE 0 END) AS t,
                    SUM(CASE WHEN bucket = 'discount' THEN amount_micro ELSE 0 END) AS d,
                    SUM(CASE WHEN bucket = 'cash' THEN amount_micro ELSE 0 END) AS c,
                    SUM(CASE WHEN bucket = 'arrears' THEN amount_micro ELSE 0 END) AS a,
                    SUM(CASE WHEN bucket = 'package' THEN amount_micro ELSE 0 END) AS k,
                    SUM(CASE WHEN bucket = 'revenue' THEN amount_micro ELSE 0 END) AS r
               FROM billing_posting WHERE transaction_id IN (
                 SELECT id FROM billing_ledgertransaction t WHERE {filter} AND t.kind = 'usage')
              GROUP BY transaction_id) p ON p.transaction_id = t.id
 WHERE {filter} AND t.kind = 'usage' AND c.transaction_id IS NOT NULL AND (
       COALESCE(p.t, 0) <> -c.t OR COALESCE(p.d, 0) <> -c.d
    OR COALESCE(p.c, 0) <> -c.c OR COALESCE(p.a, 0) <> -c.a OR COALESCE(p.k, 0) <> -c.k
    OR COALESCE(p.r, 0) <> c.amount OR c.t + c.d + c.c + c.a + c.k <> c.amount)
"""
_USAGE_WITHOUT_CHARGE = """
SELECT t.id FROM billing_ledgertransaction t
  LEFT JOIN billing_usageevent c ON c.transaction_id = t.id
 WHERE {filter} AND t.kind = 'usage' AND c.id IS NULL
 LIMIT 1000
"""


def _cross_checks(report, *, account=None, lo=None, hi=None):
    """The cross-table proofs, for one account or for an id range of each table."""
    if account is not None:
        args = [account, account]
        owner, parts = "la.owner_id = %s", "account_id = %s"
        txn = "t.account_id = %s"
        txn_args = [account]
    else:
        args = [lo, hi, lo, hi]
        owner, parts = "la.owner_id BETWEEN %s AND %s", "account_id BETWEEN %s AND %s"
        txn = None
    for table, kind_col, group, kinds, what in (
        ("billing_lot", "'cash'", "account_id", "'cash'", "cash_vs_lots"),
        ("billing_grant", "kind", "account_id, kind", "'trial', 'discount'", "grants_vs_bucket"),
        ("billing_packageholding", "'package'", "account_id", "'package'", "packages_vs_bucket"),
    ):
        sql = _BUCKET_VS_PARTS.format(
            table=table, kind_col=kind_col, group=group, kinds=kinds, pfilter=parts, filter=owner
        )
        for row in _run(sql, args):
            report.drifts.append(Drift(what, row[0], row[1], row[2], row[3]))
    if account is None:
        return
    for row in _run(_CHARGE_VS_POSTINGS.format(filter=txn), txn_args * 3):
        report.drifts.append(Drift("charge_vs_postings", row[0], row[1], row[2], row[3]))
    _dangling(report, _USAGE_WITHOUT_CHARGE.format(filter=txn), "usage_without_charge", txn_args)


def _dangling(report, sql, what, params):
    for (object_id,) in _run(sql, params):
        report.drifts.append(Drift(what, object_id, None, 0, 0))


def _run(sql, params):
    with connection.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _check_account(report, account_id):
    a = [account_id]
    sub = "ledger_account_id IN (SELECT id FROM billing_ledgeraccount WHERE owner_id = %s)"
    for row in _run(_BUCKETS.format(pfilter=sub, filter="la.owner_id = %s"), a + a):
        report.drifts.append(Drift("bucket", row[0], row[1], row[2], row[3]))
    sub = "lot_id IN (SELECT id FROM billing_lot WHERE account_id = %s)"
    for row in _run(_LOTS.format(pfilter=sub, filter="l.account_id = %s"), a + a):
        _lot_drifts(report, row)
    sub = "grant_id IN (SELECT id FROM billing_grant WHERE account_id = %s)"
    for row in _run(_GRANTS.format(pfilter=sub, filter="g.account_id = %s"), a + a):
        report.drifts.append(Drift("grant", row[0], row[1], row[2], row[3]))
    sub = "holding_id IN (SELECT id FROM billing_packageholding WHERE account_id = %s)"
    for row in _run(_HOLDINGS.format(pfilter=sub, filter="h.account_id = %s"), a + a):
        report.drifts.append(Drift("package", row[0], row[1], row[2], row[3]))
    sub = "transaction_id IN (SELECT id FROM billing_ledgertransaction WHERE account_id = %s)"
    for row in _run(_TXNS.format(pfilter=sub, filter="t.account_id = %s"), a + a):
        report.drifts.append(Drift("transaction", row[0], row[1], row[2], row[3]))
    sub = "p.transaction_id IN (SELECT id FROM billing_ledgertransaction WHERE account_id = %s)"
    _dangling(report, _DANGLING_POSTINGS.format(filter=sub), "dangling_posting", a)
    _dangling(report, _DANGLING_CHARGES.format(filter="c.account_id = %s"), "dangling_charge", a)
    _cross_checks(report, account=account_id)


def _lot_drifts(report, row):
    lot_id, account_id, remaining, ledger_cash, held, ledger_hold = row
    if remaining != ledger_cash:
        report.drifts.append(Drift("lot_remaining", lot_id, account_id, remaining, ledger_cash))
    if held != ledger_hold:
        report.drifts.append(Drift("lot_held", lot_id, account_id, held, ledger_hold))


def _max_id(table):
    return _run(f"SELECT COALESCE(MAX(id), 0) FROM {table}", [])[0][0]  # noqa: S608 (constant)


def _ranges(table, size):
    top = _max_id(table)
    lo = 0
    while lo < top:
        yield lo + 1, lo + size
        lo += size


def reconcile(account=None) -> ReconciliationReport:
    """Compare every cached balance with the sum of its postings and find any
    transaction that does not balance; for one account, or the whole ledger."""
    if account is None:
        return reconcile_all()
    report = ReconciliationReport(account_id=getattr(account, "pk", account))
    _check_account(report, report.account_id)
    return report


def reconcile_all(batch_size: int = 200_000, *, alert: bool = False) -> ReconciliationReport:
    """The nightly proof over the whole ledger: one GROUP BY per id range of each
    table (buckets, lots, grants, transactions), plus the grand total of postings."""
    report = ReconciliationReport(account_id=None)
    rng = "{col} BETWEEN %s AND %s"
    for lo, hi in _ranges("billing_ledgeraccount", batch_size):
        sql = _BUCKETS.format(
            pfilter=rng.format(col="ledger_account_id"), filter=rng.format(col="la.id")
        )
        for row in _run(sql, [lo, hi, lo, hi]):
            report.drifts.append(Drift("bucket", row[0], row[1], row[2], row[3]))
    for lo, hi in _ranges("billing_lot", batch_size):
        sql = _LOTS.format(pfilter=rng.format(col="lot_id"), filter=rng.format(col="l.id"))
        for row in _run(sql, [lo, hi, lo, hi]):
            _lot_drifts(report, row)
    for lo, hi in _ranges("billing_grant", batch_size):
        sql = _GRANTS.format(pfilter=rng.format(col="grant_id"), filter=rng.format(col="g.id"))
        for row in _run(sql, [lo, hi, lo, hi]):
            report.drifts.append(Drift("grant", row[0], row[1], row[2], row[3]))
    for lo, hi in _ranges("billing_packageholding", batch_size):
        sql = _HOLDINGS.format(pfilter=rng.format(col="holding_id"), filter=rng.format(col="h.id"))
        for row in _run(sql, [lo, hi, lo, hi]):
            report.drifts.append(Drift("package", row[0], row[1], row[2], row[3]))
    for lo, hi in _ranges("billing_ledgertransaction", batch_size):
        sql = _TXNS.format(pfilter=rng.format(col="transaction_id"), filter=rng.format(col="t.id"))
        for row in _run(sql, [lo, hi, lo, hi]):
            report.drifts.append(Drift("transaction", row[0], row[1], row[2], row[3]))
    for lo, hi in _ranges("billing_posting", batch_size):
        sql = _DANGLING_POSTINGS.format(filter=rng.format(col="p.id"))
        _dangling(report, sql, "dangling_posting", [lo, hi])
    for lo, hi in _ranges("billing_usageevent", batch_size):
        sql = _DANGLING_CHARGES.format(filter=rng.format(col="c.id"))
        _dangling(report, sql, "dangling_charge", [lo, hi])
    for lo, hi in _ranges("billing_ledgertransaction", batch_size):
        sql = _DANGLING_TXNS.format(filter=rng.format(col="t.id"))
        _dangling(report, sql, "dangling_transaction", [lo, hi])
    for lo, hi in _ranges("accounts_balanceaccount", batch_size):
        _cross_checks(report, lo=lo, hi=hi)
    for lo, hi in _ranges("billing_ledgertransaction", batch_size):
        sql = _CHARGE_VS_POSTINGS.format(filter=rng.format(col="t.id"))
        for row in _run(sql, [lo, hi] * 3):
            report.drifts.append(Drift("charge_vs_postings", row[0], row[1], row[2], row[3]))
    for lo, hi in _ranges("billing_ledgertransaction", batch_size):
        sql = _USAGE_WITHOUT_CHARGE.format(filter=rng.format(col="t.id"))
        _dangling(report, sql, "usage_without_charge", [lo, hi])
    report.postings_total_micro = int(
        _run("SELECT COALESCE(SUM(amount_micro), 0) FROM billing_posting", [])[0][0]
    )
    _gauge(report)
    if alert and not report.ok:
        _alert_staff(report)
    return report


def _gauge(report):
    from ops.metrics import LEDGER_DRIFT

    LEDGER_DRIFT.set(len(report.drifts) + (1 if report.postings_total_micro else 0))


def _alert_staff(report):
    """Drift is reported to staff (R-LED-4) on the ops alert board."""
    log.error("ledger drift: %d finding(s)", len(report.drifts))
    raise_alert(
        "ledger_drift",
        f"{report.summary()}\nNothing was corrected automatically: staff decide.",
        {
            "findings": [str(d) for d in report.drifts[:200]],
            "postings_total_micro": report.postings_total_micro,
        },
        key="ledger_drift",  # repeated nights fold into the one open alert
    )
