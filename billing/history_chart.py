"""The balance page's chart, drawn on the server as inline SVG (no script, no CDN):
the spendable balance at the end of each day as a line, the day's consumption as bars."""

from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _

from core.money import yuan

from .micro import from_micro

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 200, 70, 24, 12


def _scale(values):
    top = max([*values, 1])
    plot = HEIGHT - PAD_BOTTOM - PAD_TOP
    return lambda v: HEIGHT - PAD_BOTTOM - (v / top) * plot, top


def history_svg(history):
    """`history` is daily_history(): [(day, balance_micro, used_micro), ...]."""
    days = len(history)
    step = (WIDTH - PAD_LEFT - 8) / max(days, 1)
    y, top = _scale([max(b, 0) for _d, b, _u in history] + [u for _d, _b, u in history])

    def x(i):
        return PAD_LEFT + step * i + step / 2

    bars = format_html_join(
        "",
        '<rect class="used" x="{}" y="{}" width="{}" height="{}"><title>{} {}</title></rect>',
        (
            (
                f"{x(i) - step * 0.35:.1f}",
                f"{y(used):.1f}",
                f"{step * 0.7:.1f}",
                f"{HEIGHT - PAD_BOTTOM - y(used):.1f}",
                day.isoformat(),
                _("consumed %(amount)s") % {"amount": yuan(from_micro(used).amount)},
            )
            for i, (day, _b, used) in enumerate(history)
            if used
        ),
    )
    points = " ".join(f"{x(i):.1f},{y(max(b, 0)):.1f}" for i, (_d, b, _u) in enumerate(history))
    first, last = history[0][0], history[-1][0]
    label = _(
        "Balance at the end of each day and daily consumption, %(first)s to %(last)s; "
        "highest value %(top)s."
    ) % {"first": first.isoformat(), "last": last.isoformat(), "top": yuan(from_micro(top).amount)}
    return format_html(
        '<svg class="history" viewBox="0 0 {w} {h}" role="img" aria-label="{label}"'
        ' xmlns="http://www.w3.org/2000/svg">'
        '<line class="axis" x1="{l}" y1="{base}" x2="{w}" y2="{base}"/>'
        '<text x="{tx}" y="{ttop}" text-anchor="end">{top}</text>'
        '<text x="{tx}" y="{base}" text-anchor="end">¥0</text>'
        '<text x="{l}" y="{h}">{first}</text>'
        '<text x="{w}" y="{h}" text-anchor="end">{last}</text>'
        "{bars}"
        '<polyline class="balance" fill="none" points="{points}"/>'
        "</svg>",
        w=WIDTH,
        h=HEIGHT - 2,
        l=PAD_LEFT,
        base=HEIGHT - PAD_BOTTOM,
        tx=PAD_LEFT - 6,
        ttop=PAD_TOP + 4,
        top=yuan(from_micro(top).amount),
        first=first.isoformat(),
        last=last.isoformat(),
        bars=bars,
        points=points,
        label=label,
    )
