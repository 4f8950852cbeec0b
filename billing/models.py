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


USER_BUCKETS = (
    AccountKind.CASH,
    AccountKind.TRIAL,
    AccountKind.DISCOUNT,
    AccountKind.HOLD,
    AccountKind.ARREARS,
    AccountKind.DISPUTE_DEBT,
)
# owed BY the user (balance ≤ 0): arrears to the platform, a dispute debt to a rights holder
DEBIT_BUCKETS = (AccountKind.ARREARS, AccountKind.DISPUTE_DEBT)
CREDIT_BUCKETS = (AccountKind.CASH, AccountKind.TRIAL, AccountKind.DISCOUNT, AccountKind.HOLD)
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

    kind = models.CharField(max_length=32, choices=AccountKind.choices)
    owner = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ledger_accounts",
    )
    channel = models.CharField(max_length=16, blank=True, choices=Channel.choices)
    balance_micro = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="CNY", choices=CNY_ONLY)

    class Meta:
        ordering = ["id"]
        permissions = [("reconcile_ledger", "Can run the ledger reconciliation")]
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
            return f"{self.get_kind_display()} of balance account #{self.owner_id}"
        if self.channel:
            return f"{self.get_kind_display()} ({self.channel})"
        return self.get_kind_display()

    balance = MicroMoney("balance_micro")


class Lot(models.Model):
    """The cash of one paid top-up, kept apart so refunds and invoices can follow it."""

    account = models.ForeignKey(
        "accounts.BalanceAccount", on_delete=models.PROTECT, related_name="lots"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    amount = MoneyField(
        max_digits=18, decimal_places=2, default_currency="CNY", currency_choices=CNY_ONLY
    )
    remaining_micro = models.BigIntegerField(default=0, help_text="Cached unconsumed cash.")
    held_micro = models.BigIntegerField(default=0, help_text="Cached cash in refund hold.")
    # Personal data, encrypted at rest like the top-up's (R-ACC-5)
    payer_name = EncryptedTextField(blank=True)
    payer_account = EncryptedTextField(blank=True)
    third_party = models.BooleanField(default=False)
    idempotency_key = models.CharField(max_length=200, unique=True)
    memo = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["account", "created_at", "id"])]
        constraints = [
            models.CheckConstraint(condition=Q(amount_currency="CNY"), name="lot_cny"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="lot_amount_positive"),
            models.CheckConstraint(condition=Q(remaining_micro__gte=0), name="lot_remaining_gte0"),
            models.CheckConstraint(condition=Q(held_micro__gte=0), name="lot_held_gte0"),
        ]

    def __str__(self):
        return f"Lot #{self.pk} ({self.amount})"

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
        "accounts.BalanceAccount", on_delete=models.PROTECT, related_name="grants"
    )
    kind = models.CharField(max_length=16, choices=GrantKind.choices)
    amount = MoneyField(
        max_digits=18, decimal_places=6, default_currency="CNY", currency_choices=CNY_ONLY
    )
    remaining_micro = models.BigIntegerField(default=0, help_text="Cached unspent amount.")
    expires_at = models.DateTimeField(null=True, blank=True)
    source_lot = models.ForeignKey(
        Lot, on_delete=models.PROTECT, null=True, blank=True, related_name="discounts"
    )
    # A plain field, not django_fsm: expiry is set-based and void is audited by its
    # service; the reasons are in billing/README.md, "Grant states".
    state = models.CharField(max_length=16, choices=GrantState.choices, default=GrantState.ACTIVE)
    idempotency_key = models.CharField(max_length=200, unique=True)
    memo = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("void_grant", "Can void a grant (take back unused free funds)")]
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
        return f"{self.get_kind_display()} grant #{self.pk} ({self.amount})"

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


class LedgerTransaction(models.Model):
    """One movement of value: two or more postings summing to zero (R-LED-1)."""

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=TxnKind.choices)
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
        help_text="The balance account whose buckets moved.",
        db_constraint=False,
    )
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    reverses = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="reversals",
    )
    memo = models.CharField(max_length=200, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
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
        return f"Txn #{self.pk} {self.kind}"


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

    id = models.BigAutoField(primary_key=True)
    transaction = models.ForeignKey(
        LedgerTransaction, on_delete=models.PROTECT, related_name="postings", db_constraint=False
    )
    ledger_account = models.ForeignKey(
        LedgerAccount, on_delete=models.PROTECT, related_name="postings", db_constraint=False
    )
    bucket = models.CharField(max_length=32, choices=AccountKind.choices)
    lot = models.ForeignKey(
        Lot,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="postings",
        db_constraint=False,
    )
    grant = models.ForeignKey(
        Grant,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="postings",
        db_constraint=False,
    )
    amount_micro = models.BigIntegerField(help_text="Micro-units; credit > 0, debit < 0.")
    currency = models.CharField(max_length=3, default="CNY", choices=CNY_ONLY)

    class Meta:
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

    id = models.BigAutoField(primary_key=True)
    request_id = models.CharField(max_length=200)
    account = models.ForeignKey(
        "accounts.BalanceAccount",
        on_delete=models.PROTECT,
        db_index=False,
        related_name="usage_events",
        db_constraint=False,
    )
    api_key = models.ForeignKey(
        "accounts.ApiKey",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        db_index=False,
        related_name="+",
        db_constraint=False,
    )
    model = models.CharField(max_length=100)
    amount_micro = models.BigIntegerField()
    trial_micro = models.BigIntegerField(default=0)
    discount_micro = models.BigIntegerField(default=0)
    cash_micro = models.BigIntegerField(default=0)
    arrears_micro = models.BigIntegerField(default=0)
    split = models.JSONField(default=list)
    transaction = models.ForeignKey(
        LedgerTransaction,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="usage_events",
        db_constraint=False,
        db_index=False,  # billing_charge_txn_id below: a settlement's events in id order
    )
    created_at = models.DateTimeField("received at", auto_now_add=True)
    occurred_at = models.DateTimeField(
        "occurred at",
        null=True,
        blank=True,
        help_text="When the call happened, as the gateway says.",
    )
    settled_at = models.DateTimeField("settled at", null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("settle_usage", "Can settle pending usage now"),
            ("credit_back_usage", "Can credit back one usage event"),
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
                    )
                    | Q(
                        transaction__isnull=False,
                        amount_micro=models.F("trial_micro")
                        + models.F("discount_micro")
                        + models.F("cash_micro")
                        + models.F("arrears_micro"),
                    )
                ),
                name="charge_split_adds_up",
            ),
        ]

    def __str__(self):
        return f"UsageEvent {self.request_id}"

    @property
    def settled(self) -> bool:
        return self.transaction_id is not None

    amount = MicroMoney("amount_micro")

    arrears = MicroMoney("arrears_micro")
