"""The usage page (billing:usage) and its CSV: by day, model and key from the daily
rollup only, a bounded date range, safe CSV (R-USE-1, R-ADM-6)."""

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.services import create_api_key
from billing.models import DailyUsage
from tests.factories import UserFactory


@pytest.fixture
def signed_in(client, user):
    user.language = "en"
    user.save(update_fields=["language"])
    client.force_login(user)
    return client


def seed(account, key, days=3, models=("glm-4", '=HYPERLINK("http://x")')):
    today = timezone.localdate()
    rows = []
    for d in range(days):
        for m in models:
            for k in (key.pk, None):
                rows.append(
                    DailyUsage(
                        account=account,
                        day=today - timedelta(days=d),
                        model=m,
                        api_key_id=k,
                        calls=10,
                        amount_micro=1_234_500,
                        input_tokens=1000,
                        output_tokens=200,
                    )
                )
    DailyUsage.objects.bulk_create(rows)


@pytest.mark.django_db
def test_usage_by_day_model_and_key(signed_in, user, account):
    """R-USE-1: the page sums calls, amount and tokens per day, model or key."""
    key, _raw = create_api_key(user, name="laptop")
    seed(account, key)
    other = UserFactory(phone="")
    other_key, _ = create_api_key(other, name="theirs")
    seed(other.balance_account, other_key, models=("secret-model",))
    page = signed_in.get(reverse("billing:usage")).content.decode()
    assert timezone.localdate().isoformat() in page
    assert "¥4.94" in page  # 4 rows × ¥1.2345 a day
    assert "secret-model" not in page
    page = signed_in.get(reverse("billing:usage"), {"by": "model"}).content.decode()
    assert "glm-4" in page and "120" in page  # 3 days × 2 keys × 20... calls per model: 60
    page = signed_in.get(reverse("billing:usage"), {"by": "key"}).content.decode()
    assert "laptop" in page and "No key" in page
    narrowed = signed_in.get(
        reverse("billing:usage"), {"by": "model", "model": "glm-4", "api_key": key.pk}
    ).content.decode()
    assert "¥3.70" in narrowed  # 3 days × ¥1.2345


@pytest.mark.django_db
def test_usage_range_is_bounded(signed_in, account):
    """R-USE-1: at most 92 days, start before end; bad input is a 400, never a 500."""
    today = timezone.localdate()
    url = reverse("billing:usage")
    too_long, longest = today - timedelta(days=92), today - timedelta(days=91)
    assert signed_in.get(url, {"start": too_long.isoformat()}).status_code == 400
    assert signed_in.get(url, {"start": longest.isoformat()}).status_code == 200
    assert signed_in.get(url, {"start": "2026-02-30"}).status_code == 400
    assert signed_in.get(url, {"start": today.isoformat(), "end": "2020-01-01"}).status_code == 400
    assert signed_in.get(url, {"by": "hour"}).status_code == 400
    assert signed_in.get(reverse("billing:usage_csv"), {"by": "hour"}).status_code == 400


@pytest.mark.django_db
def test_usage_csv_has_bom_and_neutralised_cells(signed_in, user, account):
    """R-USE-1: the CSV opens in Chinese Excel (UTF-8 BOM) and a model named like a
    formula is text, not a live formula."""
    key, _raw = create_api_key(user, name="laptop")
    seed(account, key, days=1)
    response = signed_in.get(reverse("billing:usage_csv"), {"by": "model"})
    assert response.status_code == 200
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "By model"
    models = {r[0] for r in rows[1:]}
    assert models == {"glm-4", '\'=HYPERLINK("http://x")'}
    assert rows[1][2] == "2.469000"


# session, user, unread notices, the account, the totals, the models, the key choices (and by
# key: the key names once more, for the labels)
PINNED = {"day": 7, "model": 7, "key": 8}


@pytest.mark.django_db
def test_usage_page_query_count_is_pinned(signed_in, user, account):
    """R-USE-1: the page reads the rollup only, the same number of queries at any volume:
    session, user, language/notices, api keys, the totals, the models, the key choices."""
    key, _raw = create_api_key(user, name="laptop")
    seed(account, key, days=30)
    for by in ("day", "model", "key"):
        with CaptureQueriesContext(connection) as queries:
            assert signed_in.get(reverse("billing:usage"), {"by": by}).status_code == 200
        sql = [q["sql"] for q in queries.captured_queries]
        assert not any("billing_usageevent" in s for s in sql)
        assert len(sql) == PINNED[by], sql


def test_csv_cells_are_formula_safe():
    """R-ADM-3: one rule for every export: =, +, -, @, tab and CR lead to text; numbers stay."""
    from core.csvsafe import safe_cell

    for bad in ("=1+1", "+1 x", "-cmd", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(bad) == "'" + bad
    for fine in ("-0.500000", "12", "glm-4", "", None, 3):
        assert safe_cell(fine) == ("" if fine is None else str(fine))
