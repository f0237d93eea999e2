"""Training runs: watch learns, seeds reproduce, regression streams, NaN guard, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tinylstm.errors import TinyLSTMError
from tinylstm.host.cli.main import main
from tinylstm.trainer.checkpoint import load_checkpoint, load_splits_from_meta
from tinylstm.trainer.data import load_dataset
from tinylstm.trainer.train import TrainConfig, fit

FAST = {"hidden": 8, "epochs": 3, "batch_size": 16, "lr": 1e-2, "progress": False}


def toy_npz(tmp_path: Path, n: int = 60) -> str:
    """Two classes told apart by the sign of channel 0, variable lengths 5..12."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 12, 2)).astype(np.float32)
    y = np.arange(n) % 2
    x[:, :, 0] += np.where(y == 1, 1.5, -1.5)[:, None]
    np.savez(tmp_path / "toy.npz", X=x, y=y, lengths=rng.integers(5, 13, size=n))
    return str(tmp_path / "toy.npz")


def test_watch_short_run_learns(tmp_path: Path) -> None:
    ds = load_dataset("watch", window=32, hop=64)
    result = fit(ds, TrainConfig(hidden=16, epochs=3, batch_size=64, lr=1e-2, progress=False), tmp_path)
    assert result.metrics["test_accuracy"] > 0.35  # chance is 1/7
    for name in ("model.pt", "curves.png", "metrics.json"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["sizes"]["test"] == result.metrics["sizes"]["test"] > 0
    _, meta = load_checkpoint(tmp_path / "model.pt")
    assert (
        meta.window == 32 and meta.classes == ds.classes and meta.dataset.options == {"window": 32, "hop": 64}
    )
    train, val, test = load_splits_from_meta(meta)
    assert (len(train), len(val), len(test)) == tuple(result.metrics["sizes"].values())
    # the held-out windows are cut from a few recordings: those are its independent cases
    assert result.metrics["test_cases"] == len(np.unique(test.groups)) < len(test)


def test_same_seed_same_model(tmp_path: Path) -> None:
    ds = load_dataset(toy_npz(tmp_path))
    a = fit(ds, TrainConfig(cell="gru", seed=5, **FAST), tmp_path / "a")
    b = fit(ds, TrainConfig(cell="gru", seed=5, **FAST), tmp_path / "b")
    assert a.history == b.history
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key])
    assert a.metrics["test_accuracy"] >= 0.75


def test_a_seed_gives_the_same_weights_in_another_process(tmp_path: Path) -> None:
    """`tinylstm train` with one seed in two processes of different hash seeds (sets of strings iterate in
    other orders): the same weights, bit for bit, and the same held-out score (the default recipe, short)."""
    data = toy_npz(tmp_path)
    runs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"p{hash_seed}"
        argv = ["train", "--data", data, "--hidden", "8", "--epochs", "3", "--seed", "7", "--quiet"]
        done = subprocess.run(
            [sys.executable, "-m", "tinylstm.host.cli.main", *argv, "--out", str(out)],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        runs.append(load_checkpoint(out / "model.pt"))
    (model_a, meta_a), (model_b, meta_b) = runs
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_b.state_dict()[key]), key
    assert meta_a.metrics["test_accuracy"] == meta_b.metrics["test_accuracy"]


def test_stream_regression_forecast(tmp_path: Path) -> None:
    t = np.arange(600)
    rows = "\n".join(f"{np.sin(0.1 * i):.5f},{np.cos(0.1 * i):.5f}" for i in t)
    path = tmp_path / "wave.csv"
    path.write_text("s,c\n" + rows + "\n")
    ds = load_dataset(str(path), target="s", forecast=3, window=40)
    # the recipe's epoch budget for a small set (hundreds of epochs of one batch: a few seconds)
    result = fit(ds, TrainConfig(hidden=8, progress=False), tmp_path / "r")
    assert result.metrics["recipe"]["epochs"] >= 100 and result.meta.readout == "last"
    assert result.meta.target_norm is not None and result.meta.mode == "stream"
    assert 0 < result.metrics["test_rmse"] < 0.7  # the signal's own RMS is about 0.71


def test_nan_loss_stops_training(tmp_path: Path) -> None:
    ds = load_dataset(toy_npz(tmp_path), task="regression")  # an unbounded output can overflow
    with pytest.raises(TinyLSTMError, match="loss became NaN at epoch 1 step"):
        fit(
            ds,
            TrainConfig(lr=1e30, clip=1e30, **{k: v for k, v in FAST.items() if k != "lr"}),
            tmp_path / "n",
        )


def test_cli_train_on_ts_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    lines = []
    for i in range(40):
        length, label = int(rng.integers(6, 15)), i % 2
        dims = [rng.normal(loc=(2 if label else -2) * (d == 0), size=length) for d in range(2)]
        lines.append(
            ":".join(",".join(f"{v:.4f}" for v in dim) for dim in dims) + f":{'up' if label else 'down'}"
        )
    data = tmp_path / "toy.ts"
    data.write_text(
        "@problemName Toy\n@dimensions 2\n@equalLength false\n@classLabel true down up\n@data\n"
        + "\n".join(lines)
        + "\n"
    )
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--data",
            str(data),
            "--cell",
            "gru",
            "--hidden",
            "8",
            "--epochs",
            "3",
            "--lr",
            "0.01",
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "test accuracy" in printed and str(out / "model.pt") in printed
    _, meta = load_checkpoint(out)
    assert meta.cell == "gru" and meta.classes == ["down", "up"] and meta.window is None

    assert main(["train", "--data", str(tmp_path / "absent.ts"), "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_data_is_pinned_as_read_not_as_saved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint pins its data files before training: a file that changes while the model trains (a
    logger still appending) is refused later, not pinned in its changed state when the checkpoint is saved."""
    import tinylstm.trainer.train as train_module

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 12, 2)).astype(np.float32), np.arange(40) % 2
    np.savez(tmp_path / "d.npz", X=x, y=y)
    trains = train_module._train

    def changing(*args: object, **kwargs: object) -> object:
        np.savez(tmp_path / "d.npz", X=x * 1000, y=y)  # the file changes while the model trains
        return trains(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train_module, "_train", changing)
    run = fit(
        load_dataset(str(tmp_path / "d.npz")), TrainConfig(hidden=4, epochs=1, progress=False), tmp_path / "r"
    )
    _, meta = load_checkpoint(run.checkpoint_path)
    with pytest.raises(TinyLSTMError, match="d.npz changed since the model was trained"):
        load_splits_from_meta(meta)
