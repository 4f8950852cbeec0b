from django import forms
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import gettext_noop
from django_fsm import RETURN_VALUE, ConcurrentTransitionMixin, FSMField, transition
from djmoney.models.fields import MoneyField

from core.forms import ReasonForm

from .crypto import (
    EncryptedDateField,
    EncryptedPhoneField,
    EncryptedTextField,
    IdentityHashField,
    evidence_upload_to,
    licence_upload_to,
    private_storage,
)
from .identity import mask_name, mask_number


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra):
        if not email:
            raise ValueError("An email address is required")
        email = self.normalize_email(email).lower()
        with transaction.atomic(using=self._db):
            user = self.model(email=email, **extra)
            user.set_password(password)
            user.save(using=self._db)
            # R-ACC-1: the user and their balance account land together, by a direct call.
            BalanceAccount.objects.db_manager(self._db).open_for(user)
        return user

    def create_user(self, email, password=None, **extra):
        extra.setdefault("is_staff", False)
        extra.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra)

    def create_superuser(self, email, password=None, **extra):
        extra.update(is_staff=True, is_superuser=True)
        return self._create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True, verbose_name=_("email"))
    # Encrypted at rest (R-ACC-5); found by its keyed digest (staff search by phone).
    phone = EncryptedPhoneField(max_length=20, blank=True, verbose_name=_("phone"))
    phone_digest = models.CharField(
        max_length=64, blank=True, db_index=True, editable=False, verbose_name=_("phone digest")
    )
    display_name = models.CharField(max_length=100, blank=True, verbose_name=_("display name"))
    # Pages and notices in this language; Chinese first (R-ADM-6). Sign-up stores the
    # language the page was shown in, the switcher the user's choice.
    language = models.CharField(
        max_length=10,
        default="zh-hans",
        choices=[("zh-hans", "简体中文"), ("en", "English")],
        verbose_name=_("language"),
    )
    is_active = models.BooleanField(default=True, verbose_name=_("is active"))
    is_staff = models.BooleanField(default=False, verbose_name=_("is staff"))
    date_joined = models.DateTimeField(default=timezone.now, verbose_name=_("date joined"))
    # When the user proved they read mail at this address (issue 13). Until then the
    # account may log in and look, but not act (top up, create keys, file refunds or
    # invoices, submit a verification). Users created by staff, by createsuperuser or a
    # script are vouched for (the default); the public sign-up creates them unverified.
    email_verified_at = models.DateTimeField(
        null=True, blank=True, default=timezone.now, verbose_name=_("email verified at")
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        ordering = ["email"]

    def __str__(self):
        return self.email

    def get_full_name(self):
        return self.display_name or self.email

    def get_short_name(self):
        return self.display_name or self.email

    @property
    def email_verified(self):
        return self.email_verified_at is not None


class Standing(models.TextChoices):
    ACTIVE = "active", _("Active")
    SUSPENDED = "suspended", _("Suspended (violation)")
    LOCKED = "locked", _("Locked (third-party dispute)")
    FROZEN = "frozen", _("Frozen (order of an authority)")
    TERMINATED = "terminated", _("Terminated")


class FreezeForm(ReasonForm):
    authority = forms.CharField(
        max_length=200,
        help_text=_("Authority that ordered the freeze"),
        label=_("authority"),
    )
    document_number = forms.CharField(
        max_length=100, help_text=_("Number of its order"), label=_("document number")
    )


# Holds a higher layer registers on accounts and keys (disputes, R-DIS-1): callables
# (obj) -> bool, "this must stay locked". The standing is one field, so while a hold
# lasts, lifting a freeze or a suspension leaves the account locked (not active), and
# unlocking a held account or key is refused; the holder unlocks it when it ends.
ACCOUNT_HOLDS: list = []
KEY_HOLDS: list = []


def account_held(account) -> bool:
    return any(hold(account) for hold in ACCOUNT_HOLDS)


def key_held(key) -> bool:
    return any(hold(key) for hold in KEY_HOLDS)


def _account_not_held(account):
    return not account_held(account)


def _key_not_held(key):
    return not key_held(key)


class BalanceAccountManager(models.Manager):
    def open_for(self, user):
        """The user's one balance account (R-ACC-1): opened once, returned thereafter."""
        account, _ = self.get_or_create(user=user)
        return account


class BalanceAccount(ConcurrentTransitionMixin, models.Model):
    """The prepaid balance account every user has (R-ACC-1) and its standing (R-ACC-8).

    Money itself lives in the ledger (billing); this row carries who owns the
    balance and whether it may be used.
    """

    user = models.OneToOneField(
        User, on_delete=models.PROTECT, related_name="balance_account", verbose_name=_("user")
    )
    standing = FSMField(
        default=Standing.ACTIVE,
        choices=Standing.choices,
        protected=True,
        verbose_name=_("standing"),
    )
    freeze_authority = models.CharField(
        max_length=200, blank=True, verbose_name=_("freeze authority")
    )
    freeze_document_number = models.CharField(
        max_length=100, blank=True, verbose_name=_("freeze document number")
    )
    low_balance_threshold = MoneyField(
        max_digits=18,
        decimal_places=2,
        default_currency="CNY",
        currency_choices=[("CNY", "CNY")],
        null=True,
        blank=True,
        help_text=_("A notice is sent once each time the available balance falls below this."),
        verbose_name=_("low balance threshold"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    standing_changed_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("standing changed at")
    )

    objects = BalanceAccountManager()

    class Meta:
        verbose_name = _("balance account")
        verbose_name_plural = _("balance accounts")
        permissions = [
            ("suspend_balanceaccount", gettext_noop("Can suspend or reinstate a balance account")),
            ("lock_balanceaccount", gettext_noop("Can lock or unlock a balance account (dispute)")),
            (
                "freeze_balanceaccount",
                gettext_noop("Can freeze or unfreeze a balance account (authority)"),
            ),
            ("terminate_balanceaccount", gettext_noop("Can terminate a balance account")),
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
        return _("Balance account of %(user)s") % {"user": self.user}

    def may(self, action) -> bool:
        """What this account's standing allows (R-ACC-8), from the one table in
        accounts.standing."""
        from .standing import may

        return may(self.standing, action)

    def _changed(self):
        self.standing_changed_at = timezone.now()

    @transition(
        standing,
        source=[Standing.ACTIVE, Standing.LOCKED],
        target=Standing.SUSPENDED,
        permission="accounts.suspend_balanceaccount",
        custom={"label": _("Suspend (violation)")},
    )
    def suspend(self):
        self._changed()

    @transition(
        standing,
        source=Standing.SUSPENDED,
        target=RETURN_VALUE(Standing.ACTIVE, Standing.LOCKED),
        permission="accounts.suspend_balanceaccount",
        custom={"label": _("Reinstate")},
    )
    def reinstate(self):
        self._changed()
        return Standing.LOCKED if account_held(self) else Standing.ACTIVE

    @transition(
        standing,
        source=Standing.ACTIVE,
        target=Standing.LOCKED,
        permission="accounts.lock_balanceaccount",
        custom={"label": _("Lock (dispute)")},
    )
    def lock(self):
        self._changed()

    @transition(
        standing,
        source=Standing.LOCKED,
        target=Standing.ACTIVE,
        permission="accounts.lock_balanceaccount",
        conditions=[_account_not_held],
        custom={"label": _("Unlock")},
    )
    def unlock(self):
        self._changed()

    @transition(
        standing,
        source=[Standing.ACTIVE, Standing.LOCKED],
        target=Standing.FROZEN,
        permission="accounts.freeze_balanceaccount",
        custom={"label": _("Freeze (authority order)"), "form": FreezeForm},
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
        target=RETURN_VALUE(Standing.ACTIVE, Standing.LOCKED),
        permission="accounts.freeze_balanceaccount",
        custom={"label": _("Unfreeze")},
    )
    def unfreeze(self):
        self._changed()
        return Standing.LOCKED if account_held(self) else Standing.ACTIVE

    @transition(
        standing,
        source=[Standing.ACTIVE, Standing.SUSPENDED, Standing.LOCKED, Standing.FROZEN],
        target=Standing.TERMINATED,
        permission="accounts.terminate_balanceaccount",
        custom={"label": _("Terminate")},
    )
    def terminate(self):
        self._changed()


class ApiKeyState(models.TextChoices):
    ACTIVE = "active", _("Active")
    LOCKED = "locked", _("Locked by the platform")
    REVOKED = "revoked", _("Revoked by the user")


class ApiKey(ConcurrentTransitionMixin, models.Model):
    """A key the model gateway sees on each call (R-ACC-6).

    The secret is shown once at creation; only its SHA-256 is stored. The
    prefix stays visible so users and staff can tell keys apart.
    """

    account = models.ForeignKey(
        BalanceAccount, on_delete=models.PROTECT, related_name="api_keys", verbose_name=_("account")
    )
    name = models.CharField(max_length=100, verbose_name=_("name"))
    prefix = models.CharField(max_length=16, unique=True, verbose_name=_("prefix"))
    secret_hash = models.CharField(max_length=64, unique=True, verbose_name=_("secret hash"))
    state = FSMField(
        default=ApiKeyState.ACTIVE,
        choices=ApiKeyState.choices,
        protected=True,
        verbose_name=_("state"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    last_used_at = models.DateTimeField(null=True, blank=True, verbose_name=_("last used at"))

    class Meta:
        verbose_name = _("api key")
        verbose_name_plural = _("api keys")
        ordering = ["-created_at"]
        permissions = [("lock_apikey", gettext_noop("Can lock or unlock an API key"))]

    def __str__(self):
        return f"{self.prefix}… ({self.name})"

    @transition(
        state,
        source=ApiKeyState.ACTIVE,
        target=ApiKeyState.LOCKED,
        permission="accounts.lock_apikey",
        custom={"label": _("Lock")},
    )
    def lock(self):
        pass

    @transition(
        state,
        source=ApiKeyState.LOCKED,
        target=ApiKeyState.ACTIVE,
        permission="accounts.lock_apikey",
        conditions=[_key_not_held],
        custom={"label": _("Unlock")},
    )
    def unlock(self):
        pass

    @transition(
        state,
        source=[ApiKeyState.ACTIVE, ApiKeyState.LOCKED],
        target=ApiKeyState.REVOKED,
        permission=lambda key, user: user.pk == key.account.user_id,
        custom={"admin": False, "label": _("Revoke")},
    )
    def revoke(self):
        pass


# ---------------------------------------------------------------- real-name verification
class VerificationState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    SUBMITTED = "submitted", _("Submitted (awaiting review)")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    REVOKED = "revoked", _("Revoked")


class VerificationKind(models.TextChoices):
    INDIVIDUAL = "individual", _("Individual")
    ENTERPRISE = "enterprise", _("Enterprise")


class RejectForm(ReasonForm):
    """The reason is what the user reads in the rejection notice."""


def _is_owner(verification, user):
    return user.pk == verification.user_id


class Verification(ConcurrentTransitionMixin, models.Model):
    """One real-name verification submission of a user (R-ACC-2).

    A rejected submission stays as it is; the user resubmits with a new row.
    Names, numbers and documents are encrypted at rest (R-ACC-5); the keyed
    `identity_hash` lets identities be counted without the number (R-ACC-4).
    """

    user = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="verifications", verbose_name=_("user")
    )
    kind = models.CharField(max_length=16, choices=VerificationKind.choices, verbose_name=_("kind"))
    state = FSMField(
        default=VerificationState.DRAFT,
        choices=VerificationState.choices,
        protected=True,
        verbose_name=_("state"),
    )
    # Individual
    legal_name = EncryptedTextField(blank=True, verbose_name=_("legal name"))
    id_number = EncryptedTextField(blank=True, verbose_name=_("id number"))
    birth_date = EncryptedDateField(null=True, blank=True, verbose_name=_("birth date"))
    phone = EncryptedPhoneField(max_length=20, blank=True, verbose_name=_("phone"))
    phone_digest = models.CharField(
        max_length=64, blank=True, db_index=True, editable=False, verbose_name=_("phone digest")
    )
    # Enterprise
    company_name = EncryptedTextField(blank=True, verbose_name=_("company name"))
    credit_code = EncryptedTextField(blank=True, verbose_name=_("credit code"))
    legal_representative = EncryptedTextField(blank=True, verbose_name=_("legal representative"))
    licence_file = models.FileField(
        storage=private_storage,
        upload_to=licence_upload_to,
        blank=True,
        max_length=200,
        verbose_name=_("licence file"),
    )
    licence_content_type = models.CharField(
        max_length=40, blank=True, verbose_name=_("licence content type")
    )
    check_digit_warning = models.BooleanField(
        default=False,
        help_text=_("The credit code fails the GB 32100 check character: review it by hand."),
        verbose_name=_("check digit warning"),
    )
    identity_hash = IdentityHashField(db_index=True, verbose_name=_("identity hash"))
    # Review
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))
    submitted_at = models.DateTimeField(
        null=True, blank=True, db_index=True, verbose_name=_("submitted at")
    )
    reviewed_at = models.DateTimeField(null=True, blank=True, verbose_name=_("reviewed at"))
    reviewed_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("reviewed by"),
    )
    rejection_reason = models.TextField(blank=True, verbose_name=_("rejection reason"))
    # R-ACC-3: the 16-18 own-income exception, recorded by staff with evidence.
    capacity_exception_at = models.DateTimeField(
        null=True, blank=True, verbose_name=_("capacity exception at")
    )
    capacity_exception_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("capacity exception by"),
    )
    capacity_exception_note = models.TextField(
        blank=True, verbose_name=_("capacity exception note")
    )
    capacity_evidence_file = models.FileField(
        storage=private_storage,
        upload_to=evidence_upload_to,
        blank=True,
        max_length=200,
        verbose_name=_("capacity evidence file"),
    )
    capacity_evidence_content_type = models.CharField(
        max_length=40, blank=True, verbose_name=_("capacity evidence content type")
    )

    class Meta:
        verbose_name = _("verification")
        verbose_name_plural = _("verifications")
        ordering = ["-created_at", "-id"]
        permissions = [
            ("review_verification", gettext_noop("Can approve or reject a real-name verification")),
            ("revoke_verification", gettext_noop("Can revoke an approved real-name verification")),
            (
                "view_identity_document",
                gettext_noop("Can see ID numbers, names and documents in full"),
            ),
            (
                "record_capacity_exception",
                gettext_noop("Can record the 16-18 own-income capacity exception"),
            ),
        ]
        indexes = [models.Index(fields=["state", "submitted_at"])]

    def __str__(self):
        return _("%(kind)s verification #%(id)s of %(user)s") % {
            "kind": self.get_kind_display(),
            "id": self.pk,
            "user": self.user,
        }

    # Masked views: the only form pages and admin lists ever show (R-ACC-5).
    @property
    def is_individual(self):
        return self.kind == VerificationKind.INDIVIDUAL

    @property
    def masked_number(self):
        # An enterprise's credit code and name are public registry data, which CS need
        # whole for the GB 32100 check; only an individual's are personal (R-ACC-5).
        return mask_number(self.id_number) if self.is_individual else self.credit_code

    @property
    def masked_name(self):
        return mask_name(self.legal_name) if self.is_individual else self.company_name

    @property
    def masked_representative(self):
        return mask_name(self.legal_representative)

    @property
    def has_capacity_exception(self):
        return self.capacity_exception_at is not None

    @transition(
        state,
        source=VerificationState.DRAFT,
        target=VerificationState.SUBMITTED,
        permission=_is_owner,
        custom={"admin": False, "label": _("Submit")},
    )
    def submit(self):
        self.submitted_at = timezone.now()

    @transition(
        state,
        source=VerificationState.SUBMITTED,
        target=VerificationState.APPROVED,
        permission="accounts.review_verification",
        custom={"label": _("Approve")},
    )
    def approve(self, reviewer=None):
        self.reviewed_at = timezone.now()
        self.reviewed_by = reviewer

    @transition(
        state,
        source=VerificationState.SUBMITTED,
        target=VerificationState.REJECTED,
        permission="accounts.review_verification",
        custom={"label": _("Reject"), "form": RejectForm},
    )
    def reject(self, reviewer=None, rejection_reason=""):
        if not rejection_reason.strip():
            raise ValidationError("A rejection needs a reason the user can act on.")
        self.reviewed_at = timezone.now()
        self.reviewed_by = reviewer
        self.rejection_reason = rejection_reason.strip()

    @transition(
        state,
        source=VerificationState.APPROVED,
        target=VerificationState.REVOKED,
        permission="accounts.revoke_verification",
        custom={"label": _("Revoke")},
    )
    def revoke(self, reviewer=None):
        self.reviewed_at = timezone.now()
        self.reviewed_by = reviewer


# ---------------------------------------------------------------- agreement versions
class AgreementState(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")


def effective_in_future(version):
    return version.effective_at is not None and version.effective_at > timezone.now()


class AgreementVersion(ConcurrentTransitionMixin, models.Model):
    """A version of the service agreement (R-ACC-7).

    Published with an effective date announced in advance; the version in force
    at an instant is the latest published one whose date has come.
    """

    version = models.CharField(
        max_length=20, unique=True, help_text=_("e.g. 2026.1"), verbose_name=_("version")
    )
    title = models.CharField(max_length=200, verbose_name=_("title"))
    body = models.TextField(verbose_name=_("body"))
    effective_at = models.DateTimeField(
        help_text=_("Must be in the future when published."), verbose_name=_("effective at")
    )
    state = FSMField(
        default=AgreementState.DRAFT,
        choices=AgreementState.choices,
        protected=True,
        verbose_name=_("state"),
    )
    published_at = models.DateTimeField(null=True, blank=True, verbose_name=_("published at"))
    published_by = models.ForeignKey(
        User,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("published by"),
    )
    created_at = models.DateTimeField(auto_now_add=True, verbose_name=_("created at"))

    class Meta:
        verbose_name = _("agreement version")
        verbose_name_plural = _("agreement versions")
        ordering = ["-effective_at", "-id"]
        permissions = [
            ("publish_agreementversion", gettext_noop("Can publish an agreement version"))
        ]
        indexes = [models.Index(fields=["state", "effective_at"])]

    def __str__(self):
        return f"{self.version} — {self.title}"

    @property
    def is_published(self):
        return self.state == AgreementState.PUBLISHED

    @transition(
        state,
        source=AgreementState.DRAFT,
        target=AgreementState.PUBLISHED,
        permission="accounts.publish_agreementversion",
        conditions=[effective_in_future],
        custom={"label": _("Publish (announce to every user)")},
    )
    def publish(self, publisher=None):
        self.published_at = timezone.now()
        self.published_by = publisher


class AgreementAcceptance(models.Model):
    """A user's acceptance of one agreement version: who, which, when, from where (R-ACC-7)."""

    user = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="agreement_acceptances", verbose_name=_("user")
    )
    version = models.ForeignKey(
        AgreementVersion,
        on_delete=models.PROTECT,
        related_name="acceptances",
        verbose_name=_("version"),
    )
    accepted_at = models.DateTimeField(default=timezone.now, verbose_name=_("accepted at"))
    ip = models.GenericIPAddressField(null=True, blank=True, verbose_name=_("ip"))

    class Meta:
        verbose_name = _("agreement acceptance")
        verbose_name_plural = _("agreement acceptances")
        ordering = ["-accepted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "version"], name="one_acceptance_per_version")
        ]

    def __str__(self):
        return _("%(user)s accepted %(version)s") % {
            "user": self.user,
            "version": self.version.version,
        }
