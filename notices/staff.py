STAFF_PERMISSIONS = {
    "cs_agent": ["notices.view_notice", "notices.change_notice", "notices.view_emailoptout"],
    "finance_approver": ["notices.view_notice"],
    "risk_officer": ["notices.view_notice"],
}
