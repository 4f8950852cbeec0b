from django import forms
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransitionMixin, FSMField, transition
from djmoney.models.fields import MoneyField

from core.forms import ReasonForm


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required")
        email = self.normalize_email(email).lower()
        with transaction.atomic():  # the user and the balance account land together (R-ACC-1)
            user = self.model(email=email, **extra)
            user.set_password(password)
            user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    phone = models.CharField(max_length=20, blank=True, db_index=True)
    display_name = models.CharField(max_length=100, blank=True)
    language = models.CharField(
        max_length=10, default="en", choices=[("en", "English"), ("zh-hans", "简体中文")]
    )
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self):
        return self.email

    def get_full_name(self):
        return self.display_name or self.email

    def get_short_name(self):
        return self.display_name or self.email


class Standing(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended (violation)"
    LOCKED = "locked", "Locked (third-party dispute)"
    FROZEN = "frozen", "Frozen (order of an authority)"
    TERMINATED = "terminated", "Terminated"


class FreezeForm(ReasonForm):
    authority = forms.CharField(max_length=200, help_text="Authority that ordered the freeze")
    document_number = forms.CharField(max_length=100, help_text="Number of its order")


class BalanceAccount(ConcurrentTransitionMixin, models.Model):
    """The prepaid balance account every user has (R-ACC-1) and its standing (R-ACC-8).

    Money itself lives in the ledger (billing); this row carries who owns the
    balance and whether it may be used.
    """

    user = models.OneToOneField(User, on_delete=models.PROTECT, related_name="balance_account")
    standing = FSMField(default=Standing.ACTIVE, choices=Standing.choices, protected=True)
    freeze_authority = models.CharField(max_length=200, blank=True)
    freeze_document_number = models.CharField(max_length=100, blank=True)
    low_balance_threshold = MoneyField(
        max_digits=18,
        decimal_places=2,
        default_currency="CNY",
        currency_choices=[("CNY", "CNY")],
        null=True,
        blank=True,
        help_text="A notice is sent once each time the available balance falls below this.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    standing_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [
            ("suspend_balanceaccount", "Can suspend or reinstate a balance account"),
            ("lock_balanceaccount", "Can lock or unlock a balance account (dispute)"),
            ("freeze_balanceaccount", "Can freeze or unfreeze a balance account (authority)"),
            ("terminate_balanceaccount", "Can terminate a balance account"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(low_balance_threshold_currency="CNY"),
                name="balanceaccount_threshold_cny",
            ),
            models.CheckConstraint(
                condition=models.Q(low_balance_threshold__isnull=True)
                | models.Q(low_balance_threshold__gte=0),
                name="balanceaccount_threshold_not_negative",
            ),
        ]

    def __str__(self):
        return f"Balance account of {self.user}"

    # What a standing allows (R-ACC-8): the one place other apps ask.
    @property
    def can_consume(self):
        return self.standing == Standing.ACTIVE

    @property
    def can_top_up(self):
        return self.standing not in (Standing.FROZEN, Standing.TERMINATED)

    @property
    def can_refund(self):
        return self.standing not in (Standing.FROZEN, Standing.TERMINATED)

    def _changed(self):
        self.standing_changed_at = timezone.now()

    @transition(
        standing,
        source=Standing.ACTIVE,
        target=Standing.SUSPENDED,
        permission="accounts.suspend_balanceaccount",
        custom={"label": "Suspend (violation)"},
    )
    def suspend(self):
        self._changed()

    @transition(
        standing,
        source=Standing.SUSPENDED,
        target=Standing.ACTIVE,
        permission="accounts.suspend_balanceaccount",
        custom={"label": "Reinstate"},
    )
    def reinstate(self):
        self._changed()

    @transition(
        standing,
        source=Standing.ACTIVE,
        target=Standing.LOCKED,
        permission="accounts.lock_balanceaccount",
        custom={"label": "Lock (dispute)"},
    )
    def lock(self):
        self._changed()

    @transition(
        standing,
        source=Standing.LOCKED,
        target=Standing.ACTIVE,
        permission="accounts.lock_balanceaccount",
        custom={"label": "Unlock"},
    )
    def unlock(self):
        self._changed()

    @transition(
        standing,
        source=Standing.ACTIVE,
        target=Standing.FROZEN,
        permission="accounts.freeze_balanceaccount",
        custom={"label": "Freeze (authority order)", "form": FreezeForm},
    )
    def freeze(self, authority="", document_number=""):
        if not authority.strip() or not document_number.strip():
            raise ValidationError("A freeze needs the authority and its document number.")
        self.freeze_authority = authority.strip()
        self.freeze_document_number = document_number.strip()
        self._changed()

    @transition(
        standing,
        source=Standing.FROZEN,
        target=Standing.ACTIVE,
        permission="accounts.freeze_balanceaccount",
        custom={"label": "Unfreeze"},
    )
    def unfreeze(self):
        self._changed()

    @transition(
        standing,
        source=[Standing.ACTIVE, Standing.SUSPENDED, Standing.LOCKED, Standing.FROZEN],
        target=Standing.TERMINATED,
        permission="accounts.terminate_balanceaccount",
        custom={"label": "Terminate"},
    )
    def terminate(self):
        self._changed()


class ApiKeyState(models.TextChoices):
    ACTIVE = "active", "Active"
    LOCKED = "locked", "Locked by the platform"
    REVOKED = "revoked", "Revoked by the user"


class ApiKey(ConcurrentTransitionMixin, models.Model):
    """A key the model gateway sees on each call (R-ACC-6).

    The secret is shown once at creation; only its SHA-256 is stored. The
    prefix stays visible so users and staff can tell keys apart.
    """

    account = models.ForeignKey(BalanceAccount, on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    secret_hash = models.CharField(max_length=64, unique=True)
    state = FSMField(default=ApiKeyState.ACTIVE, choices=ApiKeyState.choices, protected=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("lock_apikey", "Can lock or unlock an API key")]

    def __str__(self):
        return f"{self.prefix}… ({self.name})"

    @transition(
        state,
        source=ApiKeyState.ACTIVE,
        target=ApiKeyState.LOCKED,
        permission="accounts.lock_apikey",
        custom={"label": "Lock"},
    )
    def lock(self):
        pass

    @transition(
        state,
        source=ApiKeyState.LOCKED,
        target=ApiKeyState.ACTIVE,
        permission="accounts.lock_apikey",
        custom={"label": "Unlock"},
    )
    def unlock(self):
        pass

    @transition(
        state,
        source=[ApiKeyState.ACTIVE, ApiKeyState.LOCKED],
        target=ApiKeyState.REVOKED,
        permission=lambda key, user: user.pk == key.account.user_id,
        custom={"admin": False},
    )
    def revoke(self):
        pass
