"""Trial funds follow real-name approval, inside the approval's transaction (R-TOP-5)."""


def on_verification_approved(sender, verification=None, **kwargs):
    from .services import award_trial

    if verification is not None:
        award_trial(verification)


def connect():
    from accounts.signals import verification_approved

    verification_approved.connect(
        on_verification_approved, dispatch_uid="topups.award_trial_on_approval"
    )
