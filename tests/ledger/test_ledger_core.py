"""Ledger core: buckets, lots, grants, zero-sum and cached balances."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from billing.micro import from_micro
from billing.models import (
    Grant,
    GrantState,
    LedgerAccount,
    LedgerTransaction,
    Lot,
    Posting,
    TxnKind,
)
from billing.services.ledger import (
    credit_lot,
    expire_due_grants,
    expire_grant,
    grant_funds,
    void_grant,
)
from billing.services.settlement import charge_usage

from .conftest import assert_reconciled, cny, later, summary


def postings_sum():
    return sum(Posting.objects.values_list("amount_micro", flat=True))


def test_credit_lot_moves_clearing_to_cash_lot(account):
    """R-LED-1: a top-up is one transaction, payment clearing → the new lot, summing to zero."""
    lot = credit_lot(account, cny("100.00"), channel="alipay", idempotency_key="T1")
    assert lot.remaining.amount == 100 and lot.amount == cny("100.00")
    txn = LedgerTransaction.objects.get(kind=TxnKind.TOP_UP)
    lines = {(p.bucket, p.amount_micro) for p in txn.postings.all()}
    assert lines == {("clearing", -100_000_000), ("cash", 100_000_000)}
    assert postings_sum() == 0
    assert summary(account)["cash"] == 100
    assert_reconciled(account)


def test_credit_lot_replay_returns_first_lot(account):
    """R-LED-5: replaying a top-up key returns the first lot and moves nothing."""
    first = credit_lot(account, cny("50.00"), channel="bank", idempotency_key="T2")
    again = credit_lot(account, cny("50.00"), channel="bank", idempotency_key="T2")
    assert again.pk == first.pk
    assert Lot.objects.count() == 1 and LedgerTransaction.objects.count() == 1
    assert summary(account)["cash"] == 50


@pytest.mark.parametrize(
    "amount,code",
    [("10.001", "too_many_decimals"), ("0", "non_positive_amount"), ("-5", "non_positive_amount")],
)
def test_credit_lot_refuses_bad_amounts(account, amount, code):
    """R-LED-3: lots are whole fen, positive, CNY; bad input moves nothing."""
    with pytest.raises(ValidationError) as exc:
        credit_lot(account, cny(amount), channel="alipay", idempotency_key="bad")
    assert exc.value.code == code
    assert not Lot.objects.exists() and not Posting.objects.exists()


def test_credit_lot_refuses_other_currency(account):
    """R-LED-3: CNY only."""
    from djmoney.money import Money

    with pytest.raises(ValidationError) as exc:
        credit_lot(account, Money("10.00", "USD"), channel="alipay", idempotency_key="usd")
    assert exc.value.code == "wrong_currency"
    assert not Posting.objects.exists()


def test_grant_funds_and_expiry(account):
    """R-LED-1/R-LED-4: a trial grant comes from promotion expense; at expiry its unused
    part goes back; cached grant and bucket follow the postings."""
    grant = grant_funds(
        account, cny("20"), kind="trial", expires_at=later(30), idempotency_key="G1"
    )
    assert summary(account)["trial"] == 20
    assert expire_grant(grant) is None  # not due yet
    charge_usage(account, cny("5.5"), request_id="r1", model="m")
    txn = expire_grant(grant, now=timezone.now() + timedelta(days=31))
    assert txn is not None and txn.kind == TxnKind.EXPIRY
    grant.refresh_from_db()
    assert grant.state == GrantState.EXPIRED and grant.remaining_micro == 0
    assert {(p.bucket, p.amount_micro) for p in txn.postings.all()} == {
        ("trial", -14_500_000),
        ("promotion_expense", 14_500_000),
    }
    assert expire_grant(grant, now=timezone.now() + timedelta(days=32)) is None
    assert summary(account)["trial"] == 0
    assert postings_sum() == 0
    assert_reconciled(account)


def test_grant_replay(account):
    """R-LED-5: a grant key is used once."""
    a = grant_funds(account, cny("3"), kind="discount", expires_at=None, idempotency_key="G2")
    b = grant_funds(account, cny("3"), kind="discount", expires_at=None, idempotency_key="G2")
    assert a.pk == b.pk and Grant.objects.count() == 1
    assert summary(account)["discount"] == 3


def test_void_grant(account, user):
    """R-LED-1: voiding takes the unused part back to promotion expense, audited."""
    grant = grant_funds(account, cny("8"), kind="trial", expires_at=later(), idempotency_key="G3")
    with pytest.raises(ValidationError):
        void_grant(grant, reason=" ")
    txn = void_grant(grant, reason="abuse", actor=None)
    assert txn.kind == TxnKind.VOID
    grant.refresh_from_db()
    assert grant.state == GrantState.VOIDED
    assert summary(account)["trial"] == 0
    assert void_grant(grant, reason="again") == txn  # idempotent
    assert_reconciled(account)


def test_expire_due_grants_set_based(account, user):
    """R-LED-4: the batch expiry moves every due grant in one go and keeps caches exact."""
    past = timezone.now() - timedelta(seconds=1)
    for i in range(5):
        grant_funds(account, cny("1.25"), kind="trial", expires_at=later(), idempotency_key=f"E{i}")
    Grant.objects.update(expires_at=past)
    grant_funds(account, cny("2"), kind="discount", expires_at=later(), idempotency_key="keep")
    assert expire_due_grants(limit=3) == 3
    assert expire_due_grants() == 2
    assert expire_due_grants() == 0
    assert summary(account)["trial"] == 0 and summary(account)["discount"] == 2
    assert_reconciled()


def test_batch_expiry_takes_only_the_unused_part_one_transaction_per_grant(account, user):
    """R-LED-1, R-LED-4 (R-TOP-5): a batch expiring a part-spent trial grant and a discount
    grant of one account writes one expiry transaction per grant, each moving exactly the
    unused part to promotion expense; both grants end expired with nothing left."""
    past = timezone.now() - timedelta(seconds=1)
    trial = grant_funds(account, cny("5"), kind="trial", expires_at=later(), idempotency_key="T")
    disc = grant_funds(account, cny("2"), kind="discount", expires_at=later(), idempotency_key="D")
    charge_usage(account, cny("1.500001"), request_id="spend", model="m")  # from the trial grant
    Grant.objects.filter(pk__in=[trial.pk, disc.pk]).update(expires_at=past)
    assert expire_due_grants() == 2
    txns = LedgerTransaction.objects.filter(kind=TxnKind.EXPIRY)
    assert txns.count() == 2
    lines = sorted(
        (p.bucket, p.grant_id, p.amount_micro) for p in Posting.objects.filter(transaction__in=txns)
    )
    assert lines == sorted(
        [
            ("trial", trial.pk, -3_499_999),
            ("promotion_expense", None, 3_499_999),
            ("discount", disc.pk, -2_000_000),
            ("promotion_expense", None, 2_000_000),
        ]
    )
    for txn in txns:
        assert sum(p.amount_micro for p in txn.postings.all()) == 0
    for grant in (trial, disc):
        grant.refresh_from_db()
        assert grant.state == GrantState.EXPIRED and grant.remaining_micro == 0
        assert grant.ended_at is not None
    assert summary(account)["trial"] == 0 and summary(account)["discount"] == 0
    assert expire_due_grants() == 0  # nothing twice
    assert_reconciled()


def test_balance_summary_keys(account):
    """R-LED-3: balance_summary returns Money for every bucket, the pending (unsettled)
    usage and available."""
    s = summary(account)
    assert set(s) == {
        "cash",
        "trial",
        "discount",
        "hold",
        "arrears",
        "dispute_debt",
        "pending",
        "available",
    }
    assert all(v == 0 for v in s.values())


def test_cached_balances_match_ledger_after_mixed_activity(account):
    """R-LED-4: cached bucket/lot/grant balances equal the sum of their postings."""
    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L1")
    grant_funds(account, cny("1"), kind="trial", expires_at=later(), idempotency_key="G")
    charge_usage(account, cny("0.123456"), request_id="q1", model="m")
    charge_usage(account, cny("3"), request_id="q2", model="m")
    for la in LedgerAccount.objects.filter(owner=account):
        total = sum(la.postings.values_list("amount_micro", flat=True))
        assert la.balance_micro == total
    assert from_micro(postings_sum()).amount == 0
    assert_reconciled()


@pytest.mark.django_db(transaction=True)
def test_postgres_refuses_update_and_delete_of_postings(account):
    """R-LED-2: the database itself refuses UPDATE and DELETE on postings (raw SQL)."""
    from django.db import DatabaseError

    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    pid = Posting.objects.values_list("id", flat=True).first()
    for sql in (
        "UPDATE billing_posting SET amount_micro = 1 WHERE id = %s",
        "DELETE FROM billing_posting WHERE id = %s",
    ):
        with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cur:
            cur.execute(sql, [pid])
    assert Posting.objects.filter(pk=pid).exists()


@pytest.mark.django_db(transaction=True)
def test_postgres_refuses_unbalanced_transaction_at_commit(account):
    """R-LED-1: a transaction whose postings don't sum to zero is refused by the database
    at commit (deferred constraint trigger), even when written with raw SQL."""
    from django.db import DatabaseError, transaction

    credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    cash = LedgerAccount.objects.get(owner=account, kind="cash")
    before = Posting.objects.count()
    with pytest.raises(DatabaseError, match="unbalanced"), transaction.atomic():
        txn = LedgerTransaction.objects.create(kind="usage", account=account)
        with connection.cursor() as cur:
            cur.execute(
                "INSERT INTO billing_posting (transaction_id, ledger_account_id, bucket,"
                " amount_micro, currency) VALUES (%s, %s, 'cash', -5, 'CNY')",
                [txn.pk, cash.pk],
            )
    assert Posting.objects.count() == before


def test_reversal_restores_and_expiry_can_happen_again(account):
    """R-LED-2: a mistaken expiry is corrected by a reversing transaction (the original
    postings stay); the revived grant can expire again later."""
    from billing.services.ledger import reverse_transaction

    grant = grant_funds(account, cny("4"), kind="trial", expires_at=later(1), idempotency_key="G")
    when = timezone.now() + timedelta(days=2)
    first = expire_grant(grant, now=when)
    rev = reverse_transaction(first, reason="expired too early")
    assert rev.reverses_id == first.pk and rev.kind == TxnKind.REVERSAL
    assert reverse_transaction(first, reason="again") == rev  # idempotent
    grant.refresh_from_db()
    assert grant.state == GrantState.ACTIVE and grant.remaining.amount == 4
    assert first.postings.count() == 2  # the original postings are untouched
    assert expire_grant(grant, now=when) is not None
    assert summary(account)["trial"] == 0
    assert_reconciled(account)


def test_reversal_refused_when_money_moved_on(account):
    """R-LED-6: a top-up whose cash is already spent cannot be reversed; nothing moves."""
    from billing.services.ledger import reverse_transaction

    lot = credit_lot(account, cny("2"), channel="alipay", idempotency_key="L")
    charge_usage(account, cny("1.5"), request_id="spent", model="m")
    txn = LedgerTransaction.objects.get(kind=TxnKind.TOP_UP)
    count = Posting.objects.count()
    with pytest.raises(ValidationError) as exc:
        reverse_transaction(txn, reason="chargeback")
    assert exc.value.code == "not_reversible"
    assert Posting.objects.count() == count
    lot.refresh_from_db()
    assert lot.remaining.amount == cny("0.5").amount


def test_refund_hold_release_and_payout(account):
    """R-LED-1/R-LED-4: cash → hold → refunds payable; lot caches follow; the lot closes."""
    from billing.services.refund_holds import (
        hold_lots_for_refund,
        pay_out_refund_holds,
        release_refund_hold,
    )

    lot = credit_lot(account, cny("10"), channel="alipay", idempotency_key="L")
    with pytest.raises(ValidationError):
        hold_lots_for_refund(account, {lot.pk: 10_010_000}, idempotency_key="too-much")
    hold = hold_lots_for_refund(account, {lot.pk: 6_000_000}, idempotency_key="H1")
    assert hold["held"] == {lot.pk: 6_000_000}
    replay = hold_lots_for_refund(account, {lot.pk: 6_000_000}, idempotency_key="H1")
    assert (replay["txn"], replay["held"]) == (hold["txn"], hold["held"])
    lot.refresh_from_db()
    assert (lot.remaining.amount, lot.held.amount) == (4, 6)
    assert summary(account)["hold"] == 6 and summary(account)["available"] == 4
    release_refund_hold(lot, cny("1"), idempotency_key="R1")
    pay_out_refund_holds(account, {lot.pk: (5_000_000, 0)}, idempotency_key="P1")
    lot.refresh_from_db()
    assert (lot.remaining.amount, lot.held.amount) == (5, 0) and lot.closed_at is not None
    assert_reconciled(account)
