"""`tinylstm explain`: images and JSON for an LSTM and a GRU; the integer traces are the kernel's."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinylstm.codegen import golden
from tinylstm.codegen.export import ModelSource, data_splits, export, export_origin
from tinylstm.codegen.spec import float_forward, normalise
from tinylstm.codegen.store import load_int_model
from tinylstm.host.cli.main import main
from tinylstm.host.targets.bridge import CModel
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.train import TrainConfig, fit

# the exports and explain runs are module fixtures: one worker builds them (tests/conftest.py)
pytestmark = pytest.mark.xdist_group("explain")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module", params=["lstm", "gru"])
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp(f"explain-{request.param}")
    config = TrainConfig(cell=request.param, hidden=8, layers=2, epochs=2, progress=False, readout="mean")
    result = fit(load_dataset("watch", hop=128), config, root / "run")
    export(ModelSource(str(result.checkpoint_path)), root / "export")
    return root / "export"


@dataclass
class Explained:
    out: Path  # what `tinylstm explain --out` wrote
    doc: dict[str, Any]  # its explain.json
    stdout: str


@pytest.fixture(scope="module")
def explained(exported: Path) -> Explained:
    """`tinylstm explain` run once per export: plotting every class is most of its time."""
    out = exported.parent / "explain"
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["explain", str(exported), "--out", str(out)]) == 0
    return Explained(out, json.loads((out / "explain.json").read_text()), buf.getvalue())


def test_images_and_json_per_class(exported: Path, explained: Explained) -> None:
    out, doc = explained.out, explained.doc
    m, meta = load_int_model(exported)
    classes = meta["checkpoint"]["classes"]
    assert [e["label"] for e in doc["examples"]] == classes  # one example per class of the held-out set
    for ex in doc["examples"]:
        assert (out / ex["png"]).read_bytes()[:8] == PNG_MAGIC and (out / ex["png"]).stat().st_size > 20_000
        assert np.asarray(ex["int8"]["gates_q15"]).shape == (
            m.num_layers,
            m.gates,
            m.hidden_size,
            ex["steps"],
        )
        assert ex["prediction"]["float"] in classes and 0 <= ex["decision_step"]["int8"] < ex["steps"]
        assert set(ex["departure"]["gates"]) == {
            f"layer{n}.{g}" for n in range(m.num_layers) for g in doc["gate_names"]
        }
    assert explained.stdout.count("wrote ") == len(doc["examples"]) + 1


def test_integer_traces_are_the_kernels_and_float_traces_the_float_models(
    exported: Path, explained: Explained
) -> None:
    doc = explained.doc
    m, meta = load_int_model(exported)
    origin = export_origin(exported, meta)
    _, test = data_splits(origin.loaded, origin.data)
    fm = origin.loaded.float_model
    c = CModel.from_export(exported)
    for ex in doc["examples"]:
        raw = test.sequences[ex["sequence"]]
        xq = golden.quantize_input(m, raw)
        y, _, tr = golden.run(m, xq[None], trace=True)
        assert np.array_equal(np.asarray(ex["int8"]["gates_q15"]), tr["gates"][0].transpose(1, 2, 3, 0))
        c.reset()
        ys, hs, _ = c.trace(xq)  # the generated C, compiled for the host
        assert np.array_equal(np.asarray(ex["int8"]["h_q7"]), hs.transpose(1, 2, 0))
        assert np.array_equal(np.asarray(ex["int8"]["output_q"]), ys) and np.array_equal(ys, y[0])
        fo = float_forward(fm, normalise(fm, raw)[None])
        got = np.asarray(ex["float"]["gates"])[0].transpose(2, 0, 1)  # layer 0: [T, G, H]
        assert np.allclose(got, fo["gates0"][0], atol=1e-5)


def test_not_an_export_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not an export directory" in err[0]


def test_int16_hidden_state_traces(exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An int16-h export: the hidden state is reported in Q0.15 (``h_q15``) and equals the C kernel's. Only
    explain.json is read here, so the heatmaps (most of explain's time; test_images_and_json_per_class checks
    them) are not drawn."""
    from tinylstm.host.analysis import explain as explain_module
    from tinylstm.host.analysis.explain import explain

    monkeypatch.setattr(explain_module, "_plot", lambda *args, **kwargs: None)
    wide = tmp_path / "export-h16"
    export(ModelSource(str(exported.parent / "run" / "model.pt")), wide, hidden_bits=16)
    doc = explain(wide, out_dir=tmp_path / "explain", sequences=1)
    assert doc["scales"]["hidden"] == "int16 Q0.15 (int / 2^15)"
    assert doc["integer"] == "int16-h"  # the texts' name for it; the keys stay "int8"
    m, meta = load_int_model(wide)
    _, test = data_splits(export_origin(wide, meta).loaded, None)
    c = CModel.from_export(wide)
    for ex in doc["examples"]:
        c.reset()
        _, hs, _ = c.trace(golden.quantize_input(m, test.sequences[ex["sequence"]]))
        assert "h_q7" not in ex["int8"] and np.array_equal(
            np.asarray(ex["int8"]["h_q15"]), hs.transpose(1, 2, 0)
        )
        assert np.abs(hs).max() > 127  # the words use the int16 range
