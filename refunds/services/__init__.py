"""Refund services (SPEC §6), one module per write area; each public function is one
transaction.

    filing     submit a request (the user, or CS for the user), proof files, reading them
    decisions  take for review, approve (four eyes), reject, cancel
    payouts    start a payout, Alipay refunds (task and job), bank transfers, retry;
               RefundRequest's transition map

Admin, views, the Celery task and the job only parse input and call these. Money
moves only through billing.services (refund_holds, ledger); notices only through
send_notice. Alipay payouts run the loop dispute payouts share (topups.alipay_payouts).

Importing this package imports every module, so core's autodiscovery of
`refunds.services` registers RefundRequest's transition map.
"""

from . import decisions, filing, payouts  # noqa: F401 (imported to register the map)
