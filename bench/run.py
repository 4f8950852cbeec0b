"""Run every bench/bench_*.py (each has `run() -> list[dict]`) and print one table.

Each row: benchmark, metric, value, target, ok; after the table, one line of JSON with
the same figures ({benchmark: {metric: value}}; a row's `raw` figure when it has one).
Exit status 1 if a row fails. Arguments pick benchmarks by name (`usage`, `admin`, …);
`ledger` is the old name of `usage`.
"""

import importlib
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def main(argv):
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)  # the bench database may be fresh
    aliases = {"ledger": "usage", "bench_ledger": "usage"}
    only = {aliases.get(a, a) for a in argv}
    rows = []
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem
        if only and name not in only and name.removeprefix("bench_") not in only:
            continue
        print(f"== {name}", flush=True)
        module = importlib.import_module(name)
        rows += module.run()
    widths = [12, 44, 26, 10, 3]
    header = ["benchmark", "metric", "value", "target", "ok"]
    print()
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    failed = False
    for row in rows:
        ok = row.get("ok")
        failed |= ok is False
        cells = [
            row["bench"],
            row["metric"],
            str(row["value"]),
            str(row.get("target", "")),
            {True: "yes", False: "NO", None: ""}[ok],
        ]
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)))
    figures: dict = {}
    for row in rows:
        figures.setdefault(row["bench"], {})[row["metric"]] = row.get("raw", row["value"])
    print()
    print(json.dumps(figures, default=str, ensure_ascii=False))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
