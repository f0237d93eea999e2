"""Structured pruning (trainer/prune.py, host/search/prune.py, `tinylstm prune`): removing a unit removes
exactly its rows and columns, the least important units go first, and the pruned checkpoint is an ordinary
model that exports, checks bit-exact and builds into firmware smaller by what the report claims."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tinylstm.codegen.export import ModelSource, export
from tinylstm.contract.cells import CELLS
from tinylstm.contract.cells import NAMES as CELL_NAMES
from tinylstm.errors import TinyLSTMError
from tinylstm.host.analysis.check import check, training_of
from tinylstm.host.boards.firmware import build_firmware
from tinylstm.host.cli.main import main
from tinylstm.host.search.cost import STATE_STRUCT_BYTES, Cost
from tinylstm.trainer.batches import PaddedSplit
from tinylstm.trainer.checkpoint import CheckpointMeta, load_checkpoint
from tinylstm.trainer.data import Normalizer
from tinylstm.trainer.models import TinyRNN
from tinylstm.trainer.prune import keep_units, reader_weights, schedule, unit_importance
from tinylstm.trainer.sequence_set import SequenceSet

GATES = {name: c.gates for name, c in CELLS.items()}


def _model(cell: str, layers: int, stack: int = 1, readout: str = "last", seed: int = 0) -> TinyRNN:
    torch.manual_seed(seed)
    return TinyRNN(cell, 3, 7, layers, 4, readout=readout, stack=stack).eval()


def _silence(model: TinyRNN, layer: int, unit: int, backward: bool = False) -> None:
    """Zero every weight that reads ``unit`` of ``layer`` (of the backward stack, whose last layer the head
    reads in its second half): nothing downstream depends on it any more."""
    rnn = model.rnn_backward if backward else model.rnn
    assert rnn is not None
    with torch.no_grad():
        getattr(rnn, f"weight_hh_l{layer}")[:, unit] = 0.0
        if layer + 1 < model.num_layers:
            getattr(rnn, f"weight_ih_l{layer + 1}")[:, unit] = 0.0
        else:
            model.head.weight[:, unit + (model.hidden_size if backward else 0)] = 0.0


def _toy_split(sequences: int, steps: int) -> PaddedSplit:
    """Random window classification data of 3 channels and 4 classes, unnormalised."""
    rng = np.random.default_rng(0)
    ds = SequenceSet(
        [rng.normal(size=(steps, 3)).astype(np.float32) for _ in range(sequences)],
        np.arange(sequences) % 4,
        "classification",
        "window",
        ["a", "b", "c", "d"],
        ["x", "y", "z"],
        "toy",
    )
    return PaddedSplit.build(ds, Normalizer(np.zeros(3), np.ones(3)), None)


@pytest.mark.parametrize("cell", CELL_NAMES)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_removing_a_silenced_unit_changes_no_output(cell: str, layers: int) -> None:
    """A unit nothing reads can go: the smaller model's outputs equal the larger one's (every layer pruned,
    pooled readouts and input stacking included)."""
    model = _model(cell, layers, stack=2 if layers == 2 else 1, readout=["last", "mean", "max"][layers - 1])
    drop = [(2, 5, 0)[:layers][n] for n in range(layers)]  # a different unit per layer
    for n, unit in enumerate(drop):
        _silence(model, n, unit)
    keep = [np.asarray([u for u in range(7) if u != drop[n]]) for n in range(layers)]
    small = keep_units(model, keep)
    assert small.hidden_size == 6 and small.readout == model.readout and small.stack == model.stack
    x = torch.randn(5, 24, 3)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-6)
    # keeping every unit is the identity
    same = keep_units(model, [np.arange(7)] * layers)
    with torch.no_grad():
        torch.testing.assert_close(same(x), model(x), rtol=0, atol=0)


def test_importance_ranks_a_silenced_unit_last() -> None:
    model = _model("lstm", 2)
    _silence(model, 0, 3)
    _silence(model, 1, 6)
    scores = unit_importance(model, _toy_split(10, 20))
    assert [s.shape for s in scores] == [(7,), (7,)]
    assert scores[0][3] == 0.0 and scores[1][6] == 0.0 and (np.delete(scores[0], 3) > 0).all()
    assert reader_weights(model, 1).shape == (4 * 7 + 4, 7)  # layer 1's own recurrent rows + the head


def test_the_schedule_removes_at_most_a_step_per_round() -> None:
    assert schedule(32, 20, 0.25) == [24, 20]
    assert schedule(32, 8, 0.25) == [24, 18, 14, 11, 9, 8]
    assert schedule(3, 1, 0.25) == [2, 1]  # at least one unit per round
    assert schedule(8, 8, 0.5) == []


def _tiny_run(
    root: Path, sequences: int = 120, steps: int = 20, hidden: int = 12, epochs: int = 4, *flags: str
) -> Path:
    """A model trained by the CLI on 3-class windows of 3 channels; returns its checkpoint."""
    rng = np.random.default_rng(0)
    y = np.arange(sequences) % 3
    x = rng.standard_normal((sequences, steps, 3)).astype(np.float32) + y[:, None, None]
    np.savez(root / "data.npz", X=x, y=y)
    argv = ["train", "--data", str(root / "data.npz"), "--hidden", str(hidden), "--epochs", str(epochs)]
    assert main([*argv, "--quiet", *flags, "--out", str(root / "run")]) == 0
    return root / "run" / "model.pt"


def test_pruned_model_exports_checks_and_builds_smaller_by_the_claim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = _tiny_run(tmp_path)
    assert main(["prune", str(ckpt), "--out", str(tmp_path / "small"), "--hidden", "5", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "pruned 12 -> 5 units per layer" in out and "round 4: 5 units" in out
    report = json.loads((tmp_path / "small" / "prune-report.json").read_text())
    model, meta = load_checkpoint(tmp_path / "small" / "model.pt")
    assert meta.hidden_size == model.hidden_size == 5 and meta.metrics["pruning"]["hidden"]["after"] == 5
    assert [r["hidden"] for r in report["rounds"]] == [9, 7, 6, 5]
    sizes = {}
    for name, path in (("before", ckpt), ("after", tmp_path / "small" / "model.pt")):
        exp = export(ModelSource(str(path)), tmp_path / f"export-{name}")
        assert exp.report["model_data_bytes"] == report["model_data_bytes"][name]
        result = check(tmp_path / f"export-{name}")
        assert (
            result["passed"]
            and result["bit_exact"]["ok"]
            and result["bit_exact"]["mismatched_sequences"] == 0
        )
        fw = build_firmware(tmp_path / f"export-{name}", "qemu-stm32f405", tmp_path / f"fw-{name}")
        assert fw.sizes is not None
        sizes[name] = fw.sizes.flash
    saved = sizes["before"] - sizes["after"]
    # the firmware shrinks by the model data the report claims, give or take the linker's alignment
    assert abs(saved - report["model_data_bytes"]["saved"]) <= 8, (saved, report["model_data_bytes"])


def test_a_budget_picks_the_most_units_that_fit(tmp_path: Path) -> None:
    from tinylstm.api import prune
    from tinylstm.host.search.prune import shape_cost

    ckpt = _tiny_run(tmp_path)
    _, meta = load_checkpoint(ckpt)
    limit = shape_cost(meta, "stm32f405", 6).flash_bytes
    report = prune(ckpt, tmp_path / "small", board="stm32f405", max_flash=limit, epochs=1)
    assert report["hidden"]["after"] == 6 and report["board"]["after"]["flash_bytes"] <= limit
    assert shape_cost(meta, "stm32f405", 7).flash_bytes > limit
    # the training data moved: the error names --data, and the pruned model records the new path, so its
    # export needs no --data (was: "does not exist; check the path", and the old path recorded)
    (tmp_path / "moved").mkdir()
    (tmp_path / "data.npz").rename(tmp_path / "moved" / "data.npz")
    with pytest.raises(TinyLSTMError, match="is gone: pass its new path with --data"):
        prune(ckpt, tmp_path / "p2", hidden=5, epochs=1)
    prune(ckpt, tmp_path / "p3", hidden=5, epochs=1, data=tmp_path / "moved" / "data.npz")
    export(ModelSource(str(tmp_path / "p3" / "model.pt")), tmp_path / "p3-export")


def test_the_boards_own_memory_counts_as_the_search_counts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A model that meets the RAM budget but not the board's flash (Cost.fits_board) is not already within
    target, and the bisection keeps to what fits the board (it pruned to the budget alone, printing flash past
    the board's size, and called an oversized model one that already meets the budget)."""
    import dataclasses

    from tinylstm.host.search import prune as prune_module
    from tinylstm.host.search.prune import PruneTarget, resolve_hidden, shape_cost
    from tinylstm.host.search.study import Budget

    _, meta = load_checkpoint(_tiny_run(tmp_path))

    def board_of_five(meta: CheckpointMeta, board: str, h: int) -> Cost:  # a board whose flash holds 5 units
        c = shape_cost(meta, board, h)
        return dataclasses.replace(c, fits_board=None if h <= 5 else "the firmware does not fit the board")

    monkeypatch.setattr(prune_module, "shape_cost", board_of_five)
    target = PruneTarget(board="stm32f405", budget=Budget(max_ram=1_000_000))
    assert resolve_hidden(meta, target)[0] == 5


@pytest.mark.parametrize(("cell", "layers"), [("lstm", 1), ("gru", 2), ("rnn", 2)])
def test_a_bidirectional_model_loses_silenced_units_of_both_stacks(cell: str, layers: int) -> None:
    """Each stack loses its own silenced unit (forward and backward differ); the outputs stay the same, and
    importance ranks both last (the backward layers are listed after the forward ones)."""
    torch.manual_seed(1)
    model = TinyRNN(cell, 3, 7, layers, 4, readout="mean", stack=layers, bidirectional=True).eval()
    forward, backward = [1, 4][:layers], [6, 2][:layers]
    for n in range(layers):
        _silence(model, n, forward[n])
        _silence(model, n, backward[n], backward=True)
    keep = [np.asarray([u for u in range(7) if u != drop]) for drop in forward + backward]
    small = keep_units(model, keep)
    assert small.bidirectional and small.hidden_size == 6 and small.head.in_features == 12
    x = torch.randn(5, 24, 3)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=0, atol=1e-6)
    scores = unit_importance(model, _toy_split(8, 24))
    assert len(scores) == 2 * layers
    for n in range(layers):
        assert scores[n][forward[n]] == 0.0 and scores[layers + n][backward[n]] == 0.0
        assert (np.delete(scores[layers + n], backward[n]) > 0).all()
    assert reader_weights(model, 2 * layers - 1).shape == (GATES[cell] * 7 + 4, 7)  # + the head's 2nd half
    with pytest.raises(TinyLSTMError, match="per layer \\(and direction\\)"):
        keep_units(model, keep[:layers])


def test_a_pruned_bidirectional_model_exports_checks_and_meets_its_budget(tmp_path: Path) -> None:
    from tinylstm.api import prune
    from tinylstm.host.search.prune import shape_cost

    ckpt = _tiny_run(tmp_path, 60, 16, 8, 3, "--bidirectional")
    _, meta = load_checkpoint(ckpt)
    limit = shape_cost(meta, "stm32f405", 5).flash_bytes
    assert shape_cost(meta, "stm32f405", 6).flash_bytes > limit  # the window's backward stack is priced
    report = prune(ckpt, tmp_path / "small", board="stm32f405", max_flash=limit, epochs=1)
    assert report["hidden"]["after"] == 5 and report["board"]["after"]["flash_bytes"] <= limit
    assert all(len(r["removed"]) == 2 for r in report["rounds"])  # the forward and the backward layer
    model, pruned = load_checkpoint(tmp_path / "small" / "model.pt")
    assert model.bidirectional and pruned.bidirectional and pruned.window == meta.window == 16
    exp = export(ModelSource(str(tmp_path / "small" / "model.pt")), tmp_path / "export")
    assert exp.report["model_data_bytes"] == report["model_data_bytes"]["after"]
    result = check(tmp_path / "export")
    assert result["passed"] and result["bit_exact"]["ok"], result["rules"]


def test_a_latency_budget_is_printed_beside_flash_and_ram(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary and the already-met refusal name the latency a latency budget was judged on (they gave
    flash and RAM only; the latency was in the JSON)."""
    from tinylstm.host.search.prune import shape_cost

    ckpt = _tiny_run(tmp_path)
    _, meta = load_checkpoint(ckpt)
    have = meta.hidden_size
    at = {h: shape_cost(meta, "stm32f405", h).slowest_sample_ms for h in (5, have)}
    argv = ["prune", str(ckpt), "--board", "stm32f405", "--epochs", "1"]
    assert main([*argv, "--max-latency-ms", f"{at[5]:.6f}", "--out", str(tmp_path / "p")]) == 0
    assert f", slowest sample {at[have]:.3g} -> {at[5]:.3g} ms\n" in capsys.readouterr().out
    assert main([*argv, "--max-latency-ms", "1000", "--out", str(tmp_path / "q")]) == 2
    ram = shape_cost(meta, "stm32f405", have).ram_bytes
    assert f"RAM {ram} B, slowest sample {at[have]:.3g} ms)" in capsys.readouterr().err


def test_a_qat_source_is_priced_at_its_hidden_state_and_its_record_is_not_carried_over(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fine-tuning is float: the pruned checkpoint records no QAT (check calls it float-trained) and none of
    the source's scores; its budget is priced with the int16 hidden state the source was trained for, and
    its int16-h export has exactly the RAM and model data the report claims."""
    from tinylstm.host.search.prune import shape_cost

    ckpt = _tiny_run(tmp_path, 30, 10, 8, 1, "--qat", "--qat-epochs", "1", "--qat-hidden-bits", "16")
    _, meta = load_checkpoint(ckpt)
    limit = shape_cost(meta, "stm32f405", 5).ram_bytes
    argv = ["prune", str(ckpt), "--out", str(tmp_path / "small"), "--board", "stm32f405"]
    assert main([*argv, "--max-ram", str(limit), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert (
        "not carried over" in out
        and f"next: tinylstm export {tmp_path / 'small'}/model.pt --hidden-bits 16" in out
    )
    report = json.loads((tmp_path / "small" / "prune-report.json").read_text())
    assert report["hidden"]["after"] == 5 and report["hidden_bits"] == 16
    assert report["source_qat"] == meta.metrics["qat"] and report["source_qat"]["hidden_bits"] == 16
    _, pruned = load_checkpoint(tmp_path / "small" / "model.pt")
    assert "qat" not in pruned.metrics and training_of(pruned)["kind"] == "float"
    assert not {"train_loss", "train_accuracy", "val_loss", "val_accuracy"} & set(pruned.metrics)
    assert pruned.metrics["test_accuracy"] == report["test"]["after"]
    interval = pruned.metrics["test_accuracy_interval"]
    assert interval["low"] <= report["test"]["after"] <= interval["high"]
    exp = export(ModelSource(str(tmp_path / "small" / "model.pt")), tmp_path / "export", hidden_bits=16)
    assert exp.report["state_bytes"] + STATE_STRUCT_BYTES == report["board"]["after"]["ram_bytes"] <= limit
    assert exp.report["model_data_bytes"] == report["model_data_bytes"]["after"]


def test_a_budget_names_the_input_it_was_priced_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A float source pruned to a board's budget is priced with the int8 input; export's default (auto) could
    widen it past that budget, so the next step names --input-bits 8."""
    from tinylstm.host.search.prune import shape_cost

    ckpt = _tiny_run(tmp_path, 30, 10, 8, 1)
    _, meta = load_checkpoint(ckpt)
    argv = ["prune", str(ckpt), "--out", str(tmp_path / "small"), "--board", "stm32f405", "--epochs", "1"]
    assert main([*argv, "--max-flash", str(shape_cost(meta, "stm32f405", 5).flash_bytes)]) == 0
    assert f"next: tinylstm export {tmp_path / 'small'}/model.pt --input-bits 8\n" in capsys.readouterr().out
    assert main(["prune", str(ckpt), "--out", str(tmp_path / "h5"), "--hidden", "5", "--epochs", "1"]) == 0
    assert f"next: tinylstm export {tmp_path / 'h5'}/model.pt\n" in capsys.readouterr().out  # no budget


def test_a_qat_source_for_the_int16_input_is_priced_with_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A source fine-tuned for an int16 input on the int8 h: its pruned model is priced with that input's
    kernel code (more flash than the int8 input's), the next step exports it with --input-bits 16, and that
    export's model data is what the report claims."""
    from tinylstm.host.boards.registry import get_board
    from tinylstm.host.search.cost import architecture_cost
    from tinylstm.host.search.prune import _shape, shape_cost

    ckpt = _tiny_run(tmp_path, 30, 10, 8, 1, "--qat", "--qat-epochs", "1", "--qat-input-bits", "16")
    _, meta = load_checkpoint(ckpt)
    priced = shape_cost(meta, "stm32f405", 5)
    int8_input = architecture_cost(get_board("stm32f405"), **(_shape(meta, 5) | {"input16": False}))
    assert priced.flash_bytes > int8_input.flash_bytes
    argv = ["prune", str(ckpt), "--out", str(tmp_path / "small"), "--board", "stm32f405"]
    assert main([*argv, "--max-flash", str(priced.flash_bytes), "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    assert "priced with the int8 hidden state and int16 input it was trained for" in out
    assert f"next: tinylstm export {tmp_path / 'small'}/model.pt --input-bits 16" in out
    report = json.loads((tmp_path / "small" / "prune-report.json").read_text())
    assert (report["hidden_bits"], report["input_bits"], report["hidden"]["after"]) == (8, 16, 5)
    assert report["board"]["after"]["flash_bytes"] == priced.flash_bytes
    exp = export(ModelSource(str(tmp_path / "small" / "model.pt")), tmp_path / "export", input_bits=16)
    assert exp.report["model_data_bytes"] == report["model_data_bytes"]["after"]


def test_budgets_search_refuses_are_refused_by_prune_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """esp32dev's latency cannot be priced here: the budget is refused (as search refuses it), not met; a
    zero, fractional or NaN budget is one line too, through the API as through the CLI (0 is a value, not
    "no budget")."""
    import tinylstm

    ckpt = _tiny_run(tmp_path, 30, 10, 6, 1)
    argv = ["prune", str(ckpt), "--out", str(tmp_path / "small")]
    for extra, message in (
        (["--board", "esp32dev", "--max-latency-ms", "0.0001"], "esp32dev has no counted core and clock"),
        (["--board", "stm32f405", "--max-flash", "0"], "--max-flash 0 B: a budget is at least 1 byte"),
        (["--board", "stm32f405", "--max-ram", "1.5"], "--max-ram '1.5' is 1.5 bytes: give whole bytes"),
        (["--board", "stm32f405", "--max-latency-ms", "nan"], "--max-latency-ms nan: give a finite number"),
    ):
        assert main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    for kw, message in (
        ({"max_flash": 0}, "--max-flash 0 B: a budget is at least 1 byte"),
        ({"max_ram": 0}, "--max-ram 0 B: a budget is at least 1 byte"),
    ):
        with pytest.raises(TinyLSTMError, match=message):
            tinylstm.prune(ckpt, tmp_path / "small", board="stm32f405", **kw)  # type: ignore[arg-type]
    assert not (tmp_path / "small").exists()


def test_finetuning_runs_at_a_third_of_the_peak_the_model_trained_with() -> None:
    """The checkpoint's recorded recipe decides the default learning rate, as it decides the epochs."""
    from types import SimpleNamespace
    from typing import Any, cast

    from tinylstm.host.search.prune import finetune_lr
    from tinylstm.trainer.train import TrainConfig

    def meta(metrics: dict[str, Any]) -> Any:
        return cast(Any, SimpleNamespace(metrics=metrics))

    assert finetune_lr(meta({"recipe": {"lr": 0.003}}), None) == pytest.approx(0.001)
    # a checkpoint from before the recipe was recorded: the default peak
    assert finetune_lr(meta({}), None) == pytest.approx(TrainConfig().lr / 3)
    assert finetune_lr(meta({"recipe": {"lr": 0.003}}), 0.02) == 0.02
