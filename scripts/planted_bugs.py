"""Plants each bug of `planted_bugs.json` in turn, in a copy of the tree, and says whether the module's tests catch it.

    python scripts/planted_bugs.py              # every bug (about 45 minutes on 2 cores)
    python scripts/planted_bugs.py E1 D5 S2     # some of them

Each bug is a small mistake of the kind a user would not notice (an argument not passed on, a boundary moved by
one, a check dropped), given as the text it replaces in one module, and the test files of that module. Mutation
testing (`mutation_changed.py`) makes mechanical edits everywhere; these are the mistakes a person would make,
written by hand from reading the module. A new test that catches a bug nobody planted yet: add the bug here too.
Exits with 1 if any bug is missed or its text is no longer in the module. See CONTRIBUTING.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from mutation_changed import copy_of_the_tree  # noqa: E402


def main(argv: list[str]) -> int:
    bugs = json.loads((ROOT / "scripts" / "planted_bugs.json").read_text())
    chosen = [bug for bug in bugs if not argv or bug["id"] in argv]
    missed = []
    with tempfile.TemporaryDirectory(prefix="planted_bugs_") as folder:
        work = Path(folder)
        copy_of_the_tree(work)
        for bug in chosen:
            path = work / bug["file"]
            original = path.read_text()
            if original.count(bug["old"]) != 1:
                print(f"{bug['id']}: its text is found {original.count(bug['old'])} times in {bug['file']}; "
                      "update planted_bugs.json", flush=True)
                missed.append(bug["id"])
                continue
            path.write_text(original.replace(bug["old"], bug["new"]))
            start = time.monotonic()
            try:
                run = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider",
                                      *bug["tests"]], cwd=work, capture_output=True, text=True)
            finally:
                path.write_text(original)
            failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED")]
            caught = run.returncode != 0
            print(f"{bug['id']} ({bug['file']}): {'caught' if caught else 'MISSED'} in {time.monotonic() - start:.0f} s"
                  + (f" by {failed[0][len('FAILED '):].split(' - ')[0]}" if failed else ""), flush=True)
            if not caught:
                missed.append(bug["id"])
    print(f"{len(chosen) - len(missed)} of {len(chosen)} planted bugs caught" + (f"; missed: {' '.join(missed)}"
                                                                               if missed else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
