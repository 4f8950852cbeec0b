from datetime import date, timedelta

from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from . import selectors, services
from .agreement_text import DEMO_AGREEMENT_BODY, DEMO_AGREEMENT_TITLE
from .identity import make_credit_code, make_resident_id
from .models import (
    AgreementState,
    AgreementVersion,
    User,
    Verification,
    VerificationKind,
    VerificationState,
)

DEMO_PASSWORD = "demo-pass-2026"

DEMO_USERS = [
    ("user", "user@demo.local", None),
    ("applicant", "applicant@demo.local", None),
    ("enterprise applicant", "company@demo.local", None),
    ("CS agent", "cs@demo.local", "CS agent"),
    ("finance approver", "finance@demo.local", "Finance approver"),
    ("finance approver 2", "finance2@demo.local", "Finance approver"),
    ("risk officer", "risk@demo.local", "Risk officer"),
    ("auditor", "auditor@demo.local", "Auditor"),
]

# A tiny but real PDF header: enough for the upload check (magic bytes).
DEMO_LICENCE_PDF = b"%PDF-1.4\n% demo business licence\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def seed(context):
    for role, email, group in DEMO_USERS:
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(
                email=email,
                password=DEMO_PASSWORD,
                is_staff=group is not None,
                phone="13800138000" if role == "user" else "",
            )
        if group:
            user.groups.add(Group.objects.get(name=group))
        context["logins"].append((role, email, DEMO_PASSWORD))
        context.setdefault("users", {})[role] = user
    admin = User.objects.filter(email="admin@demo.local").first() or User.objects.create_superuser(
        "admin@demo.local", DEMO_PASSWORD
    )
    context["logins"].append(("superuser", admin.email, DEMO_PASSWORD))
    users = context["users"]
    _seed_agreement(users["user"], context)
    _seed_verifications(users, context)
    _seed_api_key(users["user"], context)


def _seed_agreement(user, context):
    now = timezone.now()
    # The version in force is seeded as history (published a month ago); new
    # versions go through the publish button, which needs a future date.
    in_force = AgreementVersion.objects.filter(version="2026.1").first()
    if in_force is None:
        in_force = AgreementVersion.objects.create(
            version="2026.1",
            title=DEMO_AGREEMENT_TITLE,
            body=DEMO_AGREEMENT_BODY,
            effective_at=now - timedelta(days=30),
            state=AgreementState.PUBLISHED,
            published_at=now - timedelta(days=45),
        )
    # Staff may have published newer versions since the last run: the demo user accepts
    # whichever version is in force now (accepting a superseded one is refused).
    current = selectors.agreement_in_force() or in_force
    if selectors.current_acceptance(user) is None:
        services.accept_agreement(user, current, ip="127.0.0.1")
    if not AgreementVersion.objects.filter(version="2026.2").exists():
        AgreementVersion.objects.create(
            version="2026.2",
            title=DEMO_AGREEMENT_TITLE,
            body=DEMO_AGREEMENT_BODY
            + "\n12. Contact\nQuestions about these terms go to customer service.\n",
            effective_at=now + timedelta(days=30),
        )
        context["notes"].append(
            "Agreement 2026.2 is a draft: a risk officer can publish it in admin."
        )


def _seed_verifications(users, context):
    user = users["user"]
    if selectors.approved_verification(user) is None:
        verification = selectors.latest_verification(user)
        if verification is None or verification.state != VerificationState.SUBMITTED:
            verification = services.submit_verification(
                user,
                kind=VerificationKind.INDIVIDUAL,
                legal_name="Li Ming",
                id_number=make_resident_id(date(1990, 5, 17), sequence=123),
                phone=user.phone or "13800138000",
            )
        # approved by the top-ups demo, which also grants the trial funds (R-TOP-5)
        context["verification_to_approve"] = verification
    applicant = users["applicant"]
    if not Verification.objects.filter(user=applicant).exists():
        services.submit_verification(
            applicant,
            kind=VerificationKind.INDIVIDUAL,
            legal_name="Wang Fang",
            id_number=make_resident_id(date(1985, 11, 2), region="310104", sequence=246),
            phone="13900139000",
        )
    company = users["enterprise applicant"]
    if not Verification.objects.filter(user=company).exists():
        code = make_credit_code("91310115MA1K4DEM0")
        # Flip the check character so the queue shows a code flagged for manual review.
        bad = code[:17] + ("1" if code[17] != "1" else "2")
        services.submit_verification(
            company,
            kind=VerificationKind.ENTERPRISE,
            company_name="Demo Model Labs Co., Ltd.",
            credit_code=bad,
            legal_representative="Zhao Lei",
            phone="02150000000",
            licence_file=SimpleUploadedFile("licence.pdf", DEMO_LICENCE_PDF, "application/pdf"),
        )
    context["notes"].append(
        "Verification queue: applicant@demo.local (individual) and company@demo.local "
        "(enterprise, credit code flagged) await CS review."
    )


def _seed_api_key(user, context):
    if selectors.api_keys_of(user).exists():
        return
    _key, raw = services.create_api_key(user, name="demo key")
    context["notes"].append(f"Demo API key of user@demo.local (shown once): {raw}")
