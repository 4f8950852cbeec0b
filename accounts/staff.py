STAFF_PERMISSIONS = {
    "cs_agent": [
        "accounts.view_user",
        "accounts.view_balanceaccount",
        "accounts.suspend_balanceaccount",
        "core.view_auditrecord",
    ],
    "finance_approver": [
        "accounts.view_user",
        "accounts.view_balanceaccount",
        "core.view_auditrecord",
    ],
    "risk_officer": [
        "accounts.view_user",
        "accounts.view_balanceaccount",
        "accounts.suspend_balanceaccount",
        "accounts.lock_balanceaccount",
        "accounts.freeze_balanceaccount",
        "accounts.terminate_balanceaccount",
        "core.view_auditrecord",
    ],
}
