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
    _, test = data_splits(origin.loaded, origin.data, origin.test_data)
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


def _window_data(root: Path, sequences: int = 24, steps: int = 12) -> Path:
    """3-class windows of 3 channels, as a .npz file."""
    rng = np.random.default_rng(0)
    y = np.arange(sequences) % 3
    np.savez(
        root / "data.npz",
        X=rng.standard_normal((sequences, steps, 3)).astype(np.float32) + y[:, None, None],
        y=y,
    )
    return root / "data.npz"


@pytest.fixture(scope="module")
def bidirectional_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stacked (k = 2) bidirectional LSTM of 2 layers: its backward steps each read two samples."""
    root = tmp_path_factory.mktemp("explain-bidirectional")
    config = TrainConfig(hidden=4, layers=2, epochs=1, progress=False, stack=2, bidirectional=True)
    result = fit(load_dataset(str(_window_data(root))), config, root / "run")
    export(ModelSource(str(result.checkpoint_path)), root / "export")
    return root / "export"


def test_golden_traces_a_bidirectional_models_backward_pass_in_time_order(bidirectional_export: Path) -> None:
    """The trace adds the backward steps without changing the outputs; each backward step sits at the samples
    of the step it read, so the last step run (it read the window's first step) holds the final backward h."""
    m, meta = load_int_model(bidirectional_export)
    _, test = data_splits(export_origin(bidirectional_export, meta).loaded, None)
    xq = golden.quantize_input(m, np.stack(test.sequences[:2]))
    y, _, tr = golden.run(m, xq, trace=True)
    assert np.array_equal(y, golden.run(m, xq)[0])
    W, k, L = m.window, m.stack, m.num_layers
    assert tr["backward_gates"].shape == (2, W, L, m.gates, m.hidden_size)
    assert np.array_equal(tr["backward_h"][:, k - 1], tr["hb"][:, -1])  # window step 0: run last
    assert not tr["backward_h"][:, : k - 1].any()  # no step complete yet: held zeros, as the forward gates


def test_explain_draws_the_backward_layers_and_decides_at_the_windows_end(
    bidirectional_export: Path, tmp_path: Path
) -> None:
    from tinylstm.host.analysis.explain import explain

    doc = explain(bidirectional_export, out_dir=tmp_path / "explain")
    m, meta = load_int_model(bidirectional_export)
    origin = export_origin(bidirectional_export, meta)
    _, test = data_splits(origin.loaded, None)
    fm = origin.loaded.float_model
    assert doc["layer_names"] == ["layer0", "layer1", "backward_layer0", "backward_layer1"]
    for ex in doc["examples"]:
        # before the window's last sample the output is the head's bias alone: no decision yet
        assert ex["decision_step"] == {"float": ex["steps"] - 1, "int8": ex["steps"] - 1}
        assert np.asarray(ex["int8"]["gates_q15"]).shape == (4, m.gates, m.hidden_size, ex["steps"])
        assert np.asarray(ex["float"]["h"]).shape == (4, m.hidden_size, ex["steps"])
        gates = ex["departure"]["gates"]
        assert {f"backward_layer{n}.{g}" for n in range(2) for g in doc["gate_names"]} <= set(gates)
        # float and int8 backward traces line up step for step: they differ by quantization alone
        assert (
            max(gates[f"backward_layer{n}.{g}"]["mean_abs"] for n in range(2) for g in doc["gate_names"])
            < 0.05
        )
        assert (tmp_path / "explain" / ex["png"]).read_bytes()[:8] == PNG_MAGIC
        fo = float_forward(fm, normalise(fm, test.sequences[ex["sequence"]])[None])
        for n in range(2):  # each backward step at the samples it read: the steps ran in reverse
            got = np.asarray(ex["float"]["gates"])[2 + n].transpose(2, 0, 1)  # [T, G, H]
            ran = fo[f"gates{2 + n}"][0]  # per sample, in the order the backward steps ran
            k = m.stack
            assert np.allclose(got[k - 1 :: k], ran[k - 1 :: k][::-1], atol=1e-5)


def test_explain_of_a_checkpoint_file_names_the_export_not_an_out_never_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.pt"
    model.write_bytes(b"not an export")
    assert main(["explain", str(model)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{model} is not an export directory" in err[0] and "--out" not in err[0], err


def test_a_decision_is_not_before_the_first_output_that_reads_the_input(
    exported: Path, bidirectional_export: Path
) -> None:
    """Before it the output is the head's bias alone: a prediction that stays the bias's class is no
    decision from step 0 for a bidirectional model (its window's last sample) or a stacked one (its k-th)."""
    from tinylstm.host.analysis.explain import _decision_step, first_answer

    pred = np.zeros(12, dtype=np.int64)  # the bias's class throughout
    assert _decision_step(pred, 0) == 0 and _decision_step(pred, 11) == 11
    pred[4] = 1
    assert _decision_step(pred, 1) == 5 and _decision_step(pred, 11) == 11
    bi, _ = load_int_model(bidirectional_export)
    uni, _ = load_int_model(exported)
    assert first_answer(bi, 12) == 11 and first_answer(uni, 12) == uni.stack - 1
