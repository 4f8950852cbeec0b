"""The contract name for the job decorator: `from ops.jobs import job`.

Jobs live in each app's own `jobs.py` (billing/jobs.py holds grant expiry and
the nightly reconciliation), autodiscovered by the ops app.
"""

from .framework import job

__all__ = ["job"]
