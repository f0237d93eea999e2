"""TensorFlow Lite rows for benchmarks/bench_accuracy.py: an export's float weights through TFLite's standard
full-integer int8 recipe, measured on the same held-out split and labelled steps as TinyLSTM's int8 model.

The float model is rebuilt in Keras (tf_keras, the Keras 2 that TFLite fuses into its
UNIDIRECTIONAL_SEQUENCE_LSTM op; Keras 3 layers become a WHILE loop), checked against ``float_forward``,
then converted with a representative dataset of every training sequence into one model of batch 1 and
any sequence length. A pooled readout is Keras' global average or max pooling over the window; a stacked
model (k samples per recurrent step) gets its input stacked as the kernel stacks it, and its time per step
is per sample. LiteRT runs each held-out sequence in one invoke (resized per length); TFLite Micro
runs the same model with the longest held-out length fixed in its tensor shapes, for the arena it uses.

The work runs in a child process: TFLite's converter crashes (SIGSEGV) on a GRU and that must not end
the benchmark, which gets a "not convertible: ..." row instead. TensorFlow is an optional extra
(``pip install 'tinylstm[tflite]'``); this module imports without it.

    python benchmarks/tflite_peer.py EXPORT_DIR   # prints the row as JSON
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.export import data_splits, export_origin
from tinylstm.codegen.spec import FloatLayer, FloatModel, by_length, float_forward, normalise
from tinylstm.codegen.store import load_int_model
from tinylstm.contract.cells import CELLS
from tinylstm.contract.stacking import stack_samples
from tinylstm.errors import TinyLSTMError
from tinylstm.host.analysis.check import _outputs, _rmse, _select
from tinylstm.trainer.sequence_set import SequenceSet

EXTRA = "pip install 'tinylstm[tflite]'"
REQUIRED = ("tensorflow", "tf_keras", "ai_edge_litert")  # modules; tflite_micro is optional (arena)
PACKAGES = ("tensorflow", "tf-keras", "ai-edge-litert", "tflite-micro")
# Keras float32 vs float_forward's float64, relative to the largest output (at least 1). float32 drifts with
# the sequence's length: up to 1.3e-5 on PickupGestureWiimoteZ's 361 steps, 9.5e-5 on one of its GRU 16
# models. A conversion bug moves the outputs by far more: on a UnitTest GRU 16 (right: 5e-7) PyTorch's gate
# order kept gives 2.2, the recurrent bias dropped 1.0
FLOAT_TOL = 1e-3
FLOAT_CHECK_SEQUENCES = 32  # held-out sequences the float check covers
ARENA_LIMIT = 1 << 24  # bytes offered to TFLite Micro; the row reports what it used


def tflite_row(export_dir: Path) -> dict[str, Any]:
    """TFLite full-integer int8 of the export's float model on the export's held-out split.

    Keys: ``tflite`` ("int8" or "not convertible: <first line>"), ``versions``, ``float_max_abs_diff``
    (Keras vs ``float_forward``) and, when it converted: ``tflite_ops``, ``tflite_cell_clip`` (the LSTM
    cell-state clip the converter adds; None without a fused LSTM), ``metric`` ("accuracy_pct" or
    "rmse"), ``tflite_int8`` (that metric), ``agreement_pct`` with TinyLSTM's int8 argmax
    (classification) or ``rmse_vs_int8`` (regression), ``predictions``, ``tflite_bytes``,
    ``tflm_arena_bytes`` (int, or "not measured: ..."), ``tflm_arena_steps``, ``tflm_vs_litert_max_lsb``
    (TFLite Micro's int8 outputs against LiteRT's on the ``tflm_sequences`` of that length),
    ``us_per_step`` and ``us_per_step_how``. Raises ModuleNotFoundError without the tflite extra.
    """
    missing = [m for m in REQUIRED if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"TensorFlow Lite rows need {', '.join(missing)}: {EXTRA}")
    with tempfile.TemporaryDirectory(prefix="tinylstm-tflite-") as tmp:
        out = Path(tmp) / "row.json"
        run = subprocess.run(
            [sys.executable, __file__, "--measure", str(out), str(export_dir)],
            capture_output=True,
            text=True,
            env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        row: dict[str, Any] = json.loads(out.read_text()) if out.is_file() else {}
    stage = row.pop("stage", None)
    if run.returncode < 0 and stage == "convert":
        row["tflite"] = f"not convertible: the converter crashed ({signal.Signals(-run.returncode).name})"
    elif run.returncode != 0:
        tail = run.stderr.strip().splitlines()[-1:] or ["no output"]
        raise TinyLSTMError(f"TFLite row of {export_dir} failed (exit {run.returncode}): {tail[0]}")
    return row


def _measure(export_dir: Path, out: Path) -> None:
    """The child process: build, check, convert and measure; ``out`` gets the row (with ``stage`` while a
    step that may crash the process runs)."""
    import tensorflow as tf

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    m, doc = load_int_model(export_dir)
    origin = export_origin(export_dir, doc)
    fm = origin.loaded.float_model
    train, test = data_splits(origin.loaded, origin.data, origin.test_data)
    keras_model = _keras_model(fm)
    row: dict[str, Any] = {
        "versions": {p: _version(p) for p in PACKAGES},
        "float_max_abs_diff": _check_float(keras_model, fm, test),
    }
    out.write_text(json.dumps(row | {"stage": "convert"}))
    try:
        buf = _convert(keras_model, [_peer_input(fm, s) for s in train.sequences])
    except Exception as exc:  # the converter's errors have no common type
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        out.write_text(json.dumps(row | {"tflite": f"not convertible: {first}"}))
        return
    row |= {"tflite": "int8", "tflite_bytes": len(buf)}
    out.write_text(json.dumps(row | {"stage": "measure"}))  # a crash from here on is not the converter's
    ys, per_step, ops, longest = _run_litert(buf, fm, test)
    _, _, ints = _outputs(fm, m, test)
    pq, _ = _select(test, [golden.dequantize_output(m, y) for y in ints])
    pt, target = _select(test, ys)
    if fm.meta.task == "classification":
        quality = {
            "metric": "accuracy_pct",
            "tflite_int8": 100.0 * float(np.mean(pt.argmax(-1) == target)),
            "agreement_pct": 100.0 * float(np.mean(pt.argmax(-1) == pq.argmax(-1))),
        }
    else:
        quality = {
            "metric": "rmse",
            "tflite_int8": _rmse(pt, np.asarray(target)),
            "rmse_vs_int8": _rmse(pt, pq),
        }
    row |= (
        {"tflite_ops": ops, "tflite_cell_clip": _cell_clip(buf)}
        | quality
        | {"predictions": len(pt)}
        | _tflm_arena(buf, *longest)
    )
    row |= {
        "us_per_step": round(1e6 * float(np.median(per_step)), 2),
        "us_per_step_how": f"LiteRT {_version('ai-edge-litert')} Interpreter, 1 thread, one held-out "
        f"sequence per invoke, median over {len(per_step)} invokes",
    }
    out.write_text(json.dumps(row))


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _zrn(a: np.ndarray) -> np.ndarray:
    """PyTorch's GRU gate blocks r, z, n in Keras's order z, r, n (first axis)."""
    r, z, n = np.split(a, 3)
    return np.concatenate([z, r, n])


def _keras_lstm(keras: Any, hidden: int, sequences: bool, L: FloatLayer) -> tuple[Any, list[np.ndarray]]:
    """Gates i, f, g, o in both frameworks; Keras has one bias."""
    return keras.layers.LSTM(hidden, return_sequences=sequences), [L.w_ih.T, L.w_hh.T, L.b_ih + L.b_hh]


def _keras_rnn(keras: Any, hidden: int, sequences: bool, L: FloatLayer) -> tuple[Any, list[np.ndarray]]:
    """PyTorch's nn.RNN (tanh) is Keras' SimpleRNN; Keras has one bias."""
    layer = keras.layers.SimpleRNN(hidden, return_sequences=sequences, activation="tanh")
    return layer, [L.w_ih.T, L.w_hh.T, L.b_ih + L.b_hh]


def _keras_gru(keras: Any, hidden: int, sequences: bool, L: FloatLayer) -> tuple[Any, list[np.ndarray]]:
    """reset_after: PyTorch's GRU, with the input and the recurrent bias apart; Keras orders z, r, n."""
    layer = keras.layers.GRU(hidden, return_sequences=sequences, reset_after=True)
    return layer, [_zrn(L.w_ih).T, _zrn(L.w_hh).T, np.stack([_zrn(L.b_ih), _zrn(L.b_hh)])]


# The Keras layer of each cell of the registry (contract/cells.py) with its weights in Keras' layout
KERAS_LAYERS: dict[str, Callable[[Any, int, bool, FloatLayer], tuple[Any, list[np.ndarray]]]] = {
    "lstm": _keras_lstm,
    "gru": _keras_gru,
    "rnn": _keras_rnn,
}
if set(KERAS_LAYERS) != set(CELLS):
    raise ImportError(
        f"tflite_peer.py has Keras layers for {sorted(KERAS_LAYERS)}, the registry {sorted(CELLS)}"
    )


def _keras_model(fm: FloatModel) -> Any:
    """The float model in Keras with the same weights: batch 1, any length of (stacked) steps; the head on
    the last step or the window's pooled h (window) or on every step (stream: on the steps as rows, so that
    the converter makes one FULLY_CONNECTED, not a Tensordot of run-time shape ops that TFLite Micro cannot
    allocate)."""
    import tensorflow as tf
    import tf_keras as keras

    pool = {"last": None, "mean": keras.layers.GlobalAveragePooling1D, "max": keras.layers.GlobalMaxPooling1D}
    if fm.readout not in pool:
        raise TinyLSTMError(f"tflite_peer.py has no Keras readout for {fm.readout!r}")
    x = inp = keras.Input(shape=(None, fm.stack * fm.input_size), batch_size=1)
    for n, L in enumerate(fm.layers):
        sequences = n < fm.num_layers - 1 or fm.meta.mode == "stream" or pool[fm.readout] is not None
        layer, weights = KERAS_LAYERS[fm.cell](keras, fm.hidden_size, sequences, L)
        x = layer(x)
        layer.set_weights(weights)
    pooling = pool[fm.readout]
    if pooling is not None:
        x = pooling()(x)
    head = keras.layers.Dense(fm.output_size)
    if fm.meta.mode == "stream":
        y = tf.reshape(head(tf.reshape(x, [-1, fm.hidden_size])), [1, -1, fm.output_size])
    else:
        y = head(x)
    head.set_weights([fm.head_w.T, fm.head_b])
    return keras.Model(inp, y)


def _check_float(keras_model: Any, fm: FloatModel, test: SequenceSet) -> float:
    """Largest |Keras - float_forward| over the first held-out sequences; refuses a mismatch."""
    worst = 0.0
    for seq in test.sequences[:FLOAT_CHECK_SEQUENCES]:
        want = float_forward(fm, normalise(fm, seq)[None])["y"]
        want = want if fm.meta.mode == "stream" else want[:, -1]
        got = keras_model(_peer_input(fm, seq)[None].astype(np.float32)).numpy()
        diff = float(np.max(np.abs(got - want)))
        if diff > FLOAT_TOL * max(1.0, float(np.max(np.abs(want)))):
            raise TinyLSTMError(f"the Keras model differs from float_forward by {diff:.3g}: a conversion bug")
        worst = max(worst, diff)
    return worst


def _convert(keras_model: Any, calibration: list[np.ndarray]) -> bytes:
    """TFLite's standard full-integer recipe, int8 in and out."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s[None].astype(np.float32)] for s in calibration if len(s))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def _peer_input(fm: FloatModel, seq: np.ndarray) -> np.ndarray:
    """A sequence of raw samples [T, C] as the Keras model takes it: normalised, and stacked [T // k, k * C]
    as the kernel stacks it (a trailing part step dropped: contract/stacking.py)."""
    return stack_samples(normalise(fm, seq)[None], fm.stack)[0]


def _run_litert(
    buf: bytes, fm: FloatModel, test: SequenceSet
) -> tuple[list[np.ndarray], list[float], list[str], tuple[int, list[tuple[np.ndarray, np.ndarray]]]]:
    """Per held-out sequence its outputs [T or 1, O] in real units, seconds per step of each invoke, the
    model's ops, and the longest length with the (int8 input, int8 output) of each sequence that long."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=buf, num_threads=1)
    ops = sorted({op["op_name"] for op in it._get_ops_details()})  # before the default delegate takes some
    inp, outp = it.get_input_details()[0], it.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], outp["quantization"]
    meta = fm.meta
    ys: list[np.ndarray] = [np.empty(0)] * len(test)
    per_step: list[float] = []
    for steps, idx in by_length(test.sequences).items():
        it.resize_tensor_input(inp["index"], [1, steps // fm.stack, fm.stack * fm.input_size])
        it.allocate_tensors()
        pairs = []
        for k in idx:
            q = np.round(_peer_input(fm, test.sequences[k]) / in_scale) + in_zero
            xq = np.clip(q, -128, 127).astype(np.int8)[None]
            it.set_tensor(inp["index"], xq)
            it.reset_all_variables()  # the fused LSTM keeps its state in variables, across invokes
            started = time.perf_counter()
            it.invoke()
            per_step.append((time.perf_counter() - started) / steps)
            yq = it.get_tensor(outp["index"])
            y = (yq[0].astype(np.float64) - out_zero) * out_scale
            if meta.task == "regression" and meta.target_mean is not None and meta.target_std is not None:
                y = y * np.asarray(meta.target_std) + np.asarray(meta.target_mean)
            ys[k] = y.reshape(-1, fm.output_size)
            pairs.append((xq, yq))
    # by_length is sorted: the last group is the longest; its length in the model's (stacked) steps
    return ys, per_step, ops, (steps // fm.stack, pairs)


def _tflm_arena(buf: bytes, steps: int, pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """The TFLite Micro arena the model uses at ``steps`` steps (its recording allocator's total), and the
    largest difference of its int8 outputs from LiteRT's on the (input, output) ``pairs``."""
    if importlib.util.find_spec("tflite_micro") is None:
        return {"tflm_arena_bytes": "not measured: tflite-micro is not installed"}
    from tflite_micro import runtime

    worst = 0
    try:
        it = runtime.Interpreter.from_bytes(_fixed_steps(buf, steps), arena_size=ARENA_LIMIT)
        for xq, yq in pairs:
            it.reset()  # zero the LSTM state variables
            it.set_input(xq, 0)
            it.invoke()
            worst = max(worst, int(np.max(np.abs(it.get_output(0).astype(np.int32) - yq))))
    except RuntimeError as exc:  # what the TFLite Micro interpreter raises for a model it cannot run
        return {"tflm_arena_bytes": f"not measured: {(str(exc).strip().splitlines() or ['RuntimeError'])[0]}"}
    with tempfile.TemporaryFile() as log:  # the allocator prints to the C stderr
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        found = re.search(rb"Arena allocation total (\d+) bytes", log.read())
    return {
        "tflm_arena_bytes": int(found.group(1)) if found else "not measured: no allocation record",
        "tflm_arena_steps": steps,
        "tflm_vs_litert_max_lsb": worst,
        "tflm_sequences": len(pairs),
    }


def _flatbuffer(buf: bytes) -> Any:
    from tensorflow.lite.python import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))


def _cell_clip(buf: bytes) -> float | None:
    """The cell-state clip the converter wrote into its fused LSTM ops (None: there are none)."""
    from tensorflow.lite.python import schema_py_generated as schema

    options = [op.builtinOptions for graph in _flatbuffer(buf).subgraphs for op in graph.operators]
    return max(
        (o.cellClip for o in options if isinstance(o, schema.UnidirectionalSequenceLSTMOptionsT)),
        default=None,
    )


def _fixed_steps(buf: bytes, steps: int) -> bytes:
    """The model with its any-length dimension fixed to ``steps`` (TFLite Micro has no resizing)."""
    import flatbuffers

    model = _flatbuffer(buf)
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            if tensor.shapeSignature is not None and -1 in tensor.shapeSignature:
                signature = np.asarray(tensor.shapeSignature)
                tensor.shape = np.where(signature == -1, steps, signature).astype(np.int32)
                tensor.shapeSignature = None
    builder = flatbuffers.Builder(2 * len(buf))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("export_dir", type=Path)
    ap.add_argument("--measure", type=Path, metavar="OUT", help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    if args.measure:
        _measure(args.export_dir, args.measure)
    else:
        print(json.dumps(tflite_row(args.export_dir), indent=1))


if __name__ == "__main__":
    main()
