import pytest
from django.core.exceptions import PermissionDenied

from accounts.models import BalanceAccount, Standing, User
from accounts.services import change_standing, register_user
from accounts.standing import Action
from core.models import AuditRecord
from core.workflow import WorkflowError

from .factories import StaffFactory, UserFactory, grant

pytestmark = pytest.mark.django_db


def test_every_user_gets_exactly_one_balance_account():
    """R-ACC-1: the balance account is opened automatically with the user."""
    user = register_user(email="New@Example.com", password="Pa55word!x")
    assert user.email == "new@example.com"
    assert BalanceAccount.objects.filter(user=user).count() == 1
    assert user.balance_account.standing == Standing.ACTIVE
    superuser = User.objects.create_superuser("root@example.com", "Pa55word!x")
    assert BalanceAccount.objects.filter(user=superuser).count() == 1
    # opening it again (staff adding a user in the admin, say) never makes a second one
    from accounts.services import open_balance_account

    assert open_balance_account(user) == user.balance_account
    assert BalanceAccount.objects.filter(user=user).count() == 1


def test_balance_account_rolls_back_with_the_user(monkeypatch):
    """R-ACC-1: user and balance account land in one transaction or not at all."""
    from accounts.models import BalanceAccountManager

    def boom(self, user):
        raise RuntimeError("disk full")

    monkeypatch.setattr(BalanceAccountManager, "open_for", boom)
    with pytest.raises(RuntimeError):
        register_user(email="half@example.com", password="Pa55word!x")
    assert not User.objects.filter(email="half@example.com").exists()


@pytest.mark.parametrize(
    ("path", "final", "consume", "top_up", "refund", "invoice"),
    [
        (["suspend"], Standing.SUSPENDED, False, True, True, False),
        (["lock"], Standing.LOCKED, False, True, False, False),
        (["freeze"], Standing.FROZEN, False, False, False, False),
        (["terminate"], Standing.TERMINATED, False, False, False, False),
        (["suspend", "reinstate"], Standing.ACTIVE, True, True, True, True),
        (["lock", "unlock"], Standing.ACTIVE, True, True, True, True),
        (["freeze", "unfreeze"], Standing.ACTIVE, True, True, True, True),
    ],
)
def test_standing_workflow_and_what_it_allows(path, final, consume, top_up, refund, invoice):
    """R-ACC-8: standing transitions and what each standing allows."""
    staff = grant(
        StaffFactory(),
        "accounts.suspend_balanceaccount",
        "accounts.lock_balanceaccount",
        "accounts.freeze_balanceaccount",
        "accounts.terminate_balanceaccount",
    )
    account = UserFactory().balance_account
    for name in path:
        extra = {"authority": "Court X", "document_number": "(2026)001"} if name == "freeze" else {}
        account = change_standing(account, name, actor=staff, reason="case 1", **extra)
    account.refresh_from_db()
    assert account.standing == final
    assert account.may(Action.CONSUME) is consume
    assert account.may(Action.TOP_UP) is top_up
    assert account.may(Action.REQUEST_REFUND) is refund
    assert account.may(Action.REQUEST_INVOICE) is invoice
    assert account.may(Action.CREATE_KEY) is consume
    history = list(AuditRecord.objects.filter(object_id=str(account.pk)).order_by("id"))
    assert [h.action for h in history] == path
    assert all(h.actor_id == staff.pk and h.reason == "case 1" for h in history)


def test_standing_transition_needs_its_permission():
    """R-ACC-8 / R-ADM-1: staff without the permission change nothing."""
    staff = grant(StaffFactory(), "accounts.lock_balanceaccount")
    account = UserFactory().balance_account
    with pytest.raises(PermissionDenied):
        change_standing(account, "suspend", actor=staff, reason="no right")
    account.refresh_from_db()
    assert account.standing == Standing.ACTIVE
    assert not AuditRecord.objects.exists()


def test_standing_transition_from_wrong_state_is_refused():
    """R-ACC-8: terminated is final; unlocking an active account is refused."""
    account = UserFactory().balance_account
    with pytest.raises(WorkflowError):
        change_standing(account, "unlock", reason="not locked")
    change_standing(account, "terminate", reason="closed")
    with pytest.raises(WorkflowError):
        change_standing(account, "reinstate", reason="too late")
    account.refresh_from_db()
    assert account.standing == Standing.TERMINATED


def test_freeze_records_authority_and_document():
    """R-ACC-8: a freeze needs the authority and its document number."""
    from django.core.exceptions import ValidationError

    account = UserFactory().balance_account
    with pytest.raises(ValidationError):
        change_standing(account, "freeze", reason="order", authority="", document_number="")
    account.refresh_from_db()
    assert account.standing == Standing.ACTIVE
    change_standing(account, "freeze", reason="order", authority="Court", document_number="D-1")
    account.refresh_from_db()
    assert (account.standing, account.freeze_authority) == (Standing.FROZEN, "Court")
