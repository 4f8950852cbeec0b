"""The apps form layers and a lower app never imports a higher one (SPEC §1, README
"Layout"). Read from the source with `ast`, so imports inside functions count, and so
do the string forms of an import (`apps.get_model("billing", …)`,
`import_string("topups.…")`)."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Bottom to top. An app may import its own modules and those of any lower layer.
LAYERS = [
    "core",
    "ops",
    "notices",
    "accounts",
    "billing",
    "topups",
    "invoices",
    "refunds",
    "disputes",
    "console",
    "config",
]
RANK = {app: rank for rank, app in enumerate(LAYERS)}
STRING_IMPORTERS = {"get_model", "import_string", "import_module"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, root: Path = ROOT):
    """(line, top-level package) for every import in a file, however it is written."""
    module = _module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, _absolute(node, module, path.name == "__init__.py").split(".")[0]
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            first = node.args[0] if node.args else None
            text = first.value if isinstance(first, ast.Constant) else None
            if name in STRING_IMPORTERS and isinstance(text, str):
                yield node.lineno, text.split(".")[0]


def imported_modules(path: Path, root: Path = ROOT):
    """(line, dotted module) for every import in a file: `from a import b` names `a.b` (b may
    be a module or a name in a), a string import names its string."""
    module = _module_name(path, root)
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, module, path.name == "__init__.py")
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            first = node.args[0] if node.args else None
            text = first.value if isinstance(first, ast.Constant) else None
            if name in STRING_IMPORTERS and isinstance(text, str):
                yield node.lineno, text


def upward_imports(root: Path = ROOT):
    found = []
    for app in LAYERS:
        for path in sorted((root / app).rglob("*.py")):
            for line, target in imports_of(path, root):
                if target in RANK and RANK[target] > RANK[app]:
                    found.append(f"{path.relative_to(root)}:{line} ({app}) imports {target}")
    return found


def test_every_project_app_has_a_layer():
    """Every app of the project sits in a layer, so the rule covers it."""
    from core.staff import local_app_labels

    assert local_app_labels() <= set(RANK), sorted(local_app_labels() - set(RANK))


def test_installed_apps_list_the_layers_bottom_up():
    """INSTALLED_APPS names the project's apps in layer order (README "Layout"), so
    demo data, admin and ready() hooks run lowest layer first."""
    from django.conf import settings

    ours = [app for app in settings.INSTALLED_APPS if app in RANK]
    assert ours == [app for app in LAYERS if app != "config"]


def test_no_lower_app_imports_a_higher_one():
    """SPEC §1: lower layers never import upper ones."""
    found = upward_imports()
    assert not found, "imports up the layers:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "source",
    [
        "from billing.models import Grant\n",
        "def later():\n    from billing import services\n",
        "import billing.models\n",
        "apps.get_model('billing', 'Grant')\n",
        "import_string('billing.services.ledger.grant_funds')\n",
    ],
)
def test_the_check_sees_every_form_of_import(tmp_path, source):
    """The check itself: plain, lazy, dotted and string imports all count."""
    (tmp_path / "notices").mkdir()
    (tmp_path / "notices" / "jobs.py").write_text(source)
    assert upward_imports(tmp_path) == [
        "notices/jobs.py:" + _line(source) + " (notices) imports billing"
    ]


def _line(source):
    return str(next(i for i, text in enumerate(source.splitlines(), 1) if "billing" in text))


def test_relative_imports_resolve_inside_the_app(tmp_path):
    """A relative import stays in its own app and is never mistaken for another."""
    (tmp_path / "notices").mkdir()
    (tmp_path / "notices" / "__init__.py").write_text("from .models import Notice\n")
    path = tmp_path / "notices" / "jobs.py"
    path.write_text("from . import services\nfrom .models import Notice\n")
    assert {target for _, target in imports_of(path, tmp_path)} == {"notices"}
    assert upward_imports(tmp_path) == []


# The console (the pages that span apps) reads every other app through its selectors and
# acts through its services, never its models: what a page shows is each app's own read
# path, with the query count that app pins. core is the floor every app stands on (money,
# helpers): the console may use it as any app does, but not its models either.
CONSOLE_DOORS = {"selectors", "services"}


def console_side_doors(root: Path = ROOT):
    found = []
    for path in sorted((root / "console").rglob("*.py")):
        for line, module in imported_modules(path, root):
            app, _, rest = module.partition(".")
            door = rest.split(".")[0]
            if app not in RANK or app == "console" or door in CONSOLE_DOORS:
                continue
            if app == "core" and door not in ("", "models"):
                continue
            found.append(f"{path.relative_to(root)}:{line} imports {module}")
    return found


def test_the_console_reads_other_apps_only_through_their_selectors():
    """SPEC §1: the console on the top floor goes through each app's selectors (reads) and
    services (acts), never straight to another app's models."""
    found = console_side_doors()
    assert not found, "console past the selectors:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "allowed"),
    [
        ("from billing import selectors as billing\n", True),
        ("from billing.selectors import balance_summary\n", True),
        ("import billing.selectors\n", True),
        ("def later():\n    from accounts.services import set_preferred_language\n", True),
        ("from core.money import yuan\n", True),
        ("from . import home\n", True),
        ("from billing.models import Grant\n", False),
        ("from billing import models\n", False),
        ("import billing\n", False),
        ("from billing.micro import from_micro\n", False),
        ("from core.models import AuditRecord\n", False),
        ("apps.get_model('billing', 'Grant')\n", False),
        ("import_string('billing.models.Grant')\n", False),
    ],
)
def test_the_console_check_sees_every_side_door(tmp_path, source, allowed):
    """The check itself: selectors and services pass, models and helpers do not, in
    every form of import."""
    (tmp_path / "console").mkdir()
    (tmp_path / "console" / "page.py").write_text(source)
    assert (console_side_doors(tmp_path) == []) is allowed


CONFIG_MODULES = {"__init__", "settings", "urls", "wsgi", "asgi", "celery", "production_checks"}


def test_config_holds_settings_urls_and_entry_points_only():
    """SPEC §1: `config/` keeps settings (and their checks), URLs, WSGI/ASGI and Celery;
    pages live in an app (console)."""
    found = {path.stem for path in (ROOT / "config").rglob("*.py")}
    assert found <= CONFIG_MODULES, sorted(found - CONFIG_MODULES)
