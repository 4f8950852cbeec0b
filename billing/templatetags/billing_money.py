"""Money on pages, shown one way everywhere: "¥1,234.50" rounded half-up, the exact
six-place figure on hover (R-LED-3, issue 15)."""

from django import template
from django.utils.html import format_html

from core.money import yuan

from ..micro import from_micro

register = template.Library()


def _amount(value):
    if isinstance(value, int):
        value = from_micro(value)
    return getattr(value, "amount", value)


@register.simple_tag
def money(value):
    """`{% money x %}` for Money, Decimal or micro-units (int)."""
    amount = _amount(value)
    return format_html('<span class="money" title="{}">{}</span>', yuan(amount, 6), yuan(amount))


@register.filter
def memo_text(memo):
    """A ledger memo in the reader's language (billing.memos)."""
    from ..memos import memo_text as words

    return words(memo)


@register.filter
def bucket_name(key):
    """A bucket as words ("hold" → 退款冻结 under zh-hans)."""
    from ..memos import bucket_name as name

    return name(key)
