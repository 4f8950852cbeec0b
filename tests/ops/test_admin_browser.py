import pytest

from notices.models import Notice
from ops.models import JobRun
from tests.factories import PASSWORD, StaffFactory, UserFactory, agreement_notice, grant


@pytest.fixture
def async_env(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_staff_run_a_job_from_the_admin_button(async_env, celery_eager, page):
    """§11: staff see every job's schedule and last run, and run one by hand from admin."""
    staff = grant(StaffFactory(), "ops.view_jobrun", "ops.run_job")
    agreement_notice(UserFactory(phone=""))
    page.goto("/admin/login/?next=/admin/ops/jobrun/")
    page.fill("input[name=username]", staff.email)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    row = page.locator("#job-overview tr[data-job=deliver_notices]")
    assert "never" in row.inner_text()
    row.locator("input[type=submit]").click()
    assert "Job deliver_notices: OK, 1 row in 1 batch." in page.inner_text(".messagelist")
    # the overview counts rows in words ("1 row", "2 rows"), translated
    assert "OK · 1 row" in page.locator("#job-overview tr[data-job=deliver_notices]").inner_text()
    run = JobRun.objects.get()
    assert (run.triggered_by, run.triggered_by_user_id) == ("manual", staff.pk)
    assert Notice.objects.get().status == "sent"
