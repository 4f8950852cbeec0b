"""The ledger admin at scale (issue 15, "Fast at scale"; R-ADM-1): every list and detail
page of charges, transactions, postings, grants, lots, top-ups and ledger accounts runs a
fixed number of queries whatever the number of rows, never counts a whole table, never
runs a DISTINCT date drill-down, and the revenue account's page sums nothing unless asked.

Timings at a million charges are in bench/bench_admin.py; these tests pin the shape."""

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.chart import platform_account_id
from billing.models import AccountKind, LedgerAccount, Posting, UsageEvent
from billing.services.ledger import credit_lot, grant_funds
from billing.services.settlement import charge_usage
from core.admin_paging import ApproxCount, LargeTableAdminMixin, LargeTablePaginator
from tests.factories import UserFactory, cny

from .ledger.conftest import later

# the most queries each page may run (session, user, the page's own reads); measured
# and pinned: the same at 2 and at 12 charges (test_query_counts_do_not_grow)
LIST_QUERIES = {
    "billing:usageevent": 8,  # + the pending summary (issue 14)
    "billing:ledgertransaction": 6,
    "billing:posting": 6,
    "billing:grant": 6,
    "billing:lot": 6,
    "billing:ledgeraccount": 6,
    "topups:topup": 6,
}


# PostgreSQL reads the planner's estimate (pg_class) before counting: one query.
ESTIMATE_LOOKUP = 1


DETAIL_QUERIES = {"usageevent": 10, "ledgertransaction": 11, "posting": 8, "grant": 9, "lot": 8}


def spend(account, n, start=0):
    for i in range(start, start + n):
        charge_usage(account, cny("0.1"), request_id=f"r-{account.pk}-{i}", model=f"m{i % 3}")


@pytest.fixture
def books(account):
    credit_lot(account, cny("50"), channel="alipay", idempotency_key=f"L{account.pk}")
    grant_funds(
        account, cny("1"), kind="trial", expires_at=later(), idempotency_key=f"G{account.pk}"
    )
    spend(account, 2)
    return account


def changelist(app_model):
    app, model = app_model.split(":")
    return reverse(f"admin:{app}_{model}_changelist")


def count_statements(queries):
    """COUNT statements over the ledger and top-up tables without a LIMIT (a whole-table
    or whole-filter count) and DISTINCT statements (a date drill-down or an all-values
    filter). The page frame's own per-user reads (unread notices) are not about them."""
    sql = [q["sql"].upper() for q in queries]
    sql = [s for s in sql if re.search(r'"(BILLING|TOPUPS)_', s)]  # the large tables
    # a count over pending usage only is the partial index billing_charge_pending on
    # billing_usageevent (seconds of traffic, issue 14), not the table
    pending_only = '"BILLING_USAGEEVENT"."TRANSACTION_ID" IS NULL'
    full_counts = [
        s for s in sql if "COUNT(" in s and "LIMIT" not in s and not s.endswith(pending_only)
    ]
    distinct = [s for s in sql if re.search(r"\bDISTINCT\b", s)]
    return full_counts, distinct


def test_paginator_counts_small_tables_exactly(books):
    """Issue 15: a small unfiltered table is counted exactly (cheap there)."""
    count = LargeTablePaginator(UsageEvent.objects.order_by("-id"), 100).count
    assert count == 2 and not isinstance(count, ApproxCount)


def test_filtered_count_reads_at_most_cap_plus_one_rows(books, monkeypatch):
    """Issue 15: a filtered count is capped (LIMIT cap + 1) and shown as a floor."""
    spend(books, 4, start=10)
    monkeypatch.setattr(LargeTablePaginator, "count_cap", 3)
    qs = UsageEvent.objects.filter(account=books).order_by("-id")
    with CaptureQueriesContext(connection) as ctx:
        count = LargeTablePaginator(qs, 2).count
    assert isinstance(count, ApproxCount) and count == 3 and str(count) == "more than 3"
    assert len(ctx.captured_queries) == 1 and "LIMIT 4" in ctx.captured_queries[0]["sql"]
    assert LargeTablePaginator(qs, 2).num_pages == 2  # paging still works
    exact = LargeTablePaginator(UsageEvent.objects.filter(request_id=f"r-{books.pk}-10"), 2).count
    assert exact == 1 and not isinstance(exact, ApproxCount)


def test_unfiltered_count_is_the_planner_estimate_on_postgresql(books, monkeypatch):
    """Issue 15: unfiltered, PostgreSQL's reltuples stands in for COUNT(*)."""
    spend(books, 8, start=10)
    with connection.cursor() as cur:
        cur.execute("ANALYZE billing_usageevent")
    monkeypatch.setattr(LargeTablePaginator, "exact_below", 5)
    with CaptureQueriesContext(connection) as ctx:
        count = LargeTablePaginator(UsageEvent.objects.order_by("-id"), 100).count
    assert isinstance(count, ApproxCount) and count == 10 and str(count) == "about 10"
    assert not [q for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]


def test_changelist_shows_the_estimate(admin_client, books, monkeypatch):
    """Issue 15: the list says "about N" when the count is an estimate."""
    with connection.cursor() as cur:
        cur.execute("ANALYZE billing_usageevent")
    monkeypatch.setattr(LargeTablePaginator, "exact_below", 1)
    resp = admin_client.get(changelist("billing:usageevent"))
    assert resp.status_code == 200 and "about 2" in resp.content.decode()


def test_every_large_admin_pages_without_counting_the_table():
    """Issue 15: the large tables' admins use the bounded paginator, no full count,
    no facets and no date drill-down (a date range filter instead)."""
    from billing.models import Grant, LedgerTransaction, Lot
    from topups.models import TopUp

    for model in (UsageEvent, LedgerTransaction, Posting, Grant, Lot, TopUp, LedgerAccount):
        model_admin = admin.site._registry[model]
        assert isinstance(model_admin, LargeTableAdminMixin), model
        assert model_admin.paginator is LargeTablePaginator
        assert model_admin.show_full_result_count is False
        assert model_admin.show_facets == admin.ShowFacets.NEVER
        assert not model_admin.date_hierarchy, model
    assert any(
        isinstance(f, tuple) and f[0] == "created_at"
        for f in admin.site._registry[TopUp].list_filter
    )


@pytest.mark.parametrize("app_model", sorted(LIST_QUERIES))
def test_changelists_run_bounded_queries_and_no_full_count(
    admin_client, books, app_model, django_assert_max_num_queries
):
    """Issue 15: each list page: a pinned number of queries, no COUNT without LIMIT,
    no DISTINCT (date drill-down or all-values filter)."""
    pin = LIST_QUERIES[app_model] + ESTIMATE_LOOKUP
    with CaptureQueriesContext(connection) as ctx, django_assert_max_num_queries(pin):
        resp = admin_client.get(changelist(app_model))
    assert resp.status_code == 200
    full_counts, distinct = count_statements(ctx.captured_queries)
    assert not full_counts and not distinct, (full_counts, distinct)


def test_query_counts_do_not_grow_with_rows(admin_client, books):
    """Issue 15: ten more charges (and their postings) add no query to any page."""

    def counts():
        out = {}
        for app_model in LIST_QUERIES:
            with CaptureQueriesContext(connection) as ctx:
                assert admin_client.get(changelist(app_model)).status_code == 200
            out[app_model] = len(ctx.captured_queries)
        return out

    before = counts()
    spend(books, 10, start=10)
    assert counts() == before


def test_filtered_lists_count_within_the_cap(admin_client, books):
    """Issue 15: filters and searches count at most cap + 1 rows, never a DISTINCT."""
    revenue = platform_account_id(AccountKind.REVENUE)
    urls = [
        changelist("billing:usageevent") + "?model=m0",
        changelist("billing:usageevent") + "?state=pending",
        changelist("billing:usageevent") + "?state=settled",
        changelist("billing:usageevent") + "?created_at__gte=2000-01-01",
        changelist("billing:usageevent") + f"?q={books.user.email}",
        changelist("billing:ledgertransaction") + "?kind__exact=usage",
        changelist("billing:posting") + f"?ledger_account__id__exact={revenue}",
    ]
    for url in urls:
        with CaptureQueriesContext(connection) as ctx:
            resp = admin_client.get(url)
        assert resp.status_code == 200, url
        assert "?e=1" not in resp.get("Location", ""), url
        full_counts, distinct = count_statements(ctx.captured_queries)
        assert not full_counts and not distinct, (url, full_counts, distinct)


def test_charge_search_by_email_request_id_and_id(admin_client, books):
    """Issue 15: one indexed predicate per search: email → the owner's rows,
    a request id → that charge, a number → that id, anything else → nothing."""
    other = UserFactory(phone="").balance_account
    credit_lot(other, cny("5"), channel="alipay", idempotency_key="L-other")
    charge_usage(other, cny("0.1"), request_id="other-1", model="m0")
    url = changelist("billing:usageevent")

    def found(q):
        resp = admin_client.get(url, {"q": q})
        assert resp.status_code == 200
        return {c.request_id for c in resp.context["cl"].result_list}

    assert found(books.user.email.upper()) == {f"r-{books.pk}-0", f"r-{books.pk}-1"}
    assert found("other-1") == {"other-1"}
    charge = UsageEvent.objects.get(request_id=f"r-{books.pk}-1")
    assert found(str(charge.pk)) == {charge.request_id}
    assert found("no-such-thing") == set()


def test_recent_model_filter_offers_models_without_distinct(admin_client, books):
    """Issue 15: the model filter offers the models of the latest charges (no DISTINCT
    over the table) and filters exactly."""
    resp = admin_client.get(changelist("billing:usageevent"), {"model": "m1"})
    assert [c.model for c in resp.context["cl"].result_list] == ["m1"]
    assert "?model=m0" in resp.content.decode()


@pytest.mark.parametrize("model", sorted(DETAIL_QUERIES))
def test_detail_pages_run_bounded_queries(
    admin_client, books, model, django_assert_max_num_queries
):
    """Issue 15: each detail page runs a pinned number of queries and links its postings."""
    from django.apps import apps

    obj = apps.get_model("billing", model).objects.order_by("-id").first()
    with django_assert_max_num_queries(DETAIL_QUERIES[model]):
        resp = admin_client.get(reverse(f"admin:billing_{model}_change", args=[obj.pk]))
    assert resp.status_code == 200
    if model in ("ledgertransaction", "lot", "grant"):
        assert (
            f"?{'transaction' if model == 'ledgertransaction' else model}__id__exact={obj.pk}"
            in (resp.content.decode())
        )


def test_revenue_account_page_sums_nothing_until_asked(
    admin_client, books, django_assert_max_num_queries
):
    """Issue 15 / R-LED-4: the revenue account (not cached) shows a link, not a SUM over
    its postings; the link computes the exact sum, equal to the books."""
    revenue = platform_account_id(AccountKind.REVENUE)
    url = reverse("admin:billing_ledgeraccount_change", args=[revenue])
    with CaptureQueriesContext(connection) as ctx, django_assert_max_num_queries(6):
        resp = admin_client.get(url)
    assert resp.status_code == 200
    assert not [q for q in ctx.captured_queries if "SUM(" in q["sql"].upper()]
    page = resp.content.decode()
    sum_url = reverse("admin:billing_ledgeraccount_sum", args=[revenue])
    assert sum_url in page and f"ledger_account__id__exact={revenue}" in page
    resp = admin_client.get(sum_url, follow=True)
    total = sum(
        Posting.objects.filter(ledger_account_id=revenue).values_list("amount_micro", flat=True)
    )
    assert total == 200_000  # two charges of 0.10
    assert "0.200000 CNY" in resp.content.decode()


def test_sum_needs_view_permission(client, books):
    """Issue 15: the sum link is a staff page like the account page (no permission → no sum)."""
    from tests.factories import PASSWORD, StaffFactory

    staff = StaffFactory()
    client.login(email=staff.email, password=PASSWORD)
    revenue = platform_account_id(AccountKind.REVENUE)
    resp = client.get(reverse("admin:billing_ledgeraccount_sum", args=[revenue]))
    assert resp.status_code in (403, 404)
    assert client.get(reverse("admin:billing_ledgeraccount_sum", args=[999999])).status_code in (
        403,
        404,
    )


def test_posting_list_is_read_only_and_filters_by_account(admin_client, books):
    """Issue 15 / R-LED-2: postings have a list of their own; nothing can be added,
    changed or deleted from it; filtered by ledger account it shows only that account."""
    cash = LedgerAccount.objects.get(owner=books, kind="cash")
    resp = admin_client.get(changelist("billing:posting"), {"ledger_account__id__exact": cash.pk})
    assert resp.status_code == 200
    rows = list(resp.context["cl"].result_list)
    assert rows and {p.ledger_account_id for p in rows} == {cash.pk}
    assert admin_client.get(reverse("admin:billing_posting_add")).status_code == 403
    posting = rows[0]
    change = reverse("admin:billing_posting_change", args=[posting.pk])
    page = admin_client.get(change)
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    before = Posting.objects.count()
    admin_client.post(reverse("admin:billing_posting_delete", args=[posting.pk]), {"post": "yes"})
    admin_client.post(change, {"amount_micro": "1"})
    assert Posting.objects.count() == before
    assert Posting.objects.get(pk=posting.pk).amount_micro == posting.amount_micro


def test_later_pages_read_ids_first_then_rows_in_order(books):
    """Issue 15: past page one the OFFSET runs over ids alone (no join per skipped row);
    the page holds the same rows, in the same order, as a plain slice."""
    spend(books, 5, start=10)
    qs = UsageEvent.objects.select_related("account__user").order_by("-id")
    with CaptureQueriesContext(connection) as ctx:
        page = LargeTablePaginator(qs, 2).page(2)
        rows = list(page.object_list)
    assert [c.pk for c in rows] == [c.pk for c in qs[2:4]]
    assert rows[0].account.user.email == books.user.email  # joined, no extra query
    offset_sql = [q["sql"] for q in ctx.captured_queries if "OFFSET" in q["sql"].upper()]
    assert offset_sql and all("JOIN" not in s.upper() for s in offset_sql)
    # the planner's estimate, the capped count, the ids, the rows
    assert len(ctx.captured_queries) == 3 + ESTIMATE_LOOKUP


@pytest.mark.parametrize("model", ["lot", "grant", "ledgeraccount", "ledgertransaction"])
def test_searching_by_email_finds_only_that_owners_rows(admin_client, books, model):
    """Issue 15: an email finds its owner's rows through the owner's index (one
    predicate, no OR across joins); another user's rows are not listed."""
    other = UserFactory(phone="").balance_account
    credit_lot(other, cny("5"), channel="alipay", idempotency_key="L-other")
    grant_funds(other, cny("1"), kind="trial", expires_at=later(), idempotency_key="G-other")
    url = reverse(f"admin:billing_{model}_changelist")
    resp = admin_client.get(url, {"q": books.user.email})
    assert resp.status_code == 200
    rows = list(resp.context["cl"].result_list)
    owner = "owner_id" if model == "ledgeraccount" else "account_id"
    assert rows and {getattr(r, owner) for r in rows} == {books.pk}
    key = {"lot": f"L{books.pk}", "grant": f"G{books.pk}"}.get(model)
    if key:
        found = admin_client.get(url, {"q": key}).context["cl"].result_list
        assert [r.idempotency_key for r in found] == [key]
