"""Least privilege per staff group for the accounts area (R-ADM-1).

- CS agents review verifications (masked data only) and may record the
  16-18 own-income exception.
- Risk officers lock API keys and accounts, revoke verifications, publish
  agreement versions, and alone may see identity data in full (audited).
- The auditor gets every view permission automatically (core.staff).
"""

STAFF_PERMISSIONS = {
    "cs_agent": [
        "accounts.view_user",
        "accounts.view_balanceaccount",
        "accounts.suspend_balanceaccount",
        "accounts.view_verification",
        "accounts.review_verification",
        "accounts.record_capacity_exception",
        "accounts.view_apikey",
        "accounts.view_agreementversion",
        "accounts.view_agreementacceptance",
        "core.view_auditrecord",
    ],
    "finance_approver": [
        "accounts.view_user",
        "accounts.view_balanceaccount",
        "accounts.view_verification",
        "accounts.view_agreementacceptance",
        "core.view_auditrecord",
    ],
    "risk_officer": [
        "accounts.view_user",
        "accounts.view_balanceaccount",
        "accounts.suspend_balanceaccount",
        "accounts.lock_balanceaccount",
        "accounts.freeze_balanceaccount",
        "accounts.terminate_balanceaccount",
        "accounts.view_verification",
        "accounts.revoke_verification",
        "accounts.view_identity_document",
        "accounts.view_apikey",
        "accounts.lock_apikey",
        "accounts.view_agreementversion",
        "accounts.add_agreementversion",
        "accounts.change_agreementversion",
        "accounts.publish_agreementversion",
        "accounts.view_agreementacceptance",
        "core.view_auditrecord",
    ],
}
