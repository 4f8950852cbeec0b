"""The staff workbench on the admin's home page: every queue that needs someone, with its
size and age, each number linking to the filtered queue (issue 15).

It counts cases of every app, each through its selectors. One aggregate query per tile;
the busy ledger tables are read for today only, through their indexes.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _

from accounts import selectors as accounts
from billing import selectors as billing
from core.money import yuan
from disputes import selectors as disputes
from invoices import selectors as invoices
from ops import selectors as ops
from refunds import selectors as refunds
from topups import selectors as topups


@dataclass
class Tile:
    group: str
    label: str
    count: int
    url: str
    oldest: datetime | None = None
    note: str = ""
    urgent: bool = False

    @property
    def age(self):
        """How long the oldest case has waited, as a timedelta (None when empty)."""
        return timezone.now() - self.oldest if self.oldest else None


def _changelist(app_model, **filters):
    """The admin list of `app_model` ("accounts_verification"), filtered."""
    url = reverse(f"admin:{app_model}_changelist")
    if filters:
        url += "?" + urlencode(filters)
    return url


def _queue(group, label, queue, url, *, urgent_after=None):
    """A tile of a queue: `queue` is a selector's (how many, the oldest case)."""
    count, oldest = queue
    tile = Tile(group, label, count, url, oldest)
    if urgent_after and tile.age and tile.age > urgent_after:
        tile.urgent = True
    return tile


def workbench_tiles(user):
    """The tiles this staff member may open (a queue they cannot see is left out)."""
    tiles = []
    now = timezone.now()
    if user.has_perm("accounts.view_verification"):
        tiles.append(
            _queue(
                _("Verifications"),
                _("Waiting for review"),
                accounts.verification_queue(),
                _changelist("accounts_verification", state__exact="submitted"),
                urgent_after=timedelta(days=1),
            )
        )
    if user.has_perm("refunds.view_refundrequest"):
        for state, count, oldest in refunds.refund_queues():
            tiles.append(
                Tile(
                    _("Refunds"),
                    state.label,
                    count,
                    _changelist("refunds_refundrequest", state__exact=state.value),
                    oldest,
                    urgent=state == refunds.RefundState.PAYOUT_FAILED and count > 0,
                )
            )
    if user.has_perm("disputes.view_dispute"):
        row = disputes.open_queue(now)
        tiles.append(
            Tile(
                _("Disputes"),
                _("Open, awaiting evidence"),
                row["n"],
                _changelist("disputes_dispute", state__exact="open"),
                row["oldest"],
                note=_("%(three)d due within 3 days, %(week)d within 7")
                % {"three": row["three"], "week": row["week"]},
                urgent=row["three"] > 0,
            )
        )
        row = disputes.debt_queue()
        tiles.append(
            Tile(
                _("Disputes"),
                _("Debts outstanding"),
                row["n"],
                _changelist("disputes_dispute", state__exact="in_debt"),
                None,
                note=_("next due %(at)s")
                % {"at": timezone.localtime(row["oldest"]).strftime("%Y-%m-%d")}
                if row["oldest"]
                else "",
            )
        )
        tiles.append(
            Tile(
                _("Disputes"),
                _("Debts escalated (overdue)"),
                row["escalated"],
                _changelist("disputes_dispute", state__exact="escalated"),
                urgent=row["escalated"] > 0,
            )
        )
        tiles.append(
            _queue(
                _("Disputes"),
                _("Rights-holder payouts failed or waiting for finance"),
                disputes.payout_queue(),
                _changelist("disputes_rightsholderpayout"),
                urgent_after=timedelta(days=1),
            )
        )
    if user.has_perm("invoices.view_invoicerequest"):
        tiles.append(
            _queue(
                _("Invoices"),
                _("Requests to issue"),
                invoices.invoice_queue(),
                _changelist("invoices_invoicerequest", state__exact="submitted"),
                urgent_after=timedelta(days=3),
            )
        )
    if user.has_perm("topups.view_topup"):
        for state, label in (
            (topups.TopUpState.REVIEW, _("Top-ups whose amount differs (review)")),
            (topups.TopUpState.APPROVAL, _("Money waiting for a second approver")),
        ):
            tiles.append(
                _queue(
                    _("Top-ups"),
                    label,
                    topups.topup_queue(state),
                    _changelist("topups_topup", state__exact=state.value),
                    urgent_after=timedelta(days=1),
                )
            )
    if user.has_perm("ops.view_staffalert"):
        tiles.append(
            _queue(
                _("Operations"),
                _("Open alerts (reconciliation, jobs, payments)"),
                ops.open_alert_queue(),
                _changelist("ops_staffalert", status__exact="open"),
                urgent_after=timedelta(0),
            )
        )
    return tiles


def today_figures(user):
    """Today's paid top-ups and consumption (Asia/Shanghai day), for finance."""
    if not user.has_perm("topups.view_topup"):
        return []
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(timezone.localdate(), time.min), tz)
    count, total = topups.paid_since(start)
    # the lists open on today's rows: the same bounds as the admin's "Today" date filter
    since, until = str(start), str(start + timedelta(days=1))
    figures = [
        (
            _("Top-ups paid today"),
            f"{count} · {yuan(total)}",
            _changelist("topups_topup", state__exact="paid", paid_at__gte=since),
        )
    ]
    if user.has_perm("billing.view_usageevent"):
        count, total = billing.usage_since(start)
        figures.append(
            (
                _("Consumption today"),
                f"{count} · {yuan(total)}",
                _changelist("billing_usageevent", created_at__gte=since, created_at__lt=until),
            )
        )
    return figures


def workbench_context(request):
    return {
        "workbench_tiles": workbench_tiles(request.user),
        "workbench_today": today_figures(request.user),
    }
