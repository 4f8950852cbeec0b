"""Account services: registration, standing, real-name verification, capacity,
identity, API keys and agreement versions (R-ACC-1 … R-ACC-8), one module per write
area. Each function is one transaction; admin buttons and views only call these.

Importing the package registers the transition maps of BalanceAccount, ApiKey and
AgreementVersion (core.apps autodiscovers every app's services).
"""

from ._common import refuse_own_case
from .agreements import NOTICE_BATCH, _announce_agreement, accept_agreement, publish_agreement
from .keys import (
    API_KEY_STAFF_TRANSITIONS,
    API_KEY_USE_GRANULARITY,
    change_api_key_state,
    create_api_key,
    lock_api_key,
    mark_api_key_used,
    resolve_api_key,
    revoke_api_key,
    unlock_api_key,
)
from .registration import (
    EMAIL_VERIFICATION_SALT,
    RESEND_MAX_PER_DAY,
    RESEND_MIN_INTERVAL,
    check_email_token,
    email_verification_token,
    email_verification_url,
    open_balance_account,
    refuse_unverified_email,
    register_user,
    resend_email_verification,
    set_preferred_language,
    verify_email,
)
from .selfservice import (
    confirm_email_change,
    password_changed,
    request_email_change,
    sign_out_everywhere,
    update_profile,
)
from .standing import STANDING_TRANSITIONS, change_standing, set_low_balance_threshold
from .verification import (
    ADULT_AGE,
    DOCUMENTS,
    EXCEPTION_MIN_AGE,
    age_on,
    approve_verification,
    has_full_capacity,
    read_document,
    record_capacity_exception,
    reject_verification,
    reveal_identity,
    revoke_verification,
    submit_verification,
)

__all__ = [
    "confirm_email_change",
    "password_changed",
    "request_email_change",
    "sign_out_everywhere",
    "update_profile",
    "ADULT_AGE",
    "API_KEY_STAFF_TRANSITIONS",
    "API_KEY_USE_GRANULARITY",
    "DOCUMENTS",
    "EMAIL_VERIFICATION_SALT",
    "EXCEPTION_MIN_AGE",
    "NOTICE_BATCH",
    "RESEND_MAX_PER_DAY",
    "RESEND_MIN_INTERVAL",
    "STANDING_TRANSITIONS",
    "_announce_agreement",
    "accept_agreement",
    "age_on",
    "approve_verification",
    "change_api_key_state",
    "change_standing",
    "create_api_key",
    "email_verification_token",
    "email_verification_url",
    "has_full_capacity",
    "lock_api_key",
    "mark_api_key_used",
    "open_balance_account",
    "publish_agreement",
    "read_document",
    "record_capacity_exception",
    "refuse_own_case",
    "refuse_unverified_email",
    "register_user",
    "reject_verification",
    "resend_email_verification",
    "resolve_api_key",
    "reveal_identity",
    "revoke_api_key",
    "revoke_verification",
    "set_low_balance_threshold",
    "set_preferred_language",
    "submit_verification",
    "unlock_api_key",
    "verify_email",
    "check_email_token",
]
