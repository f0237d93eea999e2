"""The training loop: Adam, gradient-norm clipping, early stopping on validation loss, seeded."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from tinylstm.contract.constants import HIDDEN_FORMATS, MAX_WINDOW
from tinylstm.contract.stacking import check_stack
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.augment import Augment
from tinylstm.trainer.baselines import accuracy_interval, add_nearest_neighbour, naive_baselines
from tinylstm.trainer.batches import PaddedSplit, select
from tinylstm.trainer.checkpoint import CHECKPOINT_NAME, CheckpointMeta, DatasetRef, save_checkpoint
from tinylstm.trainer.curves import plot_curves
from tinylstm.trainer.data import (
    Normalizer,
    channel_warnings,
    check_training_classes,
    constant_target_error,
    duplicate_warnings,
    split,
    split_warnings,
    window_warnings,
)
from tinylstm.trainer.models import Cell, TinyRNN, check_sizes
from tinylstm.trainer.outputs import check_output_dir
from tinylstm.trainer.recipe import (
    CV_FOLDS,
    SCHEDULES,
    SELECTIONS,
    DataShape,
    Recipe,
    choose,
    cv_candidates,
    validation_fraction,
)
from tinylstm.trainer.sequence_set import SequenceSet

EVAL_BATCH = 512
MAX_SKIPPED = 0.05  # optimiser steps skipped for a non-finite gradient, at most this fraction of them


@dataclass
class TrainConfig:
    """What to train and how. Fields left at None are chosen from the data by the recipe
    (trainer/recipe.py), which also says why."""

    cell: Cell = "lstm"
    hidden: int = 32
    layers: int = 1
    epochs: int | None = None  # None: from the data size (recipe.auto_epochs)
    batch_size: int | None = None  # None: from the number of training sequences (recipe.auto_batch)
    lr: float = 1e-2  # the one-cycle schedule's peak (schedule="constant": the learning rate)
    clip: float = 1.0
    patience: int | None = None  # select="best": epochs without a better validation loss; None: 10
    seed: int = 0
    val: float | None = None  # None: 0.15 when a decision reads it (select="best", QAT), else 0
    test: float = 0.15
    device: str = "cpu"
    progress: bool = True
    threads: int | None = (
        None  # PyTorch intra-op threads; None: 1 for hidden <= SMALL_HIDDEN, else PyTorch's default
    )
    dropout: float = 0.0  # between stacked layers while training (nn.LSTM/nn.GRU dropout)
    schedule: str = "onecycle"  # or "constant"
    weight_decay: float = 1e-2  # AdamW's decoupled weight decay
    label_smoothing: float = 0.1  # classification only
    augment: Augment | None = field(default_factory=Augment)  # None: no augmentation
    # "last": keep the last epoch; "best": the lowest validation loss (early stopping); "cv": the epoch budget
    # by cross-validation, then the last epoch of a training on all data; None: the recipe's choice
    select: str | None = None
    readout: str | None = None  # what the head reads (contract/readouts.py); None: the recipe's choice
    stack: int | None = None  # samples per recurrent step (contract/stacking.py); None: the recipe's choice
    qat_epochs: int = 0  # quantization-aware fine-tuning after float training (codegen/qat.py); 0: none
    qat_lr: float | None = None  # its learning rate; None: lr / 10
    qat_hidden_bits: int = 8  # the hidden state QAT mirrors: the one `tinylstm export --hidden-bits` will use
    # the input QAT mirrors, as `tinylstm export --input-bits` will quantize it; None: an int16-h model's own,
    # on an int8 h what `export --input-bits auto` chooses for the float model (codegen/qat.py finetune)
    qat_input_bits: int | None = None
    # a backward stack over each window (window classification on windows of one length; trainer/models.py)
    bidirectional: bool = False

    @property
    def qat_learning_rate(self) -> float:
        return self.qat_lr if self.qat_lr is not None else self.lr / 10


# Up to this hidden size one intra-op thread is fastest: the matrices are too small to split, and on a
# loaded machine the second thread mostly waits (benchmarks/results/train.md).
SMALL_HIDDEN = 64


def threads_for(config: TrainConfig) -> int:
    """The intra-op thread count ``fit`` trains with."""
    if config.threads is not None:
        return config.threads
    return 1 if config.hidden <= SMALL_HIDDEN else torch.get_num_threads()


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
        # in float64: targets near float32's largest value overflow a float32 error or its sum to inf
        err = (pred - target).detach().double().numpy() * (
            1.0 if self.std is None else self.std.astype(np.float64)
        )
        self.sq_err += float((err**2).sum())
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


def evaluate(model: nn.Module, data: PaddedSplit, target_norm: Normalizer | None) -> Scores:
    """Scores of ``model`` (a TinyRNN, or its FakeQuantRNN) on a padded split (eval mode, no gradients)."""
    model.eval()
    loss_fn = _loss_fn(data.classification)
    running = _Running(std=None if target_norm is None else target_norm.std)
    with torch.no_grad():
        for start in range(0, len(data), EVAL_BATCH):
            x, lengths, y = data.batch(torch.arange(start, min(start + EVAL_BATCH, len(data))))
            pred, target = select(model(x, lengths), lengths, y, data.mode)
            running.add(loss_fn(pred, target), pred, target, data.classification)
    return running.scores(data.classification)


def clip_gradients(parameters: Iterable[nn.Parameter], max_norm: float) -> bool:
    """Scale the gradients to a total L2 norm of at most ``max_norm``, the norm taken in float64 (in float32
    the squares of an exploding but finite gradient overflow, as in nn.utils.clip_grad_norm_); False,
    touching nothing, when a gradient holds an inf or NaN."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return True
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.double()) for g in grads]))
    if not torch.isfinite(norm):
        return False
    if norm > max_norm:
        for g in grads:
            g.mul_(max_norm / (float(norm) + 1e-6))
    return True


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _check_config(config: TrainConfig) -> None:
    for name in ("epochs", "batch_size", "patience", "stack"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise TinyLSTMError(f"{name}={value} must be >= 1 (omit it for the recipe's choice)")
    if not 0 < config.lr < math.inf or not 0 < config.clip < math.inf:
        raise TinyLSTMError(f"lr={config.lr} and clip={config.clip} must be finite and > 0")
    if not 0 <= config.seed < 2**32:
        raise TinyLSTMError(f"seed={config.seed} must be in 0..4294967295 (the seeds numpy and PyTorch take)")
    if config.schedule not in SCHEDULES or config.select not in (*SELECTIONS, None):
        raise TinyLSTMError(
            f"schedule={config.schedule!r} / select={config.select!r}: use schedule "
            f"{' or '.join(SCHEDULES)}, select {' or '.join(SELECTIONS)}"
        )
    if config.patience is not None and config.select != "best":
        raise TinyLSTMError(
            "patience is early stopping on the validation split: it needs select='best' (--select best)"
        )
    if not 0.0 <= config.weight_decay < 1.0 or not 0.0 <= config.label_smoothing < 1.0:
        raise TinyLSTMError(
            f"weight_decay={config.weight_decay} and label_smoothing={config.label_smoothing} must be in "
            "[0, 1)"
        )
    if config.augment is not None:
        config.augment.validate()
    if config.device != "cpu":
        raise TinyLSTMError(f"device {config.device!r} is not supported; tinylstm trains on cpu")
    cores = os.cpu_count() or 1
    if config.threads is not None and not 1 <= config.threads <= cores:
        raise TinyLSTMError(
            f"threads={config.threads}: this machine has {cores} cores; give 1-{cores} (or omit it for the "
            "automatic choice)"
        )
    if not 0.0 <= config.dropout < 1.0:
        raise TinyLSTMError(f"dropout={config.dropout} must be in [0, 1)")
    if config.qat_hidden_bits not in HIDDEN_FORMATS:
        raise TinyLSTMError(f"qat_hidden_bits={config.qat_hidden_bits}: choose 8 or 16")
    if config.qat_input_bits not in (None, 8, 16) or (
        config.qat_hidden_bits == 16 and config.qat_input_bits == 8
    ):
        raise TinyLSTMError(
            f"qat_input_bits={config.qat_input_bits}: choose 8 or 16 (16 with an int16 hidden state), or "
            "omit it"
        )
    if config.qat_epochs < 0 or not config.qat_learning_rate > 0:
        raise TinyLSTMError(
            f"qat_epochs={config.qat_epochs} must be >= 0 and qat_lr={config.qat_lr} > 0 (omit it: lr / 10)"
        )
    if config.bidirectional and config.qat_epochs:
        raise TinyLSTMError(
            "quantization-aware training of a bidirectional model is not built yet: train it without "
            "--qat-epochs (its int8 export is checked against the float model as usual)"
        )


def bidirectional_window(ds: SequenceSet, test_ds: SequenceSet | None) -> int:
    """W, the one length of every window a bidirectional model trains and is tested on; refuses data it
    cannot run on (the board runs the backward direction at the window's last sample)."""
    if ds.mode != "window" or ds.task != "classification":
        raise TinyLSTMError(
            f"--bidirectional is for window classification; {ds.name!r} is {ds.mode}-mode {ds.task}: "
            "train it without --bidirectional"
        )
    lengths = {len(s) for s in ds.sequences} | ({len(s) for s in test_ds.sequences} if test_ds else set())
    if len(lengths) != 1:
        raise TinyLSTMError(
            f"--bidirectional needs windows of one length, but {ds.name!r} has lengths "
            f"{min(lengths)}-{max(lengths)}: cut or pad every sequence to one length (watch and .csv data: "
            "--window N) or train without --bidirectional"
        )
    window = lengths.pop()
    if window > MAX_WINDOW:
        raise TinyLSTMError(
            f"--bidirectional buffers the window on the board: {window} samples is more than {MAX_WINDOW}; "
            "cut shorter windows (--window)"
        )
    return window


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


@dataclass
class FinetuneRun:
    """What a fine-tuning stage after float training receives: the trained float model, the padded splits,
    the recipe it was trained with; it extends ``history``."""

    model: TinyRNN
    splits: dict[str, PaddedSplit | None]
    target_norm: Normalizer | None
    config: TrainConfig
    meta: CheckpointMeta
    train_set: SequenceSet
    history: dict[str, list[float]]
    recipe: Recipe


# A fine-tuning stage (codegen/qat.py's ``finetune``: QAT through the integer contract, which the trainer does
# not import): runs when ``TrainConfig.qat_epochs`` > 0 and returns what metrics.json records of it.
Finetune = Callable[[FinetuneRun], dict[str, Any]]


def fit(
    ds: SequenceSet,
    config: TrainConfig,
    out_dir: str | Path,
    test_ds: SequenceSet | None = None,
    log: Callable[[str], None] | None = None,
    finetune: Finetune | None = None,
) -> TrainResult:
    """Split ``ds``, train a TinyRNN on it and write model.pt, curves.png and metrics.json to ``out_dir``.

    With ``test_ds`` (an explicit held-out file, see ``load_test_set``) ``ds`` is split into
    train/val only and ``test_ds`` is the test split. ``log`` receives the recipe's choices and their
    reasons before training starts. ``finetune``: the stage ``config.qat_epochs`` asks for
    (``tinylstm.codegen.qat.finetune``; ``tinylstm.train`` passes it).
    """
    _check_config(config)
    if config.qat_epochs and finetune is None:
        raise TinyLSTMError(
            "qat_epochs > 0 needs the QAT stage: call tinylstm.train, or fit(..., "
            "finetune=tinylstm.codegen.qat.finetune)"
        )
    out = check_output_dir(out_dir)
    ds.validate()
    check_sizes(config.cell, ds.num_channels, config.hidden, config.layers, ds.output_size)
    window = bidirectional_window(ds, test_ds) if config.bidirectional else ds.window
    test_frac = 0.0 if test_ds is not None else config.test
    val_frac, val_reason = validation_fraction(config.val, config.select, config.qat_epochs)
    train_ds, val_ds, split_test = split(ds, val=val_frac, test=test_frac, seed=config.seed)
    check_training_classes(train_ds)
    test_ds = split_test if test_ds is None else test_ds
    if len(val_ds) == 0 and (config.select == "best" or config.qat_epochs):
        raise TinyLSTMError(
            "early stopping (select best) and QAT read a validation split; use val > 0 (--val 0.15)"
        )
    data_warnings = window_warnings(ds) + channel_warnings(train_ds.sequences, list(ds.channels))
    data_warnings += split_warnings(ds, {"--val": (val_ds, val_frac), "--test": (split_test, test_frac)})
    data_warnings += duplicate_warnings(train_ds.sequences, [*val_ds.sequences, *test_ds.sequences])
    for line in data_warnings:
        if log is not None:
            log(f"  WARNING: {line}")
    norm = Normalizer.fit(train_ds.sequences)
    target_norm = None
    if ds.task == "regression":
        targets = list(train_ds.labels) if ds.mode == "stream" else [np.asarray(train_ds.labels)]
        if ds.mode == "window" and len(train_ds) == 1:
            raise TinyLSTMError(
                f"the training split of {ds.name!r} holds one of its {len(ds)} sequences: one target is "
                "nothing to learn from; use more sequences, or smaller --val/--test fractions"
            )
        constant = constant_target_error(targets)
        if constant:
            raise TinyLSTMError(f"{ds.name!r}: {constant}")
        target_norm = Normalizer.fit(targets)
    train = PaddedSplit.build(train_ds, norm, target_norm)
    val = PaddedSplit.build(val_ds, norm, target_norm) if len(val_ds) else None
    test = PaddedSplit.build(test_ds, norm, target_norm) if len(test_ds) else None
    shape = DataShape.of(train_ds)
    held = [len(q) for part in (val_ds, test_ds) for q in part.sequences]
    if shape.window and held and min(held) < shape.min_steps:  # it would be scored on the head's bias alone
        shape = dataclasses.replace(shape, min_steps=min(held), shortest_held_out=True)
    recipe = choose(config, shape)
    if config.qat_epochs:  # QAT quantizes as the export will: an int16-h layer 0 reads <= MAX_INPUT16 values
        check_stack(recipe.stack, ds.num_channels, config.qat_hidden_bits, config.qat_input_bits == 16)
    recipe.reasons.insert(0, val_reason)
    if config.bidirectional and window:
        recipe.reasons.append(
            f"bidirectional (given): a backward stack over each {window}-sample window, run at its last "
            f"sample (the board keeps the window's inputs: {window * ds.num_channels} B of state)"
        )
    for line in recipe.reasons:
        if log is not None:
            log(f"  recipe: {line}")

    meta = CheckpointMeta(
        cell=config.cell,
        input_size=ds.num_channels,
        hidden_size=config.hidden,
        num_layers=config.layers,
        output_size=ds.output_size,
        task=ds.task,
        mode=ds.mode,
        window=window,
        classes=ds.classes,
        channels=list(ds.channels),
        norm=norm.to_dict(),
        target_norm=None if target_norm is None else target_norm.to_dict(),
        dataset=DatasetRef(
            spec=ds.spec,
            options=dict(ds.options),
            seed=config.seed,
            val=val_frac,
            test=test_frac,
            test_spec=None if test_ds is split_test else test_ds.spec,
        ),
        readout=recipe.readout,
        stack=recipe.stack,
        bidirectional=config.bidirectional,
    )
    meta.dataset.pin()  # the data files as read, before training: one that changes meanwhile is refused later
    splits = {"train": train, "val": val, "test": test}
    deterministic = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads_for(config))
    try:
        _cross_validate(train_ds, norm, target_norm, config, recipe, log)
        meta.readout = recipe.readout
        model, history, best_epoch, seconds = _train(train, val, ds.output_size, target_norm, config, recipe)
        qat = (
            finetune(FinetuneRun(model, splits, target_norm, config, meta, train_ds, history, recipe))
            if config.qat_epochs and finetune is not None
            else None
        )
    finally:
        torch.use_deterministic_algorithms(deterministic)
        torch.set_num_threads(threads)

    scores = {name: None if d is None else evaluate(model, d, target_norm) for name, d in splits.items()}
    sizes = {"train": len(train_ds), "val": len(val_ds), "test": len(test_ds)}
    meta.metrics = _metrics_dict(ds, sizes, scores, best_epoch, len(history["train_loss"]), seconds)
    meta.metrics["test_cases"] = test_ds.cases()  # independent ones: what a held-out score is worth
    meta.metrics["recipe"] = _recipe_dict(recipe)
    meta.metrics["data_warnings"] = data_warnings
    if test_ds is not None and len(test_ds):
        baselines = add_nearest_neighbour(naive_baselines(train_ds, test_ds), train_ds, test_ds)
        meta.metrics["baselines"] = baselines.to_dict()
        interval = accuracy_interval(meta.metrics.get("test_accuracy", 0.0), test_ds)
        if interval is not None:
            meta.metrics["test_accuracy_interval"] = interval._asdict()
    if qat is not None:
        meta.metrics["qat"] = qat
    metrics = meta.metrics
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = save_checkpoint(out / CHECKPOINT_NAME, model, meta)
    metric_name = "accuracy" if ds.task == "classification" else "RMSE"
    curves_path = plot_curves(history, metric_name, out / "curves.png")
    metrics_path = out / "metrics.json"
    metrics_path.write_text(
        json.dumps({**metrics, "config": asdict(config), "history": history}, indent=2) + "\n"
    )
    return TrainResult(model, meta, metrics, history, checkpoint_path, curves_path, metrics_path)


def folds(ds: SequenceSet, k: int, seed: int) -> list[np.ndarray]:
    """``k`` disjoint index sets covering ``ds``: whole groups (recordings) when it has them, else sequences,
    dealt round-robin after a seeded shuffle (by class first in window classification, so each fold holds
    every class it can)."""
    units = np.unique(ds.groups) if ds.groups is not None else np.arange(len(ds))
    rng = np.random.default_rng(seed)
    order = units[rng.permutation(len(units))]
    cls = ds.class_per_sequence()
    if cls is not None and ds.groups is None:
        order = order[np.argsort(cls[order], kind="stable")]
    member = {u: n % k for n, u in enumerate(order.tolist())}
    keys = ds.groups if ds.groups is not None else np.arange(len(ds))
    assignment = np.asarray([member[u] for u in np.asarray(keys).tolist()])
    return [np.flatnonzero(assignment == f) for f in range(k)]


def _fold_splits(
    train_ds: SequenceSet, norm: Normalizer, target_norm: Normalizer | None, seed: int
) -> list[tuple[PaddedSplit, PaddedSplit]]:
    """(training part, held-out fold) for each of CV_FOLDS folds of the training split; empty where it has
    fewer units (sequences, or recordings) than folds."""
    parts = [f for f in folds(train_ds, CV_FOLDS, seed) if f.size]
    if len(parts) < CV_FOLDS:
        return []
    splits = []
    for f, held in enumerate(parts):
        rest = np.concatenate([p for g, p in enumerate(parts) if g != f])
        splits.append(
            (
                PaddedSplit.build(train_ds.subset(rest), norm, target_norm),
                PaddedSplit.build(train_ds.subset(held), norm, target_norm),
            )
        )
    return splits


def _cv_loss(
    splits: list[tuple[PaddedSplit, PaddedSplit]],
    output_size: int,
    target_norm: Normalizer | None,
    config: TrainConfig,
    trial: Recipe,
) -> float:
    """Mean held-out loss over the folds of a training that follows ``trial`` (from the seed, last epoch)."""
    scores = []
    for fold_train, fold_val in splits:
        model, _, _, _ = _train(fold_train, None, output_size, target_norm, config, trial)
        scores.append(evaluate(model, fold_val, target_norm).loss)
    return float(np.mean(scores))


def _cross_validate(
    train_ds: SequenceSet,
    norm: Normalizer,
    target_norm: Normalizer | None,
    config: TrainConfig,
    recipe: Recipe,
    log: Callable[[str], None] | None,
) -> None:
    """The recipe's open choices by CV_FOLDS-fold cross-validation of the training split, in place: first the
    readout among ``recipe.readout_candidates``, then (select="cv") the epoch budget among ``cv_candidates``;
    each the lowest mean held-out loss, ties to the first readout and the fewest epochs."""
    if not recipe.readout_candidates and recipe.select != "cv":
        return
    started = time.perf_counter()
    splits = _fold_splits(train_ds, norm, target_norm, config.seed)
    lines = []
    if not splits:
        units = "recordings" if train_ds.groups is not None else "sequences"
        held = f"the training split has fewer than {CV_FOLDS} {units}"
        if config.select == "cv":
            raise TinyLSTMError(
                f"--select cv needs {CV_FOLDS} folds, and {held}: use --select last, or more data"
            )
        lines.append(f"cross-validation skipped: {held}, one per fold")
        recipe.select = "last" if recipe.select == "cv" else recipe.select
    if splits and recipe.readout_candidates:
        for name in recipe.readout_candidates:
            trial = dataclasses.replace(recipe, readout=name, select="last", reasons=[])
            recipe.readout_losses[name] = _cv_loss(splits, train_ds.output_size, target_norm, config, trial)
        recipe.readout = min(recipe.readout_candidates, key=lambda r: recipe.readout_losses[r])
        lines.append(
            f"cross-validation ({len(splits)} folds), mean held-out loss by readout: "
            + ", ".join(f"{r}: {v:.4g}" for r, v in recipe.readout_losses.items())
            + f" -> readout {recipe.readout}"
        )
    if splits and recipe.select == "cv":
        for epochs in cv_candidates(recipe.epochs):
            trial = dataclasses.replace(recipe, epochs=epochs, select="last", reasons=[])
            recipe.cv_losses[epochs] = _cv_loss(splits, train_ds.output_size, target_norm, config, trial)
        recipe.epochs = min(recipe.cv_losses, key=lambda e: (recipe.cv_losses[e], e))
        lines.append(
            f"cross-validation ({len(splits)} folds), mean validation loss by epochs: "
            + ", ".join(f"{e}: {v:.4g}" for e, v in recipe.cv_losses.items())
            + f" -> {recipe.epochs} epochs on all the training data"
        )
    recipe.cv_seconds = round(time.perf_counter() - started, 2)
    for line in lines:
        recipe.reasons.append(line)
        if log is not None:
            log(f"  recipe: {line}")


def _recipe_dict(recipe: Recipe) -> dict[str, Any]:
    out = asdict(recipe)
    out["augment"] = asdict(recipe.augment)
    return out


def _train(
    train: PaddedSplit,
    val: PaddedSplit | None,
    output_size: int,
    target_norm: Normalizer | None,
    config: TrainConfig,
    recipe: Recipe,
) -> tuple[TinyRNN, dict[str, list[float]], int, float]:
    seed_everything(config.seed)
    model = TinyRNN(
        config.cell,
        int(train.x.shape[2]),
        config.hidden,
        config.layers,
        output_size,
        config.dropout,
        recipe.readout,
        recipe.stack,
        config.bidirectional,
    )
    history, best_epoch, seconds = run_epochs(model, model, train, val, target_norm, config, recipe)
    return model, history, best_epoch, seconds


def run_epochs(
    net: nn.Module,
    model: TinyRNN,
    train: PaddedSplit,
    val: PaddedSplit | None,
    target_norm: Normalizer | None,
    config: TrainConfig,
    recipe: Recipe,
    label: str = "train",
    before_epoch: Callable[[], None] | None = None,
    keep_start: bool = False,
) -> tuple[dict[str, list[float]], int, float]:
    """Train ``model``'s parameters through ``net`` (``model`` itself, or its FakeQuantRNN) as ``recipe``
    says. With select="best" training stops early on ``net``'s validation loss and ``model`` ends with its
    best weights, which with ``keep_start`` may be the ones it started with (best epoch 0); with "last" it
    runs every epoch and keeps the last weights. Returns the history, the epoch kept and the seconds taken."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = recipe.steps_per_epoch(len(train))
    scheduler = (
        torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=recipe.lr, total_steps=recipe.epochs * steps_per_epoch, pct_start=0.3
        )
        if recipe.schedule == "onecycle"
        else None
    )
    loss_fn = (
        nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing) if train.classification else nn.MSELoss()
    )
    rng = np.random.default_rng(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    window = train.mode == "window"
    std = None if target_norm is None else target_norm.std
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "train_metric": [], "val_metric": []}
    started = time.perf_counter()
    if keep_start and before_epoch is not None:
        before_epoch()
    best = recipe.select == "best"
    if best and val is None:
        raise TinyLSTMError("select='best' needs a validation split: use val > 0")
    best_loss = evaluate(net, val, target_norm).loss if keep_start and val is not None else math.inf
    best_state, best_epoch, waited, skipped = copy.deepcopy(model.state_dict()), 0, 0, 0
    short = "acc" if train.classification else "rmse"
    bar = tqdm(
        total=recipe.epochs * steps_per_epoch,
        desc=label,
        unit="batch",
        disable=None if config.progress else True,  # None: no bar when stderr is not a terminal
        dynamic_ncols=True,
        leave=False,
    )
    for epoch in range(1, recipe.epochs + 1):
        if before_epoch is not None:
            before_epoch()
        net.train()
        running = _Running(std=std)
        order = torch.from_numpy(rng.permutation(len(train)))
        for step, index in enumerate(torch.split(order, recipe.batch_size), start=1):
            x, lengths, y = train.batch(index)
            if recipe.augment.active:
                x, lengths = recipe.augment.apply(x, lengths, window, gen)
            pred, target = select(net(x, lengths), lengths, y, train.mode)
            loss = loss_fn(pred, target)
            if not torch.isfinite(loss):
                raise TinyLSTMError(
                    f"loss became NaN at epoch {epoch} step {step} ({label}): lower the learning rate (now "
                    f"{recipe.lr}) or check the data for extreme values (normalisation is fitted on the "
                    "training split)"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip_gradients(model.parameters(), config.clip):
                optimizer.step()
            else:  # an overflowed gradient (inf or NaN in it: long sequences): no scaling repairs it; skip
                skipped += 1
            if scheduler is not None:
                scheduler.step()
            running.add(loss.detach(), pred.detach(), target, train.classification)
            bar.update(1)
        if skipped > MAX_SKIPPED * epoch * steps_per_epoch:
            raise TinyLSTMError(
                f"the gradient overflowed on {skipped} of {epoch * steps_per_epoch} steps ({label}): lower "
                f"the learning rate (now {recipe.lr}) or shorten the sequences (--window)"
            )
        train_scores = running.scores(train.classification)
        history["train_loss"].append(train_scores.loss)
        history["train_metric"].append(train_scores.metric)
        post = {"epoch": f"{epoch}/{recipe.epochs}", "loss": f"{train_scores.loss:.4f}"}
        if val is not None:
            val_scores = evaluate(net, val, target_norm)
            history["val_loss"].append(val_scores.loss)
            history["val_metric"].append(val_scores.metric)
            post[f"val_{short}"] = f"{val_scores.metric:.4f}"
        bar.set_postfix(post, refresh=False)
        if not best:
            best_epoch = epoch
            continue
        if val_scores.loss < best_loss:
            best_loss, best_state, best_epoch, waited = (
                val_scores.loss,
                copy.deepcopy(model.state_dict()),
                epoch,
                0,
            )
        else:
            waited += 1
            assert recipe.patience is not None
            if waited >= recipe.patience:
                break
    bar.close()
    history["skipped_steps"] = [float(skipped)]
    if best:
        model.load_state_dict(best_state)
    model.eval()
    return history, best_epoch, time.perf_counter() - started
