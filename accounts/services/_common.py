"""What several account services share."""

from core.workflow import WorkflowError


def refuse_own_case(user_id, actor, what):
    """R-ADM-4: staff never decide a case of their own (verification, grant, refund).

    `user_id` is the case's beneficiary; `actor` None is the system. Raised as a
    WorkflowError, like any refusal staff read in the admin.
    """
    if actor is not None and getattr(actor, "pk", None) == user_id:
        raise WorkflowError(
            f"You cannot {what} of your own; another staff member must do it.",
            code="own_case",
        )
