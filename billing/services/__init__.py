"""Billing services, one module per write area (billing/README.md, "Layout"):
`charging` (usage, single and batch), `purchases` (prepaid packages),
`authorization` (key resolution and who may consume), `ledger` (lots, grants, refund
holds, reversals), `reconcile` (cache == ledger), `engine` (locks and the one writer)."""
