"""A case's history in words (issue 21): what was done, from which state to which, and the
facts recorded with it, in the reader's language.

Audit records store raw names (transition `take`, state `under_review`, details such as
{"refunded_micro": "20000000"}) so that they stay exact and searchable; staff read them
through these functions: transitions by their button label, states by their choice label,
money as ¥1,234.50, sealed personal data as "(encrypted)".
"""

import re
from decimal import Decimal, InvalidOperation

from django.core.exceptions import FieldDoesNotExist
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMFieldMixin

from .money import yuan

# Actions written by services rather than by a transition (record_audit's `action`).
ACTION_LABELS = {
    "create": _("Created"),
    "submit": _("Submitted"),
    "open": _("Opened"),
    "void": _("Voided"),
    "reverse": _("Reversed"),
    "change_settings": _("Settings changed"),
    "change_validity": _("Validity changed"),
    "view_identity": _("Full identity viewed"),
    "view_proof": _("Proof file viewed"),
    "view_file": _("File viewed"),
    "verify_email": _("Email verified"),
    "record_capacity_exception": _("Capacity exception recorded"),
    "payout_paid": _("Payout paid"),
    "credit_back": _("Credited back"),
    "add_evidence": _("Evidence added"),
    "add_debt_proof": _("Debt proof added"),
}

# Facts recorded with an action that are not fields of the case.
DETAIL_LABELS = {
    "amount": _("amount"),
    "changes": _("changes"),
    "old": _("old"),
    "new": _("new"),
    "topups": _("top-ups"),
    "transaction": _("ledger transaction"),
    "asked_via": _("asked via"),
    "invoiceable_before": _("invoiceable before"),
    "all_paid": _("all paid"),
    "xml_fields": _("fields of the XML"),
    "file": _("file"),
    "proof": _("proof"),
    "by": _("by"),
    "proposer": _("proposer"),
    "debt": _("debt"),
    "held": _("held"),
    "arrears": _("arrears settled"),
    "received": _("received amount"),
    "reviewer": _("reviewer"),
    "bank_reference": _("bank reference"),
}

# Reasons the system writes when no person typed one (jobs, automatic steps). They are
# stored in English and shown in the reader's language.
SYSTEM_REASONS = (
    gettext_noop("every line paid"),
    gettext_noop("debt overdue"),
    gettext_noop("cancelled by user"),
    gettext_noop("submitted by the user"),
    gettext_noop("amount differs"),
    gettext_noop("awaits a second approver"),
)

SEALED_PREFIX = "enc:"  # accounts.crypto.seal (a higher layer): personal data in details
MONEY_KEY = re.compile(
    r"(^|_)(amount|micro|refunded|debt|held|paid|total|invoiceable|arrears|price|balance)(_|$)"
)


def _transitions(model):
    for field in model._meta.concrete_fields:
        if isinstance(field, FSMFieldMixin):
            yield from field.get_all_transitions(model)


def _state_field(model):
    for field in model._meta.concrete_fields:
        if isinstance(field, FSMFieldMixin) or field.name == "state":
            return field
    return None


def action_label(model, action):
    """A transition's button label, or the words for a service's action."""
    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    if model is not None:
        for transition in _transitions(model):
            if transition.name == action and transition.custom.get("label"):
                return transition.custom["label"]
    return action.replace("_", " ")


def action_label_any(action):
    """An action's words when the model is not known (the audit list's filter)."""
    from django.apps import apps

    if action in ACTION_LABELS:
        return ACTION_LABELS[action]
    for model in apps.get_models():
        for transition in _transitions(model):
            if transition.name == action and transition.custom.get("label"):
                return transition.custom["label"]
    return action.replace("_", " ")


def state_label(model, value):
    """A state as its choice label ("待审核"), never the raw value."""
    if not value:
        return "—"
    field = _state_field(model) if model is not None else None
    if field is not None and field.choices:
        for choice, label in field.flatchoices:
            if str(choice) == str(value):
                return label
    return value


def reason_text(reason):
    return gettext(reason) if reason in SYSTEM_REASONS else reason


def _label(model, key):
    if key in DETAIL_LABELS:
        return DETAIL_LABELS[key]
    if model is not None:
        try:
            return model._meta.get_field(key).verbose_name
        except FieldDoesNotExist:
            pass
    return key.replace("_", " ")


def value_text(key, value, model=None):
    """One recorded value as a person reads it: a choice by its label, money as ¥."""
    if model is not None and isinstance(value, str):
        try:
            field = model._meta.get_field(key)
        except FieldDoesNotExist:
            field = None
        for choice, label in getattr(field, "flatchoices", None) or ():
            if str(choice) == value:
                return str(label)
    if value is None or value == "":
        return "—"
    if isinstance(value, bool) or value in ("True", "False"):
        return gettext("yes") if value in (True, "True") else gettext("no")
    if isinstance(value, str) and value.startswith(SEALED_PREFIX):
        return gettext("(encrypted)")
    if isinstance(value, list):
        return ", ".join(value_text(key, v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {value_text(k, v)}" for k, v in value.items())
    text = str(value)
    if MONEY_KEY.search(key):
        plain = text.replace("CN¥", "").replace("¥", "").replace("CNY", "").replace(",", "")
        try:
            amount = Decimal(plain.strip())
        except InvalidOperation:
            return text
        if key.endswith("_micro") or (amount == amount.to_integral() and "." not in plain):
            amount = amount / Decimal(1_000_000) if key.endswith("_micro") else amount
        return yuan(amount)
    return text


def details_text(model, details):
    """The facts of one record: "label: value; …" with labels and values in words."""
    if not details:
        return "—"
    parts = []
    for key, value in details.items():
        if key == "changes" and isinstance(value, dict):
            for name, change in value.items():
                old = value_text(name, (change or {}).get("old"))
                new = value_text(name, (change or {}).get("new"))
                parts.append(f"{_label(model, name)}: {old} → {new}")
            continue
        parts.append(f"{_label(model, key)}: {value_text(key, value, model)}")
    return "; ".join(parts)


DEFAULT_PERMISSIONS = {
    "add": _("Can add %(model)s"),
    "change": _("Can change %(model)s"),
    "delete": _("Can delete %(model)s"),
    "view": _("Can view %(model)s"),
}


def permission_label(permission):
    """ "账户与身份 | 余额账户 | 可以查看余额账户": a permission in the reader's language.

    Default permissions are worded from the model's verbose name; custom ones are
    declared with gettext_noop in the models' Meta and translated here."""
    content_type = permission.content_type
    model = content_type.model_class()
    action, _sep, model_name = permission.codename.partition("_")
    if model is not None and action in DEFAULT_PERMISSIONS and model_name == model._meta.model_name:
        name = DEFAULT_PERMISSIONS[action] % {"model": model._meta.verbose_name}
    else:
        name = gettext(permission.name)
    return f"{content_type} | {name}"
