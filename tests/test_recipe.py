"""The training recipe (trainer/recipe.py, augment.py, baselines.py): each piece alone (seeded determinism,
shapes, the choices and their reasons, the cross-validated epoch budget on a tiny set), and one short seeded
training on shipped data that must beat the majority class by a clear margin."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tinylstm.errors import TinyLSTMError
from tinylstm.host.cli.main import main
from tinylstm.trainer.augment import Augment
from tinylstm.trainer.baselines import (
    Baselines,
    Interval,
    accuracy_interval,
    add_nearest_neighbour,
    naive_baselines,
    wilson_interval,
)
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.recipe import (
    CV_READOUT_BUDGET,
    CV_READOUTS,
    MAX_EPOCHS,
    MIN_EPOCHS,
    MIN_STEPS,
    DataShape,
    auto_batch,
    auto_epochs,
    choose,
    choose_stack,
    cv_candidates,
    readout_cv_cost,
    sample_steps_budget,
    validation_fraction,
)
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.train import TrainConfig, fit, folds


def window_set(n: int = 48, t: int = 20, seed: int = 0, blank: bool = False) -> SequenceSet:
    """Two classes told apart by channel 0's sign (or, ``blank``, all-zero inputs that tell nothing)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    seqs = [rng.normal(size=(t, 2)).astype(np.float32) for _ in range(n)]
    for s, label in zip(seqs, y, strict=True):
        s[:, 0] += 1.5 if label else -1.5
        if blank:
            s[:] = 0.0
    return SequenceSet(
        seqs, np.asarray(y, dtype=np.int64), "classification", "window", ["a", "b"], ["c0", "c1"], "toy"
    )


def test_augment_is_seeded_and_keeps_shapes() -> None:
    x = torch.randn(8, 30, 3)
    aug = Augment(shift=0.2)
    a, la = aug.apply(x, None, True, torch.Generator().manual_seed(4))
    b, lb = aug.apply(x, None, True, torch.Generator().manual_seed(4))
    c, _ = aug.apply(x, None, True, torch.Generator().manual_seed(5))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert la is not None and lb is not None and torch.equal(la, lb)
    assert int(la.min()) >= 30 - 6 and int(la.max()) <= 30  # at most 20 % of the first steps dropped
    k = int(torch.argmin(la))
    drop = 30 - int(la[k])
    unshifted, _ = Augment(shift=0.0).apply(x, None, True, torch.Generator().manual_seed(4))
    assert drop > 0 and unshifted.shape == x.shape
    same, none = Augment(0, 0, 0, 0).apply(x, None, True, torch.Generator())
    assert torch.equal(same, x) and none is None and not Augment(0, 0, 0, 0).active
    stream, lengths = aug.apply(x, None, False, torch.Generator().manual_seed(1))  # no shift in stream mode
    assert lengths is None and stream.shape == x.shape


def test_augment_strengths_are_checked() -> None:
    with pytest.raises(TinyLSTMError, match="shift=1.0 must be a fraction"):
        Augment(shift=1.0).validate()
    with pytest.raises(TinyLSTMError, match="scale=-0.1 must be in"):
        Augment(scale=-0.1).validate()


def test_batch_and_epochs_follow_the_data() -> None:
    assert [auto_batch(n) for n in (40, 511, 512, 2047, 2048, 9000)] == [16, 16, 32, 32, 64, 64]
    small = DataShape(40, 40 * 100, True, True)
    epochs, why = auto_epochs(small, 16, 32)
    assert epochs == MAX_EPOCHS and "1500 steps would take 500" in why  # 3 steps per epoch
    medium = DataShape(160, 160 * 100, True, True)  # 10 steps per epoch
    assert auto_epochs(medium, 16, 32) == (
        150,
        "150 epochs (1500 optimiser steps at 10 per epoch: at least 1500 steps)",
    )
    big = DataShape(6000, 6000 * 128, True, True)
    assert auto_epochs(big, 64, 32)[0] == MIN_EPOCHS
    long = DataShape(100, 100 * 1460, True, True)
    capped, why = auto_epochs(long, 16, 32)
    assert capped == sample_steps_budget(32) // (100 * 1460) and "capped by the budget" in why
    assert sample_steps_budget(64) == sample_steps_budget(32) // 4 and sample_steps_budget(
        4
    ) == 4 * sample_steps_budget(32)
    # the reason names the bound that decided (it read "at least 1500 steps" for 400 steps at the cap)
    tiny = DataShape(4, 4 * 100, True, True)
    assert auto_epochs(tiny, 16, 32) == (
        MAX_EPOCHS,
        f"{MAX_EPOCHS} epochs ({MAX_EPOCHS} optimiser steps at 1 per epoch: the most epochs, {MAX_EPOCHS}: "
        f"{MIN_STEPS} steps would take {MIN_STEPS})",
    )
    assert auto_epochs(big, 64, 32)[1].endswith(
        f"the fewest epochs, {MIN_EPOCHS}, which give more than {MIN_STEPS} steps)"
    )


def test_choices_and_reasons() -> None:
    cls = choose(TrainConfig(), DataShape(300, 30000, True, True, 100, max_steps=100))
    assert (cls.batch_size, cls.select, cls.readout, cls.label_smoothing) == (16, "last", "mean", 0.1)
    assert cls.readout_candidates == CV_READOUTS
    assert any("by 3-fold cross-validation" in r for r in cls.reasons)
    assert any("label smoothing 0.1" in r for r in cls.reasons)
    # the folds' cost follows the padded window: 300 sequences of up to 2,000 steps cannot afford them
    costly = DataShape(300, 30000, True, True, 100, max_steps=2000)
    assert readout_cv_cost(costly, 16, cls.epochs, 1) > CV_READOUT_BUDGET
    big = choose(TrainConfig(), costly)
    assert (big.readout, big.readout_candidates) == ("mean", ()) and any(
        "readout: mean" in r and "would cost" in r for r in big.reasons
    )
    short = choose(TrainConfig(), DataShape(300, 6000, True, True, 20))
    assert short.readout == "last" and any(
        "the last state has seen the whole window" in r for r in short.reasons
    )
    regression = choose(TrainConfig(), DataShape(30, 600, False, True, 20))
    assert regression.readout == "mean" and regression.select == "cv"
    stream = choose(TrainConfig(), DataShape(30, 3000, False, False, 100))
    assert (stream.readout, stream.label_smoothing, stream.select) == ("last", 0.0, "cv")
    assert cv_candidates(stream.epochs)[-1] == stream.epochs
    given = choose(
        TrainConfig(epochs=7, batch_size=5, select="best", readout="max"), DataShape(30, 300, True, True)
    )
    assert (given.epochs, given.batch_size, given.patience, given.readout) == (7, 5, 10, "max")
    with pytest.raises(
        TinyLSTMError, match="readout 'mean' pools over a window; this data is in stream mode"
    ):
        choose(TrainConfig(readout="mean"), DataShape(30, 300, True, False))
    assert validation_fraction(None, None, 0)[0] == 0.0
    assert validation_fraction(None, "best", 0)[0] == validation_fraction(None, None, 3)[0] == 0.15
    assert validation_fraction(0.3, None, 0)[0] == 0.3
    assert cv_candidates(3) == [3] and cv_candidates(400) == [50, 100, 200, 400]


def test_folds_are_disjoint_cover_and_keep_groups() -> None:
    ds = window_set(30)
    parts = folds(ds, 3, seed=1)
    assert sorted(np.concatenate(parts).tolist()) == list(range(30))
    assert all({0, 1} == set(np.asarray(ds.labels)[p].tolist()) for p in parts)  # every class in every fold
    ds.groups = np.repeat(np.arange(10), 3)
    fold_of = np.empty(30, dtype=np.int64)
    for f, p in enumerate(folds(ds, 3, seed=2)):
        fold_of[p] = f
    assert all(len(set(fold_of[ds.groups == g].tolist())) == 1 for g in range(10))  # a recording stays whole
    assert [p.tolist() for p in folds(ds, 3, 2)] == [p.tolist() for p in folds(ds, 3, 2)]


def test_stacking_cut_by_the_shortest_window_says_so() -> None:
    k, why = choose_stack(None, DataShape(30, 30 * 400, True, True, 400, 1, 400, 3))
    assert k == 3 and why.endswith("cut to the shortest window's 3 samples, so it completes a step)")
    held = DataShape(30, 30 * 400, True, True, 400, 1, 400, 3, shortest_held_out=True)
    assert choose_stack(None, held)[1].endswith(
        "so it completes a step, a held-out one: every training window is longer)"
    )  # a --test-data file's window (fit): the training data alone would not explain the cut
    with pytest.raises(TinyLSTMError, match=r"\(3 samples, a held-out one: every training window"):
        choose_stack(4, held)


def test_cross_validation_needs_a_unit_per_fold(tmp_path: Path) -> None:
    """Fewer training sequences than folds: a given --select cv is refused (it cross-validated two folds of
    one sequence each, and the recipe still said 3-fold); the default's cross-validation is skipped, saying
    why."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(12, 2)).astype(np.float32) for _ in range(2)]
    ds = SequenceSet(
        seqs, np.asarray([[0.5], [-0.3]], np.float32), "regression", "window", None, ["a", "b"], "two"
    )
    with pytest.raises(
        TinyLSTMError, match="--select cv needs 3 folds, and the training split has fewer than 3 sequences"
    ):
        fit(ds, TrainConfig(hidden=4, epochs=6, select="cv", test=0.0, progress=False), tmp_path / "a")
    lines: list[str] = []
    result = fit(
        ds, TrainConfig(hidden=4, epochs=6, test=0.0, progress=False), tmp_path / "b", log=lines.append
    )
    assert result.metrics["recipe"]["select"] == "last"
    assert (
        "  recipe: cross-validation skipped: the training split has fewer than 3 sequences, one per fold"
        in lines
    )
    with pytest.raises(TinyLSTMError, match="the training split of 'two' holds one of its 2 sequences"):
        fit(ds, TrainConfig(hidden=4, epochs=6, progress=False), tmp_path / "c")


def test_cross_validation_picks_an_epoch_budget(tmp_path: Path) -> None:
    """A tiny regression set: the cross-validated budget is one of the candidates, the same for the same seed,
    and the whole training split then trains for it."""
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(12, 2)).astype(np.float32) for _ in range(30)]
    targets = np.asarray([[s[:, 0].mean() + 0.1 * rng.normal()] for s in seqs], dtype=np.float32)
    ds = SequenceSet(seqs, targets, "regression", "window", None, ["c0", "c1"], "toy")
    config = TrainConfig(hidden=4, epochs=40, progress=False)
    lines: list[str] = []
    a = fit(ds, config, tmp_path / "a", log=lines.append)
    b = fit(ds, config, tmp_path / "b")
    ra = a.metrics["recipe"]
    assert (
        ra["select"] == "cv"
        and ra["epochs"] in cv_candidates(40)
        and ra["epochs"] == b.metrics["recipe"]["epochs"]
    )
    assert set(ra["cv_losses"]) == set(cv_candidates(40)) and a.metrics["epochs_run"] == ra["epochs"]
    assert a.metrics["sizes"]["val"] == 0 and any("cross-validation (3 folds)" in line for line in lines)


def test_cross_validation_picks_the_readout(tmp_path: Path) -> None:
    """A tiny window classification set of 80-step windows: the readout with the lowest mean held-out loss
    over the folds is the one the model is trained and saved with, the same for the same seed."""
    rng = np.random.default_rng(1)
    labels = np.arange(30) % 2
    seqs = [rng.normal(size=(80, 1)).astype(np.float32) for _ in labels]
    for s, y in zip(seqs, labels, strict=True):
        s[rng.integers(80), 0] += 6.0 * y  # class 1: one spike somewhere in the window
    ds = SequenceSet(seqs, labels, "classification", "window", ["a", "b"], ["c0"], "spikes")
    config = TrainConfig(hidden=4, epochs=6, progress=False)
    a = fit(ds, config, tmp_path / "a")
    b = fit(ds, config, tmp_path / "b")
    ra = a.metrics["recipe"]
    losses = ra["readout_losses"]
    assert set(losses) == set(CV_READOUTS) and ra["readout"] == min(CV_READOUTS, key=lambda r: losses[r])
    assert a.meta.readout == a.model.readout == ra["readout"] == b.metrics["recipe"]["readout"]
    assert losses == b.metrics["recipe"]["readout_losses"] and ra["cv_seconds"] > 0
    assert ra["select"] == "last" and ra["cv_losses"] == {}


def test_baselines() -> None:
    train, test = window_set(10), window_set(7, seed=2)
    b = naive_baselines(train, test)
    assert b.majority_class == "a" and b.majority_accuracy == pytest.approx(4 / 7)
    assert b.verdict(accuracy=0.9)[0] and not b.verdict(accuracy=0.5)[0]
    ys = [np.arange(10, dtype=np.float32)[:, None] + k for k in range(3)]
    stream = SequenceSet([np.zeros((10, 1), np.float32)] * 3, ys, "regression", "stream", None, ["x"], "s")
    r = naive_baselines(stream, stream, lag=2)
    assert r.persistence_rmse == pytest.approx(2.0) and r.persistence_rule == "the target 2 steps back"
    assert r.mean_rmse == pytest.approx(float(np.std(np.concatenate(ys))))
    seqs = [np.stack([np.full(5, v), np.zeros(5)], axis=1).astype(np.float32) for v in (1.0, 2.0, 3.0)]
    window = SequenceSet(
        seqs, np.asarray([[1.0], [2.0], [3.5]], np.float32), "regression", "window", None, ["p", "q"], "w"
    )
    w = naive_baselines(window, window)
    assert w.persistence_rule == "the window's last value of p" and w.persistence_rmse == pytest.approx(
        0.5 / np.sqrt(3)
    )


def _nearest_by_hand(train: SequenceSet, test: SequenceSet) -> np.ndarray:
    """The nearest training window of each held-out one, pair by pair: the normalisation fitted on every
    training step, windows padded to the longest with their last value, the first of equal distances."""
    steps = np.concatenate(train.sequences).astype(np.float64)
    mean, std = steps.mean(axis=0), steps.std(axis=0)
    longest = max(len(s) for s in (*train.sequences, *test.sequences))

    def padded(s: np.ndarray) -> np.ndarray:
        z = (np.asarray(s, np.float64) - mean) / std
        return np.concatenate([z, np.repeat(z[-1:], longest - len(z), axis=0)])

    return np.asarray(
        [
            int(np.argmin([np.sum((padded(b) - padded(a)) ** 2) for a in train.sequences]))
            for b in test.sequences
        ]
    )


def test_the_nearest_neighbour_baseline(monkeypatch: pytest.MonkeyPatch) -> None:
    """1-NN over the normalised, padded windows equals a pair-by-pair search, for classification and window
    regression of two outputs, over several distance blocks; stream data and an empty held-out set have none,
    and a set beyond its cost or memory says why it has none."""
    import tinylstm.trainer.baselines as baselines

    monkeypatch.setattr(baselines, "NEAREST_BLOCK", 30 * 256)  # 256 held-out windows per block: three
    rng = np.random.default_rng(3)
    train, test = window_set(30, seed=4), window_set(700, seed=5)
    # channel 1 (noise) in units 50x channel 0's: unnormalised, its noise would choose the neighbours
    scaled = np.asarray([1.0, 50.0], np.float32)
    train = dataclasses.replace(train, sequences=[s * scaled for s in train.sequences])
    cut = [s[: int(rng.integers(5, 21))] * scaled for s in test.sequences]  # several lengths: padding
    test = dataclasses.replace(test, sequences=cut)
    nearest = _nearest_by_hand(train, test)
    b = add_nearest_neighbour(naive_baselines(train, test), train, test)
    assert b.nearest_accuracy == pytest.approx(np.mean(train.labels[nearest] == test.labels))
    assert 0.5 < b.nearest_accuracy < 1.0 and b.nearest_rule is not None and "padded" in b.nearest_rule
    assert b.majority_accuracy is not None and b.nearest_rmse is None and b.nearest_skipped is None
    beaten, line = b.nearest_verdict(accuracy=1.0) or (False, "")
    assert beaten and line.startswith("1-NN Euclidean over the normalised windows (padded")
    tie, below = b.nearest_verdict(accuracy=b.nearest_accuracy), b.nearest_verdict(accuracy=0.5)
    assert tie is not None and tie[0] and below is not None and not below[0]  # the rule: at least as high
    y_train, y_test = (rng.normal(size=(n, 2)).astype(np.float32) for n in (len(train), len(test)))
    reg_train = dataclasses.replace(train, labels=y_train, task="regression", classes=None)
    reg_test = dataclasses.replace(test, labels=y_test, task="regression", classes=None)
    r = add_nearest_neighbour(naive_baselines(reg_train, reg_test), reg_train, reg_test)
    expected = float(np.sqrt(np.mean((y_train[nearest].astype(np.float64) - y_test) ** 2)))
    assert r.nearest_rmse == pytest.approx(expected) and r.nearest_accuracy is None
    assert r.nearest_verdict(rmse=10.0) == (False, f"{r.nearest_rule}: RMSE {expected:.4g} vs the model's 10")
    assert r.nearest_verdict(rmse=expected) == (
        True,
        f"{r.nearest_rule}: RMSE {expected:.4g} vs the model's {expected:.4g}",
    )
    stream = dataclasses.replace(train, mode="stream", labels=[np.full(20, y) for y in train.labels])
    s = add_nearest_neighbour(naive_baselines(stream, stream), stream, stream)
    assert s.nearest_rule is None and s.nearest_skipped is None and s.nearest_verdict(accuracy=0.5) is None
    none = dataclasses.replace(test, sequences=[], labels=test.labels[:0])
    assert add_nearest_neighbour(baselines.Baselines("classification"), train, none).nearest_rule is None
    monkeypatch.setattr(baselines, "MAX_NEAREST_MACS", 30 * 700 * 20)
    skipped = add_nearest_neighbour(naive_baselines(train, test), train, test)
    assert skipped.nearest_accuracy is None and skipped.nearest_skipped == (
        "30 x 700 windows of 20 x 2 values are 840,000 multiply-adds, more than 420,000"
    )
    monkeypatch.setattr(baselines, "MAX_NEAREST_MACS", 10**12)
    monkeypatch.setattr(baselines, "MAX_NEAREST_VALUES", 730 * 20 * 2 - 1)
    held = add_nearest_neighbour(naive_baselines(train, test), train, test)
    assert held.nearest_rule is None and held.nearest_skipped == (
        "30 + 700 windows of 20 x 2 values are 29,200 values to hold, more than 29,199"
    )


def test_the_accuracy_interval_of_a_small_held_out_set() -> None:
    """The Wilson 95 % interval (19 of 22: 66.7-95.3 %, as tabulated), only over independent held-out windows,
    and a verdict that says when a lead over the majority class is within its noise."""
    assert wilson_interval(19, 22) == pytest.approx((0.66665, 0.95251), abs=1e-5)
    assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="6 correct of 5"):
        wilson_interval(6, 5)
    test = window_set(22)
    interval = accuracy_interval(19 / 22, test)
    assert interval is not None and interval.cases == 22 and interval.low == pytest.approx(0.66665, abs=1e-5)
    cut = dataclasses.replace(test, groups=np.arange(22) // 2)  # two windows per recording: not independent
    assert accuracy_interval(19 / 22, cut) is None
    assert (test.cases(), cut.cases()) == (22, 11)
    b = Baselines("classification", majority_class="a", majority_accuracy=0.6)
    beats, line = b.verdict(accuracy=0.7, interval=Interval(*wilson_interval(7, 10), 10))
    assert (
        beats and "95 % interval 39.7%-89.2% over 10 held-out windows" in line and "within the noise" in line
    )
    beats, line = b.verdict(accuracy=0.95, interval=Interval(*wilson_interval(19, 20), 20))
    assert beats and "within the noise" not in line


def test_short_default_training_beats_the_majority_class(tmp_path: Path) -> None:
    """The shipped watch IMU data (every second window), the default recipe cut to 4 epochs: held-out accuracy
    clearly above always predicting the majority class (and above chance, 1/7)."""
    ds = load_dataset("watch", hop=64)
    result = fit(ds, TrainConfig(hidden=16, epochs=4, seed=0, progress=False), tmp_path)
    m = result.metrics
    assert m["recipe"]["select"] == "last" and m["sizes"]["val"] == 0
    assert m["recipe"]["readout"] in CV_READOUTS and set(m["recipe"]["readout_losses"]) == set(CV_READOUTS)
    assert m["test_accuracy"] >= m["baselines"]["majority_accuracy"] + 0.3, m


def test_gradient_clipping_survives_float32_overflow_of_the_norm() -> None:
    """A finite gradient whose squares overflow float32 is scaled to the clip norm; one holding inf is refused
    untouched."""
    from tinylstm.trainer.train import clip_gradients

    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([3e25, -4e25, 0.0])
    assert not torch.isfinite(torch.linalg.vector_norm(p.grad))  # what clip_grad_norm_ would see
    assert clip_gradients([p], 1.0)
    assert torch.allclose(p.grad, torch.tensor([0.6, -0.8, 0.0]), atol=1e-5)
    p.grad = torch.tensor([1.0, float("inf"), 0.0])
    assert not clip_gradients([p], 1.0) and torch.isinf(p.grad[1])


def test_non_finite_gradients_are_skipped_then_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tinylstm.trainer.train as train_module

    monkeypatch.setattr(train_module, "clip_gradients", lambda *a, **k: False)
    with pytest.raises(TinyLSTMError, match="the gradient overflowed on 3 of 3 steps"):
        fit(window_set(), TrainConfig(hidden=4, epochs=2, progress=False), tmp_path)


def test_cli_prints_the_recipe_and_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Inputs that tell nothing give one prediction for every window, which cannot beat the majority class:
    the warning says so; a learnable set gets the plain verdict."""
    blank = window_set(80, blank=True)
    np.savez(tmp_path / "blank.npz", X=np.stack(blank.sequences), y=np.asarray(blank.labels))
    args = ["train", "--data", str(tmp_path / "blank.npz"), "--hidden", "4", "--epochs", "3", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "r")]) == 0
    out = capsys.readouterr().out
    assert "recipe: batch 16 (" in out and "recipe: readout: last (windows of 20 steps" in out
    assert "recipe: model selection: the last epoch" in out
    assert "WARNING: the model does not beat the naive baselines: held-out accuracy" in out
    good = window_set(80)
    np.savez(tmp_path / "good.npz", X=np.stack(good.sequences), y=np.asarray(good.labels))
    assert (
        main(
            [
                "train",
                "--data",
                str(tmp_path / "good.npz"),
                "--hidden",
                "4",
                "--epochs",
                "20",
                "--quiet",
                "--out",
                str(tmp_path / "g"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "the model beats them" in out and "(95 % interval " in out  # each window is its own case here
    assert "1-NN Euclidean over the normalised windows: " in out  # matched or not: the next test


def test_the_verdict_beside_the_nearest_neighbour(capsys: pytest.CaptureFixture[str]) -> None:
    """train's last lines: the 1-NN baseline matched or beaten, scored below (a warning with what to try),
    skipped (why), and not stated where the naive baselines already were not beaten."""
    from tinylstm.host.cli.cmd_train import _verdict

    rule = "1-NN Euclidean over the normalised windows"
    base = Baselines("classification", majority_class="a", majority_accuracy=0.5, nearest_rule=rule)
    _verdict(dataclasses.replace(base, nearest_accuracy=0.8), {"test_accuracy": 0.9}, True)
    assert (
        capsys.readouterr().out.splitlines()[1]
        == f"baselines: {rule}: 80.0% vs the model's 90.0%: the model matches or beats it"
    )
    _verdict(dataclasses.replace(base, nearest_accuracy=0.9), {"test_accuracy": 0.9}, True)
    assert "WARNING" not in capsys.readouterr().out  # a tie matches it
    _verdict(dataclasses.replace(base, nearest_accuracy=0.95), {"test_accuracy": 0.9}, True)
    out = capsys.readouterr().out
    assert (
        f"WARNING: the model scores below the nearest training window: {rule}: 95.0% vs the model's 90.0%"
        in out
    )
    assert "--bidirectional on short windows of one length" in out
    _verdict(dataclasses.replace(base, nearest_accuracy=0.9), {"test_accuracy": 0.4}, True)
    assert "1-NN" not in capsys.readouterr().out  # the naive baselines' warning says what to try
    reg = Baselines("regression", mean_rmse=2.0, nearest_rmse=1.0, nearest_rule=rule)
    _verdict(reg, {"test_rmse": 1.5}, False)
    assert (
        f"WARNING: the model scores below the nearest training window: {rule}: RMSE 1 vs the model's 1.5"
        in (out := capsys.readouterr().out)
    )
    assert "--bidirectional" not in out  # a classifier's option only
    _verdict(
        Baselines("classification", majority_accuracy=0.5, nearest_skipped="too many"),
        {"test_accuracy": 0.9},
        True,
    )
    assert capsys.readouterr().out.splitlines()[1] == "baselines: no 1-NN baseline (too many)"


def test_cli_refuses_patience_without_early_stopping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--data", "watch", "--patience", "5", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs select='best' (--select best)" in err[0]
    assert not (tmp_path / "x").exists()


def test_a_stack_longer_than_the_windows_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """k samples per recurrent step on windows shorter than k: no step would complete, the model would answer
    with its head's bias whatever it reads. Refused (a stream: when longer than the longest stream)."""
    with pytest.raises(TinyLSTMError, match=r"stack=17 is longer than the shortest window \(16 samples\)"):
        choose(TrainConfig(stack=17), DataShape(30, 600, True, True, 20, max_steps=30, min_steps=16))
    assert (
        choose(TrainConfig(stack=16), DataShape(30, 600, True, True, 20, max_steps=30, min_steps=16)).stack
        == 16
    )
    with pytest.raises(TinyLSTMError, match=r"longer than the longest stream \(30 samples\)"):
        choose(TrainConfig(stack=31), DataShape(2, 50, True, False, 25, max_steps=30, min_steps=20))
    # the recipe's own choice (median // 64) stays within the shortest window too
    assert (
        choose(TrainConfig(), DataShape(30, 30000, True, True, 1000, max_steps=1000, min_steps=10)).stack
        == 10
    )
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "w.npz", X=rng.standard_normal((40, 16, 3)).astype(np.float32), y=np.arange(40) % 2)
    assert (
        main(["train", "--data", str(tmp_path / "w.npz"), "--stack", "100", "--out", str(tmp_path / "x")])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "choose stack <= 16" in err[0]
    # held-out windows count too: was, a test file of 3-sample windows scored on the head's bias (stack 6)
    x = rng.standard_normal((40, 400, 3)).astype(np.float32)
    np.savez(tmp_path / "long.npz", X=x, y=np.arange(40) % 2)
    np.savez(tmp_path / "short.npz", X=x[:10, :3], y=np.arange(10) % 2)
    argv = ["--data", str(tmp_path / "long.npz"), "--test-data", str(tmp_path / "short.npz"), "--epochs", "1"]
    assert main(["train", *argv, "--hidden", "4", "--quiet", "--out", str(tmp_path / "y")]) == 0
    assert json.loads((tmp_path / "y" / "metrics.json").read_text())["recipe"]["stack"] <= 3
    assert main(["train", *argv, "--stack", "6", "--out", str(tmp_path / "z")]) == 2
    assert "choose stack <= 3" in capsys.readouterr().err
