"""Dispute services (SPEC §7), one module per write area; each public function is one
transaction.

    opening    open a dispute (locks the account and keys), evidence and proof files
    decisions  accept / reject evidence, withdrawal, debt waived / repaid directly;
               Dispute's transition map
    deadline   the deadline refund, debt collections, escalation, reminders (jobs)
    payouts    paying the rights holder: Alipay refunds of the disputed trade, bank
               transfers finance records

Admin, views and jobs only parse input and call these. Money moves only through
billing.services.dispute_funds (and credit_lot); notices only through send_notice.
"""

from . import deadline, decisions, opening, payouts  # noqa: F401 (registers the map)
