#!/usr/bin/env bash
# The style gates `make test` runs before the tests: ruff (pyflakes, import order, bugbear, line length;
# and its formatter), clang-format on every C/C++ source, mypy on the tinylstm package, and the import
# direction of .importlinter (scripts/import_contract.py).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ROOT=$PWD

"$PY" -m ruff check .
"$PY" -m ruff format --check --quiet .

mapfile -t C_FILES < <(find csrc firmware tests/c \( -name 'build-*' -prune \) -o \
    \( -name '*.c' -o -name '*.h' -o -name '*.cpp' \) -print | sort)
# the clang-format of the pinned PyPI package (pyproject.toml), whatever else is on PATH
CLANG_FORMAT=$("$PY" -c 'import clang_format; print(clang_format.get_executable("clang-format"))')
"$CLANG_FORMAT" --dry-run --Werror "${C_FILES[@]}"

# The package maps tinylstm.contract/trainer/codegen/host onto contract/, trainer/, codegen/, host/
# (pyproject.toml), which mypy cannot follow: check a tree of links with that layout. The tree stays at one
# path (build/, git-ignored) so that mypy's cache (.mypy_cache/) serves the next run: a fresh clone checks
# in about 25 s, a rerun in about 1 s.
TREE="$ROOT/build/mypy-tree"
rm -rf "$TREE"
mkdir -p "$TREE/tinylstm"
ln -s "$ROOT"/tinylstm/*.py "$TREE/tinylstm/"
for d in contract trainer codegen host; do ln -s "$ROOT/$d" "$TREE/tinylstm/$d"; done
(cd "$TREE" && "$PY" -m mypy --config-file "$ROOT/pyproject.toml" --cache-dir "$ROOT/.mypy_cache" -p tinylstm)
"$PY" scripts/import_contract.py
echo "lint: ruff, clang-format and mypy clean; the import direction kept"
