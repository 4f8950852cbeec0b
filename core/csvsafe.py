"""CSV cells that spreadsheets open safely, for every export (the admin's and the users'
pages): Chinese Excel needs a UTF-8 BOM to read UTF-8, and a cell starting with =, +, -,
@, a tab or a carriage return would run as a formula, so it gets a leading apostrophe
(plain numbers such as -0.50 stay numbers)."""

import re

BOM = "\ufeff"
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def safe_cell(value) -> str:
    if value is None:
        return ""
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def safe_row(values) -> list[str]:
    return [safe_cell(v) for v in values]
