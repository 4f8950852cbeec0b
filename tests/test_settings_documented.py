"""Settings you can find (issue 20): every environment variable the portal reads is in
README's "Configuration (environment variables)" table and the table names nothing that is
not read; a variable's default lives in one place; every setting the code reads is defined.

Read from the source with `ast` (Python) and a pattern (the scripts' `${NAME:-default}`):
config/settings.py and every app, the scripts, and tests/conftest.py (the suite's own
switches). Benchmarks (bench/) and the tests' internal hand-offs are not configuration."""

import ast
import re
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", "bench", "tests", "var", "node_modules", "staticfiles", "migrations"}
ENV_HELPERS = {"env", "env_bool", "env_list"}  # config/settings.py
TABLE_HEADING = "## Configuration (environment variables)"


def python_files():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if not SKIP_DIRS.intersection(parts[:-1]) and not parts[0].startswith("."):
            yield path
    yield ROOT / "tests" / "conftest.py"


def _constant(node):
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_os_environ(node):
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def env_reads(tree):
    """Names of environment variables read in one module (setdefault is a write)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func, name = node.func, _constant(node.args[0])
            if name is None:
                continue
            helper = isinstance(func, ast.Name) and func.id in ENV_HELPERS
            environ_get = isinstance(func, ast.Attribute) and (
                (func.attr == "get" and _is_os_environ(func.value))
                or (func.attr == "getenv" and isinstance(func.value, ast.Name))
            )
            if helper or environ_get:
                yield name
        elif (
            isinstance(node, ast.Subscript)
            and _is_os_environ(node.value)
            and isinstance(node.ctx, ast.Load)
            and _constant(node.slice)
        ):
            yield _constant(node.slice)


def python_env_reads():
    """{module path: [names, with repeats]}."""
    return {
        path.relative_to(ROOT).as_posix(): list(env_reads(ast.parse(path.read_text())))
        for path in python_files()
    }


def script_env_reads():
    """`${NAME:-default}` / `${NAME-default}` in the scripts: inputs with a default."""
    pattern = re.compile(r"\$\{([A-Z][A-Z0-9_]*):?[-=]")
    names = set()
    for path in sorted((ROOT / "scripts").glob("*.sh")):
        names.update(pattern.findall(path.read_text()))
    return names


def readme_table():
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(TABLE_HEADING)
    names, rows = set(), 0
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows += 1
            if rows > 2:  # the header and the separator
                first = line.split("|")[1]
                names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first))
        elif rows:
            break
    return names


def test_every_variable_read_is_in_the_readme_table_and_no_other():
    """Issue 20: the README's configuration table lists exactly the environment variables
    the portal, its scripts and the test suite's switches read."""
    read = {name for names in python_env_reads().values() for name in names}
    read |= script_env_reads()
    documented = readme_table()
    assert len(documented) > 50
    assert sorted(read - documented) == [], "read but not in README's configuration table"
    assert sorted(documented - read) == [], "in README's configuration table but never read"


def test_each_default_is_defined_once():
    """Issue 20: a variable the settings read is read nowhere else in Python (the code asks
    `settings.X`), and the settings read each variable once."""
    reads = python_env_reads()
    in_settings = reads.pop("config/settings.py")
    repeated = sorted({n for n in in_settings if in_settings.count(n) > 1})
    assert repeated == [], "read twice in config/settings.py"
    elsewhere = sorted(
        f"{module}: {name}"
        for module, names in reads.items()
        for name in names
        if name in in_settings
    )
    assert elsewhere == [], "read outside config/settings.py: use the setting"


def _setting_reads(tree):
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "settings"
            and _constant(node.args[1])
        ):
            yield _constant(node.args[1])
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "settings"
            and node.attr.isupper()
        ):
            yield node.attr


def test_every_setting_read_is_defined():
    """Issue 20: no setting is read with a fallback for a name the settings never define
    (the fallback would be a second, hidden default)."""
    undefined = sorted(
        f"{path.relative_to(ROOT).as_posix()}: {name}"
        for path in python_files()
        if path.name != "conftest.py"
        for name in set(_setting_reads(ast.parse(path.read_text())))
        if not hasattr(settings, name)
    )
    assert undefined == []
