from django.contrib.auth.models import Group

from .models import User

DEMO_PASSWORD = "demo-pass-2026"

DEMO_USERS = [
    ("user", "user@demo.local", None),
    ("CS agent", "cs@demo.local", "CS agent"),
    ("finance approver", "finance@demo.local", "Finance approver"),
    ("finance approver 2", "finance2@demo.local", "Finance approver"),
    ("risk officer", "risk@demo.local", "Risk officer"),
    ("auditor", "auditor@demo.local", "Auditor"),
]


def seed(context):
    for role, email, group in DEMO_USERS:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(
                email=email, password=DEMO_PASSWORD, is_staff=group is not None
            )
        if group:
            user.groups.add(Group.objects.get(name=group))
        context["logins"].append((role, email, DEMO_PASSWORD))
        context.setdefault("users", {})[role] = user
    admin = User.objects.filter(email="admin@demo.local").first() or User.objects.create_superuser(
        "admin@demo.local", DEMO_PASSWORD
    )
    context["logins"].append(("superuser", admin.email, DEMO_PASSWORD))
