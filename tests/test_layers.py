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
