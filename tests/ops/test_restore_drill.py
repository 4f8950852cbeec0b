"""Issue 26 part 3 ("Restorable"): a dump taken while usage is ingested and settled
restores into a fresh database with balanced books (scripts/restore_drill.py)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db(transaction=True)
def test_restore_drill_reconciles_with_no_findings():
    """R-LED-4 after a restore: 0 findings, every settled event once, none lost."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from restore_drill import with_database

    source = with_database(os.environ["DATABASE_URL"], connection.settings_dict["NAME"])
    connection.close()  # the drill's own connections do the work
    out = subprocess.run(
        [
            sys.executable,
            "scripts/restore_drill.py",
            "--source-url",
            source,
            "--seconds",
            "3",
            "--accounts",
            "10",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["findings"] == 0
    assert result["traffic_accepted"] > 0 and result["drill_events_in_dump"] > 0
    assert result["duplicated_request_ids"] == 0 and result["pending_after"] == 0
    assert result["settled"] == result["events"]
    assert result["dump_events_missing_from_source"] == 0
