"""One check for identifiers people read (issue 24 point 7): request ids, model names, API
key names, path parameters.

Refused: C0 and C1 control characters (NUL included: PostgreSQL refuses it in text),
the Unicode line and paragraph separators (they break logs, CSV exports and admin
pages), and the invisible format characters that spoof what staff read: zero-width
space, joiners and marks (U+200B…U+200F), the bidirectional embeddings, overrides and
isolates (U+202A…U+202E, U+2066…U+2069), word joiner and invisible operators
(U+2060…U+2064) and the byte order mark (U+FEFF).
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

UNSAFE_CHARACTERS = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def has_unsafe_characters(value) -> bool:
    """True when `value` (a string) holds a control or invisible character."""
    return isinstance(value, str) and UNSAFE_CHARACTERS.search(value) is not None


def refuse_unsafe_characters(value):
    """A Django validator: the same check, as a ValidationError code `invisible_characters`."""
    if has_unsafe_characters(value):
        raise ValidationError(
            _("Control or invisible characters (such as right-to-left marks) are not allowed."),
            code="invisible_characters",
        )
