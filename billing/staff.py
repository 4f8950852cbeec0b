"""What each staff group may see and do in the ledger (R-ADM-1)."""

_READ = [
    "billing.view_lot",
    "billing.view_grant",
    "billing.view_usageevent",
    "billing.view_ledgertransaction",
    "billing.view_ledgeraccount",
    "billing.view_posting",
]

STAFF_PERMISSIONS = {
    "cs_agent": _READ,
    # settling pending usage now moves no money of its own; crediting back an event does
    "finance_approver": [
        *_READ,
        "billing.reconcile_ledger",
        "billing.settle_usage",
        "billing.credit_back_usage",
    ],
    "risk_officer": [*_READ, "billing.void_grant"],
}
