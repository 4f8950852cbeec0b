"""Billing services, one module per area (billing/README.md, "Layout"):
`authorization` (key resolution and who may consume), `metering` (recording usage
events), `settlement` (settling them: the settler, `lock_and_settle`, `charge_usage`,
low-balance notices), `deduction` (the deduction order, planning only), `purchases`
(prepaid packages), `ledger` (lots, grants, expiry, reversals), `refund_holds`,
`dispute_funds` and `payables` (the refund and dispute movements), `usage_credits`
(crediting back one event), `grant_notices`, `reconcile` (cache == ledger), and
`engine`: the lock order and the one writer of the books (only it inserts ledger
transactions and postings or moves a cached balance)."""
