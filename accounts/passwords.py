"""A password may not be built from the user's own email address (issue 13).

Django's UserAttributeSimilarityValidator compares the password with the whole address
and its pieces split at dots, so `li.wei.drill` passes for `li.wei.drill@example.com`
(ratio 0.67 < 0.7). This one refuses a password that contains the address's local part
(or is contained in it), ignoring case and punctuation, when that part has 4+ letters.
"""

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


def _letters(value: str) -> str:
    return re.sub(r"[\W_]+", "", (value or "").lower())


class NotBasedOnEmailValidator:
    def validate(self, password, user=None):
        email = getattr(user, "email", "") or ""
        local = _letters(email.partition("@")[0])
        given = _letters(password)
        if len(local) >= 4 and given and (local in given or given in local):
            raise ValidationError(
                _("The password may not be built from your email address."),
                code="password_like_email",
            )

    def get_help_text(self):
        return _("The password may not be built from your email address.")
