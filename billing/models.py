"""The double-entry ledger (R-LED-1 … R-LED-6) and the usage events it settles.

Amounts in the ledger are integer micro-units (see billing/micro.py and
billing/README.md); `*_micro` columns have Money properties for the edges.
Sign convention: a posting's amount is positive for a credit and negative for
a debit. A user's buckets (cash, trial, discount, hold) are what the platform
owes the user, so their balances are ≥ 0; the arrears bucket is what the user
owes the platform, so its balance is ≤ 0.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from djmoney.models.fields import MoneyField

from accounts.crypto import EncryptedTextField

from .micro import MicroMoney, from_micro

CNY_ONLY = [("CNY", "CNY")]


class Channel(models.TextChoices):
    ALIPAY = "alipay", _("Alipay")
    BANK = "bank", _("Bank transfer")
    OTHER = "other", _("Other (manual)")


class AccountKind(models.TextChoices):
    # platform side (one row each; clearing per channel)
    CLEARING = "clearing", _("Payment clearing")
    REVENUE = "revenue", _("Revenue")
    PROMOTION_EXPENSE = "promotion_expense", _("Promotion expense")
    REFUNDS_PAYABLE = "refunds_payable", _("Refunds payable")
    RIGHTS_HOLDER_PAYABLE = "rights_holder_payable", _("Rights-holder payable")
    # disputes (issue 11): a debt's claim until a top-up collects it, then it is payable
    DISPUTE_CLAIMS = "dispute_claims", _("Rights-holder claims not yet collected")
    # user side (one row per balance account and bucket)
    CASH = "cash", _("Cash")
    TRIAL = "trial", _("Trial funds")
    DISCOUNT = "discount", _("Discount")
    HOLD = "hold", _("Refund hold")
    ARREARS = "arrears", _("Arrears receivable")
    DISPUTE_DEBT = "dispute_debt", _("Dispute debt receivable")
    # resource packages (issue 23): the unused face value of the account's packages
    PACKAGE = "package", _("Resource packages")


USER_BUCKETS = (
    AccountKind.CASH,
    AccountKind.TRIAL,
    AccountKind.DISCOUNT,
    AccountKind.HOLD,
    AccountKind.ARREARS,
    AccountKind.DISPUTE_DEBT,
    AccountKind.PACKAGE,
)
# owed BY the user (balance ≤ 0): arrears to the platform, a dispute debt to a rights holder
DEBIT_BUCKETS = (AccountKind.ARREARS, AccountKind.DISPUTE_DEBT)
CREDIT_BUCKETS = (
    AccountKind.CASH,
    AccountKind.TRIAL,
    AccountKind.DISCOUNT,
    AccountKind.HOLD,
    AccountKind.PACKAGE,
)
PLATFORM_KINDS = (
    AccountKind.CLEARING,
    AccountKind.REVENUE,
    AccountKind.PROMOTION_EXPENSE,
    AccountKind.REFUNDS_PAYABLE,
    AccountKind.RIGHTS_HOLDER_PAYABLE,
    AccountKind.DISPUTE_CLAIMS,
)


class LedgerAccount(models.Model):
    """One account of the chart: a platform account, or one bucket of one user's balance.

    `balance_micro` is the cached balance of a user bucket (R-LED-4), updated
    in the same transaction as its postings. Platform accounts are touched by
    every charge; caching them would turn one row into a global lock, so their
    balance is always summed from postings.
    """

    kind = models.CharField(max_length=32, choices=AccountKind.choices, verbose_name=_("kind"))
    owner = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_accounts",
        verbose_name=_("owner"),
    )
    channel = models.CharField(
        max_length=16, blank=True, choices=Channel.choices, verbose_name=_("channel")
    )
    balance_micro = models.BigIntegerField(default=0, verbose_name=_("balance"))
    currency = models.CharField(
        max_length=3, default="CNY", choices=CNY_ONLY, verbose_name=_("currency")
    )

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        ordering = ["id"]
        permissions = [("reconcile_ledger", gettext_noop("Can run the ledger reconciliation"))]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "kind"],
                condition=Q(owner__isnull=False),
                name="ledgeraccount_one_bucket_per_owner",
            ),
            models.UniqueConstraint(
                fields=["kind", "channel"],
                condition=Q(owner__isnull=True),
                name="ledgeraccount_one_platform_account",
            ),
            models.CheckConstraint(condition=Q(currency="CNY"), name="ledgeraccount_cny"),
            models.CheckConstraint(
                condition=Q(owner__isnull=True, kind__in=PLATFORM_KINDS)
                | Q(owner__isnull=False, kind__in=USER_BUCKETS),
                name="ledgeraccount_side_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(owner__isnull=True, balance_micro=0)
                | Q(kind__in=CREDIT_BUCKETS, balance_micro__gte=0)
                | Q(kind__in=DEBIT_BUCKETS, balance_micro__lte=0),
                name="ledgeraccount_bucket_sign",
            ),
        ]

    def __str__(self):
        if self.owner_id:
            return _("%(kind)s of balance account #%(id)s") % {
                "kind": self.get_kind_display(),
                "id": self.owner_id,
            }
        if self.channel:
            return f"{self.get_kind_display()} ({self.channel})"
        return self.get_kind_display()

    balance = MicroMoney("balance_micro")


class Lot(models.Model):
    """The cash of one paid top-up, kept apart so refunds and invoices can follow it."""

    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="lots",
        verbose_name=_("account"),
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, verbose_name=_("channel"))
    amount = MoneyField(
        max_digits=18,
        decimal_places=2,
        default_currency="CNY",
        currency_choices=CNY_ONLY,
        verbose_name=_("amount"),
    )
    remaining_micro = models.BigIntegerField(
        default=0, help_text=_("Cached unconsumed cash."), verbose_name=_("remaining")
    )
    held_micro = models.BigIntegerField(
        default=0, help_text=_("Cached cash in refund hold."), verbose_name=_("held")
    )
    # Personal data, encrypted at rest like the top-up's (R-ACC-5)
    payer_name = EncryptedTextField(blank=True, verbose_name=_("payer name"))
    payer_account = EncryptedTextField(blank=True, verbose_name=_("payer account"))
    third_party = models.BooleanField(default=False, verbose_name=_("third party"))
    idempotency_key = models.CharField(
        max_length=200, unique=True, verbose_name=_("idempotency key")
    )
    memo = models.CharField(max_length=200, blank=True, verbose_name=_("memo"))
    created_at = models.DateTimeField(
        auto_now_add=True, db_index=True, verbose_name=_("created at")
    )
    closed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("closed at"))

    class Meta:
        verbose_name = _("lot")
        verbose_name_plural = _("lots")
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["account", "created_at", "id"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount_currency="CNY"), name="lot_cny"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="lot_amount_positive"),
            models.CheckConstraint(condition=Q(remaining_micro__gte=0), name="lot_remaining_gte0"),
            models.CheckConstraint(condition=Q(held_micro__gte=0), name="lot_held_gte0"),
        ]

    def __str__(self):
        return _("Lot #%(id)s (%(amount)s)") % {"id": self.pk, "amount": self.amount}

    remaining = MicroMoney("remaining_micro")

    held = MicroMoney("held_micro")


class GrantKind(models.TextChoices):
    TRIAL = "trial", _("Trial funds")
    DISCOUNT = "discount", _("Discount")


class GrantState(models.TextChoices):
    ACTIVE = "active", _("Active")
    USED_UP = "used_up", _("Used up")
    EXPIRED = "expired", _("Expired")
    VOIDED = "voided", _("Voided")


class Grant(models.Model):
    """Free funds: trial money or a promotion's discount (tied to the lot that earned it)."""

    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="grants",
        verbose_name=_("account"),
    )
    kind = models.CharField(max_length=16, choices=GrantKind.choices, verbose_name=_("kind"))
    amount = MoneyField(
        max_digits=18,
        decimal_places=6,
        default_currency="CNY",
        currency_choices=CNY_ONLY,
        verbose_name=_("amount"),
    )
    remaining_micro = models.BigIntegerField(
        default=0, help_text=_("Cached unspent amount."), verbose_name=_("remaining")
    )
    expires_at = models.DateTimeField(null=True, blank=True, verbose_name=_("expires at"))
    source_lot = models.ForeignKey(
        Lot,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="discounts",
        verbose_name=_("source lot"),
    )
    # A plain field, not django_fsm: expiry is set-based and void is audited by its
    # service; the reasons are in billing/README.md, "Grant states".
    state = models.CharField(
        max_length=16,
        choices=GrantState.choices,
        default=GrantState.ACTIVE,
        verbose_name=_("state"),
    )
    idempotency_key = models.CharField(
        max_length=200, unique=True, verbose_name=_("idempotency key")
    )
    memo = models.CharField(max_length=200, blank=True, verbose_name=_("memo"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended at"))

    class Meta:
        verbose_name = _("grant")
        verbose_name_plural = _("grants")
        ordering = ["created_at", "id"]
        permissions = [
            ("void_grant", gettext_noop("Can void a grant (take back unused free funds)"))
        ]
        indexes = [
            models.Index(fields=["account", "state"]),
            # exactly the expiry sweep's predicate, in its order: the sweep walks the
            # index and stops at its LIMIT (with state outside the predicate the planner,
            # on fresh statistics, AND-ed in a scan of the whole (account, state) index)
            models.Index(
                fields=["expires_at", "id"],
                condition=Q(state="active", remaining_micro__gt=0),
                name="grant_due_for_expiry",
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount_currency="CNY"), name="grant_cny"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="grant_amount_positive"),
            models.CheckConstraint(
                condition=Q(remaining_micro__gte=0), name="grant_remaining_gte0"
            ),
        ]

    def __str__(self):
        return _("%(kind)s #%(id)s (%(amount)s)") % {
            "kind": self.get_kind_display(),
            "id": self.pk,
            "amount": self.amount,
        }

    remaining = MicroMoney("remaining_micro")


class TxnKind(models.TextChoices):
    TOP_UP = "top_up", _("Top-up (lot credited)")
    GRANT = "grant", _("Grant of free funds")
    EXPIRY = "expiry", _("Grant expired")
    VOID = "void", _("Grant voided")
    USAGE = "usage", _("API usage")
    PURCHASE = "purchase", _("Prepaid purchase")
    HOLD = "hold", _("Refund hold")
    RELEASE = "release", _("Refund hold released")
    REFUND = "refund", _("Refund paid out of hold")
    REVERSAL = "reversal", _("Reversal")
    DISPUTE_REFUND = "dispute_refund", _("Dispute: deadline refund to the rights holder")
    DEBT_ENDED = "debt_ended", _("Dispute debt waived or repaid directly")
    DISPUTE_PAYOUT = "dispute_payout", _("Dispute: paid to the rights holder")
    USAGE_CREDIT = "usage_credit", _("Usage credited back")
    PACKAGE_EXPIRY = "package_expiry", _("Resource package expired")


class LedgerTransaction(models.Model):
    """One movement of value: two or more postings summing to zero (R-LED-1)."""

    id = models.BigAutoField(primary_key=True, verbose_name=_("id"))
    kind = models.CharField(max_length=16, choices=TxnKind.choices, verbose_name=_("kind"))
    # Indexes are kept to what is read (this table grows with every charge): the
    # composite (account, -id) serves the account FK too; unique keys are partial
    # constraints, which also spares PostgreSQL the extra LIKE index.
    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="ledger_transactions",
        help_text=_("The balance account whose buckets moved."),
        db_constraint=False,
        verbose_name=_("account"),
    )
    idempotency_key = models.CharField(
        max_length=200, null=True, blank=True, verbose_name=_("idempotency key")
    )
    reverses = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="reversals",
        verbose_name=_("reverses"),
    )
    memo = models.CharField(max_length=200, blank=True, verbose_name=_("memo"))
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        verbose_name=_("actor"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("ledger transaction")
        verbose_name_plural = _("ledger transactions")
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["account", "-id"], name="billing_txn_account_id"),
            # The admin's filter by kind (a rare kind walked a million usage rows): usage
            # rows are left out, so settlement never writes to this index.
            models.Index(
                fields=["kind", "-id"],
                condition=~Q(kind="usage"),
                name="billing_txn_kind_id_not_usage",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="billing_txn_idempotency_key_unique",
            ),
            models.UniqueConstraint(
                fields=["reverses"],
                condition=Q(reverses__isnull=False),
                name="billing_txn_reversed_once",
            ),
        ]

    def __str__(self):
        return _("Transaction #%(id)s %(kind)s") % {"id": self.pk, "kind": self.get_kind_display()}


class Posting(models.Model):
    """One line of a ledger transaction. Append-only (R-LED-2): never updated or deleted.

    `bucket` repeats the ledger account's kind so reconciliation of lots and
    grants is one GROUP BY over this table, no join.

    The hot tables (postings, usage events, usage transactions) carry no database
    foreign-key constraints: each checked reference cost ~15 µs per row, about
    seven per charge, more than everything else together. Rows are written only
    by the ledger engine from rows it holds locked or inserts in the same
    statement, nothing in the ledger is ever deleted, and the reconciliation
    checks for dangling references (see billing/README.md).
    """

    id = models.BigAutoField(primary_key=True, verbose_name=_("id"))
    transaction = models.ForeignKey(
        LedgerTransaction,
        on_delete=models.PROTECT,
        related_name="postings",
        db_constraint=False,
        verbose_name=_("transaction"),
    )
    ledger_account = models.ForeignKey(
        LedgerAccount,
        on_delete=models.PROTECT,
        related_name="postings",
        db_constraint=False,
        verbose_name=_("ledger account"),
    )
    bucket = models.CharField(max_length=32, choices=AccountKind.choices, verbose_name=_("bucket"))
    lot = models.ForeignKey(
        Lot,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="postings",
        db_constraint=False,
        verbose_name=_("lot"),
    )
    grant = models.ForeignKey(
        Grant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="postings",
        db_constraint=False,
        verbose_name=_("grant"),
    )
    # the resource package a package-bucket posting moves (issue 23)
    holding = models.ForeignKey(
        "PackageHolding",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="postings",
        db_constraint=False,
        verbose_name=_("holding"),
    )
    amount_micro = models.BigIntegerField(
        help_text=_("Micro-units; credit > 0, debit < 0."), verbose_name=_("amount")
    )
    currency = models.CharField(
        max_length=3, default="CNY", choices=CNY_ONLY, verbose_name=_("currency")
    )

    class Meta:
        verbose_name = _("posting")
        verbose_name_plural = _("postings")
        ordering = ["id"]
        # partial: platform-side postings (half of all) carry no lot or grant
        indexes = [
            models.Index(
                fields=["lot"], condition=Q(lot__isnull=False), name="billing_posting_lot"
            ),
            models.Index(
                fields=["grant"], condition=Q(grant__isnull=False), name="billing_posting_grant"
            ),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(currency="CNY"), name="posting_cny"),
            models.CheckConstraint(condition=~Q(amount_micro=0), name="posting_not_zero"),
        ]

    def __str__(self):
        return f"{self.bucket} {from_micro(self.amount_micro)}"

    amount = MicroMoney("amount_micro")


class UsageEvent(models.Model):
    """One metered API call (a usage event, R-USE-1) and, once settled, where its
    money came from (R-USE-2, R-USE-5).

    Ingestion stores the event pending (`transaction` empty, every part zero); the
    settler fills the parts, `split` (each grant and lot drawn on) and the ledger
    transaction it was settled in (one per account per chunk, so several events share
    one). `arrears_micro` is the part no bucket covered (R-USE-3). The unique request
    id makes replays harmless (R-LED-5). `created_at` is when the portal received the
    event: the order events are settled in, and what a grant's expiry is compared with.
    """

    id = models.BigAutoField(primary_key=True, verbose_name=_("id"))
    request_id = models.CharField(max_length=200, verbose_name=_("request id"))
    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        db_index=False,
        related_name="usage_events",
        db_constraint=False,
        verbose_name=_("account"),
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        db_constraint=False,
        verbose_name=_("api key"),
    )
    model = models.CharField(max_length=100, verbose_name=_("model"))
    amount_micro = models.BigIntegerField(verbose_name=_("amount"))
    trial_micro = models.BigIntegerField(default=0, verbose_name=_("trial"))
    discount_micro = models.BigIntegerField(default=0, verbose_name=_("discount"))
    cash_micro = models.BigIntegerField(default=0, verbose_name=_("cash"))
    arrears_micro = models.BigIntegerField(default=0, verbose_name=_("arrears"))
    # paid by resource packages (R-PKG-3); a database default: ingestion inserts raw SQL
    package_micro = models.BigIntegerField(default=0, db_default=0, verbose_name=_("package"))
    split = models.JSONField(default=list, verbose_name=_("split"))
    transaction = models.ForeignKey(
        LedgerTransaction,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="usage_events",
        db_constraint=False,
        db_index=False,  # billing_charge_txn_id below: a settlement's events in id order
        verbose_name=_("transaction"),
    )
    created_at = models.DateTimeField(_("received at"), auto_now_add=True)
    occurred_at = models.DateTimeField(
        _("occurred at"),
        null=True,
        blank=True,
        help_text=_("When the call happened, as the gateway says."),
    )
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    # Optional: what the gateway says the call consumed (written at ingestion only).
    input_tokens = models.BigIntegerField(null=True, blank=True, verbose_name=_("input tokens"))
    output_tokens = models.BigIntegerField(null=True, blank=True, verbose_name=_("output tokens"))

    class Meta:
        verbose_name = _("usage event")
        verbose_name_plural = _("usage events")
        ordering = ["-id"]
        permissions = [
            ("settle_usage", gettext_noop("Can settle pending usage now")),
            ("credit_back_usage", gettext_noop("Can credit back one usage event")),
        ]
        indexes = [
            models.Index(fields=["account", "-id"], name="billing_charge_account_id"),
            models.Index(fields=["transaction", "id"], name="billing_charge_txn_id"),
            # Only pending rows are in these two (an entry is added at ingestion and never
            # again: a settled row fails the condition), so they stay seconds of traffic big.
            models.Index(
                fields=["id"], condition=Q(transaction__isnull=True), name="billing_charge_pending"
            ),
            models.Index(
                fields=["account"],
                include=["amount_micro"],
                condition=Q(transaction__isnull=True),
                name="billing_charge_pending_acct",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["request_id"], name="billing_charge_request_id_unique"),
            models.CheckConstraint(condition=Q(amount_micro__gt=0), name="charge_positive"),
            models.CheckConstraint(
                condition=(
                    Q(
                        transaction__isnull=True,
                        trial_micro=0,
                        discount_micro=0,
                        cash_micro=0,
                        arrears_micro=0,
                        package_micro=0,
                    )
                    | Q(
                        transaction__isnull=False,
                        amount_micro=models.F("trial_micro")
                        + models.F("discount_micro")
                        + models.F("cash_micro")
                        + models.F("arrears_micro")
                        + models.F("package_micro"),
                    )
                ),
                name="charge_split_adds_up",
            ),
        ]

    def __str__(self):
        return _("Usage event %(id)s") % {"id": self.request_id}

    @property
    def settled(self) -> bool:
        return self.transaction_id is not None

    amount = MicroMoney("amount_micro")

    arrears = MicroMoney("arrears_micro")


class DailyUsage(models.Model):
    """Settled usage summed per account × Beijing calendar day (of the event's receipt
    time) × model × API key: what the usage page reads, so it costs the same at ten
    million events as at ten. Written only by settlement
    (billing.services.settlement._roll_up), in the transaction that settles the events,
    so it always equals a scan of the settled events grouped the same way."""

    id = models.BigAutoField(primary_key=True, verbose_name=_("id"))
    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        db_index=False,  # the unique index below leads with the account
        related_name="+",
        db_constraint=False,
        verbose_name=_("account"),
    )
    day = models.DateField(verbose_name=_("day"))
    model = models.CharField(max_length=100, verbose_name=_("model"))
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        db_constraint=False,
        verbose_name=_("api key"),
    )
    calls = models.BigIntegerField(default=0, verbose_name=_("calls"))
    amount_micro = models.BigIntegerField(default=0, verbose_name=_("amount"))
    input_tokens = models.BigIntegerField(default=0, verbose_name=_("input tokens"))
    output_tokens = models.BigIntegerField(default=0, verbose_name=_("output tokens"))

    class Meta:
        verbose_name = _("daily usage")
        verbose_name_plural = _("daily usages")
        constraints = [
            # NULLS NOT DISTINCT: calls without a key (staff tools) share one row per day
            models.UniqueConstraint(
                fields=["account", "day", "model", "api_key"],
                name="billing_dailyusage_unique",
                nulls_distinct=False,
            ),
        ]

    def __str__(self):
        return f"{self.account_id} {self.day} {self.model}"

    amount = MicroMoney("amount_micro")


# ---------------------------------------------------------------- resource packages (issue 23)


class ResourcePackage(models.Model):
    """A catalogue entry (R-PKG-1): usage of some models sold from the balance at a
    price. Staff maintain it in the admin; every change carries a reason and is audited
    (R-ADM-5), and a package on sale never changes its price or face value."""

    name_zh = models.CharField(_("name (Chinese)"), max_length=100)
    name_en = models.CharField(_("name (English)"), max_length=100)
    models_covered = models.JSONField(
        _("models covered"), default=list, help_text=_("Model names this package pays for.")
    )
    face_micro = models.BigIntegerField(_("face value (micro-units)"))
    price = MoneyField(
        _("price"),
        max_digits=12,
        decimal_places=2,
        default_currency="CNY",
        currency_choices=CNY_ONLY,
    )
    validity_days = models.PositiveIntegerField(_("validity (days)"))
    sale_starts_at = models.DateTimeField(_("on sale from"))
    sale_ends_at = models.DateTimeField(_("on sale until"), null=True, blank=True)
    per_user_limit = models.PositiveIntegerField(
        _("limit per user"), null=True, blank=True, help_text=_("Empty: no limit.")
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("resource package")
        verbose_name_plural = _("resource packages")
        ordering = ["id"]
        permissions = [
            (
                "manage_resource_packages",
                gettext_noop("Can maintain the resource package catalogue"),
            )
        ]
        constraints = [
            models.CheckConstraint(condition=Q(price_currency="CNY"), name="package_cny"),
            models.CheckConstraint(condition=Q(price__gt=0), name="package_price_positive"),
            models.CheckConstraint(condition=Q(face_micro__gt=0), name="package_face_positive"),
            models.CheckConstraint(condition=Q(validity_days__gt=0), name="package_validity_gt0"),
        ]

    def __str__(self):
        return self.name_en

    face = MicroMoney("face_micro")

    def name(self, language=None) -> str:
        from django.utils.translation import get_language

        lang = (language or get_language() or "zh-hans").lower()
        return self.name_zh if lang.startswith("zh") else self.name_en

    def on_sale(self, now) -> bool:
        return (
            self.active
            and self.sale_starts_at <= now
            and (self.sale_ends_at is None or now < self.sale_ends_at)
        )


class HoldingState(models.TextChoices):
    ACTIVE = "active", _("Active")
    USED_UP = "used_up", _("Used up")
    EXPIRED = "expired", _("Expired")


class PackageHolding(models.Model):
    """A package a user bought (R-PKG-2): its own balance in the account's package
    bucket, for the models it covers, until it expires. `remaining_micro` is a cache
    moved only by the engine with its postings (like a grant's)."""

    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        related_name="package_holdings",
        verbose_name=_("account"),
    )
    package = models.ForeignKey(
        ResourcePackage,
        on_delete=models.PROTECT,
        related_name="holdings",
        verbose_name=_("package"),
    )
    models_covered = models.JSONField(
        default=list, verbose_name=_("models covered")
    )  # as sold: a later catalogue edit changes nothing
    face_micro = models.BigIntegerField(verbose_name=_("face value"))
    price_micro = models.BigIntegerField(verbose_name=_("price"))
    remaining_micro = models.BigIntegerField(
        default=0, help_text=_("Cached unused face value."), verbose_name=_("remaining")
    )
    expires_at = models.DateTimeField(verbose_name=_("expires at"))
    state = models.CharField(
        max_length=16, choices=HoldingState.choices, default="active", verbose_name=_("state")
    )
    idempotency_key = models.CharField(
        max_length=200, unique=True, verbose_name=_("idempotency key")
    )
    reminded_at = models.DateTimeField(null=True, blank=True, verbose_name=_("reminded at"))
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    ended_at = models.DateTimeField(null=True, blank=True, verbose_name=_("ended at"))

    class Meta:
        verbose_name = _("package holding")
        verbose_name_plural = _("package holdings")
        ordering = ["expires_at", "id"]
        indexes = [
            models.Index(fields=["account", "state"]),
            models.Index(
                fields=["expires_at", "id"],
                condition=Q(state="active"),
                name="holding_due_for_expiry",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(remaining_micro__gte=0), name="holding_remaining_gte0"
            ),
        ]

    def __str__(self):
        return _("Package holding #%(id)s") % {"id": self.pk}

    remaining = MicroMoney("remaining_micro")
    face = MicroMoney("face_micro")
    price = MicroMoney("price_micro")


# ---------------------------------------------------------------- spend limits (R-USE-7)


class LimitPeriod(models.TextChoices):
    MONTH = "month", _("Monthly")
    DAY = "day", _("Daily")


class SpendLimit(models.Model):
    """A user's cap on spend (R-USE-7) for the account (`api_key` empty) or one key,
    per calendar month or day (Beijing time). Hard: authorize refuses once reached;
    soft: notices only. `spent_micro` / `period_start` are the settled spend of the
    current period, kept by settlement in the transaction that settles the events (a
    new period starts the count at zero, no job needed)."""

    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.CASCADE,
        related_name="spend_limits",
        verbose_name=_("account"),
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("api key"),
    )
    period = models.CharField(max_length=8, choices=LimitPeriod.choices, verbose_name=_("period"))
    limit_micro = models.BigIntegerField(verbose_name=_("limit"))
    hard = models.BooleanField(default=True, verbose_name=_("hard"))
    period_start = models.DateField(verbose_name=_("period start"))
    spent_micro = models.BigIntegerField(default=0, verbose_name=_("spent"))
    notified_pct = models.PositiveSmallIntegerField(default=0, verbose_name=_("notified pct"))
    updated_at = models.DateTimeField(auto_now=True, verbose_name=_("updated at"))

    class Meta:
        verbose_name = _("spend limit")
        verbose_name_plural = _("spend limits")
        ordering = ["id"]
        indexes = [models.Index(fields=["account", "api_key"], name="spendlimit_account_key")]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "api_key", "period"],
                name="spendlimit_one_per_scope",
                nulls_distinct=False,
            ),
            models.CheckConstraint(condition=Q(limit_micro__gt=0), name="spendlimit_positive"),
        ]

    def __str__(self):
        return f"{self.period} limit of account #{self.account_id}"

    limit = MicroMoney("limit_micro")
    spent = MicroMoney("spent_micro")
