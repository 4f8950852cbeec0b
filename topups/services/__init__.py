"""Top-up services (SPEC §4), one module per write area; each public function is one
transaction.

    preconditions          whether a user may top up now (R-TOP-1), the one place
    payers                 who paid: third-party judgement (R-TOP-3)
    orders                 start, payment window, cancel, credit a paid order, unpaid expiry
    alipay_notifications   Alipay's asynchronous notifications (signing is ../alipay.py)
    remittances            finance: bank remittances, review, manual top-ups; TopUp's map
    statements             bank statement import, all rows or none
    promotions             best benefit, quantity, ending and voiding (R-TOP-4); Promotion's map
    trials                 trial funds on approval, grant validity (R-TOP-5); Verification's map

Views, admin, the notify endpoint and jobs only parse input and call these, importing
from the module that holds the service. Money moves only through the ledger
(billing.services.ledger); these modules decide *whether* and *how much*, and
record the payment case.

Importing this package imports every module, so core's autodiscovery of
`topups.services` registers every transition map (core.workflow.transition_map).
"""

from . import (  # noqa: F401 (imported to register their transition maps)
    alipay_notifications,
    orders,
    payers,
    preconditions,
    promotions,
    remittances,
    statements,
    trials,
)

# The staff path of a verification's approval, named where accounts' docs point.
from .trials import approve_verification, award_trial

__all__ = ["approve_verification", "award_trial"]
