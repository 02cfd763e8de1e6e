"""The layout's one hard rule: zones/ (the domain) never imports workers/ (which imports zones).

Only zones' management commands may, as they start the worker-side processes (MiniDNS, the
producer) or print a backend's configuration; everything else reaches workers by task name
(celery.signature) or through zones.backends, which the workers app fills when it is ready."""
import ast
from pathlib import Path

from zones import backends

ZONES = Path(__file__).resolve().parent.parent / "zones"
COMMANDS = ZONES / "management" / "commands"


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (relative imports resolve inside zones)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add(node.module)
    return found


def test_zones_never_imports_workers():
    offenders = {
        str(path.relative_to(ZONES.parent)): sorted(m for m in imported_modules(path) if m.split(".")[0] == "workers")
        for path in ZONES.rglob("*.py") if COMMANDS not in path.parents
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from workers.backends import get_backend\n    import workers.tasks\n")
    assert imported_modules(source) == {"workers.backends", "workers.tasks"}


def test_pool_validation_reaches_the_backends_through_the_registry():
    assert backends.types() == ["bind9", "knot", "nsd", "pdns"]
    assert "option timeout must be a number" in backends.check("bind9", "t1", {"timeout": "soon"}, [])
    assert "cannot consume the pool's catalog zone" in backends.check("nsd", "n1", {"config": "/etc/nsd/nsd.conf",
                                                                        "catalog": {"pool": "p"}}, [])
    assert "unknown backend type 'nope'" in backends.check("nope", "t1", {}, [])
