"""Billing services. Import from billing.services.ledger (the contract's home)."""
