"""Top-ups, trial awards and promotions: how money and free funds enter a balance (SPEC §4).

The money itself lives in the ledger (billing.Lot / billing.Grant); these rows
carry the payment case around it: who paid, through which channel, against
which agreement acceptance, and which promotion it earned.
"""

import secrets
from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop, pgettext_lazy
from django_fsm import ConcurrentTransitionMixin, FSMField, transition
from djmoney.models.fields import MoneyField
from djmoney.money import Money

from accounts.crypto import EncryptedTextField, IdentityHashField, seal
from billing.models import Channel, Grant

FEN = Decimal("0.01")


def _money_field(**kwargs):
    return MoneyField(
        max_digits=18,
        decimal_places=2,
        default_currency="CNY",
        currency_choices=[("CNY", "CNY")],
        **kwargs,
    )


class TopUpState(models.TextChoices):
    CREATED = "created", _("Awaiting payment")
    REVIEW = "review", _("Amount differs — finance review")
    APPROVAL = "approval", _("Awaiting a second approver")
    PAID = "paid", pgettext_lazy("top-up state", "Paid")
    CANCELLED = "cancelled", _("Cancelled")
    EXPIRED = "expired", _("Expired")
    RETURNED = "returned", _("Returned to payer")
    REFUNDED = "refunded", _("Refunded")


def new_out_trade_no():
    # Date prefix for humans, random tail so numbers can't be guessed or enumerated.
    return f"T{timezone.localdate():%Y%m%d}{secrets.token_hex(6).upper()}"  # the date users see


def new_remittance_reference():
    # Short, unambiguous alphabet: payers type it into their bank's memo field.
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "RM" + "".join(secrets.choice(alphabet) for _ in range(8))


def _is_owner_or_staff(topup, user):
    return topup.account.user_id == user.pk or user.has_perm("topups.change_topup")


def _nobody(topup, user):
    """System-only transitions: no human actor, so none in the admin either."""
    return False


class TopUp(ConcurrentTransitionMixin, models.Model):
    """One top-up order and its payment case (R-TOP-1)."""

    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="topups",
        verbose_name=_("account"),
    )
    channel = models.CharField(max_length=10, choices=Channel.choices, verbose_name=_("channel"))
    amount = _money_field(verbose_name=_("amount"))
    # Not `protected=True`: django_fsm's refresh_from_db flips that flag on the shared
    # field object, which races between threads. Only transitions write `state` here.
    state = FSMField(
        default=TopUpState.CREATED, choices=TopUpState.choices, verbose_name=_("state")
    )
    out_trade_no = models.CharField(
        _("order number"), max_length=32, unique=True, default=new_out_trade_no, editable=False
    )
    remittance_reference = models.CharField(
        max_length=16,
        unique=True,
        null=True,
        blank=True,
        editable=False,
        verbose_name=_("remittance reference"),
    )
    trade_no = models.CharField(
        _("channel transaction number"),
        max_length=64,
        blank=True,
        help_text=_("Alipay trade_no or the bank's transaction reference."),
    )
    channel_status = models.CharField(max_length=32, blank=True, verbose_name=_("channel status"))
    received_amount = _money_field(null=True, blank=True, verbose_name=_("received amount"))
    # Personal data, encrypted at rest (R-ACC-5); in audit rows too (audit_details).
    payer_name = EncryptedTextField(blank=True, verbose_name=_("payer name"))
    payer_account = EncryptedTextField(blank=True, verbose_name=_("payer account"))
    third_party = models.BooleanField(default=False, verbose_name=_("third party"))
    created_at = models.DateTimeField(
        default=timezone.now, db_index=True, verbose_name=_("created at")
    )
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    paid_at = models.DateTimeField(null=True, blank=True, verbose_name=_("paid at"))
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("created by"),
    )
    memo = models.CharField(max_length=200, blank=True, verbose_name=_("memo"))
    # Four eyes (R-ADM-4): who proposed crediting money that came without a payment
    # notification, and the second finance approver who approved it.
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("proposed by"),
    )
    proposed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("proposed at"))
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    acceptance = models.ForeignKey(
        "accounts.AgreementAcceptance",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="topups",
        help_text=_("The user's acceptance of the agreement in force when ordering (R-ACC-7)."),
        verbose_name=_("acceptance"),
    )
    lot = models.OneToOneField(
        "billing.Lot",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="topup",
        help_text=_("The cash lot this payment credited."),
        verbose_name=_("lot"),
    )

    class Meta:
        verbose_name = _("top up")
        verbose_name_plural = _("top ups")
        ordering = ["-created_at", "-id"]
        permissions = [
            (
                "confirm_remittance",
                gettext_noop("Can confirm a bank remittance or manual payment (finance)"),
            ),
            ("resolve_review", gettext_noop("Can resolve a top-up in amount review (finance)")),
        ]
        indexes = [models.Index(fields=["state", "expires_at"], name="topup_state_expiry")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_currency="CNY"), name="topup_cny"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="topup_positive"),
            models.UniqueConstraint(
                fields=["channel", "trade_no"],
                condition=~models.Q(trade_no=""),
                name="topup_unique_channel_trade_no",
            ),
        ]

    def __str__(self):
        return _("Top-up %(number)s (%(amount)s)") % {
            "number": self.out_trade_no,
            "amount": self.amount,
        }

    @property
    def user(self):
        return self.account.user

    PERSONAL_AUDIT_KEYS = ("payer_name", "payer_account")

    def audit_details(self, details):
        """Audit rows keep the payer's name and account encrypted (R-ACC-5)."""
        for key in self.PERSONAL_AUDIT_KEYS:
            if details.get(key):
                details[key] = seal(details[key])
        return details

    # --- workflow (R-TOP-1). Services run these through core.workflow.apply_transition.

    @transition(
        state,
        source=TopUpState.CREATED,
        target=TopUpState.PAID,
        permission=_nobody,
        custom={"admin": False, "label": _("Paid (payment notice)")},
    )
    def pay(
        self, trade_no="", channel_status="", payer_name="", payer_account="", third_party=False
    ):
        """Channel says paid (Alipay notification); system only."""
        self._record_payment(trade_no, channel_status, payer_name, payer_account, third_party)

    @transition(
        state,
        source=TopUpState.CREATED,
        target=TopUpState.PAID,
        permission="topups.confirm_remittance",
        custom={"label": _("Confirm remittance"), "form": "topups.forms.RemittanceForm"},
    )
    def confirm_remittance(
        self,
        received_amount=None,
        payer_name="",
        payer_account="",
        bank_reference="",
        third_party=False,
    ):
        """Finance saw the money on the platform's account (bank / other channel)."""
        self.received_amount = received_amount
        self._record_payment(bank_reference, "confirmed", payer_name, payer_account, third_party)

    @transition(
        state,
        source=TopUpState.CREATED,
        target=TopUpState.REVIEW,
        permission="topups.confirm_remittance",
        custom={"admin": False, "label": _("Send to review")},
    )
    def send_to_review(
        self,
        received_amount=None,
        payer_name="",
        payer_account="",
        bank_reference="",
        third_party=False,
    ):
        """The received amount differs from the order: never credited silently."""
        self._record_receipt(received_amount, bank_reference, payer_name, payer_account)
        self.channel_status = "amount_mismatch"
        self.third_party = bool(third_party)

    @transition(
        state,
        source=TopUpState.CREATED,
        target=TopUpState.APPROVAL,
        permission="topups.confirm_remittance",
        custom={"admin": False, "label": _("Propose crediting")},
    )
    def propose_credit(
        self,
        received_amount=None,
        payer_name="",
        payer_account="",
        bank_reference="",
        third_party=False,
        proposer=None,
    ):
        """Money without a payment notification (a manual payment, or a remittance above
        the four-eyes limit): recorded now, credited only when a second finance approver
        approves it (R-ADM-4)."""
        self._record_receipt(received_amount, bank_reference, payer_name, payer_account)
        self.channel_status = "awaiting_approval"
        self.third_party = bool(third_party)
        self._propose(proposer)

    @transition(
        state,
        source=TopUpState.REVIEW,
        target=TopUpState.APPROVAL,
        permission="topups.resolve_review",
        custom={"label": _("Propose crediting the received amount")},
    )
    def credit_received(self, proposer=None):
        """Finance propose to credit what actually came; a second approver decides (R-ADM-4)."""
        self.channel_status = "credit_proposed"
        self._propose(proposer)

    @transition(
        state,
        source=TopUpState.APPROVAL,
        target=TopUpState.PAID,
        permission="topups.resolve_review",
        custom={"label": _("Approve the credit (second approver)")},
    )
    def approve_credit(self, approver=None):
        """The second finance approver: never the proposer, never the beneficiary."""
        self.paid_at = timezone.now()
        self.approved_by = approver
        self.channel_status = "confirmed_after_approval"

    @transition(
        state,
        source=TopUpState.APPROVAL,
        target=TopUpState.REVIEW,
        permission="topups.resolve_review",
        custom={"label": _("Decline the credit (back to review)")},
    )
    def decline_credit(self):
        """The second approver declines: the case returns to review (credit it another
        way, or return the money to the payer)."""
        self.channel_status = "credit_declined"
        self.proposed_by = None
        self.proposed_at = None

    @transition(
        state,
        source=TopUpState.REVIEW,
        target=TopUpState.RETURNED,
        permission="topups.resolve_review",
        custom={"label": _("Return the money to the payer")},
    )
    def return_to_payer(self):
        self.closed_at = timezone.now()

    @transition(
        state,
        source=TopUpState.CREATED,
        target=TopUpState.CANCELLED,
        permission=_is_owner_or_staff,
        custom={"label": _("Cancel order")},
    )
    def cancel(self):
        self.closed_at = timezone.now()

    @transition(
        state,
        source=TopUpState.CREATED,
        target=TopUpState.EXPIRED,
        permission=_nobody,
        custom={"admin": False, "label": _("Expire unpaid order")},
    )
    def expire(self):
        self.closed_at = timezone.now()

    @transition(
        state,
        source=TopUpState.PAID,
        target=TopUpState.REFUNDED,
        permission=_nobody,
        custom={"admin": False, "label": _("Mark refunded")},
    )
    def mark_refunded(self):
        """The top-up's lot was refunded in full (R-REF-4): called by the refunds app's
        payout (refunds.services.payouts) when the last of it is paid back."""

    def _record_receipt(self, received_amount, bank_reference, payer_name, payer_account):
        self.received_amount = received_amount
        self.trade_no = bank_reference or self.trade_no
        self.payer_name = payer_name
        self.payer_account = payer_account

    def _propose(self, proposer):
        self.proposed_by = proposer
        self.proposed_at = timezone.now()

    def _record_payment(self, trade_no, channel_status, payer_name, payer_account, third_party):
        self.trade_no = trade_no or self.trade_no
        self.channel_status = channel_status
        self.payer_name = payer_name
        self.payer_account = payer_account
        self.third_party = bool(third_party)
        self.paid_at = timezone.now()

    @property
    def credited_amount(self):
        """What the lot gets: the order amount, or what finance accepted after review."""
        if self.received_amount is not None:
            return self.received_amount
        return self.amount


class PromotionKind(models.TextChoices):
    LIMITED_TIME_FREE = "limited_time_free", _("Limited-time free")
    LIMITED_TIME_DISCOUNT = "limited_time_discount", _("Limited-time discount")
    LIMITED_QUANTITY_DISCOUNT = "limited_quantity_discount", _("Limited-quantity discount")
    TOPUP_DISCOUNT = "topup_discount", _("Top-up discount")


class PromotionState(models.TextChoices):
    ACTIVE = "active", _("Active")
    ENDED = "ended", _("Ended")


class Audience(models.TextChoices):
    """Who a promotion is for: any verified account, or only one kind of verification."""

    ANY = "any", _("Any")
    INDIVIDUAL = "individual", _("Individual")
    ENTERPRISE = "enterprise", _("Enterprise")


class BenefitType(models.TextChoices):
    FIXED = "fixed", _("Fixed amount")
    PERCENT = "percent", _("Percent of the top-up")


class Promotion(ConcurrentTransitionMixin, models.Model):
    """A promotion that turns a paid top-up into a discount grant (R-TOP-4)."""

    name = models.CharField(max_length=120, verbose_name=_("name"))
    kind = models.CharField(max_length=32, choices=PromotionKind.choices, verbose_name=_("kind"))
    state = FSMField(
        default=PromotionState.ACTIVE, choices=PromotionState.choices, verbose_name=_("state")
    )
    starts_at = models.DateTimeField(default=timezone.now, verbose_name=_("starts at"))
    ends_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ends at"))
    new_customers_only = models.BooleanField(
        default=False,
        help_text=_("Only an account's first paid top-up qualifies."),
        verbose_name=_("new customers only"),
    )
    account_kind = models.CharField(
        max_length=12,
        choices=Audience.choices,
        default=Audience.ANY,
        verbose_name=_("account kind"),
    )
    min_topup = _money_field(
        default=Money(0, "CNY"), help_text=_("Minimum top-up amount"), verbose_name=_("min topup")
    )
    total_quantity = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("How many benefits in all (empty: unlimited)."),
        verbose_name=_("total quantity"),
    )
    used_quantity = models.PositiveIntegerField(
        default=0, editable=False, verbose_name=_("used quantity")
    )
    per_user_limit = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Benefits per account (empty: unlimited)."),
        verbose_name=_("per user limit"),
    )
    benefit_type = models.CharField(
        max_length=10, choices=BenefitType.choices, verbose_name=_("benefit type")
    )
    benefit_amount = _money_field(
        null=True, blank=True, help_text=_("For a fixed benefit"), verbose_name=_("benefit amount")
    )
    benefit_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("For a percent benefit"),
        verbose_name=_("benefit percent"),
    )
    benefit_cap = _money_field(
        null=True,
        blank=True,
        help_text=_("Cap of a percent benefit"),
        verbose_name=_("benefit cap"),
    )
    bonus_validity_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text=_("Days the bonus stays usable (empty: no expiry)."),
        verbose_name=_("bonus validity days"),
    )
    priority = models.IntegerField(
        default=0, help_text=_("Higher wins when benefits tie."), verbose_name=_("priority")
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended at"))

    class Meta:
        verbose_name = _("promotion")
        verbose_name_plural = _("promotions")
        ordering = ["-priority", "-starts_at", "id"]
        permissions = [
            ("end_promotion", gettext_noop("Can end a promotion and void its unused benefits"))
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(total_quantity__isnull=True)
                | models.Q(used_quantity__lte=models.F("total_quantity")),
                name="promotion_quantity_not_exceeded",
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.benefit_type == BenefitType.FIXED:
            if not self.benefit_amount or self.benefit_amount.amount <= 0:
                errors["benefit_amount"] = "A fixed benefit needs a positive amount."
        elif self.benefit_type == BenefitType.PERCENT:
            if not self.benefit_percent or not (0 < self.benefit_percent <= 100):
                errors["benefit_percent"] = "A percent benefit needs 0 < percent <= 100."
            if not self.benefit_cap or self.benefit_cap.amount <= 0:
                errors["benefit_cap"] = "A percent benefit needs a positive cap."
        for name in ("benefit_amount", "benefit_cap", "min_topup"):
            value = getattr(self, name)
            if value is not None and str(value.currency) != "CNY":
                errors[name] = "Only CNY."
        limited_time = (PromotionKind.LIMITED_TIME_FREE, PromotionKind.LIMITED_TIME_DISCOUNT)
        if self.kind in limited_time and not self.ends_at:
            errors["ends_at"] = "A limited-time promotion needs an end."
        if self.kind == PromotionKind.LIMITED_QUANTITY_DISCOUNT and not self.total_quantity:
            errors["total_quantity"] = "A limited-quantity promotion needs a total quantity."
        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The end must be after the start."
        for name, message in self.bound_problems().items():
            errors.setdefault(name, message)
        if errors:
            raise ValidationError(errors)

    def bound_problems(self):
        """R-ADM-5: what staff may set is bounded by configurable limits (settings)."""
        most = Decimal(str(getattr(settings, "PROMOTION_MAX_BENEFIT", "1000.00")))
        percent = Decimal(str(getattr(settings, "PROMOTION_MAX_PERCENT", "50")))
        quantity = int(getattr(settings, "PROMOTION_MAX_QUANTITY", 100000))
        days = int(getattr(settings, "PROMOTION_MAX_VALIDITY_DAYS", 365))
        problems = {}
        for name in ("benefit_amount", "benefit_cap"):
            value = getattr(self, name)
            if value is not None and value.amount > most:
                problems[name] = f"At most {most:.2f} CNY (PROMOTION_MAX_BENEFIT)."
        if self.benefit_percent is not None and self.benefit_percent > percent:
            problems["benefit_percent"] = f"At most {percent}% (PROMOTION_MAX_PERCENT)."
        for name in ("total_quantity", "per_user_limit"):
            value = getattr(self, name)
            if value is not None and value > quantity:
                problems[name] = f"At most {quantity} (PROMOTION_MAX_QUANTITY)."
        if self.bonus_validity_days is not None and self.bonus_validity_days > days:
            problems["bonus_validity_days"] = f"At most {days} days (PROMOTION_MAX_VALIDITY_DAYS)."
        if self.min_topup is not None and self.min_topup.amount > settings.TOPUP_MAX:
            problems["min_topup"] = f"At most the top-up maximum, {settings.TOPUP_MAX:.2f} CNY."
        return problems

    # What a change of a promotion is audited by (R-ADM-5): every field staff edit.
    AUDITED_FIELDS = (
        "name",
        "kind",
        "starts_at",
        "ends_at",
        "new_customers_only",
        "account_kind",
        "min_topup",
        "total_quantity",
        "per_user_limit",
        "benefit_type",
        "benefit_amount",
        "benefit_percent",
        "benefit_cap",
        "bonus_validity_days",
        "priority",
    )

    def benefit_for(self, amount):
        """Value of this promotion's benefit for a top-up of `amount` (Money), whole fen."""
        if self.benefit_type == BenefitType.FIXED:
            return Money(self.benefit_amount.amount, "CNY")
        value = (amount.amount * self.benefit_percent / Decimal(100)).quantize(
            FEN, rounding=ROUND_DOWN
        )
        if self.benefit_cap is not None:
            value = min(value, self.benefit_cap.amount)
        return Money(value, "CNY")

    @transition(
        state,
        source=PromotionState.ACTIVE,
        target=PromotionState.ENDED,
        permission="topups.end_promotion",
        custom={"label": _("End promotion"), "admin": False},
    )
    def end(self):
        self.ended_at = timezone.now()


class PromotionRedemption(models.Model):
    """One benefit granted by a promotion for one paid top-up (at most one per top-up)."""

    promotion = models.ForeignKey(
        Promotion, on_delete=models.PROTECT, related_name="redemptions", verbose_name=_("promotion")
    )
    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="promotion_redemptions",
        verbose_name=_("account"),
    )
    topup = models.OneToOneField(
        TopUp, on_delete=models.PROTECT, related_name="redemption", verbose_name=_("topup")
    )
    amount = _money_field(verbose_name=_("amount"))
    grant = models.OneToOneField(
        "billing.Grant",
        on_delete=models.PROTECT,
        related_name="promotion_redemption",
        verbose_name=_("grant"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    voided_at = models.DateTimeField(null=True, blank=True, verbose_name=_("voided at"))

    class Meta:
        verbose_name = _("promotion redemption")
        verbose_name_plural = _("promotion redemptions")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["promotion", "account"], name="redemption_promo_account")]

    def __str__(self):
        return f"{self.promotion} → {self.topup.out_trade_no}"


def _default_trial_amount():
    return Money(Decimal(getattr(settings, "TRIAL_AMOUNT", "20.00")), "CNY")


def _default_trial_days():
    return int(getattr(settings, "TRIAL_VALIDITY_DAYS", 30))


class TrialSettings(models.Model):
    """Staff-editable trial-fund settings (R-TOP-5); one row, defaults from the environment."""

    enabled = models.BooleanField(default=True, verbose_name=_("enabled"))
    amount = _money_field(default=_default_trial_amount, verbose_name=_("amount"))
    validity_days = models.PositiveIntegerField(
        default=_default_trial_days, verbose_name=_("validity days")
    )
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("trial settings")
        verbose_name_plural = _("trial settings")
        permissions = [
            ("change_grant_validity", gettext_noop("Can extend or shorten a grant's validity"))
        ]

    def __str__(self):
        return str(_("Trial settings"))

    def save(self, *args, **kwargs):
        self.pk = 1  # singleton
        super().save(*args, **kwargs)

    AUDITED_FIELDS = ("enabled", "amount", "validity_days")

    def clean(self):
        if self.amount is not None and (
            str(self.amount.currency) != "CNY" or self.amount.amount < 0
        ):
            raise ValidationError({"amount": "A CNY amount, zero or more."})
        # R-ADM-5: bounded by configurable limits.
        most = Decimal(str(getattr(settings, "TRIAL_MAX_AMOUNT", "200.00")))
        days = int(getattr(settings, "TRIAL_MAX_VALIDITY_DAYS", 365))
        errors = {}
        if self.amount is not None and self.amount.amount > most:
            errors["amount"] = f"At most {most:.2f} CNY (TRIAL_MAX_AMOUNT)."
        if self.validity_days is not None and not 1 <= self.validity_days <= days:
            errors["validity_days"] = f"From 1 to {days} days (TRIAL_MAX_VALIDITY_DAYS)."
        if errors:
            raise ValidationError(errors)

    @classmethod
    def load(cls):
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj


class TrialAward(models.Model):
    """Trial funds went to this identity: the unique hash makes 'once per identity' race-proof."""

    identity_hash = IdentityHashField(max_length=128, unique=True, verbose_name=_("identity hash"))
    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="trial_awards",
        verbose_name=_("account"),
    )
    amount = _money_field(verbose_name=_("amount"))
    grant = models.OneToOneField(
        "billing.Grant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="trial_award",
        verbose_name=_("grant"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("trial award")
        verbose_name_plural = _("trial awards")
        ordering = ["-created_at"]

    def __str__(self):
        return _("Trial award for %(account)s") % {"account": self.account}


class GrantValidity(Grant):
    """Admin handle on ledger grants for staff changing their validity (R-TOP-5)."""

    class Meta:
        proxy = True
        verbose_name = _("grant validity")
        verbose_name_plural = _("grant validity")
