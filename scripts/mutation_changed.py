"""Mutation testing of the package's modules that a change touches, with the tests that name them.

    python scripts/mutation_changed.py                 # modules changed since origin/main (or HEAD), uncommitted too
    python scripts/mutation_changed.py --base HEAD~3   # changed since another revision
    python scripts/mutation_changed.py losslandscape/exports.py losslandscape/hashing.py
    python scripts/mutation_changed.py losslandscape/exports.py --tests tests/test_exports.py   # a narrower selection
    python scripts/mutation_changed.py losslandscape/plotting.py --only "losslandscape.plotting.x_plot_line*"   # some

Runs mutmut (pip install mutmut==3.8.1) in a copy of the working tree, so that pyproject.toml and the tree stay as
they are, and prints each module's score and its survivors. A module's tests are the test files that name the
module or one of its public functions or classes, or those of a module that imports it, plus `tests/test_<module>.py`;
mutmut then runs, for each mutant, only those of them that reach the mutated function. Tests marked slow are left out (`-m "not slow"`), so a mutant
they alone would catch counts as survived, never wrongly as killed. See CONTRIBUTING.md.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The package's re-exports, its `python -m` entry and its version: a subpackage's `__init__.py` with code is mutated.
NOT_MUTATED = {"losslandscape/__init__.py", "losslandscape/__main__.py", "losslandscape/version.py"}


def changed_modules(base: str) -> list[str]:
    """The package's modules that differ from `base`, committed or not, and new ones git does not ignore."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()

    names = set(git("diff", "--name-only", base, "--", "losslandscape")) | set(
        git("ls-files", "--others", "--exclude-standard", "--", "losslandscape"))
    return sorted(n for n in names if n.endswith(".py") and n not in NOT_MUTATED and (ROOT / n).exists())


def dotted_name(module: str) -> str:
    """`losslandscape/backends/torch.py` as `losslandscape.backends.torch`; a package's `__init__.py` as the package."""
    return module[:-3].replace("/", ".").removesuffix(".__init__")


def public_names(module: Path) -> set[str]:
    tree = ast.parse(module.read_text())
    return {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))
            and not node.name.startswith("_")}


def tests_of(module: str) -> list[str]:
    """The test files that name `module` or one of its public names, or those of a module that imports it."""
    dotted = dotted_name(module)
    importers = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "losslandscape").rglob("*.py"))
                 if re.search(rf"^\s*(from {re.escape(dotted)} import|import {re.escape(dotted)}\b)", path.read_text(),
                              re.M)]
    return sorted({test for name in [module, *importers] for test in _tests_naming(name)})


def _tests_naming(module: str) -> list[str]:
    """The test files that name `module` (as `losslandscape.x` or `x.py`) or one of its public names."""
    path = ROOT / module
    dotted = dotted_name(module)
    words = {dotted, path.name} | public_names(path)
    pattern = re.compile("|".join(rf"\b{re.escape(word)}\b" for word in sorted(words)))
    found = [str(test.relative_to(ROOT)) for test in sorted((ROOT / "tests").glob("test_*.py"))
             if test.name != "test_other_backends.py" and pattern.search(test.read_text())]
    own = f"tests/test_{path.stem}.py"
    return sorted(set(found) | ({own} if (ROOT / own).exists() else set()))


def configured(pyproject: str, modules: list[str], tests: list[str]) -> str:
    """pyproject.toml's text with [tool.mutmut] set to mutate `modules` and run `tests`."""
    def toml_list(items):
        return "[\n" + "".join(f'    "{item}",\n' for item in items) + "]"

    text = re.sub(r"only_mutate = \[[^\]]*\]", "only_mutate = " + toml_list(modules), pyproject)
    text = re.sub(r"pytest_add_cli_args_test_selection = \[[^\]]*\]",
                  "pytest_add_cli_args_test_selection = " + toml_list(tests), text)
    return text


def copy_of_the_tree(target: Path) -> None:
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for name in files:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def scores(results: str, modules: list[str]) -> list[str]:
    """One line per module from `mutmut results --all true`: mutants, killed, survived, other."""
    lines = []
    for module in modules:
        dotted = dotted_name(module)
        prefixes = (dotted + ".x_", dotted + ".x\u01c1")  # a function's mutants, a method's (`xǁClassǁname`)
        statuses = [line.rsplit(":", 1)[1].strip() for line in results.splitlines()
                    if line.strip().startswith(prefixes) and ":" in line]
        killed = sum(s in ("killed", "timeout") for s in statuses)
        survived = sum(s == "survived" for s in statuses)
        decided = killed + survived
        percent = f"{100 * killed / decided:.1f} %" if decided else "-"
        lines.append(f"{module}: {len(statuses)} mutants, {killed} killed ({percent}), {survived} survived, "
                     f"{len(statuses) - decided} neither")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: those changed since --base)")
    parser.add_argument("--base", default=None, help="revision to compare with (default: origin/main, else HEAD)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--tests", nargs="+", default=None,
                        help="test files to run instead of those found by name (a narrower selection is faster)")
    parser.add_argument("--only", nargs="+", default=None, metavar="NAME",
                        help="run only these mutants (names or globs as `mutmut results` prints them), e.g. the "
                             "survivors of an earlier run after tests were added for them")
    parser.add_argument("--keep", action="store_true", help="keep the copy of the tree and print where it is")
    args = parser.parse_args(argv)
    if args.modules:
        named = {str((ROOT / m).resolve().relative_to(ROOT)) for m in args.modules}
        modules = sorted(named - NOT_MUTATED)
    else:
        base = args.base or ("origin/main" if subprocess.run(["git", "rev-parse", "--verify", "-q", "origin/main"],
                                                             cwd=ROOT, capture_output=True).returncode == 0 else "HEAD")
        modules = changed_modules(base)
    if not modules:
        print("mutation_changed: no module of losslandscape/ to mutate (changed, or named; losslandscape/__init__.py, "
              "__main__.py and version.py are left out).")
        return 0
    tests = args.tests or sorted({test for module in modules for test in tests_of(module)})
    if not tests:
        print(f"mutation_changed: no test names {', '.join(modules)}; write one first.", file=sys.stderr)
        return 2
    print("mutating:", " ".join(modules), "\nwith:", " ".join(tests), flush=True)
    work = Path(tempfile.mkdtemp(prefix="mutation_changed_"))
    try:
        copy_of_the_tree(work)
        pyproject = work / "pyproject.toml"
        pyproject.write_text(configured(pyproject.read_text(), modules, tests + ["-m", "not slow"]))
        run = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children),
                              *(args.only or [])], cwd=work)
        results = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work,
                                 capture_output=True, text=True).stdout
        survivors = [line.split(":")[0].strip() for line in results.splitlines() if line.strip().endswith("survived")]
        print("\n".join(scores(results, modules)))
        if survivors:
            print("survivors (see one with `mutmut show NAME` in the kept copy, --keep):")
            print("\n".join("  " + name for name in survivors))
        return run.returncode
    finally:
        if args.keep:
            print("the copy is kept in", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
