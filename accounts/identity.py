"""Identity numbers: validation, normalisation, masking and keyed hashing (R-ACC-2, R-ACC-4).

- Resident ID numbers (GB 11643-1999): 18 characters, 6-digit region code,
  YYYYMMDD birth date, 3-digit sequence, ISO 7064 MOD 11-2 check character
  (0-9 or X).
- Unified social credit codes (GB 32100-2015): 18 characters from a 31-letter
  alphabet (no I, O, S, V, Z), MOD 31 check character. Some codes issued in
  practice fail the check, so a failing check character is reported, not
  refused: the verification goes to manual review with a warning.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

# ---------------------------------------------------------------- GB 11643
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK_CHARS = "10X98765432"
# First two digits of the region code: provinces, autonomous regions,
# municipalities, plus 71/81/82 (residence permits for Taiwan, Hong Kong, Macao)
# and 83 (Taiwan residents' permits issued since 2018).
PROVINCE_CODES = frozenset(
    str(n)
    for block in (
        range(11, 16),
        range(21, 24),
        range(31, 38),
        range(41, 47),
        range(50, 55),
        range(61, 66),
        (71, 81, 82, 83),
    )
    for n in block
)
EARLIEST_BIRTH_YEAR = 1900


@dataclass(frozen=True)
class ResidentId:
    number: str
    birth_date: date
    region: str
    sex: str  # "male" | "female" (odd / even sequence)


def resident_id_check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK_CHARS[total % 11]


def normalize_resident_id(value: str) -> str:
    return (value or "").strip().replace(" ", "").upper()


def parse_resident_id(value: str, *, today: date | None = None) -> ResidentId:
    """Validate an 18-character resident ID number; return it parsed.

    Raises ValidationError (codes: id_length, id_characters, id_region,
    id_birth_date, id_future_birth_date, id_check_digit).
    """
    number = normalize_resident_id(value)
    if len(number) != 18:
        raise ValidationError("A resident ID number has 18 characters.", code="id_length")
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        raise ValidationError(
            "A resident ID number is 17 digits followed by a digit or X.",
            code="id_characters",
        )
    if number[:2] not in PROVINCE_CODES:
        raise ValidationError("The region code of this ID number is not valid.", code="id_region")
    try:
        birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise ValidationError(
            "The birth date in this ID number does not exist.", code="id_birth_date"
        )
    today = today or timezone.localdate()
    if birth.year < EARLIEST_BIRTH_YEAR:
        raise ValidationError(
            "The birth date in this ID number is not plausible.", code="id_birth_date"
        )
    if birth > today:
        raise ValidationError(
            "The birth date in this ID number is in the future.", code="id_future_birth_date"
        )
    if resident_id_check_char(number[:17]) != number[17]:
        raise ValidationError(
            "The check digit of this ID number is wrong; please check for a typo.",
            code="id_check_digit",
        )
    sex = "male" if int(number[16]) % 2 else "female"
    return ResidentId(number=number, birth_date=birth, region=number[:6], sex=sex)


def make_resident_id(birth_date: date, *, region: str = "110105", sequence: int = 123) -> str:
    """A well-formed ID number for a birth date (demo data and tests)."""
    first17 = f"{region}{birth_date:%Y%m%d}{sequence:03d}"
    return first17 + resident_id_check_char(first17)


# ---------------------------------------------------------------- GB 32100
USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


@dataclass(frozen=True)
class CreditCode:
    code: str
    check_digit_ok: bool


def normalize_credit_code(value: str) -> str:
    return (value or "").strip().replace(" ", "").upper()


def credit_code_check_char(first17: str) -> str:
    total = sum(USCC_CHARS.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_CHARS[(31 - total % 31) % 31]


def parse_credit_code(value: str) -> CreditCode:
    """Validate the shape of a unified social credit code; report its check character.

    Wrong length or characters are refused (ValidationError codes
    uscc_length, uscc_characters); a wrong check character is returned as
    `check_digit_ok=False` for manual review.
    """
    code = normalize_credit_code(value)
    if len(code) != 18:
        raise ValidationError("A unified social credit code has 18 characters.", code="uscc_length")
    bad = sorted({c for c in code if c not in USCC_CHARS})
    if bad:
        raise ValidationError(
            "A unified social credit code uses digits and capital letters except I, O, S, V "
            "and Z; not allowed here: %(chars)s.",
            code="uscc_characters",
            params={"chars": " ".join(bad)},
        )
    return CreditCode(code=code, check_digit_ok=credit_code_check_char(code[:17]) == code[17])


def make_credit_code(body17: str = "91110108MA01ABCD1") -> str:
    """A well-formed credit code from 17 characters (demo data and tests)."""
    return body17 + credit_code_check_char(body17)


# ---------------------------------------------------------------- masking, hashing
def mask_number(value: str, *, head: int = 4, tail: int = 4) -> str:
    """`1101**********1234`: enough to tell numbers apart, never enough to use one.

    Only the first and last four characters show: a resident ID number's region
    code past the province and its eight birth-date digits stay hidden (R-ACC-5).
    """
    value = value or ""
    if len(value) <= head + tail:
        return "*" * len(value)
    return value[:head] + "*" * (len(value) - head - tail) + value[-tail:]


def mask_name(value: str) -> str:
    """Keep the first character of each word: `张**`, `J*** D**`."""
    words = (value or "").split(" ")
    return " ".join(w[:1] + "*" * (len(w) - 1) for w in words)


KIND_INDIVIDUAL = "individual"
KIND_ENTERPRISE = "enterprise"


def identity_hash(kind: str, number: str) -> str:
    """Keyed hash of a normalised ID number / credit code (R-ACC-4).

    Equal identities give equal hashes, so accounts can be counted per
    identity without keeping the number searchable; without the key the hash
    cannot be brute-forced over the small space of ID numbers.
    """
    normalize = normalize_resident_id if kind == KIND_INDIVIDUAL else normalize_credit_code
    message = f"{kind}:{normalize(number)}".encode()
    key = settings.IDENTITY_HASH_KEY.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def phone_digest(number: str) -> str:
    """Keyed hash of a phone number's digits, so an encrypted phone can still be found
    by its full number (staff search); empty for no number."""
    digits = "".join(ch for ch in (number or "") if ch.isdigit())
    if not digits:
        return ""
    key = settings.IDENTITY_HASH_KEY.encode()
    return hmac.new(key, f"phone:{digits}".encode(), hashlib.sha256).hexdigest()
