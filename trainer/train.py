"""The training loop: Adam, gradient-norm clipping, early stopping on validation loss, seeded."""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.batches import PaddedSplit, select
from tinylstm.trainer.checkpoint import CHECKPOINT_NAME, CheckpointMeta, DatasetRef, save_checkpoint
from tinylstm.trainer.curves import plot_curves
from tinylstm.trainer.data import Normalizer, split
from tinylstm.trainer.models import Cell, TinyRNN, check_sizes
from tinylstm.trainer.sequence_set import SequenceSet

EVAL_BATCH = 512


@dataclass
class TrainConfig:
    cell: Cell = "lstm"
    hidden: int = 32
    layers: int = 1
    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    clip: float = 1.0
    patience: int = 10
    seed: int = 0
    val: float = 0.15
    test: float = 0.15
    device: str = "cpu"
    progress: bool = True
    threads: int | None = (
        None  # PyTorch intra-op threads; None: 1 for hidden <= SMALL_HIDDEN, else PyTorch's default
    )


# Up to this hidden size one intra-op thread is fastest: the matrices are too small to split, and on a
# loaded machine the second thread mostly waits (benchmarks/results/train.md).
SMALL_HIDDEN = 64


def threads_for(config: TrainConfig) -> int:
    """The intra-op thread count ``fit`` trains with."""
    if config.threads is not None:
        return config.threads
    return 1 if config.hidden <= SMALL_HIDDEN else torch.get_num_threads()


def check_output_dir(out_dir: str | Path) -> Path:
    """Refuse an output path that cannot become a directory, before any training time is spent."""
    out = Path(out_dir)
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            raise TinyLSTMError(f"--out {out}: {p} is a file, not a directory; pick another output directory")
        if p.exists():
            break
    return out


@dataclass
class TrainResult:
    model: TinyRNN
    meta: CheckpointMeta
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    checkpoint_path: Path
    curves_path: Path
    metrics_path: Path


@dataclass
class Scores:
    """Loss (on normalised targets) plus accuracy, or RMSE/MAE in the target's own units."""

    loss: float
    accuracy: float | None = None
    rmse: float | None = None
    mae: float | None = None

    @property
    def metric(self) -> float:
        value = self.accuracy if self.accuracy is not None else self.rmse
        assert value is not None
        return value


@dataclass
class _Running:
    """Sums accumulated over an epoch's batches."""

    loss: float = 0.0
    count: int = 0
    correct: int = 0
    sq_err: float = 0.0
    abs_err: float = 0.0
    values: int = 0
    std: np.ndarray | None = field(default=None)

    def add(self, loss: torch.Tensor, pred: torch.Tensor, target: torch.Tensor, classification: bool) -> None:
        n = int(pred.shape[0])
        self.loss += float(loss) * n
        self.count += n
        if classification:
            self.correct += int((pred.argmax(dim=-1) == target).sum())
            return
        err = (pred - target).detach().numpy() * (1.0 if self.std is None else self.std)
        self.sq_err += float((err.astype(np.float64) ** 2).sum())
        self.abs_err += float(np.abs(err).sum())
        self.values += int(err.size)

    def scores(self, classification: bool) -> Scores:
        loss = self.loss / max(self.count, 1)
        if classification:
            return Scores(loss, accuracy=self.correct / max(self.count, 1))
        return Scores(
            loss, rmse=math.sqrt(self.sq_err / max(self.values, 1)), mae=self.abs_err / max(self.values, 1)
        )


def _loss_fn(classification: bool) -> nn.Module:
    return nn.CrossEntropyLoss() if classification else nn.MSELoss()


def evaluate(model: TinyRNN, data: PaddedSplit, target_norm: Normalizer | None) -> Scores:
    """Scores of ``model`` on a padded split (eval mode, no gradients)."""
    model.eval()
    loss_fn = _loss_fn(data.classification)
    running = _Running(std=None if target_norm is None else target_norm.std)
    with torch.no_grad():
        for start in range(0, len(data), EVAL_BATCH):
            x, lengths, y = data.batch(torch.arange(start, min(start + EVAL_BATCH, len(data))))
            pred, target = select(model(x, lengths), lengths, y, data.mode)
            running.add(loss_fn(pred, target), pred, target, data.classification)
    return running.scores(data.classification)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_config(config: TrainConfig) -> None:
    for name in ("epochs", "batch_size", "patience"):
        if getattr(config, name) < 1:
            raise TinyLSTMError(f"{name}={getattr(config, name)} must be >= 1")
    if not config.lr > 0 or not config.clip > 0:
        raise TinyLSTMError(f"lr={config.lr} and clip={config.clip} must be > 0")
    if config.device != "cpu":
        raise TinyLSTMError(f"device {config.device!r} is not supported; tinylstm trains on cpu")
    if config.threads is not None and config.threads < 1:
        raise TinyLSTMError(f"threads={config.threads} must be >= 1 (omit it for the automatic choice)")


def _metrics_dict(
    ds: SequenceSet,
    sizes: dict[str, int],
    scores: dict[str, Scores | None],
    best_epoch: int,
    epochs_run: int,
    seconds: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "task": ds.task,
        "mode": ds.mode,
        "sizes": sizes,
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "train_seconds": round(seconds, 2),
    }
    for split_name, s in scores.items():
        if s is None:
            continue
        out[f"{split_name}_loss"] = s.loss
        for key in ("accuracy", "rmse", "mae"):
            value = getattr(s, key)
            if value is not None:
                out[f"{split_name}_{key}"] = float(value)
    return out


def fit(
    ds: SequenceSet, config: TrainConfig, out_dir: str | Path, test_ds: SequenceSet | None = None
) -> TrainResult:
    """Split ``ds``, train a TinyRNN on it and write model.pt, curves.png and metrics.json to ``out_dir``.

    With ``test_ds`` (an explicit held-out file, see ``load_test_set``) ``ds`` is split into
    train/val only and ``test_ds`` is the test split.
    """
    _check_config(config)
    out = check_output_dir(out_dir)
    ds.validate()
    check_sizes(config.cell, ds.num_channels, config.hidden, config.layers, ds.output_size)
    test_frac = 0.0 if test_ds is not None else config.test
    train_ds, val_ds, split_test = split(ds, val=config.val, test=test_frac, seed=config.seed)
    test_ds = split_test if test_ds is None else test_ds
    if len(val_ds) == 0:
        raise TinyLSTMError("training needs a validation split for early stopping; use val > 0")
    norm = Normalizer.fit(train_ds.sequences)
    target_norm = None
    if ds.task == "regression":
        target_norm = Normalizer.fit(
            list(train_ds.labels) if ds.mode == "stream" else [np.asarray(train_ds.labels)]
        )
    train, val = (PaddedSplit.build(d, norm, target_norm) for d in (train_ds, val_ds))
    test = PaddedSplit.build(test_ds, norm, target_norm) if len(test_ds) else None

    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads_for(config))
    try:
        model, history, best_epoch, seconds = _train(train, val, ds.output_size, target_norm, config)
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)

    scores = {
        "train": evaluate(model, train, target_norm),
        "val": evaluate(model, val, target_norm),
        "test": None if test is None else evaluate(model, test, target_norm),
    }
    sizes = {"train": len(train_ds), "val": len(val_ds), "test": len(test_ds)}
    metrics = _metrics_dict(ds, sizes, scores, best_epoch, len(history["train_loss"]), seconds)
    meta = CheckpointMeta(
        cell=config.cell,
        input_size=model.input_size,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        output_size=model.output_size,
        task=ds.task,
        mode=ds.mode,
        window=ds.window,
        classes=ds.classes,
        channels=list(ds.channels),
        norm=norm.to_dict(),
        target_norm=None if target_norm is None else target_norm.to_dict(),
        dataset=DatasetRef(
            spec=ds.spec,
            options=dict(ds.options),
            seed=config.seed,
            val=config.val,
            test=test_frac,
            test_spec=None if test_ds is split_test else test_ds.spec,
        ),
        metrics=metrics,
    )
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = save_checkpoint(out / CHECKPOINT_NAME, model, meta)
    metric_name = "accuracy" if ds.task == "classification" else "RMSE"
    curves_path = plot_curves(history, metric_name, out / "curves.png")
    metrics_path = out / "metrics.json"
    metrics_path.write_text(
        json.dumps({**metrics, "config": asdict(config), "history": history}, indent=2) + "\n"
    )
    return TrainResult(model, meta, metrics, history, checkpoint_path, curves_path, metrics_path)


def _train(
    train: PaddedSplit,
    val: PaddedSplit,
    output_size: int,
    target_norm: Normalizer | None,
    config: TrainConfig,
) -> tuple[TinyRNN, dict[str, list[float]], int, float]:
    _seed_everything(config.seed)
    model = TinyRNN(config.cell, int(train.x.shape[2]), config.hidden, config.layers, output_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loss_fn = _loss_fn(train.classification)
    rng = np.random.default_rng(config.seed)
    std = None if target_norm is None else target_norm.std
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "train_metric": [], "val_metric": []}
    best_loss, best_state, best_epoch, waited = math.inf, copy.deepcopy(model.state_dict()), 0, 0
    short = "acc" if train.classification else "rmse"
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        running = _Running(std=std)
        order = torch.from_numpy(rng.permutation(len(train)))
        batches = list(torch.split(order, config.batch_size))
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            disable=not config.progress,
            leave=True,
            dynamic_ncols=True,
        )
        for step, index in enumerate(bar, start=1):
            x, lengths, y = train.batch(index)
            pred, target = select(model(x, lengths), lengths, y, train.mode)
            loss = loss_fn(pred, target)
            if not torch.isfinite(loss):
                raise TinyLSTMError(
                    f"loss became NaN at epoch {epoch} step {step}: lower --lr (now {config.lr}) or check "
                    "the "
                    "data for extreme values (normalisation is fitted on the training split)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            running.add(loss.detach(), pred.detach(), target, train.classification)
            scores = running.scores(train.classification)
            bar.set_postfix(loss=f"{scores.loss:.4f}", **{short: f"{scores.metric:.4f}"}, refresh=False)
        train_scores = running.scores(train.classification)
        val_scores = evaluate(model, val, target_norm)
        bar.set_postfix(
            {
                "loss": f"{train_scores.loss:.4f}",
                short: f"{train_scores.metric:.4f}",
                "val_loss": f"{val_scores.loss:.4f}",
                f"val_{short}": f"{val_scores.metric:.4f}",
            }
        )
        bar.close()
        history["train_loss"].append(train_scores.loss)
        history["val_loss"].append(val_scores.loss)
        history["train_metric"].append(train_scores.metric)
        history["val_metric"].append(val_scores.metric)
        if val_scores.loss < best_loss:
            best_loss, best_state, best_epoch, waited = (
                val_scores.loss,
                copy.deepcopy(model.state_dict()),
                epoch,
                0,
            )
        else:
            waited += 1
            if waited >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return model, history, best_epoch, time.perf_counter() - started
