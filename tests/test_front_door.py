"""`import tinylstm`: the whole pipeline from one import, and the README's Python example run as written
(train, export, check, the host C model, build, search); and the numeric core (contract, cells, qmath,
golden, blob) importable without PyTorch."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from firmware_fixtures import require_board_tools

import tinylstm

README = Path(__file__).resolve().parent.parent / "README.md"


def small_data(path: Path) -> Path:
    """90 sequences of 20 steps, 3 channels, 3 classes: seconds to train."""
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.standard_normal((90, 20, 3)).astype(np.float32) * 0.5 + y[:, None, None]
    np.savez(path, X=x, y=y)
    return path


def test_the_pipeline_from_one_import(tmp_path: Path) -> None:
    small_data(tmp_path / "data.npz")
    run = tinylstm.train(tmp_path / "data.npz", tmp_path / "run", hidden=8, epochs=3)
    exp = tinylstm.export(run.checkpoint_path, tmp_path / "export")
    assert exp.name == "model" and exp.model.hidden_size == 8
    assert tinylstm.load_export(exp.dir).model.model_hash == exp.model.model_hash
    report = tinylstm.check(exp.dir)
    assert report["bit_exact"]["ok"] and report["blob"]["ok"]
    c = tinylstm.CModel.from_export(exp.dir)
    assert c.hash == exp.model.model_hash
    y0 = c.step(c.quantize_input(np.zeros(3, dtype=np.float32)))
    assert y0.shape == (3,) and y0.dtype == np.int16
    assert exp.float_model().hidden_size == 8
    # misuse is one TinyLSTMError, not a TypeError or a numpy overflow warning before it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call, message in (
            (
                lambda: c.quantize_input(np.array([1e300, 0.0, 0.0])),
                "sample 0 holds a value beyond float32's",
            ),
            (lambda: c.quantize_input(np.array([np.nan, 0.0, 0.0])), "sample 0 contains NaN or infinite"),
            (lambda: tinylstm.CModel.from_export(5), "takes an export directory's path, not int"),
            (lambda: tinylstm.CModel.from_blob("model.tlm"), "takes the blob's bytes .* not str"),
        ):
            with pytest.raises(tinylstm.TinyLSTMError, match=message):
                call()
    with pytest.raises(tinylstm.TinyLSTMError, match="unknown training option"):
        tinylstm.train(tmp_path / "data.npz", tmp_path / "run2", hidden_units=8)
    # exported again over itself (another model, another name): nothing of the first describes the second
    # (was: its check-report.json and tl_model.c stayed, and the first Export's c_model() was the second)
    ex = tinylstm.explain(exp.dir)
    (tmp_path / "export" / "explain" / "explain-class-stale.png").write_bytes(b"")
    again = tinylstm.export(run.checkpoint_path, tmp_path / "export", hidden_bits=16, name="other")
    left = {p.name for p in again.dir.iterdir()}
    assert "check-report.json" not in left and "tl_model.c" not in left and "tl_other.c" in left
    with pytest.raises(tinylstm.TinyLSTMError, match="now holds model .* load it again"):
        exp.c_model()
    assert again.c_model().hash == again.model.model_hash
    tinylstm.explain(again.dir)
    pngs = {p.name for p in (again.dir / "explain").glob("*.png")}
    assert pngs == {e["png"] for e in ex["examples"]} and "explain-class-stale.png" not in pngs


def readme_python_example() -> str:
    text = README.read_text()
    start = text.index("```python\n", text.index("In Python, one import")) + len("```python\n")
    return text[start : text.index("```", start)]


def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example as written, with two stand-ins to keep it quick: the small data set for the
    watch data, and less training effort (2 epochs; the search: 1 trained trial of 1 epoch over the
    first hidden size of the README's space, LSTM, 1 layer, int8 h, last-h readout, no QAT). The budgets,
    the board and the rest of every call are the README's."""
    require_board_tools("qemu-stm32f405")
    code = readme_python_example()
    assert "tinylstm.build(" in code and "tinylstm.search(" in code
    data = small_data(tmp_path / "data.npz")
    real_train, real_search = tinylstm.train, tinylstm.search

    def train(d: str, *args: Any, **kw: Any) -> Any:
        return real_train(data if d == "watch" else d, *args, **{**kw, "epochs": 2})

    def search(d: str, *args: Any, **kw: Any) -> Any:
        small = {"trials": 1, "epochs": 1, "cells": "lstm", "layers": 1, "hidden_bits": 8, "readouts": "last"}
        hidden = tuple(kw.get("hidden", (8,)))[:1]
        return real_search(
            data if d == "watch" else d, *args, **{**kw, **small, "hidden": hidden, "qat": False}
        )

    monkeypatch.setattr(tinylstm, "train", train)
    monkeypatch.setattr(tinylstm, "search", search)
    monkeypatch.chdir(tmp_path)  # the example writes to runs/
    ns: dict[str, Any] = {"__name__": "readme"}
    exec(compile(code, "<README.md's Python example>", "exec"), ns)

    assert ns["report"]["bit_exact"]["ok"] and ns["y"].dtype == np.int16
    assert ns["fw"].elf.is_file() and ns["fw"].sizes.flash > 0
    found = ns["found"]
    assert found["best"] is not None and found["best"]["measured"]["flash_bytes"] <= 16 * 1024
    assert ns["best"].elf.is_file() and ns["best"].board == "qemu-stm32f405"
    assert (tmp_path / "runs" / "search" / "search.json").is_file()


def test_every_layer_raises_the_one_error_type() -> None:
    from tinylstm.contract import cells
    from tinylstm.host.link.transport import LinkError
    from tinylstm.trainer.models import TinyRNN

    assert issubclass(LinkError, tinylstm.TinyLSTMError)
    for fn in (
        lambda: cells.cell_type("transformer"),
        lambda: TinyRNN("lstm", 3, 0, 1, 2),
        lambda: tinylstm.load_export("/nonexistent"),
    ):
        with pytest.raises(tinylstm.TinyLSTMError):
            fn()


def test_the_numeric_core_does_not_import_torch() -> None:
    code = (
        "import sys; import tinylstm, tinylstm.codegen.golden, tinylstm.codegen.blob, "
        "tinylstm.codegen.emit_c, tinylstm.codegen.store; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda d: tinylstm.train(d, d / "r", hidden="4"), "train: hidden='4' is a str; pass an int"),
        (
            lambda d: tinylstm.train(d, d / "r", epochs=1.5),
            "train: epochs=1.5 is a float; pass an int or None",
        ),
        (
            lambda d: tinylstm.train(d, d / "r", epochs=True),
            "train: epochs=True is a bool; pass an int or None",
        ),
        (lambda d: tinylstm.train(d, None), "train: out=None is None; pass a str or a path"),
        (
            lambda d: tinylstm.train(d, d / "r", dataset_options=[1]),
            "dataset_options=[1] is a list; pass a dict",
        ),
        (lambda d: tinylstm.train(d, d / "r", dataset_options={"channels": " "}), "channels is empty"),
        (lambda d: tinylstm.check(123), "check: export_dir=123 is an int; pass a str or a path"),
        (lambda d: tinylstm.load_export(None), "load_export: export_dir=None is None"),
        (lambda d: tinylstm.check(d, max_accuracy_drop="x"), "max_accuracy_drop='x' is a str; pass a float"),
        (lambda d: tinylstm.search(d, "stm32f405", hidden=[8, "x"]), "hidden=[8, 'x'] is a list"),
        (lambda d: tinylstm.build(d, board=None), "build: board=None is None; pass a str"),
        (lambda d: tinylstm.train(d, d / "r", 5), "train: too many positional arguments"),
        (lambda d: tinylstm.build(d, out=""), "build: out='' is an empty path"),  # was the export directory's
        (lambda d: tinylstm.export(d, ""), "export: out='' is an empty path"),  # was the working directory
    ],
)
def test_wrong_argument_types_are_one_tinylstm_error(tmp_path: Path, call: Any, message: str) -> None:
    """The API checks its arguments against the types it declares (tinylstm/arguments.py) before anything
    runs: a wrong type is a TinyLSTMError naming the function, the argument and the type to pass, not a
    TypeError from deep inside PyTorch or numpy, and never taken (epochs=True once trained one epoch)."""
    with pytest.raises(tinylstm.TinyLSTMError) as info:
        call(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "r").exists()


def test_numpy_values_reach_the_api_as_python_ones() -> None:
    """numpy scalars, 1-D arrays, ranges and sets pass the argument check and arrive as the Python numbers
    and lists the functions declare (torch wants an int hidden size; _ints joins lists)."""
    from tinylstm.arguments import checked

    seen: list[Any] = []

    @checked
    def probe(n: int, xs: Sequence[int], f: float, flag: bool = False, **rest: Any) -> None:
        seen.extend([n, xs, f, flag, rest])

    probe(np.int64(3), np.array([8, 16]), np.float32(0.5), np.bool_(True), hidden=np.int32(4))
    probe(4, range(2), 1, xs2=None)
    probe(5, {16, 8}, 2.0)
    assert seen[:5] == [3, [8, 16], 0.5, True, {"hidden": 4}]
    assert [type(v) for v in seen[:4]] == [int, list, float, bool] and type(seen[4]["hidden"]) is int
    assert seen[6] == [0, 1] and seen[11] == [8, 16]
    with pytest.raises(tinylstm.TinyLSTMError, match="xs=array"):
        probe(1, np.zeros((2, 2), dtype=int), 1.0)
