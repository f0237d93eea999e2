"""`import tinylstm`: the whole pipeline from one import, as the README shows it; and the numeric core
(contract, cells, qmath, golden, blob) importable without PyTorch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinylstm


def test_the_pipeline_from_one_import(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.standard_normal((90, 20, 3)).astype(np.float32) * 0.5 + y[:, None, None]
    np.savez(tmp_path / "data.npz", X=x, y=y)
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
    with pytest.raises(tinylstm.TinyLSTMError, match="unknown training option"):
        tinylstm.train(tmp_path / "data.npz", tmp_path / "run2", hidden_units=8)


def test_every_layer_raises_the_one_error_type() -> None:
    from tinylstm.codegen import cells
    from tinylstm.host.link import LinkError
    from tinylstm.trainer.models import TinyRNN

    assert issubclass(LinkError, tinylstm.TinyLSTMError)
    for fn in (
        lambda: cells.cell_type("rnn"),
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
