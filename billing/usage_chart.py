"""The usage page's chart, drawn on the server as inline SVG (no script, no CDN): one bar
per row of the table (a day, a model or a key), its height the amount consumed."""

from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _

from core.money import yuan

from .micro import from_micro

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 640, 200, 70, 24, 12


def usage_svg(rows, labels) -> str:
    """`rows` are usage_totals rows, `labels` their names as the table shows them."""
    if not rows:
        return ""
    top = max(max(r.amount_micro for r in rows), 1)
    plot = HEIGHT - PAD_BOTTOM - PAD_TOP
    step = (WIDTH - PAD_LEFT - 8) / len(rows)

    def y(v):
        return HEIGHT - PAD_BOTTOM - (v / top) * plot

    bars = format_html_join(
        "",
        '<rect class="used" x="{}" y="{}" width="{}" height="{}"><title>{} {}</title></rect>',
        (
            (
                f"{PAD_LEFT + step * i + step * 0.15:.1f}",
                f"{y(r.amount_micro):.1f}",
                f"{step * 0.7:.1f}",
                f"{HEIGHT - PAD_BOTTOM - y(r.amount_micro):.1f}",
                label,
                yuan(from_micro(r.amount_micro).amount),
            )
            for i, (r, label) in enumerate(zip(rows, labels, strict=True))
        ),
    )
    label = _("Amount consumed per row of the table below; highest %(top)s.") % {
        "top": yuan(from_micro(top).amount)
    }
    return format_html(
        '<svg class="history" viewBox="0 0 {w} {h}" role="img" aria-label="{label}"'
        ' xmlns="http://www.w3.org/2000/svg">'
        '<line class="axis" x1="{l}" y1="{base}" x2="{w}" y2="{base}"/>'
        '<text x="{tx}" y="{ttop}" text-anchor="end">{top}</text>'
        '<text x="{tx}" y="{base}" text-anchor="end">¥0</text>'
        '<text x="{l}" y="{h}">{first}</text>'
        '<text x="{w}" y="{h}" text-anchor="end">{last}</text>'
        "{bars}</svg>",
        w=WIDTH,
        h=HEIGHT - 2,
        l=PAD_LEFT,
        base=HEIGHT - PAD_BOTTOM,
        tx=PAD_LEFT - 6,
        ttop=PAD_TOP + 4,
        top=yuan(from_micro(top).amount),
        first=labels[0],
        last=labels[-1] if len(labels) > 1 else "",
        bars=bars,
        label=label,
    )
