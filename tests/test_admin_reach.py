"""Every case reachable and finishable in the admin (issue 21, part 3): the 360° customer
page linked from every case, found by any of the customer's numbers, disputes and
refunds started from it, the refund case's own lots, what happens next after each
button and why a button is not offered."""

import re

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from billing.services.settlement import charge_usage
from refunds.models import RefundRequest
from refunds.services.decisions import take_for_review
from refunds.services.filing import submit_refund
from tests.factories import StaffFactory, cny
from tests.refunds.conftest import alipay_topup, proof
from tests.refunds.conftest import ready_user as ready_user  # the fixture

pytestmark = pytest.mark.django_db


def staff(*groups):
    person = StaffFactory()
    person.groups.set([Group.objects.get(name=name) for name in groups])
    return person


@pytest.fixture
def cs(db):
    return staff("CS agent")


@pytest.fixture
def finance(db):
    return staff("Finance approver")


@pytest.fixture
def paid(ready_user):
    """A paid Alipay top-up of 50.00, 10.00 of it consumed."""
    topup = alipay_topup(ready_user, cny("50"))
    charge_usage(ready_user.balance_account, cny("10"), request_id="gw-reach-1", model="qwen")
    return topup


def _customer(user):
    return reverse("admin:customer", args=[user.pk])


def test_every_case_links_to_the_customer_page(client, ready_user, paid):
    """R-ADM-3: the user, account, top-up, lot, refund, verification and API key lists
    and change pages all link to the customer's 360° page."""
    from accounts.services import create_api_key

    admin_user = StaffFactory(is_superuser=True)
    refund = submit_refund(ready_user, proofs=[proof()], reason="leaving")
    key, _raw = create_api_key(ready_user, name="k")
    client.force_login(admin_user)
    target = _customer(ready_user)
    account = ready_user.balance_account
    verification = ready_user.verifications.first()
    pages = {
        "accounts_user": ready_user.pk,
        "accounts_balanceaccount": account.pk,
        "accounts_verification": verification.pk,
        "accounts_apikey": key.pk,
        "topups_topup": paid.pk,
        "billing_lot": paid.lot_id,
        "refunds_refundrequest": refund.pk,
    }
    for name, pk in pages.items():
        listing = client.get(reverse(f"admin:{name}_changelist"))
        assert listing.status_code == 200, name
        assert target in listing.content.decode(), f"{name} list"
        change = client.get(reverse(f"admin:{name}_change", args=[pk]))
        assert change.status_code == 200, name
        assert target in change.content.decode(), f"{name} change page"


@pytest.mark.parametrize(
    "term",
    ["email", "email-part", "order", "trade", "refund", "refund-line", "request-id", "phone"],
)
def test_customer_search_finds_the_customer_by_any_number(client, ready_user, paid, cs, term):
    """R-ADM-3 / issue 21: one box finds a customer by email (or part of it), phone, order
    number, Alipay trade number, refund number or gateway request id."""
    from accounts.models import User

    User.objects.filter(pk=ready_user.pk).update(phone="13800138000")
    ready_user.refresh_from_db()
    ready_user.phone = "13800138000"
    ready_user.save()  # the digest is written on save
    refund = submit_refund(ready_user, proofs=[proof()], reason="r")
    line = refund.lines.first()
    terms = {
        "email": ready_user.email.upper(),
        "email-part": ready_user.email.split("@")[0],
        "order": paid.out_trade_no,
        "trade": paid.trade_no,
        "refund": f"RF{refund.pk:08d}",
        "refund-line": line.out_request_no,
        "request-id": "gw-reach-1",
        "phone": "13800138000",
    }
    client.force_login(cs)
    answer = client.get(reverse("admin:customer_search"), {"q": terms[term]})
    assert answer.status_code == 302, answer.content[:500]
    assert answer["Location"] == _customer(ready_user)


def test_customer_search_says_when_nothing_matches(client, cs):
    """Nothing found is said plainly, with what one may search by; no 500, no redirect."""
    client.force_login(cs)
    answer = client.get(reverse("admin:customer_search"), {"q": "no-such-thing-42"})
    assert answer.status_code == 200
    assert "No customer found" in answer.content.decode()
    assert client.get(reverse("admin:customer_search"), {"q": ""}).status_code == 200


def test_customer_search_needs_the_account_permission(client):
    client.force_login(StaffFactory())
    assert client.get(reverse("admin:customer_search"), {"q": "x"}).status_code == 403


def test_invoice_number_finds_the_customer(client, ready_user, cs):
    """The invoice number the tax platform gave finds its customer."""
    from invoices.models import InvoiceRequest

    invoice = InvoiceRequest.objects.create(
        account=ready_user.balance_account,
        kind="ordinary",
        title_type="personal",
        title="Acme",
        email="a@example.com",
        amount_micro=10_000_000,
        invoice_number="12345678901234567890",
        filed_by=ready_user,
    )
    client.force_login(cs)
    answer = client.get(reverse("admin:customer_search"), {"q": invoice.invoice_number})
    assert answer["Location"] == _customer(ready_user)


def test_cs_open_a_dispute_from_the_customer_page_and_the_top_up(client, ready_user, paid, cs):
    """R-DIS-1: CS reach the open-dispute form from the customer page (the customer's
    paid top-ups listed) and from a paid top-up (its order number filled in)."""
    client.force_login(cs)
    page = client.get(_customer(ready_user)).content.decode()
    open_url = reverse("admin:disputes_dispute_open")
    match = re.search(rf'href="({re.escape(open_url)}\?customer=\d+)"', page)
    assert match, "no Open a dispute on the customer page"
    form = client.get(match.group(1).replace("&amp;", "&")).content.decode()
    assert paid.out_trade_no in form  # listed, and with one paid top-up filled in
    assert f'value="{paid.out_trade_no}"' in form

    change = client.get(reverse("admin:topups_topup_change", args=[paid.pk])).content.decode()
    assert f"{open_url}?topups={paid.out_trade_no}" in change
    listing = client.get(reverse("admin:disputes_dispute_changelist")).content.decode()
    assert 'id="open-dispute-link"' in listing


def test_finance_is_not_offered_open_a_dispute(client, ready_user, paid, finance):
    """A button is offered only to those who may press it."""
    client.force_login(finance)
    change = client.get(reverse("admin:topups_topup_change", args=[paid.pk])).content.decode()
    assert reverse("admin:disputes_dispute_open") not in change


def test_cs_file_a_refund_for_the_user_with_proof_files(client, ready_user, paid, cs):
    """R-REF-1: CS file for the user, with proof files, saying how the user asked; the
    money is held and the case names the agent who filed it."""
    client.force_login(cs)
    page = client.get(_customer(ready_user)).content.decode()
    file_url = reverse("admin:refunds_refundrequest_file")
    assert f"{file_url}?customer={ready_user.pk}" in page
    form = client.get(file_url, {"customer": ready_user.pk}).content.decode()
    assert f'value="{ready_user.email}"' in form
    answer = client.post(
        file_url,
        {
            "email": ready_user.email,
            "asked_via": "chat",
            "amount": "",
            "reason": "wants the rest back",
            "proofs": [proof("a.pdf"), proof("b.pdf")],
        },
    )
    refund = RefundRequest.objects.get()
    assert answer.status_code == 302
    assert answer["Location"] == reverse("admin:refunds_refundrequest_change", args=[refund.pk])
    assert refund.filed_by == cs and refund.asked_via == "chat"
    assert refund.held_micro == 40_000_000 and refund.proofs.count() == 2


def test_cs_filing_without_proof_is_refused_and_changes_nothing(client, ready_user, paid, cs):
    """R-REF-1: without a proof file, or with a wrong amount, nothing is filed; the form
    says why."""
    client.force_login(cs)
    url = reverse("admin:refunds_refundrequest_file")
    data = {"email": ready_user.email, "asked_via": "email", "reason": "r"}
    answer = client.post(url, {**data, "amount": ""})
    assert answer.status_code == 200 and "Attach at least one proof file" in answer.content.decode()
    answer = client.post(url, {**data, "amount": "1e3", "proofs": [proof()]})
    assert answer.status_code == 200 and "plain number" in answer.content.decode()
    answer = client.post(url, {**data, "email": "nobody@example.com", "proofs": [proof()]})
    assert answer.status_code == 200 and "No customer with this email" in answer.content.decode()
    assert not RefundRequest.objects.exists()


def test_finance_may_not_file_refunds(client, finance):
    client.force_login(finance)
    assert client.get(reverse("admin:refunds_refundrequest_file")).status_code == 403


def test_the_refund_case_shows_its_own_lots_and_held_money(client, ready_user, paid, cs):
    """R-REF-3: a filed case holds its money; its page shows the case's lots and what is
    held on each, never the live preview's "Total 0.00"."""
    refund = submit_refund(ready_user, proofs=[proof()], reason="r")
    client.force_login(cs)
    page = client.get(reverse("admin:refunds_refundrequest_change", args=[refund.pk]))
    text = page.content.decode()
    assert 'class="case-lots"' in text
    assert reverse("admin:billing_lot_change", args=[paid.lot_id]) in text
    assert "¥40.00" in text
    assert "Total 0.00" not in text


def _messages(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_after_each_button_the_message_says_who_acts_next(client, ready_user, paid, cs, finance):
    """R-REF-1: after taking a case CS read that a finance approver approves next; after
    approving, finance read what happens with the payout."""
    refund = submit_refund(ready_user, proofs=[proof()], reason="r")
    client.force_login(cs)
    url = reverse("admin:refunds_refundrequest_transition", args=[refund.pk, "take"])
    answer = client.post(url, {"reason": "checked the chat"}, follow=True)
    said = " ".join(_messages(answer))
    assert "Next:" in said and "Finance approver" in said and "Approve (finance)" in said


def test_buttons_not_for_this_staff_member_are_not_offered_with_the_reason(
    client, ready_user, paid, cs, finance
):
    """R-ADM-1 / R-REF-1: CS are not offered Approve (the reason says who approves); the
    finance approver who reviewed the case is not offered Approve (four eyes)."""
    both = staff("CS agent", "Finance approver")  # one person in both roles
    refund = submit_refund(ready_user, proofs=[proof()], reason="r")
    take_for_review(refund, actor=both, reason="took it")
    change = reverse("admin:refunds_refundrequest_change", args=[refund.pk])
    approve = reverse("admin:refunds_refundrequest_transition", args=[refund.pk, "approve"])

    client.force_login(cs)
    page = client.get(change).content.decode()
    assert approve not in page
    assert 'class="workflow-refusal"' in page and "Finance approver" in page

    client.force_login(both)
    page = client.get(change).content.decode()
    assert approve not in page
    assert "Four eyes" in page

    client.force_login(finance)
    assert approve in client.get(change).content.decode()


def test_own_case_buttons_are_not_offered(client, cs):
    """R-ADM-4: staff are not offered the buttons of a case of their own."""
    from tests.topups.conftest import accept, make_agreement, verify

    agreement = make_agreement()
    verify(cs)
    accept(cs, agreement)
    alipay_topup(cs, cny("20"))
    refund = submit_refund(cs, proofs=[proof()], reason="mine")
    client.force_login(cs)
    page = client.get(reverse("admin:refunds_refundrequest_change", args=[refund.pk]))
    text = page.content.decode()
    take = reverse("admin:refunds_refundrequest_transition", args=[refund.pk, "take"])
    assert take not in text and "your own account" in text


def test_workbench_today_figures_open_todays_lists(client, ready_user, paid):
    """Issue 21: "Top-ups paid today" and "Consumption today" open lists filtered to today
    (the lists answer, and show today's rows)."""
    admin_user = StaffFactory(is_superuser=True)
    client.force_login(admin_user)
    page = client.get(reverse("admin:index"))
    today = page.context["workbench_today"]
    urls = {label: url for label, _value, url in today}
    topups_url = urls["Top-ups paid today"]
    assert "paid_at__gte=" in topups_url
    listing = client.get(topups_url)
    assert listing.status_code == 200 and paid.out_trade_no in listing.content.decode()
    usage_url = urls["Consumption today"]
    assert "created_at__gte=" in usage_url and "created_at__lt=" in usage_url
    listing = client.get(usage_url)
    assert listing.status_code == 200 and "gw-reach-1" in listing.content.decode()
    assert 'name="q"' in page.content.decode()  # the customer search on the workbench


def test_no_none_and_beijing_time_on_the_customer_page(client, ready_user, paid, cs):
    """Issue 21: no page prints "None"; times say Beijing time rather than "CST"."""
    client.force_login(cs)
    for url in (
        _customer(ready_user),
        reverse("admin:topups_topup_change", args=[paid.pk]),
    ):
        text = client.get(url).content.decode()
        body = text.split("<body", 1)[1]
        visible = re.sub(r"<[^>]+>", " ", body)
        assert not re.search(r"\bNone\b", visible), url
        assert " CST" not in visible, url


def test_list_and_customer_page_queries_are_pinned(
    client, ready_user, paid, cs, django_assert_max_num_queries
):
    """Issue 21 part 5: the customer column costs no query per row; the lists and the
    customer page cost the same for one case as for many."""
    for _n in range(4):
        alipay_topup(ready_user, cny("5"))
    admin_user = StaffFactory(is_superuser=True)
    client.force_login(admin_user)
    for name, most in (
        ("topups_topup", 14),
        ("refunds_refundrequest", 14),
        ("accounts_user", 12),
        ("billing_lot", 12),
    ):
        with django_assert_max_num_queries(most):
            assert client.get(reverse(f"admin:{name}_changelist")).status_code == 200
    with django_assert_max_num_queries(36):
        assert client.get(_customer(ready_user)).status_code == 200


def test_the_pending_summary_reads_a_bounded_number_of_events(ready_user, paid, monkeypatch):
    """Issue 21 part 5 / R-USE-5: the usage list's pending summary never counts a backlog
    whole: past the cap it says "more than" and the query carries its LIMIT."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.services import create_api_key
    from billing import selectors
    from billing.services.authorization import resolve_api_keys
    from billing.services.metering import ReportedUsage, record_usage

    _key, raw = create_api_key(ready_user, name="k")
    key = resolve_api_keys([raw])[raw]
    record_usage([ReportedUsage(f"bp-{n}", key, "m", 10_000) for n in range(3)])
    with CaptureQueriesContext(connection) as ctx:
        shown = selectors.pending_backlog(cap=2)
    assert shown["events"] == 2 and shown["capped"]
    assert all("LIMIT" in q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"])
    whole = selectors.pending_backlog()
    assert whole["events"] == 3 and not whole["capped"]
    assert whole["amount"] == cny("0.03")


def test_consumption_today_counts_only_todays_events(ready_user, paid):
    """The workbench's "Consumption today": events received since the day began (read
    newest first, back to the last event before the day)."""
    from datetime import timedelta

    from django.utils import timezone

    from billing import selectors
    from billing.models import UsageEvent

    charge_usage(ready_user.balance_account, cny("2"), request_id="gw-reach-2", model="m")
    first = UsageEvent.objects.get(request_id="gw-reach-1").created_at
    assert selectors.usage_since(first + timedelta(microseconds=1)) == (1, cny("2"))
    assert selectors.usage_since(first - timedelta(days=1)) == (2, cny("12"))
    assert selectors.usage_since(timezone.now() + timedelta(days=1)) == (0, cny("0"))


def test_top_up_search_is_exact_on_its_numbers(client, ready_user, paid, cs):
    """Issue 21 part 5: the top-up list finds by order number, trade number or the
    owner's email, each one indexed match (no LIKE over every top-up)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.force_login(staff("Finance approver"))
    url = reverse("admin:topups_topup_changelist")
    for term in (paid.out_trade_no, paid.trade_no, ready_user.email.upper()):
        with CaptureQueriesContext(connection) as ctx:
            page = client.get(url, {"q": term}).content.decode()
        assert reverse("admin:topups_topup_change", args=[paid.pk]) in page, term
        assert not any("LIKE" in q["sql"] for q in ctx.captured_queries), term
    page = client.get(url, {"q": paid.out_trade_no[:8]}).content.decode()
    assert reverse("admin:topups_topup_change", args=[paid.pk]) not in page
