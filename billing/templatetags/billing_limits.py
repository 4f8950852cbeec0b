"""`{% key_spend_limits key %}`: the spend of the current period against each limit of
one API key (R-USE-7), for the key page (accounts' template; the figures are billing's)."""

from django import template
from django.utils.html import format_html, format_html_join

from core.money import yuan

from ..selectors import spend_limits_of

register = template.Library()


@register.simple_tag(takes_context=True)
def key_spend_limits(context, key):
    # the account's limits read once per page, not once per key
    cache = context.render_context.setdefault("billing_key_limits", {})
    if key.account_id not in cache:
        cache[key.account_id] = spend_limits_of(key.account)
    rows = [r for r in cache[key.account_id] if r["limit"].api_key_id == key.pk]
    if not rows:
        return ""
    return format_html(
        '<span class="key-limits">{}</span>',
        format_html_join(
            " · ",
            "{}: {} / {} ({} %)",
            (
                (
                    r["limit"].get_period_display(),
                    yuan(r["spent"].amount),
                    yuan(r["limit"].limit.amount),
                    r["pct"],
                )
                for r in rows
            ),
        ),
    )
