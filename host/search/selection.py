"""How a search trial is scored: on its own held-out split, or by k-fold cross-validation on small data.

A trial's export is trained on the training split of the data and checked on its held-out split (15 %).
On a set of a few dozen sequences that split is a handful of them: one sequence of 7 is 14 pp, so the
study would rank architectures by which of them happen to get those few right (docs/search.md). Windows
cut from recordings count once per recording: hundreds of windows of a few recordings are a few cases,
as the split keeps each recording whole and its windows share its conditions. There,
each trial is also trained on CV_FOLDS folds of all the data, each fold held out once, and scored by its
integer model (int8, or int16-h where it drew that) on every sequence, pooled over the folds: the study's
objective. The trial's export stays the one trained on the training split, checked as before.

Choosing among the trials (``prefer_default``): a study ranks a handful of trials by one noisy estimate
each, so its top score is the one most likely to be lucky. The model ``tinylstm train`` makes by default
is the first trial; another trial replaces it as the best only when it leads it by more than one standard
error of their difference, case by case on the same cases (paired: both scored on each recording or
sequence). So does the one-standard-error rule of cross-validation (Hastie, Tibshirani and Friedman, The
Elements of Statistical Learning, 7.10) keep the simplest model within one standard error of the best;
here the model kept is the default, the recipe's choice before any trial was scored.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tinylstm.codegen.export import ModelSource, calibration_sequences
from tinylstm.codegen.input_range import calibrated_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.analysis.check import case_keys, quality_on
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.train import TrainConfig, fit, folds

if TYPE_CHECKING:
    from tinylstm.trainer.train import Finetune

CV_FOLDS = 3
# "auto": cross-validate where the trial's held-out split has fewer independent cases than this (sequences,
# or the recordings windows were cut from; one is > 3.3 pp)
CV_BELOW_HELD_OUT = 30


def check_folds(value: int | None) -> None:
    """``folds``: None (auto), 0 (the held-out split alone) or k >= 2."""
    if value is not None and (value < 0 or value == 1):
        raise TinyLSTMError(
            f"--folds {value}: give 0 (score each trial on its held-out split) or 2 or more folds "
            f"(default: {CV_FOLDS} where the held-out split has fewer than {CV_BELOW_HELD_OUT} sequences or "
            "recordings)"
        )


def folds_for(given: int | None, cases: int, sequences: int | None = None) -> tuple[int, str]:
    """The folds a trial is cross-validated with (0: none) and why, when its held-out split has ``cases``
    independent cases: its sequences, or the recordings they were cut from (``sequences`` windows)."""
    if given is not None:
        return given, "given" if given else "given: the held-out split alone"
    held = f"{cases} sequences" if sequences in (None, cases) else f"{cases} recordings ({sequences} windows)"
    if cases < CV_BELOW_HELD_OUT:
        return CV_FOLDS, f"the held-out split has {held}, < {CV_BELOW_HELD_OUT}"
    return 0, f"the held-out split has {held}"


def cross_validate(
    ds: SequenceSet,
    config: TrainConfig,
    hidden_bits: int,
    k: int,
    root: Path,
    finetune: Finetune | None = None,
    input_bits: int | None = None,
) -> dict[str, Any] | None:
    """Train ``config`` on ``k`` folds of ``ds`` (each exported as ``hidden_bits`` and ``input_bits`` say)
    (trainer.train.folds: whole recordings, classes dealt evenly), each held out once; the integer and float
    quality pooled over every held-out sequence (the fraction right, or the RMSE over all of them), with each
    fold's, and its sums per case (``cases``: host/analysis/check.py ``quality_on``). None when ``ds`` makes
    fewer than two folds."""
    parts = [f for f in folds(ds, k, config.seed) if f.size]
    if len(parts) < 2:
        return None
    per_fold, cases = [], {}
    for f, held in enumerate(parts):
        rest = np.concatenate([p for g, p in enumerate(parts) if g != f])
        train_part, held_part = ds.subset(rest), ds.subset(held)
        result = fit(train_part, config, root / f"fold{f}", test_ds=held_part, finetune=finetune)
        fm = ModelSource(str(result.checkpoint_path)).load().float_model
        m, _, _ = calibrated_model(fm, calibration_sequences(fm, train_part), hidden_bits, input_bits)
        q = quality_on(fm, m, held_part, case_keys(ds, held))
        per_fold.append({"sequences": len(held_part), "int8": float(q["int8"]), "float": float(q["float"])})
        cases.update(q["cases"])  # the folds hold whole recordings: each case is in one fold
    return {
        "folds": len(per_fold),
        "metric": "accuracy_pct" if ds.task == "classification" else "rmse",
        "int8": _pooled(per_fold, "int8", ds.task),
        "float": _pooled(per_fold, "float", ds.task),
        "per_fold": per_fold,
        "cases": cases,
    }


def _pooled(per_fold: list[dict[str, Any]], key: str, task: str) -> float:
    """The folds' metric over all their sequences: accuracy weighted by fold size, RMSE from the pooled
    squared error."""
    n = sum(f["sequences"] for f in per_fold)
    if task == "classification":
        return sum(f[key] * f["sequences"] for f in per_fold) / n
    return math.sqrt(sum(f[key] ** 2 * f["sequences"] for f in per_fold) / n)


class Lead(NamedTuple):
    lead: float  # per prediction: the accuracy (a fraction) or the mean squared error gained
    se: float  # its standard error over the cases
    cases: int


def paired_lead(better: dict[str, list[float]], other: dict[str, list[float]], maximize: bool) -> Lead | None:
    """How far the model of case sums ``better`` leads the one of ``other`` (``quality_on``'s ``cases``)
    per prediction: the accuracy (a fraction) or the mean squared error it gains, and that lead's standard
    error over the cases, each case's gain paired (a ratio estimator's, so a case of many windows weighs
    more). None unless both were scored on the same predictions of the same two or more cases (trials of
    other windows were not)."""
    if set(better) != set(other) or len(better) < 2 or any(better[k][1] != other[k][1] for k in better):
        return None
    keys = sorted(better)
    sign = 1.0 if maximize else -1.0  # squared errors: the gain is the other's minus this one's
    gain = np.array([sign * (better[k][0] - other[k][0]) for k in keys])
    counts = np.array([better[k][1] for k in keys], dtype=np.float64)
    total, n = float(counts.sum()), len(keys)
    lead = float(gain.sum()) / total
    se = math.sqrt(n / (n - 1) * float(np.sum((gain - counts * lead) ** 2))) / total
    return Lead(lead, se, n)


def prefer_default(
    best: dict[str, Any], default: dict[str, Any] | None, maximize: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The trial a study returns, of its complete trials' records: ``best`` (the top score), or ``default``
    (the default model's best trial) where ``best`` leads it by no more than one standard error of their
    paired difference (``paired_lead``); and how they were weighed (None where there was nothing to weigh:
    no default trial, the default on top, or trials scored on different cases)."""
    if not default or default is best:
        return best, None
    lead = paired_lead(best["measured"].get("cases") or {}, default["measured"].get("cases") or {}, maximize)
    if lead is None:
        return best, None
    # a lead of one case in n unit cases is exactly one standard error: rounding must not decide it
    kept = lead.lead <= lead.se * (1 + 1e-9)
    scale, unit = (100.0, " pp") if maximize else (1.0, " in mean squared error")
    why = (
        f"trial {best['number']} scores {best['value']:.4g} against {default['value']:.4g} for the default "
        f"model (trial {default['number']}): a lead of {scale * lead.lead:.3g}{unit}, "
        f"{'within' if kept else 'more than'} one standard error ({scale * lead.se:.3g}{unit}) over "
        f"{lead.cases} cases, each scored by both"
    )
    choice = {"kept_default": kept, "top": best["number"], "default": default["number"], **lead._asdict()}
    return (default if kept else best), {**choice, "why": why}
