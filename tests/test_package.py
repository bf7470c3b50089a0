"""The package as a whole: one version, and modules that never import each other in a circle."""

import ast
import importlib.metadata
import os
import pathlib
import subprocess
import sys

import pytest

import losslandscape

PACKAGE = pathlib.Path(losslandscape.__file__).parent
ROOT = str(PACKAGE.parent)


def test_the_version_has_one_source():
    assert losslandscape.__version__ == importlib.metadata.version("losslandscape")
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["project"]
    assert "version" not in project and project["dynamic"] == ["version"]


def _imports(path: pathlib.Path) -> set[str]:
    """The losslandscape modules `path` imports at run time (anywhere but under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    type_checking = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
        for inner in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("losslandscape"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("losslandscape"))
    return found


def _module_graph() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = _imports(path)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles, finished = [], set()

    def visit(module, path):
        if module in path:
            cycles.append(path[path.index(module):] + [module])
            return
        if module in finished:
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, path + [module])
        finished.add(module)

    for module in sorted(graph):
        visit(module, [])
    return cycles


def test_no_module_imports_one_that_imports_it_back():
    # The package's __init__ imports everything and nothing imports it, so it cannot close a circle.
    graph = {module: imports - {"losslandscape"} for module, imports in _module_graph().items()}
    assert _cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_public_name_is_also_a_module_name():
    # Importing a submodule sets it as an attribute of the package, which would hide a lazy export of that name.
    import pkgutil

    import losslandscape

    modules = {info.name for info in pkgutil.iter_modules(losslandscape.__path__)}
    assert modules.isdisjoint(losslandscape.__all__), sorted(modules & set(losslandscape.__all__))


FRAMEWORKS = {"tensorflow": ("tensorflow", "tensorboard"), "jax": ("jax",), "torch": ("torch",)}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_the_suite_collects_with_one_framework_installed(backend, tmp_path):
    """With only `backend`'s framework importable, the tests collect (those of absent frameworks skip, not error)."""
    import sysconfig

    pytest.importorskip(backend)
    site_packages = pathlib.Path(sysconfig.get_paths()["purelib"])
    absent = tuple(prefix for name, prefixes in FRAMEWORKS.items() if name != backend for prefix in prefixes)
    # A site-packages without the other frameworks: links to everything else, read with site processing off.
    packages = tmp_path / "site-packages"
    packages.mkdir()
    for entry in site_packages.iterdir():
        if not entry.name.lower().startswith(absent) and not entry.name.endswith(".pth"):
            (packages / entry.name).symlink_to(entry)
    root = PACKAGE.parent
    result = subprocess.run(
        [sys.executable, "-S", "-m", "pytest", "--collect-only", "-q", "-n", "0", "-p", "no:cacheprovider"],
        cwd=root, capture_output=True, text=True, timeout=600,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KERAS_BACKEND": backend, "MPLBACKEND": "Agg",
             "PYTHONPATH": f"{root}:{packages}"},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    assert "error" not in last and " tests collected" in last, last


@pytest.mark.slow
def test_the_package_type_checks_and_ships_its_types():
    """mypy over the package, configured in pyproject.toml (only untyped dependencies are ignored)."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert os.path.exists(os.path.join(ROOT, "losslandscape", "py.typed"))
    assert "py.typed" in open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8").read()
