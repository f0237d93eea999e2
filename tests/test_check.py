"""`tinylstm check` is honest: it proves model.tlm is the exported model (C reader and MicroPython), uses
the float model the export was made from whatever happened to the original file, and reports naive
baselines next to float and int8."""

from __future__ import annotations

import json
import math
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinylstm.codegen.blob import to_blob
from tinylstm.codegen.store import load_int_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.analysis.check import check
from tinylstm.host.cli.main import main
from tinylstm.host.targets.mpy_runner import micropython_executable
from tinylstm.trainer.baselines import wilson_interval


def run_check(capsys: pytest.CaptureFixture[str], export_dir: Path, *options: str) -> tuple[int, str, dict]:
    code = main(["check", str(export_dir), *options])
    out = capsys.readouterr().out
    return code, out, json.loads((export_dir / "check-report.json").read_text())


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classifier")
    rng = np.random.default_rng(0)
    y = np.arange(150) % 3
    x = rng.standard_normal((150, 24, 3)).astype(np.float32) * 0.5 + y[:, None, None]
    np.savez(root / "data.npz", X=x, y=y)
    assert (
        main(
            [
                "train",
                "--data",
                str(root / "data.npz"),
                "--hidden",
                "8",
                "--epochs",
                "8",
                "--quiet",
                "--out",
                str(root / "run"),
            ]
        )
        == 0
    )
    assert main(["export", str(root / "run" / "model.pt"), "--out", str(root / "export")]) == 0
    return root


@pytest.fixture
def export_copy(classifier: Path, tmp_path: Path) -> Path:
    shutil.copytree(classifier / "export", tmp_path / "export")
    return tmp_path / "export"


def test_a_clean_export_passes_with_every_reader(
    classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, report = run_check(capsys, classifier / "export")
    assert code == 0, out
    blob = report["blob"]
    assert blob["ok"] and blob["same_bytes_as_model"] and blob["c_reader"]["ok"]
    assert blob["c_reader"]["steps"] >= 10_000
    if micropython_executable() is not None:
        assert blob["micropython"]["ok"] and blob["micropython"]["steps"] > 0
    assert "model.tlm:" in out and "C reader: hash" in out and "OK" in out
    assert report["float_model"]["made_from_now"] == "unchanged" and not report["warnings"]


def _flip(data: bytes, *positions: int) -> bytes:
    b = bytearray(data)
    for p in positions:
        b[p] ^= 0x10
    return bytes(b)


def _small_size_field(data: bytes) -> bytes:
    """The size field rewritten to 64 bytes and the CRC fixed to match: only the section checks can tell."""
    b = bytearray(data[:64])
    struct.pack_into("<I", b, 12, 64)
    struct.pack_into("<I", b, 8, zlib.crc32(bytes(b[12:64])))
    return bytes(b)


BLOB_RULE = "model.tlm holds the exported model and runs bit-exact (C reader, MicroPython)"


def test_the_integer_models_hits_per_sequence_add_up_to_its_accuracy(classifier: Path) -> None:
    """What a search weighs trials by: the integer model's correct predictions per held-out sequence."""
    q = check(classifier / "export", case_sums=True)["quality"]
    cases = q["cases"]
    assert sorted(cases) == sorted(f"sequence {i}" for i in range(q["predictions"]))
    assert {c[1] for c in cases.values()} == {1} and {c[0] for c in cases.values()} <= {0.0, 1.0}
    assert 100 * sum(c[0] for c in cases.values()) / len(cases) == pytest.approx(q["int8"])
    assert "cases" not in check(classifier / "export")["quality"]  # only when asked: the CLI never does


def test_verdict_rules_name_what_decided() -> None:
    from tinylstm.host.analysis.check import Thresholds, verdict_rules

    quality = {"metric": "accuracy_pct", "integer": "int8", "accuracy_drop_pp": 0.4, "agreement_pct": 99.0}
    below = {"majority_class": "walk", "majority_accuracy_pct": 40.0, "beaten": False}
    rules = verdict_rules(quality, below, True, True, Thresholds())
    failed = [r["rule"] for r in rules if not r["passed"]]
    assert failed == ["the model beats always predicting the majority class 'walk' (40.00 %)"]
    allowed = verdict_rules(quality, below, True, True, Thresholds(allow_below_baseline=True))
    assert all(r["passed"] for r in allowed)
    assert allowed[-1]["rule"] == (
        "the model does not beat always predicting the majority class 'walk' (40.00 %): waived by "
        "--allow-below-baseline"
    )
    worse = {"metric": "accuracy_pct", "integer": "int8", "accuracy_drop_pp": 1.5, "agreement_pct": 97.0}
    beaten = {**below, "beaten": True}
    failed = [r["rule"] for r in verdict_rules(worse, beaten, False, True, Thresholds()) if not r["passed"]]
    assert failed == [
        "golden == C on every output and state word",
        "float - int8 accuracy +1.50 pp <= 1 pp (--max-accuracy-drop)",
        "int8 argmax agreement with the float model 97.00 % >= 98 % (--min-agreement)",
    ]
    regression = {"metric": "rmse", "integer": "int8", "rmse_increase_pct_of_std": 2.5}
    (last,) = [r for r in verdict_rules(regression, {}, True, True, Thresholds()) if not r["passed"]]
    assert last["rule"] == "int8 RMSE - float RMSE +2.50 % <= 2 % of the target's std (--max-rmse-increase)"


@pytest.mark.parametrize(
    "damage", ["deleted", "truncated", "two bytes flipped", "size field rewritten", "another model's blob"]
)
def test_a_damaged_blob_fails(export_copy: Path, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    tlm = export_copy / "model.tlm"
    data = tlm.read_bytes()
    if damage == "deleted":
        tlm.unlink()
    elif damage == "truncated":
        tlm.write_bytes(data[: len(data) // 2])
    elif damage == "two bytes flipped":
        tlm.write_bytes(_flip(data, len(data) // 3, 2 * len(data) // 3))
    elif damage == "size field rewritten":
        tlm.write_bytes(_small_size_field(data))
    else:  # a valid blob, of a slightly different model
        m, _ = load_int_model(export_copy)
        m.head_b[0] += 1
        tlm.write_bytes(to_blob(m))
    code, out, report = run_check(capsys, export_copy)
    assert code == 1 and out.splitlines()[-1] == "FAIL: " + BLOB_RULE, out  # the verdict names its rule
    assert not report["blob"]["ok"] and not report["passed"]
    assert report["bit_exact"]["ok"]  # the C files are fine: only the blob is wrong
    line = next(x for x in out.splitlines() if x.startswith("  model.tlm:"))
    assert "FAIL" in line
    if damage not in ("deleted", "another model's blob"):
        assert "C reader: FAIL" in line
        if micropython_executable() is not None:
            assert "MicroPython: FAIL" in line and "BlobError" in line, line


def test_the_original_model_file_moved_or_retrained(
    classifier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The export carries its float model: moving model.pt changes nothing, retraining into the same path
    is noticed and does not change what check compares against."""
    shutil.copytree(classifier / "run", tmp_path / "run")
    assert (
        main(
            [
                "export",
                str(tmp_path / "run" / "model.pt"),
                "--data",
                str(classifier / "data.npz"),
                "--out",
                str(tmp_path / "export"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, _, first = run_check(capsys, tmp_path / "export")
    assert code == 0
    (tmp_path / "run" / "model.pt").rename(tmp_path / "moved.pt")
    code, out, report = run_check(capsys, tmp_path / "export")
    assert code == 0 and report["float_model"]["made_from_now"] == "gone"
    assert report["quality"] == first["quality"]
    assert "is gone: check used the float model stored in the export" in out
    assert (
        main(
            [
                "train",
                "--data",
                str(classifier / "data.npz"),
                "--hidden",
                "8",
                "--epochs",
                "2",
                "--seed",
                "5",
                "--quiet",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    code, out, report = run_check(capsys, tmp_path / "export")
    assert code == 0 and report["float_model"]["made_from_now"] == "changed since export"
    assert report["quality"] == first["quality"]  # the same float model as at export time
    assert "WARNING: the model file" in out


def test_classification_baseline_in_text_and_json(
    classifier: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, report = run_check(capsys, classifier / "export")
    base = report["baselines"]
    assert base["majority_class"] in ("0", "1", "2") and 20 < base["majority_accuracy_pct"] < 50
    assert base["beaten"] and "baseline: always" in out
    # one window per recording: the int8 accuracy's 95 % interval, as `train` prints it
    n = report["data"]["test_sequences"]
    low, high = wilson_interval(round(report["quality"]["int8"] / 100 * n), n)
    assert base["interval_cases"] == n
    assert base["int8_accuracy_interval_pct"] == pytest.approx([100 * low, 100 * high])
    assert f"95 % interval {100 * low:.1f}-{100 * high:.1f}% over {n} held-out windows" in out
    # the 1-NN baseline train states, and its warning exactly where the int8 model scores below it
    nearest = base["nearest_accuracy_pct"]
    assert base["nearest_rule"] == "1-NN Euclidean over the normalised windows" and 0 <= nearest <= 100
    assert f"baseline: 1-NN Euclidean over the normalised windows {nearest:.2f}%" in out
    warned = [w for w in report["warnings"] if "scores below the nearest training window" in w]
    assert len(warned) == (report["quality"]["int8"] < nearest)


def test_window_regression_has_the_persistence_train_states(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Windows whose target is their last value of channel 1: persistence (trainer/baselines.py) is exact, so
    check reports it with train's rule and warns that the model does not beat it."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((120, 16, 2)).astype(np.float32)
    np.savez(tmp_path / "w.npz", X=x, y=x[:, -1, 1].astype(np.float64))
    argv = ["--hidden", "8", "--epochs", "2", "--quiet", "--out", str(tmp_path / "run")]
    assert main(["train", "--data", str(tmp_path / "w.npz"), *argv]) == 0
    assert main(["export", str(tmp_path / "run" / "model.pt"), "--out", str(tmp_path / "export")]) == 0
    capsys.readouterr()
    code, out, report = run_check(capsys, tmp_path / "export", "--max-rmse-increase", "100")
    base = report["baselines"]
    assert code == 0 and base["persistence_rmse"] == pytest.approx(0.0, abs=1e-6)
    assert base["persistence_rule"].startswith("the window's last value of ")
    assert f"persistence ({base['persistence_rule']}) RMSE" in out
    assert any(w.startswith("the model does not beat persistence (the window's") for w in report["warnings"])
    assert f"; 1-NN Euclidean over the normalised windows RMSE {base['nearest_rmse']:.5g}" in out
    assert not any("nearest training window" in w for w in report["warnings"])  # persistence's warning first
    assert base["nearest_rmse"] > 0.5  # random windows: the nearest one's last value says little of another's
    # the RMSE rule's percentage is of the target's std as training saw it (a held-out split of one
    # sequence has a std of 0, which made it a percentage of raw target units)
    q, (std,) = report["quality"], load_int_model(tmp_path / "export")[0].meta.target_std
    assert q["rmse_increase_pct_of_std"] == pytest.approx(100 * (q["int8"] - q["float"]) / std)


def test_the_nearest_neighbour_warning_follows_train() -> None:
    """check's 1-NN warning: where the integer model scores below it, and (as train) only where no naive
    baseline's warning came first; none where the baseline was skipped, with the reason kept."""
    from tinylstm.host.analysis.check import _nearest_neighbour
    from tinylstm.trainer.baselines import Baselines

    rule = "1-NN Euclidean over the normalised windows"
    cls = Baselines("classification", nearest_accuracy=0.9, nearest_rule=rule)
    warnings: list[str] = []
    assert _nearest_neighbour(cls, 90.0, warnings) == {"nearest_rule": rule, "nearest_accuracy_pct": 90.0}
    assert warnings == []  # a tie matches it
    assert _nearest_neighbour(cls, 85.0, warnings)["nearest_accuracy_pct"] == 90.0
    assert warnings == [
        f"the integer model scores below the nearest training window ({rule}): accuracy 90.00% vs 85.00%"
    ]
    majority_first = ["the model does not beat always predicting the majority class ..."]
    _nearest_neighbour(cls, 85.0, majority_first)
    assert len(majority_first) == 1
    naive_first = ["the model does not beat predicting the training mean: ..."]
    reg = Baselines("regression", nearest_rmse=1.0, nearest_rule=rule)
    assert _nearest_neighbour(reg, 2.0, naive_first) == {"nearest_rule": rule, "nearest_rmse": 1.0}
    assert len(naive_first) == 1
    below: list[str] = []
    _nearest_neighbour(reg, 2.0, below)
    assert below == [f"the integer model scores below the nearest training window ({rule}): RMSE 1 vs 2"]
    skipped = Baselines("classification", nearest_skipped="too many")
    assert _nearest_neighbour(skipped, 10.0, below) == {"nearest_skipped": "too many"} and len(below) == 1


def _series_csv(path: Path, n: int = 3000) -> None:
    """A slow random walk: predicting the last value is hard to beat."""
    rng = np.random.default_rng(2)
    walk = np.cumsum(rng.standard_normal(n) * 0.1) + 5.0
    other = np.sin(np.arange(n) / 30.0)
    path.write_text(
        "level,other\n" + "\n".join(f"{a:.5f},{b:.5f}" for a, b in zip(walk, other, strict=True)) + "\n"
    )


def test_regression_baselines_and_the_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _series_csv(tmp_path / "walk.csv")
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "walk.csv"),
                "--target",
                "level",
                "--forecast",
                "4",
                "--window",
                "32",
                "--hidden",
                "8",
                "--epochs",
                "2",
                "--quiet",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 0
    )
    assert main(["export", str(tmp_path / "run" / "model.pt"), "--out", str(tmp_path / "export")]) == 0
    capsys.readouterr()
    main(["check", str(tmp_path / "export"), "--max-rmse-increase", "100"])
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "export" / "check-report.json").read_text())
    base = report["baselines"]
    assert base["persistence_lag"] == 4 and base["persistence_rmse"] > 0 and base["mean_rmse"] > 0
    assert not {"nearest_rule", "nearest_skipped"} & set(base)  # a stream: no 1-NN baseline
    same = base["model_rmse_same_steps"]
    beats_persistence = min(same["float"], same["int8"]) < base["persistence_rmse"]
    warned = any("does not beat persistence" in w for w in report["warnings"])
    assert warned == (not beats_persistence)
    assert f"persistence (4 step(s) back) RMSE {base['persistence_rmse']:.5g}" in out
    assert ("WARNING: the model does not beat persistence" in out) == warned
    as_json = check(tmp_path / "export")
    assert as_json["baselines"] == base
    # the integer model's squared errors per case, for a search's paired comparison: the windows were cut
    # from blocks of the one stream (its recordings), and they add up to its RMSE
    q = check(tmp_path / "export", case_sums=True)["quality"]
    cases = q["cases"]
    assert all(k.startswith("recording ") for k in cases) and 1 < len(cases) < q["predictions"]
    total, n = (sum(c[i] for c in cases.values()) for i in (0, 1))
    assert math.sqrt(total / n) == pytest.approx(q["int8"])


def test_old_layout_names_still_work_with_a_note(
    classifier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = str(classifier / "run" / "model.pt")
    assert main(["export", model, "--layout", "s16", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "--layout s16 is now called w16" in err and "weight layout w16" in out
    assert "TL_LAYOUT_W16" in (tmp_path / "tl_model.c").read_text()


def _sign_classifier() -> tuple[Any, Any, Any]:
    """A one-unit RNN whose class is the sign of the last sample (h = tanh(100 x)), and window data whose
    last samples are +-0.01 while every sequence holds one spike of 50: the int8 input's levels are far
    coarser than 0.01 at any range export may choose, an int16 input's are not."""
    import torch

    from tinylstm.codegen.random_models import float_model_from_torch
    from tinylstm.codegen.spec import ModelMeta
    from tinylstm.trainer.sequence_set import SequenceSet

    rnn, head = torch.nn.RNN(1, 1, batch_first=True), torch.nn.Linear(1, 2)
    with torch.no_grad():
        for p in (*rnn.parameters(), *head.parameters()):
            p.zero_()
        rnn.weight_ih_l0.fill_(100.0)
        head.weight.copy_(torch.tensor([[-1.0], [1.0]]))
    meta = ModelMeta(classes=["neg", "pos"], channels=["x"], input_mean=[0.0], input_std=[1.0], window=16)
    fm = float_model_from_torch(rnn, head, meta)

    def data(seed: int) -> SequenceSet:
        rng = np.random.default_rng(seed)
        labels = np.arange(40) % 2
        seqs = []
        for y in labels:
            s = rng.uniform(-1.0, 1.0, (16, 1)).astype(np.float32)
            s[rng.integers(0, 8), 0] = 50.0
            s[-1, 0] = 0.01 if y else -0.01
            seqs.append(s)
        return SequenceSet(seqs, labels, "classification", "window", ["neg", "pos"], ["x"], "sign", window=16)

    return fm, data(0), data(1)


def test_check_measures_the_int16_export_where_the_int8_input_loses() -> None:
    from tinylstm.codegen.export import calibration_sequences
    from tinylstm.codegen.input_range import calibrated_model
    from tinylstm.host.analysis.check import _outputs, _quality, wider_export

    fm, train, test = _sign_classifier()
    m8, _, _ = calibrated_model(fm, calibration_sequences(fm, train), 8)
    flo, _, ints = _outputs(fm, m8, test)
    quality = _quality(fm, m8, test, ints, flo)
    assert quality["float"] == 100.0 and quality["int8"] <= 60.0, quality  # +-0.01 vanish in the int8 input
    wider, hint = wider_export(fm, m8, test, quality, flo)
    # the int16 input keeps it, with the int8 h: check names that cheaper export and scores no more
    assert wider == {"with_input_bits_16": {"accuracy_pct": 100.0, "accuracy_drop_pp": 0.0}}
    assert hint is not None and "--input-bits 16" in hint and "100.00 %" in hint
    # nothing to say where int8 keeps the float accuracy, or for a model that is int16-h already
    assert wider_export(fm, m8, test, {**quality, "accuracy_drop_pp": 0.0}, flo) == ({}, None)
    m16, _, _ = calibrated_model(fm, calibration_sequences(fm, train), 16)
    assert wider_export(fm, m16, test, quality, flo) == ({}, None)
    # an int16-input model that still loses is scored as int16-h only
    x16, _, _ = calibrated_model(fm, calibration_sequences(fm, train), 8, 16)
    wider, hint = wider_export(fm, x16, test, quality, flo)
    assert list(wider) == ["with_hidden_bits_16"] and hint is not None and "--hidden-bits 16" in hint


def test_an_int16_hidden_export_is_named_so(
    classifier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The texts name the integer model int16-h (the JSON keys stay those of check-report.json)."""
    out_dir = tmp_path / "export16"
    model = str(classifier / "run" / "model.pt")
    assert main(["export", model, "--hidden-bits", "16", "--out", str(out_dir)]) == 0
    capsys.readouterr()
    code, out, report = run_check(capsys, out_dir)
    assert code == 0, out
    assert report["quality"]["integer"] == "int16-h" and "int8" in report["quality"]
    assert " int16-h " in out.splitlines()[2] and "float - int16-h accuracy" in out
    assert "with_hidden_bits_16" not in report["quality"]
    assert "int16-h accuracy's 95 % interval" in out and "int8 accuracy" not in out  # the baseline line too


def test_an_int16_input_export_is_named_so(
    classifier: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`export --input-bits 16`: the export says so, check runs it bit-exact (C, blob, MicroPython) and names
    the integer model int8-x16; an int8 input on an int16 h is refused in one line, exit 2."""
    out_dir = tmp_path / "export-x16"
    model = str(classifier / "run" / "model.pt")
    assert main(["export", model, "--input-bits", "16", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "hidden state int8 Q0.7, input int16" in out
    report = json.loads((out_dir / "export-report.json").read_text())
    assert (report["hidden_bits"], report["input_bits"]) == (8, 16)
    code, text, check_report = run_check(capsys, out_dir)
    assert code == 0, text
    assert check_report["quality"]["integer"] == "int8-x16" and check_report["bit_exact"]["ok"]
    assert check_report["model"]["input_bits"] == 16 and "hidden state int8 Q0.7, input int16; " in text
    assert check_report["blob"]["ok"], check_report["blob"]
    bad = tmp_path / "bad"
    assert main(["export", model, "--hidden-bits", "16", "--input-bits", "8", "--out", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "tinylstm export: error: an int16-h model's input is int16: export it with --input-bits 16 (or leave "
        "the option out)"
    ]
    assert not bad.exists()


def test_thresholds_take_numpy_numbers_and_refuse_the_rest() -> None:
    from tinylstm.host.analysis.check import Thresholds

    Thresholds(max_accuracy_drop_pp=np.float32(0.5), min_agreement_pct=np.int64(95)).validate()
    with pytest.raises(TinyLSTMError, match="--min-agreement 200: give a number from 0 to 100"):
        Thresholds(min_agreement_pct=200).validate()
    with pytest.raises(TinyLSTMError, match="--max-rmse-increase True: give a number >= 0"):
        Thresholds(max_rmse_increase_pct=True).validate()
