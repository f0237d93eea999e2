"""Quantization-aware fine-tuning (codegen/qat.py): its forward pass is the integer model's, its
gradients reach every weight, it fine-tunes with the float training's regularisation, and a short run
on shipped data raises a hidden-8 model's integer accuracy on the validation split it chooses by, with
an export that passes check."""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tinylstm.codegen import golden
from tinylstm.codegen import qat as qat_module
from tinylstm.codegen.export import ModelSource, export
from tinylstm.codegen.qat import FakeQuantRNN, Ranges, fake_quant_outputs, finetune
from tinylstm.codegen.quantize import calibrate, quantize
from tinylstm.codegen.source import from_rnn
from tinylstm.codegen.spec import ModelMeta
from tinylstm.contract.cells import CELLS
from tinylstm.host.analysis.check import check
from tinylstm.host.cli.main import main
from tinylstm.trainer.augment import Augment
from tinylstm.trainer.checkpoint import save_checkpoint
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.models import TinyRNN
from tinylstm.trainer.recipe import Recipe
from tinylstm.trainer.train import FinetuneRun, TrainConfig, fit, run_epochs

INPUT, HIDDEN, OUTPUT, STEPS = 5, 12, 3, 1000
ZERO = [40, -25, 0, 90, -70]  # an int8 input's zero point per channel, in input LSBs


def stream(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS)[:, None]
    return np.sin(t / (3 + np.arange(INPUT))) * 1.5 + rng.standard_normal((STEPS, INPUT)) * 0.5


def fake_quant_and_golden(
    cell: str,
    layers: int,
    seed: int,
    hidden_bits: int = 8,
    double: bool = False,
    input_bits: int | None = None,
    zero: list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The fake-quantized outputs (in output LSBs; ``double``: computed in float64) and the integer golden's,
    on one stream (``input_bits`` 16: an int16 input on the int8 h; ``zero``: the int8 input's zero point)."""
    torch.manual_seed(seed)
    model = TinyRNN(cell, INPUT, HIDDEN, layers, OUTPUT)
    fm = from_rnn(model.rnn, model.head, ModelMeta(input_mean=[0.0] * INPUT, input_std=[1.0] * INPUT))
    x = stream(seed)
    im = quantize(fm, replace(calibrate(fm, [x]), input_zero=zero or []), hidden_bits, input_bits)
    xq = golden.quantize_input(im, x.astype(np.float32))
    if im.input_bits == 16:
        # The board converts its float samples in float32, QAT in its own precision: at the int16 input's
        # 65536 levels about 1 value in 1,600 of this stream rounds the other way (1 LSB), and an int16 h
        # carries that for many steps. Samples on the input grid round alike in both, so the rest of the
        # contract is compared.
        x = xq * im.input_scale
        xq = golden.quantize_input(im, x.astype(np.float32))
        assert np.array_equal(xq * im.input_scale, x)
    y_int, _, _ = golden.run(im, xq[None])
    return fake_quant_outputs(fm, im, [x], double)[0], y_int[0].astype(np.int64)


@pytest.mark.parametrize(
    ("hidden_bits", "input_bits", "zero"),
    [(8, None, None), (16, None, None), (8, 16, None), (8, None, ZERO)],
    ids=["int8", "h16", "x16", "int8-zero"],
)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("cell", list(CELLS))
def test_fake_quant_forward_is_the_integer_model(
    cell: str, layers: int, hidden_bits: int, input_bits: int | None, zero: list[int] | None
) -> None:
    """Same roundings, saturations, table and scales as the kernel, for both hidden states, the int16 input
    on the int8 h and an int8 input's zero point (its words saturate at the shifted ends: some samples of the
    stream clip): the forward gives the golden's int16 outputs (a float rounding may move one word across a
    rounding boundary). An int16 h keeps a one-LSB float32 rounding difference in its state for many steps
    (int8 h rounds it away; the RNN, with no gate between its state and tanh, keeps it longest), so the
    int16-h forward runs in float64 here, where only such boundary cases remain. So does the zero point's:
    its first layer sums words shifted by up to 90 LSBs, whose float32 sums put a step's pre-activation on
    the other side of a rounding boundary a few times per thousand steps (LSTM, 3 layers: 3 of 600 steps,
    each one step, up to 130 output LSBs), while in float64 every output is the golden's."""
    double = hidden_bits == 16 or zero is not None
    seed = 10 * layers + CELLS[cell].code
    fq, want = fake_quant_and_golden(cell, layers, seed, hidden_bits, double, input_bits, zero)
    assert np.abs(want).max() > 10_000  # the outputs span the range
    equal = float(np.mean(fq == want))
    assert equal >= 0.99, (
        f"{equal:.4f} of the outputs equal; first difference at {np.argwhere(fq != want)[0]}"
    )
    assert np.abs(fq - want).max() <= (4 if hidden_bits == 8 else 16)


def test_fake_quant_gradients_reach_every_weight() -> None:
    torch.manual_seed(0)
    model = TinyRNN("lstm", INPUT, HIDDEN, 2, OUTPUT)
    net = FakeQuantRNN(model, Ranges(0.03, (11, 11), 1e-4))
    x = torch.tensor(stream(0)[None, :50], dtype=torch.float32)
    net(x).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_qat_for_an_int16_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--qat --qat-input-bits 16` fine-tunes through the int16 input on the int8 h: the metrics record it,
    check compares an `--input-bits 16` export with that forward, and warns for an int8-input export of it."""
    rng = np.random.default_rng(1)
    y = np.arange(60) % 2
    X = rng.standard_normal((60, 10, 2)).astype(np.float32) * 0.2 + y[:, None, None] * 0.05
    X[rng.integers(0, 60, 8), rng.integers(0, 10, 8), 0] = 40.0  # spikes: an 8-bit input loses the rest
    np.savez(tmp_path / "d.npz", X=X, y=y)
    argv = ["train", "--data", str(tmp_path / "d.npz"), "--hidden", "4", "--epochs", "2", "--qat"]
    assert (
        main([*argv, "--qat-epochs", "1", "--qat-input-bits", "16", "--quiet", "--out", str(tmp_path / "r")])
        == 0
    )
    assert "  input " not in capsys.readouterr().out  # given, not chosen
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["qat"]["input_choice"] == "given"
    reports, exported = {}, {}
    for bits in (16, 8):
        exp = export(ModelSource(str(tmp_path / "r" / "model.pt")), tmp_path / f"e{bits}", input_bits=bits)
        exported[bits], reports[bits] = exp.report["warnings"], check(tmp_path / f"e{bits}")
    # export says it first, as check does
    assert exported[16] == [] and exported[8] == [w for w in reports[8]["warnings"] if "fine-tuned for" in w]
    assert main(["export", str(tmp_path / "r" / "model.pt"), "--out", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out  # the default (--input-bits auto) keeps what the model was fine-tuned for
    assert "input int16: what the model was fine-tuned for (--qat)" in out and "WARNING" not in out
    model = str(tmp_path / "r" / "model.pt")
    assert main(["export", model, "--input-bits", "8", "--out", str(tmp_path / "cli8")]) == 0
    assert f"WARNING: {exported[8][0]}" in capsys.readouterr().out
    training = reports[16]["model"]["training"]
    assert (training["kind"], training["hidden_bits"], training["input_bits"]) == ("qat", 8, 16)
    assert "qat_forward" in reports[16]["quality"] and "qat_forward" not in reports[8]["quality"]
    assert not any("fine-tuned for" in w for w in reports[16]["warnings"])
    assert any(
        "fine-tuned for an int8 hidden state and an int16 input but exported with int8 and int8: export with "
        "--hidden-bits 8 --input-bits 16" in w
        for w in reports[8]["warnings"]
    ), reports[8]["warnings"]


@pytest.mark.slow
def test_qat_improves_the_integer_model_where_it_selects_of_a_hidden_8_model(tmp_path: Path) -> None:
    """A seeded float training followed by 1 QAT epoch (the watch IMU data shipped with the package, every
    second window), against post-training quantization of the float model QAT started from (saved as a
    checkpoint of its own when the QAT stage begins: one float training serves both). The fine-tuned weights
    are the ones kept (best epoch 1, not the float ones: 0), so the two models differ. The fine-tuning chooses
    by the validation split through the integer contract, so that is where it must gain; on the test windows
    it may move either way by a few (it loses 0.9 pp here, 5 of 551), not more."""
    ds = load_dataset("watch", hop=64)
    # a validation split: QAT's keep-or-not reads it
    config = TrainConfig(
        cell="gru", hidden=8, epochs=8, val=0.15, progress=False, readout="mean", qat_epochs=1
    )  # fmt: skip
    floats: list[TinyRNN] = []

    def keep_float_then_finetune(run: FinetuneRun) -> dict[str, Any]:
        floats.append(copy.deepcopy(run.model))
        return finetune(run)

    qat = fit(ds, config, tmp_path / "qat", finetune=keep_float_then_finetune)
    assert qat.metrics["qat"]["epochs"] == 1 and qat.metrics["qat"]["best_epoch"] == 1 and len(floats) == 1
    float_meta = copy.deepcopy(qat.meta)
    del float_meta.metrics["qat"]
    checkpoints = {
        "ptq": save_checkpoint(tmp_path / "ptq" / "model.pt", floats[0], float_meta),
        "qat": qat.checkpoint_path,
    }
    reports = {}
    for name, path in checkpoints.items():
        export(ModelSource(str(path)), tmp_path / f"{name}-export")
        reports[name] = check(tmp_path / f"{name}-export")
    q_ptq, q_qat = reports["ptq"]["quality"], reports["qat"]["quality"]
    before, after = qat.metrics["qat"]["before"]["fake_quant"], qat.metrics["qat"]["after"]["fake_quant"]
    assert after["val"] > before["val"], qat.metrics["qat"]
    assert q_qat["int8"] >= q_ptq["int8"] - 1.0, (q_ptq, q_qat)
    assert reports["qat"]["passed"] and reports["qat"]["bit_exact"]["ok"]
    assert reports["qat"]["model"]["training"]["kind"] == "qat"
    assert reports["ptq"]["model"]["training"]["kind"] == "float"
    assert reports["qat"]["model"]["hidden_format"] == "int8 Q0.7"
    assert reports["qat"]["quality"]["qat_forward"]["agreement_pct"] >= 99.0  # int8 is the model as trained
    assert "qat_forward" not in q_ptq
    # the fake-quantized test accuracy after fine-tuning is what the integer export measures
    assert abs(100 * after["test"] - q_qat["int8"]) <= 0.5, (after, q_qat)


def test_qat_fine_tunes_for_the_input_export_would_choose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--qat` without `--qat-input-bits` on the int8 h fine-tunes for the input `export --input-bits auto`
    chooses for the float model (the same float model trained without QAT, on the same validation split,
    measures the same numbers), says so, and the default export keeps that input without a warning."""
    rng = np.random.default_rng(1)
    y = np.arange(60) % 2
    # heavy-tailed: the int8 input's error is twice the tolerance (about 11 % of the outputs' spread), the
    # int16 input's lower (about 8 %)
    X = (rng.lognormal(0, 2, size=(60, 10, 2)) - 1).astype(np.float32) + y[:, None, None] * 0.5
    np.savez(tmp_path / "d.npz", X=X, y=y)
    argv = ["train", "--data", str(tmp_path / "d.npz"), "--hidden", "4", "--epochs", "2", "--quiet"]
    assert main([*argv, "--qat", "--qat-epochs", "1", "--out", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out
    qat = json.loads((tmp_path / "q" / "metrics.json").read_text())["qat"]
    assert qat["input_bits"] == 16 and qat["input_choice"].startswith(
        "int16: on the calibration data the int8"
    )
    assert f"  input {qat['input_choice']}\n" in out
    assert main([*argv, "--val", "0.15", "--out", str(tmp_path / "f")]) == 0
    float_choice = export(ModelSource(str(tmp_path / "f" / "model.pt")), tmp_path / "fe").report[
        "input_choice"
    ]
    assert (float_choice["reason"], float_choice["input_bits"]) == (qat["input_choice"], qat["input_bits"])
    report = export(ModelSource(str(tmp_path / "q" / "model.pt")), tmp_path / "qe").report
    assert report["input_bits"] == qat["input_bits"] and report["warnings"] == []
    assert (
        report["input_choice"]["reason"]
        == f"int{qat['input_bits']}: what the model was fine-tuned for (--qat)"
    )


def test_qat_of_an_int16_h_says_its_input_was_settled_not_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--qat --qat-hidden-bits 16` without `--qat-input-bits`: the int16 h's own int16 input, recorded and
    printed as export's auto would say it (the record read "given")."""
    rng = np.random.default_rng(2)
    y = np.arange(40) % 2
    np.savez(tmp_path / "d.npz", X=rng.standard_normal((40, 8, 2)).astype(np.float32) + y[:, None, None], y=y)
    argv = ["train", "--data", str(tmp_path / "d.npz"), "--hidden", "4", "--epochs", "2", "--qat"]
    assert main([*argv, "--qat-epochs", "1", "--qat-hidden-bits", "16", "--out", str(tmp_path / "q")]) == 0
    qat = json.loads((tmp_path / "q" / "metrics.json").read_text())["qat"]
    assert (qat["hidden_bits"], qat["input_bits"]) == (16, 16)
    assert qat["input_choice"] == "int16: an int16-h model's input"
    assert "  input int16: an int16-h model's input\n" in capsys.readouterr().out


@pytest.mark.parametrize("augment", [True, False], ids=["augment", "no-augment"])
def test_qat_finetunes_with_the_float_trainings_regularisation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, augment: bool
) -> None:
    """The fine-tuning runs with the float recipe's weight decay and augmentation (none where the float
    training had none: `--no-augment`), at its own constant learning rate, and the metrics record them."""
    rng = np.random.default_rng(2)
    y = np.arange(40) % 2
    np.savez(tmp_path / "d.npz", X=rng.standard_normal((40, 8, 2)).astype(np.float32) + y[:, None, None], y=y)
    ds = load_dataset(str(tmp_path / "d.npz"))
    seen: list[Recipe] = []

    def spy(*args: Any) -> Any:
        seen.append(args[6])
        return run_epochs(*args)

    monkeypatch.setattr(qat_module, "run_epochs", spy)
    config = TrainConfig(
        hidden=4, epochs=2, val=0.2, progress=False, qat_epochs=1, augment=Augment() if augment else None
    )
    result = fit(ds, config, tmp_path / "r", finetune=finetune)
    float_recipe, record = result.metrics["recipe"], result.metrics["qat"]
    assert len(seen) == 1
    assert seen[0].weight_decay == float_recipe["weight_decay"] > 0
    assert asdict(seen[0].augment) == float_recipe["augment"]
    assert seen[0].augment.active == augment
    assert (seen[0].schedule, seen[0].lr) == ("constant", record["lr"])
    assert record["weight_decay"] == float_recipe["weight_decay"]
    assert record["augment"] == (Augment().describe() if augment else "none")


def test_qat_options_without_qat_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--data", "watch", "--qat-epochs", "3", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "tinylstm train: error: --qat-epochs, --qat-lr, --qat-hidden-bits and --qat-input-bits set up "
        "quantization-aware training: add --qat"
    ]
    assert not (tmp_path / "x").exists()


def test_the_cli_summary_says_the_score_is_after_qat(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Was: "test accuracy 0.728 (kept epoch 2 of 3, 2.6 s)": the score was the fine-tuned model's, the 3
    epochs counted the QAT one and the seconds did not."""
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    np.savez(
        tmp_path / "d.npz", X=rng.standard_normal((60, 10, 2)).astype(np.float32) + y[:, None, None], y=y
    )
    argv = ["train", "--data", str(tmp_path / "d.npz"), "--hidden", "4", "--epochs", "2", "--qat"]
    assert main([*argv, "--qat-epochs", "1", "--quiet", "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert (
        "accuracy" in out
        and "after quantization-aware fine-tuning (the float training's kept epoch 2 of 2," in out
    )
    # exported with another hidden state than QAT fine-tuned for: the fake-quantized forward is not what this
    # export was fine-tuned as, so check gates int8 against the float model (was: an int16 fake-quantized
    # forward called "the quantization-aware forward") and warns
    reports = {}
    for bits in (8, 16):
        export(ModelSource(str(tmp_path / "r" / "model.pt")), tmp_path / f"e{bits}", hidden_bits=bits)
        reports[bits] = check(tmp_path / f"e{bits}")
    assert "qat_forward" in reports[8]["quality"] and "qat_forward" not in reports[16]["quality"]
    assert not any("fine-tuned for" in w for w in reports[8]["warnings"])
    assert any(
        "fine-tuned for an int8 hidden state and an int8 input but exported with int16 and int16: "
        "export with --hidden-bits 8 --input-bits 8" in w
        for w in reports[16]["warnings"]
    ), reports[16]["warnings"]
    rules = {bits: " ".join(r["rule"] for r in reports[bits]["rules"]) for bits in reports}
    assert "argmax agreement with the quantization-aware forward" in rules[8]
    assert "argmax agreement with the float model" in rules[16]
