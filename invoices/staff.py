"""Least privilege per staff group for invoices (R-ADM-1).

- Finance approvers work the invoice desk: issue (upload and check the tax platform's
  files), reject, reverse (red-letter), download issued files, open title proofs.
- CS agents see the queue and the issued files to answer users; they decide nothing.
- The auditor gets every view permission automatically (core.staff), not the files.
"""

_VIEW = ["invoices.view_invoicerequest", "core.view_auditrecord"]

STAFF_PERMISSIONS = {
    "finance_approver": [
        *_VIEW,
        "invoices.issue_invoicerequest",
        "invoices.reject_invoicerequest",
        "invoices.reverse_invoicerequest",
        "invoices.view_invoice_file",
        "invoices.view_invoice_proof",
    ],
    "cs_agent": [*_VIEW, "invoices.view_invoice_file"],
    "auditor": list(_VIEW),
}
