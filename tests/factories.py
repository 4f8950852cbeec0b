import factory
from django.contrib.auth.models import Permission

from accounts.models import User

PASSWORD = "Pa55word!x"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    phone = factory.Sequence(lambda n: f"1380000{n:04d}")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        password = kwargs.pop("password", PASSWORD)
        return model_class.objects.create_user(*args, password=password, **kwargs)


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
