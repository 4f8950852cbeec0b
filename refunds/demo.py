"""Demo refund: CS filed a refund for the demo user (asked by email) and took it for
review, so a finance approver can approve and pay it in the admin (Refunds › Refund
requests). Runs after every app's `seed`, when the demo user has paid top-ups."""

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

DEMO_PROOF = b"%PDF-1.4\n% demo refund proof: the user's written request\n%%EOF\n"


def seed_activity(context):
    from .models import RefundRequest
    from .services.decisions import take_for_review
    from .services.filing import submit_refund

    users = context.get("users", {})
    user, cs = users.get("user"), users.get("CS agent")
    if user is None or cs is None:
        return
    if RefundRequest.objects.filter(account__user=user).exists():
        return
    try:
        refund = submit_refund(
            user,
            amount="30.00",
            reason="Demo: the user asked by email to have part of a top-up back.",
            filed_by=cs,
            asked_via="email",
            proofs=[SimpleUploadedFile("request.pdf", DEMO_PROOF, content_type="application/pdf")],
        )
    except ValidationError as exc:
        context["notes"].append(f"Refunds: no demo refund ({'; '.join(exc.messages)})")
        return
    take_for_review(refund, actor=cs, reason="demo: proof attached")
    context["notes"].append(
        f"Refunds: request #{refund.pk} (30.00 CNY of {user.email}) is under review by "
        "cs@demo.local; finance@demo.local approves and pays it in admin → Refund requests."
    )
