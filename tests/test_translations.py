"""Languages (R-ADM-6): every string marked for translation has its Simplified Chinese."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent
# The project's catalogue plus each app's own (an app that owns pages keeps its strings).
CATALOGUES = sorted(
    [*(ROOT / "locale").glob("*/LC_MESSAGES/django.po")]
    + [*ROOT.glob("*/locale/*/LC_MESSAGES/django.po")]
)


def _entries(path):
    """(msgid, msgstr, fuzzy) of every entry but the header."""
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        ids = re.search(r"^msgid ((?:\".*\"\n?)+)", block, re.M)
        strs = re.search(r"^msgstr ((?:\".*\"\n?)+)", block, re.M)
        if not ids or not strs:
            continue
        msgid = "".join(re.findall(r'"(.*)"', ids.group(1)))
        msgstr = "".join(re.findall(r'"(.*)"', strs.group(1)))
        if msgid:
            yield msgid, msgstr, "#, fuzzy" in block


def test_there_is_a_chinese_catalogue():
    assert {p.parent.parent.name for p in CATALOGUES} == {"zh_Hans"}


@pytest.mark.parametrize("path", CATALOGUES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_msgid_is_left_untranslated(path):
    """R-ADM-6: no empty or fuzzy translation in a catalogue."""
    bad = [msgid for msgid, msgstr, fuzzy in _entries(path) if not msgstr or fuzzy]
    assert not bad, f"untranslated in {path.relative_to(ROOT)}: {bad}"


@pytest.mark.django_db
def test_the_refund_page_speaks_chinese_to_a_chinese_browser(client, user):
    """R-ADM-6: the refund page in zh-hans, the same page in English otherwise."""
    user.language = ""  # never chose: the browser's language applies
    user.save(update_fields=["language"])
    client.force_login(user)
    chinese = client.get(reverse("refunds:index"), HTTP_ACCEPT_LANGUAGE="zh-hans").content
    assert "当前可退金额".encode() in chinese and b"What you can get back now" not in chinese
    english = client.get(reverse("refunds:index"), HTTP_ACCEPT_LANGUAGE="en").content
    assert b"What you can get back now" in english


@pytest.mark.django_db
def test_errors_on_the_refund_page_are_chinese_too(client, user):
    """R-ADM-6: what the services refuse reaches a Chinese user in Chinese."""
    user.language = "zh-hans"
    user.save(update_fields=["language"])
    client.force_login(user)
    response = client.post(
        reverse("refunds:index"),
        {"amount": "10.001", "reason": "x"},
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )
    assert response.status_code == 400
    assert "最多允许 2 位小数。" in response.content.decode()
