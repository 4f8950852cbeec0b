"""R-USE-5 in one place: every service that moves money on a balance takes its locks
through `billing.services.settlement.lock_and_settle`, which settles the accounts'
pending usage first. The bare lock (`engine.lock_buckets`) is for the settlement module
alone; this test fails the suite when any other project module imports it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", "tests", "bench", "node_modules", ".git", "var", "migrations"}
ALLOWED = {"billing/services/settlement.py", "billing/services/engine.py"}


def _modules():
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in SKIP or any(p in SKIP for p in rel.parts):
            continue
        yield rel.as_posix(), path


def test_only_settlement_takes_the_bare_ledger_locks():
    """R-USE-5: no service can move money without settling pending usage first."""
    offenders = []
    for rel, path in _modules():
        if rel in ALLOWED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").endswith("engine")
                and any(alias.name == "lock_buckets" for alias in node.names)
            ):
                offenders.append(f"{rel}:{node.lineno}")
            if isinstance(node, ast.Attribute) and node.attr == "lock_buckets":
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders


def test_the_rule_test_would_see_an_offender(tmp_path):
    """The scan above does find the import it forbids (so it cannot pass vacuously)."""
    sample = "from billing.services.engine import Entry, lock_buckets\n"
    tree = ast.parse(sample)
    found = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and any(a.name == "lock_buckets" for a in n.names)
    ]
    assert found
