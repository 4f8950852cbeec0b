"""Bank statement import (R-TOP-1, bank channel): every row valid, or nothing applied.

Rows go through confirm_remittance, so the four-eyes rules hold here too (R-ADM-4):
a differing amount goes to review, an amount above the four-eyes limit awaits a
second approver, and no one imports money for their own account.
"""

import csv
import io
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from core.money import parse_amount

from ..models import TopUp, TopUpState
from .preconditions import FINANCE_PERM
from .remittances import confirm_remittance


@dataclass
class StatementReport:
    confirmed: list = field(default_factory=list)
    reviewed: list = field(default_factory=list)
    awaiting_approval: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (line number, message)


STATEMENT_COLUMNS = ("reference", "amount", "payer_name", "payer_account", "bank_reference")


def import_bank_statement(text, *, actor):
    """Match statement rows to bank top-ups by remittance reference and confirm them.

    Every row is checked first; any bad row means nothing is applied and the
    report lists them.
    """
    if actor is None or not actor.has_perm(FINANCE_PERM):
        raise PermissionDenied(_("Only finance staff import bank statements."))
    report = StatementReport()
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in STATEMENT_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        report.errors.append((1, f"missing columns: {', '.join(missing)}"))
        return report
    rows = []
    seen = set()
    for line, row in enumerate(reader, start=2):
        ref = (row.get("reference") or "").strip().upper()
        topup = TopUp.objects.filter(remittance_reference=ref).first() if ref else None
        try:
            parse_amount(row.get("amount") or "")
        except ValidationError as exc:
            report.errors.append((line, exc.messages[0]))
            continue
        if topup is None:
            report.errors.append((line, f"no top-up with reference {ref!r}"))
        elif topup.state != TopUpState.CREATED:
            report.errors.append((line, f"{ref} is already {topup.state}"))
        elif ref in seen:
            report.errors.append((line, f"{ref} appears twice"))
        elif not (row.get("bank_reference") or "").strip():
            report.errors.append((line, "bank_reference is empty"))
        else:
            seen.add(ref)
            rows.append((line, topup, row))
    if report.errors:
        return report
    line = 0
    try:
        with transaction.atomic():
            for line, topup, row in rows:  # noqa: B007 (line names the failing row below)
                result = confirm_remittance(
                    topup,
                    actor=actor,
                    received_amount=row["amount"].strip(),
                    payer_name=row.get("payer_name") or "",
                    payer_account=row.get("payer_account") or "",
                    bank_reference=row["bank_reference"].strip(),
                    reason="bank statement import",
                )
                bucket = {
                    TopUpState.PAID: report.confirmed,
                    TopUpState.APPROVAL: report.awaiting_approval,
                }.get(result.state, report.reviewed)
                bucket.append(result.remittance_reference)
    except ValidationError as exc:
        report.errors.append((line, "; ".join(exc.messages)))
        report.confirmed.clear()
        report.reviewed.clear()
        report.awaiting_approval.clear()
    return report
