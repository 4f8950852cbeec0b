"""Least privilege per staff group for disputes (R-ADM-1).

- CS agents open disputes (on a third party's report), record a withdrawal, attach the
  proof of a waiver or direct repayment and record it, and open evidence files.
- Risk officers accept or reject evidence of consent, and open evidence files.
- Finance approvers record bank transfers to rights holders.
- The auditor gets every view permission automatically (core.staff), not the files.
"""

_VIEW = [
    "disputes.view_dispute",
    "disputes.view_disputedebt",
    "disputes.view_disputedtopup",
    "disputes.view_disputefile",
    "disputes.view_rightsholderpayout",
    "disputes.view_debtcollection",
    "core.view_auditrecord",
]

STAFF_PERMISSIONS = {
    "cs_agent": [
        *_VIEW,
        "disputes.open_dispute",
        "disputes.record_dispute_withdrawal",
        "disputes.end_dispute_debt",
        "disputes.view_dispute_file",
    ],
    "risk_officer": [*_VIEW, "disputes.review_dispute_evidence", "disputes.view_dispute_file"],
    "finance_approver": [*_VIEW, "disputes.pay_dispute"],
    "auditor": list(_VIEW),
}
