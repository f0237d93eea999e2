"""``tinylstm prune``: a trained checkpoint made smaller by removing whole hidden units (trainer/prune.py),
down to a unit count or to the largest count whose architecture fits a board's budget (flash, RAM, latency:
priced by cost.py before any pruning). The result is an ordinary checkpoint of a smaller dense model (a
bidirectional model's two stacks both keep the same, smaller, unit count).

Everything is checked before the work starts: a target of less than one unit, a budget not even one unit
meets, a model that already meets the target, a latency budget on a board whose latency cannot be priced, an
output directory that cannot be written.

Fine-tuning is float: a source's quantization-aware fine-tuning (codegen/qat.py) is not carried over, and the
pruned checkpoint records none (its report names the source's). A source fine-tuned for an int16 hidden state,
or for an int16 input on the int8 one, is priced with it, as its pruned model is meant to be exported
(``--hidden-bits 16``, ``--input-bits 16``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinylstm.codegen.emit_c import model_data_bytes
from tinylstm.contract.constants import HIDDEN_BITS, INPUT16_BITS, input_bits
from tinylstm.errors import TinyLSTMError
from tinylstm.host.boards.registry import get_board
from tinylstm.host.search.cost import Cost, architecture_cost, shape_model
from tinylstm.host.search.study import Budget, check_budget, over_budget
from tinylstm.trainer.baselines import accuracy_interval
from tinylstm.trainer.batches import PaddedSplit
from tinylstm.trainer.checkpoint import (
    CHECKPOINT_NAME,
    CheckpointMeta,
    checkpoint_file,
    load_checkpoint,
    load_splits_from_meta,
    qat_formats,
    save_checkpoint,
)
from tinylstm.trainer.data import Normalizer
from tinylstm.trainer.outputs import check_output_dir
from tinylstm.trainer.prune import DEFAULT_STEP, PruneResult, prune
from tinylstm.trainer.recipe import DataShape, auto_batch, auto_epochs
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.train import Scores, TrainConfig, evaluate

REPORT_NAME = "prune-report.json"
MIN_FINETUNE_EPOCHS = 5
FINETUNE_SHARE = (
    4  # each round fine-tunes for the recipe's epochs / FINETUNE_SHARE (at least MIN_FINETUNE_EPOCHS)
)
FINETUNE_LR_SHARE = 3  # at the recipe's peak learning rate / FINETUNE_LR_SHARE
SCORES = ("loss", "accuracy", "rmse", "mae")
# the source's scores (trainer/train.py _metrics_dict): they describe the unpruned model
STALE_METRICS = {f"{split}_{key}" for split in ("train", "val", "test") for key in SCORES} | {
    "test_accuracy_interval"
}


@dataclass
class PruneTarget:
    """A unit count, or a board and the budget the pruned model must fit there."""

    hidden: int | None = None
    board: str | None = None
    budget: Budget = dataclasses.field(default_factory=Budget)

    def describe(self) -> str:
        if self.hidden is not None:
            return f"{self.hidden} units per layer"
        return f"{self.budget.describe()} on {self.board}"


def export_hidden_bits(meta: CheckpointMeta) -> int:
    """The hidden state the pruned model is priced with: the one a quantization-aware source was fine-tuned
    for (it needs that state: its pruned model is exported so), else int8 (export's default)."""
    formats = qat_formats(meta)
    return formats[0] if formats else HIDDEN_BITS


def export_input_bits(meta: CheckpointMeta) -> int:
    """The input the pruned model is priced with: the one a quantization-aware source was fine-tuned for (an
    int16 input on the int8 h among them), else the hidden state's own (export's default)."""
    formats = qat_formats(meta)
    return formats[1] if formats else input_bits(HIDDEN_BITS)


def _shape(meta: CheckpointMeta, hidden: int) -> dict[str, Any]:
    """The checkpoint's architecture at ``hidden`` units, as cost.py's functions take it."""
    return {
        "cell": meta.cell,
        "layers": meta.num_layers,
        "inp": meta.input_size,
        "hidden": hidden,
        "out": meta.output_size,
        "classes": meta.classes,
        "hidden_bits": export_hidden_bits(meta),
        "readout": meta.readout,
        "stack": meta.stack,
        "window": meta.window if meta.bidirectional else 0,
        "input16": export_hidden_bits(meta) == HIDDEN_BITS and export_input_bits(meta) == INPUT16_BITS,
    }


def shape_cost(meta: CheckpointMeta, board: str, hidden: int) -> Cost:
    """The price on ``board`` of the checkpoint's architecture at ``hidden`` units (hidden state:
    ``export_hidden_bits``)."""
    return architecture_cost(get_board(board), **_shape(meta, hidden))


def data_bytes(meta: CheckpointMeta, hidden: int) -> int:
    """Model data bytes (``tinylstm export``'s, int8 weights, hidden state ``export_hidden_bits``) of the
    checkpoint's architecture at ``hidden`` units: exact for the shapes, whatever the weights
    (codegen/emit_c.model_data_bytes)."""
    return model_data_bytes(shape_model(**_shape(meta, hidden)))


def resolve_hidden(meta: CheckpointMeta, target: PruneTarget) -> tuple[int, dict[int, Cost]]:
    """The unit count to prune to, and the prices looked at (budget targets): the largest count below the
    model's whose architecture fits the budget (prices grow with the count: a binary search)."""
    have = meta.hidden_size
    if target.hidden is not None:
        if target.hidden < 1:
            raise TinyLSTMError(
                f"--hidden {target.hidden}: a layer keeps at least one unit; give 1 to {have - 1}"
            )
        if target.hidden >= have:
            raise TinyLSTMError(
                f"--hidden {target.hidden}: the model already has {have} units per layer, nothing to prune; "
                f"give fewer than {have}"
            )
        return target.hidden, {}
    if target.board is None or all(
        v is None for v in (target.budget.max_flash, target.budget.max_ram, target.budget.max_latency_ms)
    ):
        raise TinyLSTMError(
            "give a target: --hidden N, or --board with --max-flash, --max-ram or --max-latency-ms"
        )
    prices: dict[int, Cost] = {}

    def fits(h: int) -> bool:  # the budget and the board's own memory, as the search judges an architecture
        prices[h] = shape_cost(meta, target.board or "", h)
        return over_budget(prices[h], target.budget) is None

    check_budget(target.budget, get_board(target.board or ""), "prune")
    if fits(have):
        c = prices[have]
        ms = "" if c.slowest_sample_ms is None else f", slowest sample {c.slowest_sample_ms:.3g} ms"
        raise TinyLSTMError(
            f"the model already meets {target.describe()} (flash {c.flash_bytes} B, RAM {c.ram_bytes} "
            f"B{ms}): nothing to prune; give a smaller budget or --hidden"
        )
    if not fits(1):
        why = over_budget(prices[1], target.budget)
        raise TinyLSTMError(
            f"even one unit per layer does not meet {target.describe()} ({why}): pruning cannot get there; "
            "raise the budget, or train fewer layers or a smaller input stacking"
        )
    lo, hi = 1, have  # fits(lo), not fits(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo, prices


def pruned_metrics(meta: CheckpointMeta, scores: Scores | None, test_set: SequenceSet) -> dict[str, Any]:
    """The source's metrics less what describes the source alone (its scores, its quantization-aware
    fine-tuning), with the pruned model's held-out scores."""
    metrics = {k: v for k, v in meta.metrics.items() if k not in STALE_METRICS and k != "qat"}
    if scores is None:
        return metrics
    metrics.update({f"test_{k}": float(v) for k in SCORES if (v := getattr(scores, k)) is not None})
    interval = None if scores.accuracy is None else accuracy_interval(scores.accuracy, test_set)
    if interval is not None:
        metrics["test_accuracy_interval"] = interval._asdict()
    return metrics


def check_options(step: float, epochs: int | None, lr: float | None, seed: int | None) -> None:
    """Refuse a numeric option no fine-tuning can run with, before any work starts."""
    if not 0.0 < step < 1.0:
        raise TinyLSTMError(f"--step {step}: give the fraction of units one round removes, in (0, 1)")
    if epochs is not None and epochs < 1:
        raise TinyLSTMError(f"--epochs {epochs}: fine-tuning needs at least 1 epoch per round")
    if lr is not None and not 0.0 < lr < math.inf:
        raise TinyLSTMError(f"--lr {lr}: give a learning rate > 0, e.g. 0.001")
    if seed is not None and seed < 0:
        raise TinyLSTMError(f"--seed {seed}: give a seed >= 0")


def finetune_epochs(meta: CheckpointMeta, train_shape: DataShape, hidden: int, given: int | None) -> int:
    if given is not None:
        return given
    recorded = meta.metrics.get("recipe", {}).get("epochs")
    full = (
        recorded
        if isinstance(recorded, int)
        else auto_epochs(train_shape, auto_batch(train_shape.sequences), hidden, meta.stack)[0]
    )
    return max(MIN_FINETUNE_EPOCHS, full // FINETUNE_SHARE)


def finetune_lr(meta: CheckpointMeta, given: float | None) -> float:
    """A third of the peak learning rate the checkpoint's recipe trained with (the default training's before
    the recipe was recorded), unless given."""
    if given is not None:
        return given
    recorded = meta.metrics.get("recipe", {}).get("lr")
    peak = recorded if isinstance(recorded, float) and 0.0 < recorded < math.inf else TrainConfig().lr
    return peak / FINETUNE_LR_SHARE


def prune_checkpoint(
    model_path: str | Path,
    out: str | Path,
    target: PruneTarget,
    *,
    step: float = DEFAULT_STEP,
    epochs: int | None = None,
    lr: float | None = None,
    seed: int | None = None,
    data: str | None = None,
    test_data: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Prune the checkpoint at ``model_path`` to ``target``; write OUT/model.pt (an ordinary checkpoint),
    OUT/prune-report.json and return the report."""
    out_dir = check_output_dir(out)
    if (out_dir / CHECKPOINT_NAME).resolve() == checkpoint_file(model_path).resolve():
        raise TinyLSTMError(f"--out {out_dir} holds the model being pruned; give another output directory")
    if (out_dir / CHECKPOINT_NAME).is_file() and not (out_dir / REPORT_NAME).is_file():
        raise TinyLSTMError(  # its metrics.json and curves.png would go on describing the replaced model
            f"--out {out_dir} holds another training run's model.pt; give a new directory (or an earlier "
            "prune's)"
        )
    check_options(step, epochs, lr, seed)
    model, meta = load_checkpoint(model_path)
    hidden, prices = resolve_hidden(meta, target)
    train_set, _, test_set = load_splits_from_meta(meta, data, test_data)
    norm = Normalizer.from_dict(meta.norm)
    target_norm = None if meta.target_norm is None else Normalizer.from_dict(meta.target_norm)
    shape = DataShape.of(train_set)
    config = TrainConfig(
        cell=meta.cell,
        hidden=hidden,
        layers=meta.num_layers,
        epochs=finetune_epochs(meta, shape, meta.hidden_size, epochs),
        lr=finetune_lr(meta, lr),
        seed=meta.dataset.seed if seed is None else seed,
        progress=False,
        readout=meta.readout,
        stack=meta.stack,
        select="last",
    )
    test = PaddedSplit.build(test_set, norm, target_norm) if len(test_set) else None
    before = evaluate(model, test, target_norm).metric if test is not None else None
    if log is not None:
        why = "" if target.hidden is not None else f" ({target.describe()})"  # --hidden N says it already
        log(
            f"pruning {meta.cell.upper()} {meta.num_layers}x{meta.hidden_size} to {hidden} units per layer"
            f"{why}; rounds remove <= {step:.0%} of the units, then fine-tune {config.epochs} epochs at peak "
            f"lr {config.lr:g}"
        )
    started = time.perf_counter()
    result: PruneResult = prune(model, train_set, norm, target_norm, hidden, config, step, log)
    scores = evaluate(result.model, test, target_norm) if test is not None else None
    after = scores.metric if scores is not None else None
    pruned_meta = dataclasses.replace(  # moved data files (their bytes checked): recorded where they are now
        meta,
        hidden_size=hidden,
        metrics=pruned_metrics(meta, scores, test_set),
        dataset=meta.dataset.relocated(data, test_data),
    )
    metric = "accuracy" if meta.task == "classification" else "rmse"
    report: dict[str, Any] = {
        "source": str(Path(model_path).resolve()),
        "target": target.describe(),
        "criterion": "mean |h| over the training split x the L2 norm of the weights reading the unit",
        "hidden": {"before": meta.hidden_size, "after": hidden},
        "metric": metric,
        "test": {"before": before, "after": after, "sequences": len(test_set)},
        "model_data_bytes": {"before": data_bytes(meta, meta.hidden_size), "after": data_bytes(meta, hidden)},
        # the hidden state and input the sizes and prices assume: export the pruned model with them
        "hidden_bits": export_hidden_bits(meta),
        "input_bits": export_input_bits(meta),
        # the source's quantization-aware fine-tuning, not carried over (fine-tuning is float); None: none
        "source_qat": meta.metrics.get("qat"),
        "finetune": {"epochs_per_round": config.epochs, "lr": config.lr, "seed": config.seed, "step": step},
        "rounds": [dataclasses.asdict(r) for r in result.rounds],
        "seconds": round(time.perf_counter() - started, 2),
    }
    report["model_data_bytes"]["saved"] = (
        report["model_data_bytes"]["before"] - report["model_data_bytes"]["after"]
    )
    if target.board is not None:
        cost = prices.get(hidden) or shape_cost(meta, target.board, hidden)
        was = prices.get(meta.hidden_size) or shape_cost(meta, target.board, meta.hidden_size)
        report["board"] = {"name": target.board, "before": was.to_dict(), "after": cost.to_dict()}
    pruned_meta.metrics["pruning"] = report
    out_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out_dir / CHECKPOINT_NAME, result.model, pruned_meta)
    (out_dir / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report
