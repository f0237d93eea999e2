"""The import direction of .importlinter (host/__init__.py says why), checked with import-linter.

The package maps tinylstm.contract/trainer/codegen/host onto sibling folders (pyproject.toml), which
import-linter, like mypy, cannot follow: it checks a tree of links with the installed layout.

    python scripts/import_contract.py [SOURCE_ROOT]    # default: this repository; exit 0 when kept
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from importlinter.cli import lint_imports

REPO = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("contract", "trainer", "codegen", "host")  # tinylstm.<name> lives in <name>/


def link_tree(root: Path, dest: Path) -> Path:
    """``dest``/tinylstm laid out as installed: tinylstm/*.py plus one link per subpackage folder."""
    pkg = dest / "tinylstm"
    pkg.mkdir()
    for f in (root / "tinylstm").glob("*.py"):
        (pkg / f.name).symlink_to(f)
    for name in SUBPACKAGES:
        (pkg / name).symlink_to(root / name, target_is_directory=True)
    return dest


def check(root: Path = REPO) -> int:
    """import-linter's exit status for the sources under ``root`` against this repository's contract. Run it
    in a fresh process (as a script): a ``tinylstm`` already imported would be the one analysed."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = link_tree(root.resolve(), Path(tmp))
        sys.path.insert(0, str(tree))
        os.chdir(tree)
        return lint_imports(str(REPO / ".importlinter"), no_cache=True, no_logo=True)


if __name__ == "__main__":
    sys.exit(check(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO))
