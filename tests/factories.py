from decimal import Decimal

import factory
from django.contrib.auth.models import Permission
from django.utils import timezone
from djmoney.money import Money

from accounts.models import User

PASSWORD = "Pa55word!x"


def cny(value) -> Money:
    """Money in CNY from a string, int or Decimal (never a float)."""
    return Money(Decimal(str(value)), "CNY")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    phone = factory.Sequence(lambda n: f"1380000{n:04d}")
    # Verified by default, so tests mean what they meant before issue 13; pass
    # email_verified_at=None for a freshly signed-up (unverified) user.
    email_verified_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from accounts.services import register_user

        password = kwargs.pop("password", PASSWORD)
        return register_user(*args, password=password, **kwargs)


class StaffFactory(UserFactory):
    is_staff = True


def grant(user, *perm_codenames):
    """Give a user permissions by 'app_label.codename' and drop the perm cache."""
    for dotted in perm_codenames:
        app_label, codename = dotted.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)
    return user


def agreement_notice(user, version="2026.2", *, key=None):
    """A notice of a registered kind, as an app raises it (subject: "Service agreement
    <version> takes effect on …")."""
    import datetime

    from notices.services import send_notice

    effective_at = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
    return send_notice(
        user=user,
        kind="agreement_published",
        context={"version": version, "title": f"Terms {version}", "effective_at": effective_at},
        dedupe_key=key,
    )
