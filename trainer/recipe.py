"""The training recipe: what ``fit`` does when the user leaves a choice to it, and why.

Measured on the shipped and bundled data (docs/training.md, benchmarks/results/quality.md), the defaults
that make small recurrent models train well on sensor series are:

- AdamW (decoupled weight decay 1e-2) under a one-cycle learning-rate schedule peaking at ``lr``
  (1e-2): warm-up from lr / 25 over the first 30 % of the optimiser steps, then cosine annealing to
  lr / 2.5e5 (PyTorch's OneCycleLR defaults);
- label smoothing 0.1 for classification;
- augmentation of every training batch (trainer/augment.py);
- a batch size from the number of training sequences, so that a small set still gets several optimiser
  steps per epoch (a 40-sequence set in batches of 64 takes one step per epoch);
- an epoch budget from the data: enough optimiser steps for the one-cycle schedule to converge, capped by
  the sample-steps one training may process, so the default stays within minutes on a laptop core;
- for long windows, **input stacking** (contract/stacking.py): k consecutive samples per recurrent step, so a
  window of STACK_MIN_STEPS samples or more runs as about STACK_TARGET_STEPS to 2x that many steps. The
  recurrence then spans the window in few steps (a 1,460-step series is 66 steps at k = 22), training and the
  board do k times less recurrent work, and the first layer sees k samples at once;
- model selection by **keeping the last epoch**: with one-cycle the learning rate ends near zero and the
  last weights are the settled ones, while a validation split of 6-20 recordings is a noisy judge
  (picking the epoch by it lost 1.7 pp on the watch data). With this rule no decision reads a validation
  split, so by default none is held back: every training sequence trains. For regression, which fits noise
  when it trains too long (no label smoothing bounds it), the epoch budget is chosen by 3-fold
  cross-validation on the training data where that is affordable (``select="cv"``), then all of it trains.
  Early stopping on a validation split is still there (``select="best"``, ``patience``).

``choose`` turns a TrainConfig plus the training data into a ``Recipe``, whose ``reasons`` are what
``tinylstm train`` prints.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tinylstm.contract.constants import MAX_INPUT, MAX_STACK
from tinylstm.contract.readouts import readout
from tinylstm.contract.stacking import check_stack
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.augment import NO_AUGMENT, Augment
from tinylstm.trainer.sequence_set import SequenceSet

if TYPE_CHECKING:
    from tinylstm.trainer.train import TrainConfig

SCHEDULES = ("onecycle", "constant")
SELECTIONS = ("last", "best", "cv")

# Batch size by the number of training sequences: at least ~25 optimiser steps per epoch on small sets,
# up to 64 where the data is large (fewer, better-averaged steps per second of training).
BATCH_BY_SIZE: tuple[tuple[int, int], ...] = ((512, 16), (2048, 32))
LARGE_BATCH = 64
MIN_STEPS = 1500  # optimiser steps the one-cycle schedule gets at least (unless capped below)
MIN_EPOCHS = 30
MAX_EPOCHS = 400
# sample-steps (sequences x steps, summed over epochs) one default training may process at hidden 32;
# scaled by (32 / hidden)^2 for larger models (their steps cost more), capped at 4x for smaller ones
SAMPLE_STEPS_BUDGET = 30_000_000
BUDGET_HIDDEN = 32
DEFAULT_PATIENCE = 10  # select="best": epochs without a better validation loss before stopping
# select="cv": the epoch budget by k-fold cross-validation among fractions of the recipe's, then a refit on
# all the training data; regression's default when the folds cost at most CV_BUDGET_TRAININGS trainings
CV_FOLDS = 3
CV_FRACTIONS = (0.125, 0.25, 0.5, 1.0)
CV_MIN_EPOCHS = 5
CV_BUDGET_TRAININGS = 4.0
WINDOW_READOUT = "mean"  # window regression's readout, and window classification's from POOL_MIN_STEPS steps
POOL_MIN_STEPS = 64  # in recurrent steps (a stacked model's windows are k times shorter)
# window classification from POOL_MIN_STEPS steps: the pooled readout by CV_FOLDS-fold cross-validation among
# these where the folds cost at most CV_READOUT_BUDGET sequential recurrent steps (epochs x optimiser steps x
# the padded window in recurrent steps, summed over folds and candidates: what a training's time follows);
# else WINDOW_READOUT
CV_READOUTS = ("mean", "max")
CV_READOUT_BUDGET = 1_000_000
# input stacking (contract/stacking.py) by default for windows of STACK_MIN_STEPS samples (median) or more:
# k = median // STACK_TARGET_STEPS, so a window runs as STACK_TARGET_STEPS .. 2 * STACK_TARGET_STEPS steps
STACK_MIN_STEPS = 256
STACK_TARGET_STEPS = 64
DEFAULT_VAL = 0.15  # the validation fraction when a decision reads it (select="best", QAT)


@dataclass(frozen=True)
class DataShape:
    """What the recipe looks at: the training split's size and sequence length."""

    sequences: int
    sample_steps: int  # sum of the sequences' lengths
    classification: bool
    window: bool  # one label per sequence (window mode) rather than per step
    median_steps: int = 0  # the sequences' median length
    channels: int = 1  # values per sample
    max_steps: int = 0  # the longest sequence (a padded batch's length)
    min_steps: int = 0  # the shortest sequence (fit: of the held-out windows too, which stacking must fit)
    shortest_held_out: bool = False  # min_steps is a held-out window's, shorter than every training one

    @classmethod
    def of(cls, ds: SequenceSet) -> DataShape:
        lengths = [len(s) for s in ds.sequences]
        return cls(
            sequences=len(ds),
            sample_steps=int(sum(lengths)),
            classification=ds.task == "classification",
            window=ds.mode == "window",
            median_steps=int(np.median(lengths)) if lengths else 0,
            channels=int(ds.sequences[0].shape[1]) if lengths else 1,
            max_steps=max(lengths, default=0),
            min_steps=min(lengths, default=0),
        )

    @property
    def held_out_note(self) -> str:
        """Names a shortest window that is a held-out one (the training windows are all longer)."""
        return ", a held-out one: every training window is longer" if self.shortest_held_out else ""


@dataclass
class Recipe:
    batch_size: int
    epochs: int
    lr: float  # the peak learning rate (one-cycle) or the constant one
    schedule: str
    weight_decay: float
    label_smoothing: float
    augment: Augment
    select: str
    patience: int | None  # select="best" only
    readout: str  # what the head reads (contract/readouts.py)
    stack: int = 1  # samples per recurrent step (contract/stacking.py)
    reasons: list[str] = field(default_factory=list)
    cv_losses: dict[int, float] = field(default_factory=dict)  # select="cv": mean validation loss by epochs
    # the readouts cross-validation chooses among (empty: ``readout`` is decided), their mean validation loss
    readout_candidates: tuple[str, ...] = ()
    readout_losses: dict[str, float] = field(default_factory=dict)
    cv_seconds: float = 0.0  # the cross-validations' training time

    def steps_per_epoch(self, sequences: int) -> int:
        return max(1, math.ceil(sequences / self.batch_size))


def auto_batch(sequences: int) -> int:
    for limit, batch in BATCH_BY_SIZE:
        if sequences < limit:
            return batch
    return LARGE_BATCH


def sample_steps_budget(hidden: int) -> int:
    factor = min(4.0, (BUDGET_HIDDEN / max(hidden, 1)) ** 2)
    return int(SAMPLE_STEPS_BUDGET * factor)


def auto_epochs(data: DataShape, batch: int, hidden: int, stack: int = 1) -> tuple[int, str]:
    """Epochs for at least MIN_STEPS optimiser steps (MIN_EPOCHS..MAX_EPOCHS), capped by the sample-step
    budget (recurrent steps: a stacked model's are ``stack`` samples each); returns them with the reason."""
    per_epoch = max(1, math.ceil(data.sequences / batch))
    want = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(MIN_STEPS / per_epoch)))
    budget = sample_steps_budget(hidden)
    steps = max(data.sample_steps // stack, 1)
    cap = max(1, budget // steps)
    if cap < want:
        return cap, (
            f"{cap} epochs ({cap * per_epoch} optimiser steps): capped by the budget of {budget / 1e6:g}M "
            f"sample-steps at hidden {hidden} ({steps:,} per epoch; "
            f"{want} would give >= {MIN_STEPS} steps)"
        )
    for_steps = math.ceil(MIN_STEPS / per_epoch)
    if for_steps > MAX_EPOCHS:
        rule = f"the most epochs, {MAX_EPOCHS}: {MIN_STEPS} steps would take {for_steps}"
    elif for_steps < MIN_EPOCHS:
        rule = f"the fewest epochs, {MIN_EPOCHS}, which give more than {MIN_STEPS} steps"
    else:
        rule = f"at least {MIN_STEPS} steps"
    return want, f"{want} epochs ({want * per_epoch} optimiser steps at {per_epoch} per epoch: {rule})"


def cv_candidates(epochs: int) -> list[int]:
    """The epoch budgets cross-validation compares: fractions of the recipe's, at least CV_MIN_EPOCHS."""
    return sorted({max(min(CV_MIN_EPOCHS, epochs), round(f * epochs)) for f in CV_FRACTIONS})


def readout_cv_cost(data: DataShape, batch: int, epochs: int, stack: int) -> int:
    """Sequential recurrent steps of cross-validating CV_READOUTS: per fold and candidate, epochs x optimiser
    steps on (CV_FOLDS - 1) / CV_FOLDS of the data x the padded window in recurrent steps."""
    fold = math.ceil(data.sequences * (CV_FOLDS - 1) / CV_FOLDS)
    per_training = epochs * max(1, math.ceil(fold / batch)) * max(1, data.max_steps // stack)
    return CV_FOLDS * len(CV_READOUTS) * per_training


def _selection(given: str | None, data: DataShape, epochs: int) -> tuple[str, str]:
    if given is not None:
        return given, "given"
    if data.classification:
        return (
            "last",
            "label smoothing and augmentation keep a classifier from fitting noise",
        )
    cost = (CV_FOLDS - 1) * sum(cv_candidates(epochs)) / max(epochs, 1)  # in full trainings
    if cost <= CV_BUDGET_TRAININGS:
        return (
            "cv",
            f"regression fits noise when it trains too long; the folds cost about {cost:.1f} trainings",
        )
    return "last", f"cross-validation would cost {cost:.1f} trainings here"


def validation_fraction(val: float | None, select: str | None, qat_epochs: int) -> tuple[float, str]:
    """The validation fraction: as given, else DEFAULT_VAL when a decision reads it, else 0."""
    if val is not None:
        return val, f"validation split {val:g} (given)"
    if select == "best" or qat_epochs:
        why = "early stopping reads it" if select == "best" else "quantization-aware fine-tuning reads it"
        return DEFAULT_VAL, f"validation split {DEFAULT_VAL:g} ({why})"
    return (
        0.0,
        "no validation split: the last epoch is kept, so no decision reads one and all training data trains",
    )


def choose_stack(given: int | None, data: DataShape) -> tuple[int, str]:
    """Samples per recurrent step: as given, else k = median // STACK_TARGET_STEPS for windows of
    STACK_MIN_STEPS samples or more (within the kernel's step width), else 1; with the reason."""
    if given is not None:
        check_stack(given, data.channels)
        # a window shorter than k ends before its first recurrent step: its output would be the head's bias
        shortest, what = (
            (data.min_steps, "shortest window") if data.window else (data.max_steps, "longest stream")
        )
        if shortest and given > shortest:
            raise TinyLSTMError(
                f"stack={given} is longer than the {what} ({shortest} samples{data.held_out_note}): no "
                f"recurrent step would complete there; choose stack <= {shortest}"
            )
        return given, f"input stacking: {given} samples per step (given)"
    if not data.window or data.median_steps < STACK_MIN_STEPS:
        what = "a label per step" if not data.window else f"windows of {data.median_steps} samples (median)"
        return 1, f"input stacking: none ({what}, < {STACK_MIN_STEPS} or stream data)"
    k = min(data.median_steps // STACK_TARGET_STEPS, MAX_INPUT // max(data.channels, 1), MAX_STACK)
    cut = ""
    if data.min_steps and k > data.min_steps:  # every window completes at least one recurrent step
        k = data.min_steps
        cut = f"; cut to the shortest window's {k} samples, so it completes a step{data.held_out_note}"
    if k <= 1:
        return (
            1,
            f"input stacking: none (the shortest window has {data.min_steps} samples{data.held_out_note})",
        )
    return k, (
        f"input stacking: {k} samples per step (windows of {data.median_steps} samples (median) run as "
        f"{data.median_steps // k} steps: the recurrence spans the window, and it costs 1/{k} of the "
        f"work{cut})"
    )


def choose(config: TrainConfig, data: DataShape) -> Recipe:
    """The recipe ``fit`` follows for ``config`` on a training split shaped ``data``."""
    reasons: list[str] = []
    candidates: tuple[str, ...] = ()
    stack, why_stack = choose_stack(config.stack, data)
    if config.batch_size is not None:
        batch = config.batch_size
        reasons.append(f"batch {batch} (given)")
    else:
        batch = auto_batch(data.sequences)
        reasons.append(f"batch {batch} ({data.sequences} training sequences)")
    if config.epochs is not None:
        epochs = config.epochs
        reasons.append(f"{epochs} epochs (given)")
    else:
        epochs, why = auto_epochs(data, batch, config.hidden, stack)
        reasons.append(why)
    if config.schedule == "onecycle":
        reasons.append(
            f"one-cycle learning rate peaking at {config.lr:g}, AdamW weight decay {config.weight_decay:g}"
        )
    else:
        reasons.append(f"constant learning rate {config.lr:g}, AdamW weight decay {config.weight_decay:g}")
    smoothing = config.label_smoothing if data.classification else 0.0
    if data.classification:
        reasons.append(f"label smoothing {smoothing:g}")
    augment = config.augment if config.augment is not None else NO_AUGMENT
    if not data.window and augment.shift:  # a time shift drops a window's first steps: window labels only
        augment = dataclasses.replace(augment, shift=0.0)
    reasons.append(f"augmentation: {augment.describe()}")
    patience = None
    select, why = _selection(config.select, data, epochs)
    if select == "best":
        patience = config.patience if config.patience is not None else DEFAULT_PATIENCE
        reasons.append(f"model selection: the epoch with the lowest validation loss (patience {patience})")
    elif select == "cv":
        reasons.append(
            f"model selection: the epoch budget by {CV_FOLDS}-fold cross-validation among "
            f"{', '.join(map(str, cv_candidates(epochs)))} epochs, then all training data trains ({why})"
        )
    else:
        reasons.append(f"model selection: the last epoch (the schedule ends settled; {why})")
    reasons.append(why_stack)
    steps = data.median_steps // stack  # the windows' median length in recurrent steps
    if config.readout is not None:
        chosen = readout(config.readout).name
        if readout(chosen).pooled and not data.window:
            raise TinyLSTMError(
                f"readout {chosen!r} pools over a window; this data is in stream mode (a label per step): "
                "use --readout last"
            )
        reasons.append(f"readout: {chosen} (given)")
    elif data.window and not data.classification:
        chosen = WINDOW_READOUT
        reasons.append(
            f"readout: {chosen} ({readout(chosen).doc}: a window's target belongs to the whole window, and "
            "the mean state averages out the noise one step carries)"
        )
    elif data.window and steps >= POOL_MIN_STEPS:
        chosen = WINDOW_READOUT
        why = (
            f"one label per window of {steps} steps (median), >= {POOL_MIN_STEPS}, where a recurrent state "
            "forgets the window's start"
        )
        cost = readout_cv_cost(data, batch, epochs, stack)
        if cost <= CV_READOUT_BUDGET:
            candidates = CV_READOUTS
            reasons.append(
                f"readout: {' or '.join(CV_READOUTS)} of h over the window, by {CV_FOLDS}-fold "
                "cross-validation "
                f"({why}; which pooling suits the data differs: the folds cost {cost / 1e3:,.0f}k recurrent "
                f"steps, <= {CV_READOUT_BUDGET / 1e3:,.0f}k)"
            )
        else:
            reasons.append(
                f"readout: {chosen} ({readout(chosen).doc}: {why}; cross-validating "
                f"{' or '.join(CV_READOUTS)} would cost {cost / 1e3:,.0f}k recurrent steps, "
                f"> {CV_READOUT_BUDGET / 1e3:,.0f}k)"
            )
    elif data.window:
        chosen = "last"
        reasons.append(
            f"readout: last (windows of {steps} steps (median), < {POOL_MIN_STEPS}: the last "
            "state has seen the whole window)"
        )
    else:
        chosen = "last"
        reasons.append("readout: last (a label per step: the head reads each step's h)")
    return Recipe(
        batch_size=batch,
        epochs=epochs,
        lr=config.lr,
        schedule=config.schedule,
        weight_decay=config.weight_decay,
        label_smoothing=smoothing,
        augment=augment,
        select=select,
        patience=patience,
        readout=chosen,
        stack=stack,
        reasons=reasons,
        readout_candidates=candidates,
    )
