"""Admin lists over large tables: paging that never counts a whole table.

Django's changelist counts its rows on every page view (`paginator.count`), counts
the whole table once more for "N total" (`show_full_result_count`), runs one
`SELECT DISTINCT` date query per drill-down level (`date_hierarchy`) and, with
facets on, one COUNT per filter choice. On a ledger of millions of rows each of
these reads the table. `LargeTableAdminMixin` turns all of them into bounded work:

- unfiltered, the row count is PostgreSQL's planner estimate (`pg_class.reltuples`,
  kept by ANALYZE/autovacuum), shown as "about N"; a table the estimate calls small
  is counted exactly, which is cheap there;
- filtered or searched, the count runs over `LIMIT cap + 1` rows of the filtered
  query (a subquery keeping the list's ordering), so it reads at most cap + 1 rows;
  more than that is shown as "more than cap";
- past the first page, the page's ids are read first and then their rows with the
  joins (no join per skipped row of the OFFSET);
- the full count and facets are off; a `date_hierarchy` becomes a date range filter
  (today / past 7 days / this month / this year), which needs no query to offer.

The shown count is an `int` (comparisons, `page_range` and the templates work as
usual) whose text says it is an estimate or a floor.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.formats import number_format
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext

# unfiltered tables the estimate calls smaller than this are counted exactly
EXACT_BELOW = 20_000
# a filtered count reads at most this many rows + 1
COUNT_CAP = 1_000


class ApproxCount(int):
    """A row count that is an estimate ("about N") or a floor ("more than N")."""

    def __new__(cls, value, kind):
        obj = super().__new__(cls, value)
        obj.kind = kind
        return obj

    def __str__(self):
        shown = number_format(int(self), force_grouping=True)
        if self.kind == "floor":
            return gettext("more than %(count)s") % {"count": shown}
        return gettext("about %(count)s") % {"count": shown}

    __html__ = __str__


def table_estimate(model, using="default") -> int | None:
    """The planner's row estimate of the model's table (PostgreSQL's `pg_class`).

    None when the table was never analysed (reltuples is -1 then, or 0 with no
    pages on older servers): the caller counts instead."""
    connection = connections[using]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT reltuples::bigint, relpages FROM pg_class WHERE oid = %s::regclass",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        row = cur.fetchone()
    if not row or row[0] < 0 or (row[0] == 0 and row[1] == 0):
        return None
    return int(row[0])


def is_unfiltered(queryset: QuerySet) -> bool:
    query = queryset.query
    return (
        not query.where
        and not query.is_sliced
        and not query.distinct
        and query.combinator is None
        and not query.group_by
    )


class LargeTablePaginator(Paginator):
    """A paginator whose count costs a catalogue lookup or at most cap + 1 rows."""

    exact_below = EXACT_BELOW
    count_cap = COUNT_CAP

    @cached_property
    def count(self):
        qs = self.object_list
        if not isinstance(qs, QuerySet):
            return super().count
        if is_unfiltered(qs):
            estimate = table_estimate(qs.model, qs.db)
            if estimate is not None and estimate >= self.exact_below:
                return ApproxCount(estimate, "estimate")
        capped = qs[: self.count_cap + 1].count()
        if capped > self.count_cap:
            return ApproxCount(self.count_cap, "floor")
        return capped

    def page(self, number):
        """Past the first page, find the page's ids first (the primary key alone, no
        joins), then read those rows with their joins: an OFFSET over the full query
        would join every skipped row to its owner and user (a "deferred join")."""
        number = self.validate_number(number)
        qs = self.object_list
        if number == 1 or not isinstance(qs, QuerySet):
            return super().page(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        ids = list(qs.values_list("pk", flat=True)[bottom:top])
        return self._get_page(qs.filter(pk__in=ids), number, self)


class LargeTableAdminMixin:
    """Put first in a ModelAdmin's bases for a table that grows without bound.

    Also keep `list_filter` to choices, booleans, empty/non-empty and date ranges:
    a plain field name on a field without choices offers its values with a
    `SELECT DISTINCT` over the whole table, and a foreign key lists every related row.
    """

    paginator = LargeTablePaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50  # rendering is ~1.5 ms a row on the 2-core VM; the count is not

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.date_hierarchy:
            # the drill-down's DISTINCT dates become a range filter that needs no query
            field = self.date_hierarchy
            self.list_filter = (*self.list_filter, (field, admin.DateFieldListFilter))
            self.date_hierarchy = None

    def action_checkbox(self, obj):
        """Django's row checkbox, labelled "<model> #<id>" rather than str(obj): a
        model's __str__ may format money (babel) or read a relation, once per row."""
        label = f"{self.opts.verbose_name} #{obj.pk}"
        attrs = {
            "class": "action-select",
            "aria-label": format_html(gettext("Select this object for an action - {}"), label),
        }
        checkbox = forms.CheckboxInput(attrs, lambda value: False)
        return checkbox.render(helpers.ACTION_CHECKBOX_NAME, str(obj.pk))
