"""The import direction (.importlinter, issue 21): the tree keeps it, and a wrong-way import breaks it.

``make test`` runs the check on the repository through scripts/lint.sh; here it runs on copies of the
sources with one import added against the direction, which must fail and name the import.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "import_contract.py"
FOLDERS = ("tinylstm", "contract", "trainer", "codegen", "host")


def _run(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(root)], capture_output=True, text=True, timeout=300
    )


def test_the_sources_keep_the_import_direction() -> None:
    done = _run(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "verdict"),
    [
        (
            "host/link/feed.py",
            "from tinylstm.host.analysis import check",
            "tinylstm.host.link is not allowed to import tinylstm.host.analysis",
        ),
        (
            "trainer/data.py",
            "from tinylstm.codegen import golden",
            "tinylstm.trainer is not allowed to import tinylstm.codegen",
        ),
        (
            "codegen/golden.py",
            "import tinylstm.host.boards",
            "tinylstm.codegen is not allowed to import tinylstm.host",
        ),
    ],
)
def test_a_wrong_way_import_breaks_the_contract(
    tmp_path: Path, module: str, wrong_import: str, verdict: str
) -> None:
    for name in FOLDERS:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / module
    # inside a function, as a lazy import would be: the check reads every import statement
    target.write_text(target.read_text() + f"\n\ndef _wrong_way() -> None:\n    {wrong_import}  # noqa\n")
    done = _run(tmp_path)
    assert done.returncode != 0, done.stdout
    assert "BROKEN" in done.stdout and verdict in done.stdout, done.stdout
