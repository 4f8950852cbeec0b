"""The one way to run a workflow transition (R-ADM-1, R-ADM-2): each FSM model's map
names the service of every transition; the admin reads it; refusals reach staff as
messages; jobs move many cases with the same audit rows as a single transition."""

import datetime

import pytest
from django.apps import apps
from django.contrib.messages import get_messages
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from django_fsm import FSMFieldMixin

from accounts.models import BalanceAccount
from core.models import AuditRecord
from core.workflow import (
    WorkflowError,
    apply_bulk_transition,
    apply_transition,
    perform_transition,
    transition_map,
    transition_services,
)
from tests.factories import StaffFactory, UserFactory, grant

pytestmark = pytest.mark.django_db


def _fsm_models():
    from core.staff import local_app_labels

    labels = local_app_labels()
    for model in apps.get_models():
        if model._meta.app_label in labels and any(
            isinstance(f, FSMFieldMixin) for f in model._meta.fields
        ):
            yield model


def _staff_transitions(model):
    """Names of the transitions staff can see as admin buttons."""
    names = set()
    for field in model._meta.fields:
        if isinstance(field, FSMFieldMixin):
            for transition in field.get_all_transitions(model):
                if transition.custom.get("admin", True):
                    names.add(transition.name)
    return names


def test_every_staff_transition_has_exactly_one_service():
    """R-ADM-1: every transition staff can press is performed by a service its model's
    map names, and every name in a map is a real transition of that model."""
    missing, unknown = [], []
    for model in _fsm_models():
        services = transition_services(model)
        staff = _staff_transitions(model)
        missing += [f"{model._meta.label}.{n}" for n in sorted(staff - set(services))]
        every = {
            t.name
            for f in model._meta.fields
            if isinstance(f, FSMFieldMixin)
            for t in f.get_all_transitions(model)
        }
        unknown += [f"{model._meta.label}.{n}" for n in sorted(set(services) - every)]
    assert not missing, f"transitions without a service: {missing}"
    assert not unknown, f"map entries that are no transition: {unknown}"


def test_a_model_has_one_map():
    """A second, different map for a model is refused (one map per model)."""
    with pytest.raises(ValueError, match="already has a transition map"):
        transition_map(BalanceAccount, {"suspend": lambda *a, **k: None})


def test_an_unknown_transition_is_a_workflow_error():
    """Bad input: a name no map holds is refused like a wrong state, changing nothing."""
    account = UserFactory().balance_account
    with pytest.raises(WorkflowError) as exc:
        perform_transition(account, "delete_everything", reason="x")
    assert exc.value.code == "unknown_transition"
    assert not AuditRecord.objects.exists()


@pytest.fixture
def cs(db):
    return grant(
        StaffFactory(),
        "accounts.view_balanceaccount",
        "accounts.suspend_balanceaccount",
        "core.view_auditrecord",
    )


def _messages(response):
    """The messages staff see: on the page itself (the form shown again) or queued for
    the page a redirect leads to."""
    if response.status_code == 200:
        return [response.content.decode()]
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_admin_refusals_are_messages_not_errors(client, cs):
    """R-ADM-1: wrong state, missing permission and unknown transition each come back
    to staff as a message on a redirect, never a server error; nothing changes."""
    account = UserFactory().balance_account
    client.force_login(cs)
    base = f"/admin/accounts/balanceaccount/{account.pk}/transition"

    wrong_state = client.post(f"{base}/reinstate/", {"reason": "not suspended"})
    assert wrong_state.status_code in (200, 302)
    assert any("is not possible now" in m for m in _messages(wrong_state)), _messages(wrong_state)

    no_permission = client.post(
        f"{base}/freeze/", {"reason": "x", "authority": "Court", "document_number": "1"}
    )
    assert no_permission.status_code in (200, 302)
    assert any("needs a" in m or "may not" in m for m in _messages(no_permission)), _messages(
        no_permission
    )

    unknown = client.post(f"{base}/vanish/", {"reason": "x"})
    assert unknown.status_code == 302
    assert any("has no step" in m or "no transition" in m for m in _messages(unknown)), _messages(
        unknown
    )

    not_a_transition = client.post(f"{base}/save/", {"reason": "x"})
    assert not_a_transition.status_code == 302

    account.refresh_from_db()
    assert account.standing == "active"
    assert not AuditRecord.objects.filter(object_id=str(account.pk)).exists()


def test_admin_shows_the_services_refusal(client, cs, monkeypatch):
    """R-ADM-1: a rule the service enforces (four eyes, say) reaches staff as a message."""
    from django.core.exceptions import ValidationError

    import accounts.services.standing

    def refuse(*args, **kwargs):
        raise ValidationError("A second person must approve this.", code="four_eyes")

    monkeypatch.setattr(accounts.services.standing, "change_standing", refuse)
    account = UserFactory().balance_account
    client.force_login(cs)
    response = client.post(
        f"/admin/accounts/balanceaccount/{account.pk}/transition/suspend/", {"reason": "spam"}
    )
    assert response.status_code in (200, 302)
    assert any("A second person must approve this." in m for m in _messages(response))
    account.refresh_from_db()
    assert account.standing == "active"


def _topups(user, n, *, expired=True):
    from topups.models import TopUp

    now = timezone.now()
    return [
        TopUp.objects.create(
            account=user.balance_account,
            amount="10.00",
            channel="alipay",
            expires_at=now - datetime.timedelta(minutes=1) if expired else now,
        )
        for _ in range(n)
    ]


def test_bulk_transition_writes_the_same_audit_rows_as_one(clock):
    """R-ADM-2: a job moving many cases at once leaves, for each, the audit row a
    single transition leaves (action, from, to, who, why); other states are skipped."""
    from topups.models import TopUp, TopUpState

    user = UserFactory()
    single, *many = _topups(user, 4)
    apply_transition(single, "expire", reason="unpaid after the payment window")
    moved = apply_bulk_transition(
        TopUp,
        [t.pk for t in many] + [single.pk],
        "expire",
        reason="unpaid after the payment window",
        values={"closed_at": clock},
    )
    assert sorted(moved) == sorted(t.pk for t in many)  # the one already expired is skipped
    assert set(TopUp.objects.values_list("state", flat=True)) == {TopUpState.EXPIRED}
    rows = AuditRecord.objects.filter(action="expire").order_by("id")
    shape = {(r.action, r.from_state, r.to_state, r.actor_id, r.reason) for r in rows}
    assert shape == {("expire", "created", "expired", None, "unpaid after the payment window")}
    assert sorted(int(r.object_id) for r in rows) == sorted(t.pk for t in [single, *many])
    assert all(t.closed_at == clock for t in TopUp.objects.filter(pk__in=moved))


def test_bulk_transition_refusals_change_nothing():
    """Bad input: an unknown transition, a transition with conditions, and a human
    without the permission are refused before any row moves."""
    from accounts.models import AgreementVersion
    from topups.models import TopUp

    (topup,) = _topups(UserFactory(), 1)
    with pytest.raises(WorkflowError):
        apply_bulk_transition(TopUp, [topup.pk], "no_such_transition")
    with pytest.raises(WorkflowError):
        apply_bulk_transition(AgreementVersion, [1], "publish")  # has a condition
    with pytest.raises(PermissionDenied):
        apply_bulk_transition(TopUp, [topup.pk], "expire", actor=StaffFactory())
    topup.refresh_from_db()
    assert topup.state == "created"
    assert not AuditRecord.objects.exists()
