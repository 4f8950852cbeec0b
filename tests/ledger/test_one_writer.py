"""One writer of the books (R-LED-1, R-LED-4; issue 20).

`billing.services.engine` is the only module that INSERTs ledger transactions and
postings or moves the cached balances of buckets, lots and grants (R-LED-4: a cache moves
in the same statement as its postings, so a second writer is a second place to get that
wrong). Every other service hands the engine `Entry`/`Leg` values. This test reads every
project module that is not a test, a migration or a benchmark seeder (`bench/` builds
synthetic books of millions of rows in bulk, on purpose) and fails on:

- raw SQL (regex over every string literal that is not a docstring, adjacent literals and
  `+`-joined pieces folded, f-string tables given as `Model._meta.db_table` resolved) that
  INSERTs, UPDATEs, DELETEs, TRUNCATEs, MERGEs or COPYs into the transaction, posting,
  bucket (ledger account), lot or grant table; and a module that builds a write
  statement on a table chosen at run time while naming one of those tables in a string;
- ORM writes (read with `ast`): any create / bulk_create / update / bulk_update /
  delete / save / get_or_create / update_or_create on `LedgerTransaction` or `Posting`
  (reached through the model, `apps.get_model`, a related manager such as
  `txn.postings`, or a variable bound to one of those in the same function); and on
  `LedgerAccount`, `Lot` and `Grant` any write that sets a cached balance column
  (`balance_micro`, `remaining_micro`, `held_micro`), bulk writes whose fields cannot be
  seen, deletes, and `F("<balance column>")` arithmetic assigned anywhere.

Creating a lot, grant or bucket row with no balance (the engine credits it in the same
transaction), and state columns (a grant's state and end, a lot's `closed_at`) are not
the books' figures and stay with their services. What the scan cannot see: a table or
column name computed at run time from parts, and a queryset passed between functions
before it is written; the engine's docstring and this test name the rule for reviewers.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps

from billing.models import Grant, LedgerAccount, LedgerTransaction, Lot, PackageHolding, Posting

ROOT = Path(__file__).resolve().parents[2]
SKIP = {".venv", "tests", "bench", "node_modules", ".git", "var", "migrations"}
WRITER = "billing/services/engine.py"

BOOKS = {m.__name__: m for m in (LedgerTransaction, Posting)}  # any write
CACHED = {  # writes of these columns only
    LedgerAccount.__name__: {"balance_micro"},
    Lot.__name__: {"remaining_micro", "held_micro"},
    Grant.__name__: {"remaining_micro"},
    # a resource package's unused face value (issue 23): its own balance holder
    PackageHolding.__name__: {"remaining_micro"},
}
LEDGER_MODELS = {**BOOKS, LedgerAccount.__name__: LedgerAccount, Lot.__name__: Lot}
LEDGER_MODELS[Grant.__name__] = Grant
LEDGER_MODELS[PackageHolding.__name__] = PackageHolding
TABLES = {m._meta.db_table: name for name, m in LEDGER_MODELS.items()}
# every model class over those tables, proxies included (topups' GrantValidity is a Grant)
MODEL_OF = {
    m.__name__: m._meta.concrete_model.__name__
    for m in apps.get_models()
    if m._meta.concrete_model.__name__ in LEDGER_MODELS
    and m._meta.concrete_model._meta.app_label == "billing"
}
CACHE_COLUMNS = set().union(*CACHED.values())
WRITE_METHODS = {
    "create",
    "bulk_create",
    "update",
    "bulk_update",
    "delete",
    "save",
    "get_or_create",
    "update_or_create",
    "_update",
    "_insert",
    "_raw_delete",
}
OPTIONS = {  # keyword arguments of write methods that name no field
    "batch_size",
    "ignore_conflicts",
    "update_conflicts",
    "unique_fields",
    "using",
    "force_insert",
    "force_update",
}
WRITE_SQL = re.compile(
    r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|TRUNCATE(?:\s+TABLE)?|MERGE\s+INTO|COPY)"
    r"\s+(?:ONLY\s+)?[\"`]?([A-Za-z_][\w.]*|\{[^}]*\})",
    re.IGNORECASE,
)


def _other_models():
    return [m for m in apps.get_models() if m.__name__ not in MODEL_OF]


def _related_accessors() -> dict[str, str]:
    """Related manager name → ledger model, for names no other model's manager uses."""
    seen: dict[str, set[str]] = {}
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if field.is_relation and field.concrete and field.many_to_one:
                name = field.remote_field.get_accessor_name()
                if name:
                    seen.setdefault(name, set()).add(model.__name__)
    return {
        name: MODEL_OF[next(iter(models))]
        for name, models in seen.items()
        if len(models) == 1 and next(iter(models)) in MODEL_OF
    }


RELATED = _related_accessors()
# Cache columns no other model has: a write of one of them through a receiver the scan
# cannot type (a variable, a parameter) is still a write of the books.
UNAMBIGUOUS = CACHE_COLUMNS - {f.attname for m in _other_models() for f in m._meta.concrete_fields}
OTHER = "<another model>"


# ---------------------------------------------------------------- raw SQL


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            ids.add(id(node.value))  # docstrings and bare string statements
    return ids


def _text(node) -> str | None:
    """The SQL a string expression spells, `{…}` for parts known only at run time, and
    `Model._meta.db_table` resolved to the table's name."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        out = []
        for part in node.values:
            if isinstance(part, ast.Constant):
                out.append(str(part.value))
            else:
                out.append(_table_of(part.value) or "{" + ast.unparse(part.value) + "}")
        return "".join(out)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        if left is not None and right is not None:
            return left + right
    return None


def _table_of(node) -> str | None:
    """`Posting._meta.db_table` (or `models.Posting._meta.db_table`) → its table."""
    if (
        isinstance(node, ast.Attribute)
        and node.attr == "db_table"
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "_meta"
    ):
        owner = node.value.value
        name = getattr(owner, "id", None) or getattr(owner, "attr", None)
        if name in MODEL_OF:
            return LEDGER_MODELS[MODEL_OF[name]]._meta.db_table
    return None


def sql_writes(tree) -> list[tuple[int, str]]:
    skip = _docstrings(tree)
    found, dynamic, names_table = [], [], False
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        text = _text(node)
        if text is None:
            continue
        if text.strip() in TABLES:
            names_table = True
        for match in WRITE_SQL.finditer(text):
            verb, table = " ".join(match.group(1).upper().split()), match.group(2).strip('"`')
            table = table.split(".")[-1].lower()
            if table in TABLES:
                found.append((node.lineno, f"raw SQL {verb} {table}"))
            elif table.startswith("{"):
                dynamic.append((node.lineno, f"raw SQL {verb} on a table chosen at run time"))
    # a table name handed to a helper that writes "UPDATE {table} …" (the old `bump`)
    return sorted(set(found + (dynamic if names_table else [])))


# ---------------------------------------------------------------- ORM


def _absolute(node: ast.ImportFrom, rel: str) -> str:
    if not node.level:
        return node.module or ""
    package = rel[: -len(".py")].split("/")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _get_model(node) -> str | None:
    """`apps.get_model("billing", "Posting")` / `("billing.Posting")` → "Posting"."""
    if not (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "get_model"):
        return None
    args = [a.value for a in node.args if isinstance(a, ast.Constant)]
    if len(args) == 2:
        return MODEL_OF.get(args[1], OTHER)
    if len(args) == 1 and isinstance(args[0], str) and "." in args[0]:
        return MODEL_OF.get(args[0].split(".", 1)[1], OTHER)
    return OTHER if args else None


class _Names:
    """Which local names are ledger models (or their proxies), models modules, or other
    models."""

    def __init__(self, tree, rel):
        self.models: dict[str, str] = {}
        self.modules: set[str] = set()
        self.plain: set[str] = set()  # `import billing.models`: the package's name
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                module = _absolute(node, rel)
                for alias in node.names:
                    local = alias.asname or alias.name
                    if module.endswith(".models") or module == "models":
                        self.models[local] = MODEL_OF.get(alias.name, OTHER)
                    elif alias.name == "models":
                        self.modules.add(local)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.endswith(".models"):
                        if alias.asname:
                            self.modules.add(alias.asname)
                        else:
                            self.plain.add(alias.name.split(".")[0])
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, model = node.targets[0], _get_model(node.value)
                if isinstance(target, ast.Name) and model:
                    self.models[target.id] = model

    def model_attr(self, node: ast.Attribute) -> str | None:
        """`bm.Posting` / `billing.models.Posting` → "Posting"."""
        if node.attr not in MODEL_OF:
            return None
        base = node.value
        if isinstance(base, ast.Name) and base.id in self.modules:
            return MODEL_OF[node.attr]
        if (
            isinstance(base, ast.Attribute)
            and base.attr == "models"
            and getattr(base.value, "id", None) in self.plain
        ):
            return MODEL_OF[node.attr]
        return None


def _receiver(node, names: _Names, local: dict[str, str]) -> str | None:
    """The model a write's receiver reaches: a ledger model's name, OTHER, or None
    (a variable or parameter the scan cannot type)."""
    while True:
        if isinstance(node, ast.Attribute):
            if node.attr in RELATED:
                return RELATED[node.attr]
            model = names.model_attr(node)
            if model:
                return model
            node = node.value
        elif isinstance(node, ast.Call):
            model = _get_model(node)
            if model:
                return model
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            return local.get(node.id) or names.models.get(node.id)
        else:
            return None


def _strings(node) -> set[str] | None:
    """The string items of a literal list/tuple/set, None when not all literal."""
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        items = {e.value for e in node.elts if isinstance(e, ast.Constant)}
        return items if len(items) == len(node.elts) else None
    return None


def _f_cache(node) -> str | None:
    """The cache column an `F("…")` inside this expression names, if any."""
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Call)
            and getattr(sub.func, "id", getattr(sub.func, "attr", None)) == "F"
            and sub.args
            and isinstance(sub.args[0], ast.Constant)
            and sub.args[0].value in CACHE_COLUMNS
        ):
            return sub.args[0].value
    return None


def _written_fields(call: ast.Call) -> tuple[set[str], bool]:
    """(fields a write call sets, whether it may set fields the scan cannot see)."""
    fields, hidden = set(), False
    for kw in call.keywords:
        if kw.arg in OPTIONS:
            continue
        if kw.arg is None:
            hidden = True  # **kwargs
        elif kw.arg == "defaults" and isinstance(kw.value, ast.Dict):
            fields |= {k.value for k in kw.value.keys if isinstance(k, ast.Constant)}
            hidden |= any(k is None for k in kw.value.keys)
        elif kw.arg in ("defaults", "create_defaults"):
            hidden = True
        elif kw.arg in ("update_fields", "fields"):
            named = _strings(kw.value)
            fields |= named or set()
            hidden |= named is None
        else:
            fields.add(kw.arg)
    method = call.func.attr
    if method == "bulk_update" and len(call.args) > 1:
        named = _strings(call.args[1])
        fields |= named or set()
        hidden |= named is None
    if method in ("bulk_create", "_insert") or (method == "bulk_update" and not fields):
        hidden = True  # the instances' fields are not in the call
    return fields, hidden


def _scopes(tree):
    """The module and every function: names bound to a ledger model's rows
    (`txn = LedgerTransaction.objects.get(…)`, `for p in txn.postings.all()`) are read
    per scope, so one function's `rows` does not type another's."""
    return [tree] + [
        n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]


def orm_writes(tree, rel) -> list[tuple[int, str]]:
    names = _Names(tree, rel)
    found = set()
    for scope in _scopes(tree):
        local: dict[str, str] = {}
        body = list(ast.walk(scope))
        for node in body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and isinstance(
                    node.value, (ast.Call, ast.Attribute)
                ):
                    model = _receiver(node.value, names, {})
                    if model in LEDGER_MODELS:
                        local[target.id] = model
            elif isinstance(node, ast.For) and isinstance(node.target, ast.Name):
                model = _receiver(node.iter, names, {})
                if model in LEDGER_MODELS:
                    local[node.target.id] = model
        for node in body:
            # F() arithmetic set on an instance's cache: `lot.remaining_micro = F(…) - 1`
            if (
                isinstance(node, ast.Assign)
                and any(getattr(t, "attr", None) in CACHE_COLUMNS for t in node.targets)
                and _f_cache(node.value)
            ):
                found.add((node.lineno, f'F("{_f_cache(node.value)}") assigned'))
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in WRITE_METHODS
            ):
                continue
            method = node.func.attr
            model = _receiver(node.func.value, names, local)
            fields, hidden = _written_fields(node)
            for kw in node.keywords:
                if kw.value is not None and _f_cache(kw.value) and model != OTHER:
                    found.add((node.lineno, f'{method}() with F("{_f_cache(kw.value)}")'))
            if model in BOOKS:
                found.add((node.lineno, f"{model}.{method}()"))
            elif model in CACHED:
                if method in ("delete", "_raw_delete"):
                    found.add((node.lineno, f"{model}.{method}()"))
                elif fields & CACHED[model]:
                    cols = ", ".join(sorted(fields & CACHED[model]))
                    found.add((node.lineno, f"{model}.{method}() sets {cols}"))
                elif hidden and method != "create" and (method != "save" or node.keywords):
                    found.add((node.lineno, f"{model}.{method}() with fields not visible"))
                elif method == "save" and not node.keywords:
                    found.add((node.lineno, f"{model}.save() of every field"))
            elif model is None and fields & UNAMBIGUOUS:
                cols = ", ".join(sorted(fields & UNAMBIGUOUS))
                found.add((node.lineno, f"{method}() sets {cols}"))
    return sorted(found)


def violations(rel: str, source: str) -> list[str]:
    tree = ast.parse(source, filename=rel)
    return [f"{rel}:{line}: {what}" for line, what in sql_writes(tree) + orm_writes(tree, rel)]


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if any(part in SKIP for part in rel.parts):
            continue
        yield rel.as_posix(), path


# ---------------------------------------------------------------- the rule


def test_only_the_engine_writes_the_books():
    """R-LED-1, R-LED-4 (issue 20): no module but billing/services/engine.py inserts
    ledger transactions or postings or moves a bucket, lot or grant's cached balance."""
    offenders = []
    for rel, path in _modules():
        if rel != WRITER:
            offenders += violations(rel, path.read_text(encoding="utf-8"))
    assert not offenders, "\n".join(offenders)


def test_the_scan_sees_the_engines_own_writes():
    """The scan is not vacuous: run over the writer itself, it finds the statements that
    write every table of the books (both named writers: `write_rows` and the expiry)."""
    found = "\n".join(violations(WRITER, (ROOT / WRITER).read_text(encoding="utf-8")))
    for table in TABLES:
        assert re.search(rf"(INSERT INTO|UPDATE) {table}\b", found), (table, found)
    assert "LedgerAccount.bulk_create() with fields not visible" in found


def test_the_scan_knows_every_table_and_column_of_the_books():
    """The names the scan looks for are the models' own (a rename breaks this test, not
    the rule)."""
    assert set(TABLES) == {
        "billing_ledgertransaction",
        "billing_posting",
        "billing_ledgeraccount",
        "billing_lot",
        "billing_grant",
        "billing_packageholding",
    }
    for name, columns in CACHED.items():
        fields = {f.attname for f in LEDGER_MODELS[name]._meta.concrete_fields}
        assert columns <= fields, (name, columns - fields)
    assert RELATED["postings"] == "Posting"
    assert MODEL_OF["GrantValidity"] == "Grant"  # a proxy is the same table
    assert {"balance_micro", "remaining_micro"} <= UNAMBIGUOUS


PLANTED = {
    "raw insert": 'cur.execute("INSERT INTO billing_posting (amount_micro) VALUES (1)")\n',
    "raw update, folded": 'sql = ("UPDATE billing_lot" " SET remaining_micro = 0")\n',
    "raw update, joined": 'sql = "UPDATE " + "billing_grant SET remaining_micro = 0"\n',
    "raw delete, quoted": "cur.execute('DELETE FROM \"billing_ledgertransaction\"')\n",
    "raw via db_table": (
        "from billing.models import LedgerAccount\n"
        'sql = f"UPDATE {LedgerAccount._meta.db_table} SET balance_micro = 0"\n'
    ),
    "dynamic table helper": (
        'def bump(table):\n    cur.execute(f"UPDATE {table} SET x = x + 1")\nbump("billing_lot")\n'
    ),
    "create a transaction": (
        "from billing.models import LedgerTransaction\n"
        'LedgerTransaction.objects.create(kind="usage")\n'
    ),
    "bulk postings, relative import": (
        "from ..models import Posting as P\nP.objects.bulk_create(rows)\n"
    ),
    "related manager": "def f(txn):\n    txn.postings.create(amount_micro=1)\n",
    "get_model": (
        'Posting = apps.get_model("billing", "Posting")\nPosting.objects.filter(pk=1).delete()\n'
    ),
    "module alias": (
        "from billing import models as bm\nbm.Posting.objects.all().update(bucket='x')\n"
    ),
    "a proxy model": (
        "from topups.models import GrantValidity\n"
        "GrantValidity.objects.filter(pk=1).update(remaining_micro=0)\n"
    ),
    "bound variable": (
        "from billing.models import LedgerTransaction\n"
        "def f():\n    txn = LedgerTransaction.objects.get(pk=1)\n    txn.save()\n"
    ),
    "cached balance update": (
        "from billing.models import Lot\nLot.objects.filter(pk=1).update(remaining_micro=0)\n"
    ),
    "F balance update": (
        "from billing.models import Grant\n"
        'Grant.objects.filter(pk=1).update(remaining_micro=F("remaining_micro") - 1)\n'
    ),
    "F on an untyped queryset": 'rows.update(held_micro=F("held_micro") + 1)\n',
    "untyped save of a balance": (
        'def f(bucket):\n    bucket.save(update_fields=["balance_micro"])\n'
    ),
    "bulk_update of a cache": (
        "from billing.models import Lot\n"
        'Lot.objects.bulk_update(lots, ["remaining_micro", "held_micro"])\n'
    ),
    "F assigned": 'lot.remaining_micro = F("remaining_micro") - 5\nlot.save()\n',
}


@pytest.mark.parametrize("source", PLANTED.values(), ids=PLANTED.keys())
def test_a_planted_write_is_found(source):
    """Each way of writing the books outside the engine, planted in a service module,
    fails the rule."""
    assert violations("billing/services/planted.py", source)


ALLOWED = {
    "a read": 'cur.execute("SELECT SUM(amount_micro) FROM billing_posting")\n',
    "a docstring": '"""The engine runs INSERT INTO billing_posting; we do not."""\n',
    "grant state": (
        "from billing.models import Grant, GrantState\n"
        "Grant.objects.filter(pk=1).update(state=GrantState.VOIDED, ended_at=None)\n"
    ),
    "a new lot, no balance": (
        "from ..models import Lot\nlot = Lot.objects.create(account_id=1, amount=x)\n"
        "lot.remaining_micro = rest\n"
    ),
    "a lot closed": (
        "from billing.models import Lot\nLot.objects.filter(pk=1).update(closed_at=now)\n"
    ),
    "another app's held_micro": (
        "def f(request):\n    request.save(update_fields=['held_micro', 'arrears_micro'])\n"
    ),
    "another model's table": 'cur.execute("UPDATE refunds_refundline SET held_micro = 0")\n',
    "a read of a cache with F": (
        'from billing.models import Lot\nqs = Lot.objects.annotate(left=F("remaining_micro"))\n'
    ),
}


@pytest.mark.parametrize("source", ALLOWED.values(), ids=ALLOWED.keys())
def test_what_is_not_the_books_passes(source):
    """Reads, docstrings, state columns and other apps' rows are not writes of the books."""
    assert violations("billing/services/planted.py", source) == []


# ---------------------------------------------------------------- accounts' rows


ACCOUNT_TABLES = {m._meta.db_table for m in apps.get_app_config("accounts").get_models()}


def test_billing_writes_no_accounts_table_in_sql():
    """Issue 20: the API key's last-used stamp (and anything else on an accounts table) is
    an accounts service billing calls, not raw SQL inside billing."""
    offenders = []
    for rel, path in _modules():
        if not rel.startswith("billing/"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            text = None if id(node) in skip else _text(node)
            for match in WRITE_SQL.finditer(text or ""):
                if match.group(2).strip('"`').lower() in ACCOUNT_TABLES:
                    offenders.append(f"{rel}:{node.lineno}: {match.group(0)}")
    assert not offenders, offenders
    assert "accounts_apikey" in ACCOUNT_TABLES
