"""What several account services share."""

from django.utils.translation import gettext as _

from core.workflow import WorkflowError


def refuse_own_case(user_id, actor, what):
    """R-ADM-4: staff never decide a case of their own (verification, grant, refund).

    `user_id` is the case's beneficiary; `actor` None is the system. Raised as a
    WorkflowError, like any refusal staff read in the admin.
    """
    if actor is not None and getattr(actor, "pk", None) == user_id:
        raise WorkflowError(
            _("This case is about your own account: another staff member must %(what)s.")
            % {"what": _(what)},
            code="own_case",
        )
