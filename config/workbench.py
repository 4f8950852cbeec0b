"""The staff workbench on the admin's home page: every queue that needs someone, with its
size and age, each number linking to the filtered queue (issue 15).

It counts cases of every app, so it lives in the project layer. One aggregate query
per tile; the busy ledger tables are read for today only, through their date indexes.
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.db.models import Count, Min, Q, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.models import Verification, VerificationState
from billing.micro import from_micro
from billing.models import UsageEvent
from core.money import yuan
from disputes.models import Dispute, DisputeState, RightsHolderPayout
from disputes.models import PayoutState as DisputePayoutState
from invoices.models import InvoiceRequest, InvoiceState
from ops.models import AlertStatus, StaffAlert
from refunds.models import RefundRequest, RefundState
from topups.models import TopUp, TopUpState


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


def _changelist(model, **filters):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    if filters:
        url += "?" + "&".join(f"{k}={v}" for k, v in filters.items())
    return url


def _queue(group, label, queryset, date_field, url, *, urgent_after=None):
    row = queryset.aggregate(n=Count("pk"), oldest=Min(date_field))
    tile = Tile(group, label, row["n"], url, row["oldest"])
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
                Verification.objects.filter(state=VerificationState.SUBMITTED),
                "submitted_at",
                _changelist(Verification, state__exact="submitted"),
                urgent_after=timedelta(days=1),
            )
        )
    if user.has_perm("refunds.view_refundrequest"):
        rows = (
            RefundRequest.objects.exclude(
                state__in=[RefundState.PAID, RefundState.REJECTED, RefundState.CANCELLED]
            )
            .values("state")
            .annotate(n=Count("pk"), oldest=Min("created_at"))
        )
        by_state = {row["state"]: row["oldest"] for row in rows}
        counts = {row["state"]: row["n"] for row in rows}
        for state in (
            RefundState.SUBMITTED,
            RefundState.UNDER_REVIEW,
            RefundState.APPROVED,
            RefundState.PAYING,
            RefundState.PAYOUT_FAILED,
        ):
            tiles.append(
                Tile(
                    _("Refunds"),
                    state.label,
                    counts.get(state.value, 0),
                    _changelist(RefundRequest, state__exact=state.value),
                    by_state.get(state.value),
                    urgent=state == RefundState.PAYOUT_FAILED and counts.get(state.value, 0) > 0,
                )
            )
    if user.has_perm("disputes.view_dispute"):
        open_ = Dispute.objects.filter(state=DisputeState.OPEN)
        row = open_.aggregate(
            n=Count("pk"),
            week=Count("pk", filter=Q(deadline_at__lte=now + timedelta(days=7))),
            three=Count("pk", filter=Q(deadline_at__lte=now + timedelta(days=3))),
            oldest=Min("opened_at"),
        )
        tiles.append(
            Tile(
                _("Disputes"),
                _("Open, awaiting evidence"),
                row["n"],
                _changelist(Dispute, state__exact="open"),
                row["oldest"],
                note=_("%(three)d due within 3 days, %(week)d within 7")
                % {"three": row["three"], "week": row["week"]},
                urgent=row["three"] > 0,
            )
        )
        debts = Dispute.objects.filter(state__in=[DisputeState.IN_DEBT, DisputeState.ESCALATED])
        row = debts.aggregate(
            n=Count("pk", filter=Q(state=DisputeState.IN_DEBT)),
            escalated=Count("pk", filter=Q(state=DisputeState.ESCALATED)),
            oldest=Min("debt_due_at"),
        )
        tiles.append(
            Tile(
                _("Disputes"),
                _("Debts outstanding"),
                row["n"],
                _changelist(Dispute, state__exact="in_debt"),
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
                _changelist(Dispute, state__exact="escalated"),
                urgent=row["escalated"] > 0,
            )
        )
        tiles.append(
            _queue(
                _("Disputes"),
                _("Rights-holder payouts failed or waiting for finance"),
                RightsHolderPayout.objects.filter(
                    state__in=[DisputePayoutState.FAILED, DisputePayoutState.PENDING]
                ),
                "created_at",
                _changelist(RightsHolderPayout),
                urgent_after=timedelta(days=1),
            )
        )
    if user.has_perm("invoices.view_invoicerequest"):
        tiles.append(
            _queue(
                _("Invoices"),
                _("Requests to issue"),
                InvoiceRequest.objects.filter(state=InvoiceState.SUBMITTED),
                "created_at",
                _changelist(InvoiceRequest, state__exact="submitted"),
                urgent_after=timedelta(days=3),
            )
        )
    if user.has_perm("topups.view_topup"):
        for state, label in (
            (TopUpState.REVIEW, _("Top-ups whose amount differs (review)")),
            (TopUpState.APPROVAL, _("Money waiting for a second approver")),
        ):
            tiles.append(
                _queue(
                    _("Top-ups"),
                    label,
                    TopUp.objects.filter(state=state),
                    "created_at",
                    _changelist(TopUp, state__exact=state.value),
                    urgent_after=timedelta(days=1),
                )
            )
    if user.has_perm("ops.view_staffalert"):
        tiles.append(
            _queue(
                _("Operations"),
                _("Open alerts (reconciliation, jobs, payments)"),
                StaffAlert.objects.filter(status=AlertStatus.OPEN),
                "created_at",
                _changelist(StaffAlert, status__exact="open"),
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
    paid = TopUp.objects.filter(state=TopUpState.PAID, paid_at__gte=start).aggregate(
        n=Count("pk"), total=Sum(Coalesce("received_amount", "amount"))
    )
    figures = [
        (
            _("Top-ups paid today"),
            f"{paid['n']} · {yuan(paid['total'] or 0)}",
            _changelist(TopUp, state__exact="paid"),
        )
    ]
    if user.has_perm("billing.view_usageevent"):
        # created_at is not indexed on charges; the id range of today is: bound it by id
        first = UsageEvent.objects.filter(created_at__gte=start).order_by("id").values("id")[:1]
        used = UsageEvent.objects.filter(id__gte=first).aggregate(
            n=Count("pk"), total=Sum("amount_micro")
        )
        figures.append(
            (
                _("Consumption today"),
                f"{used['n']} · {yuan(from_micro(used['total'] or 0).amount)}",
                reverse("admin:billing_usageevent_changelist"),
            )
        )
    return figures


def workbench_context(request):
    return {
        "workbench_tiles": workbench_tiles(request.user),
        "workbench_today": today_figures(request.user),
    }
