import pytest
from django.core.management import call_command

from accounts.models import User
from billing.models import Grant, Lot
from topups.models import TopUp

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_twice_and_follows_the_rules(capsys):
    """README run command: demo data loads (idempotently) and obeys the rules it shows.

    R-TOP-5 / R-ACC-4: one trial grant for the demo identity; R-TOP-2: every lot
    comes from a paid top-up.
    """
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    for email in ("user@demo.local", "cs@demo.local", "finance@demo.local", "admin@demo.local"):
        assert email in out
    user = User.objects.get(email="user@demo.local")
    account = user.balance_account
    assert Grant.objects.filter(account=account, kind="trial").count() == 1
    lots = Lot.objects.filter(account=account)
    assert lots.exists()
    assert set(lots.values_list("pk", flat=True)) == set(
        TopUp.objects.filter(account=account, lot__isnull=False).values_list("lot_id", flat=True)
    )


def test_seed_demo_runs_again_after_a_new_agreement_took_effect(capsys):
    """README run command can be stopped and started whatever staff did in between: here
    a newer agreement version was published and has taken effect (R-ACC-7)."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import AgreementAcceptance, AgreementState, AgreementVersion
    from accounts.selectors import agreement_in_force

    call_command("seed_demo")
    AgreementVersion.objects.filter(version="2026.2").update(
        state=AgreementState.PUBLISHED,
        published_at=timezone.now() - timedelta(days=1),
        effective_at=timezone.now() - timedelta(minutes=1),
    )
    assert agreement_in_force().version == "2026.2"
    call_command("seed_demo")  # used to fail: the demo user re-accepted a superseded version
    user = User.objects.get(email="user@demo.local")
    assert AgreementAcceptance.objects.filter(user=user, version__version="2026.2").exists()
