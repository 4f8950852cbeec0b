"""Money on pages: 2 places rounded half-up, the exact figure in a title (R-LED-3)."""

from django import template
from django.utils.html import format_html

from core.money import display

from ..micro import from_micro

register = template.Library()


@register.simple_tag
def money(value):
    """`{% money x %}` for Money, Decimal or micro-units (int)."""
    if isinstance(value, int):
        value = from_micro(value)
    amount = getattr(value, "amount", value)
    exact = from_micro(int((amount * 1_000_000).to_integral_value())).amount
    return format_html('<span class="money" title="{} CNY">{}</span>', exact, display(amount))
