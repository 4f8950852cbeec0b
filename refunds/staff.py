"""Least privilege per staff group for refunds (R-ADM-1).

- CS agents file requests for users, take them for review, reject or cancel them,
  and open proof files (each view audited).
- Finance approvers approve (never a request they reviewed or filed: four eyes,
  enforced by the service), reject, and pay out: start, record a bank transfer, retry.
- The auditor gets every view permission automatically (core.staff), not the proofs.
"""

_VIEW = [
    "refunds.view_refundrequest",
    "refunds.view_refundline",
    "refunds.view_refundproof",
    "refunds.view_payoutattempt",
    "billing.view_lot",
    "core.view_auditrecord",
]

STAFF_PERMISSIONS = {
    "cs_agent": [
        *_VIEW,
        "refunds.file_refundrequest",
        "refunds.review_refundrequest",
        "refunds.reject_refundrequest",
        "refunds.cancel_refundrequest",
        "refunds.view_refund_proof",
    ],
    "finance_approver": [
        *_VIEW,
        "refunds.approve_refundrequest",
        "refunds.reject_refundrequest",
        "refunds.pay_refundrequest",
        "refunds.view_refund_proof",
    ],
    "auditor": list(_VIEW),
}
