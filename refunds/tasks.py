"""Celery tasks of refunds: one Alipay refund per line, with retries and back-off.

Queued on commit by refunds.services.payouts; the body is the service
`send_alipay_refund`. When the retries run out the line stays "unknown" and the job
`settle_refund_payouts` (refunds/jobs.py) settles it by querying Alipay.
"""

from celery import shared_task

MAX_RETRIES = 6


@shared_task(
    bind=True, name="refunds.pay_out_alipay_line", ignore_result=True, max_retries=MAX_RETRIES
)
def pay_out_alipay_line(self, line_id):
    from topups.alipay_payouts import TRADE_SPACING

    from .services.payouts import send_alipay_refund

    outcome = send_alipay_refund(line_id)
    if outcome == "done" or self.request.retries >= MAX_RETRIES:
        return outcome
    if outcome == "wait":
        raise self.retry(countdown=TRADE_SPACING.total_seconds())
    # unknown outcome: back off 15 s, 30 s, 60 s … (at most 15 minutes)
    raise self.retry(countdown=min(900, 15 * 2**self.request.retries))
