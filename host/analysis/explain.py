"""`tinylstm explain`: what the model looked at and when it decided, in float and in int8.

For an export and its held-out data (the recorded test split, or ``--data``) it picks examples: for a
window classifier the held-out window of each class that the float model is surest of; otherwise the
first held-out sequences. For each it records, over time, every layer's gate activations (LSTM i, f,
g, o; GRU r, z, n) and hidden state (a bidirectional model's backward layers after the forward ones, each
backward step at the samples it read) from the float model (codegen/spec.py ``float_forward``) and from
the integer golden reference (codegen/golden.py, the kernel's own Q0.15 gates and its Q0.7 or Q0.15
h), and the outputs of both; the step from which each keeps its final decision (not before the first
step whose output reads the input: a stacked model's k-th sample, a bidirectional model's last); and where
int8 departs from float (the largest gate and hidden-state differences and the steps where the two
predictions differ).
Writes ``explain.json`` and one PNG of heatmaps per example (float | int8 | |int8 - float|).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from tinylstm.codegen import golden
from tinylstm.codegen.drift_reference import softmax
from tinylstm.codegen.export import data_splits, export_origin, require_held_out
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.spec import FloatModel, by_length, float_forward, normalise
from tinylstm.codegen.store import load_int_model
from tinylstm.contract.cells import cell_type
from tinylstm.contract.constants import Q15
from tinylstm.contract.stacking import hold
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.sequence_set import SequenceSet

MAX_STEPS = 500  # steps of a stream shown per example (a window is always shown whole)


@dataclass
class Example:
    title: str  # file-name safe
    sequence: int  # index in the held-out set
    label: str | None


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


def pick_examples(fm: FloatModel, test: SequenceSet, sequences: int) -> list[Example]:
    """Window classifiers: per class, the held-out window of that class the float model is surest of.
    Anything else: the first ``sequences`` held-out sequences."""
    if fm.meta.task == "classification" and test.mode == "window" and test.classes:
        labels = np.asarray(test.labels)
        answers = _window_answers(fm, test.sequences)
        out = []
        for k, name in enumerate(test.classes):
            idx = np.flatnonzero(labels == k)
            if not len(idx):
                continue
            best = int(idx[int(np.argmax([softmax(answers[i])[k] for i in idx]))])
            out.append(Example(f"class-{_safe(name)}", best, name))
        return out
    return [Example(f"sequence-{k}", k, None) for k in range(min(sequences, len(test)))]


# samples per float_forward batch of pick_examples: bounds the h it keeps per layer (64 MB for 32 units)
_BATCH_SAMPLES = 1 << 18


def _window_answers(fm: FloatModel, sequences: list[np.ndarray]) -> list[np.ndarray]:
    """The float model's output at every sequence's last sample: sequences of one length run batched."""
    answers: list[np.ndarray] = [np.empty(0)] * len(sequences)
    for length, idx in by_length(sequences).items():
        per_batch = max(1, _BATCH_SAMPLES // max(length, 1))
        for at in range(0, len(idx), per_batch):
            part = idx[at : at + per_batch]
            x = np.stack([normalise(fm, sequences[i]) for i in part])
            for i, y in zip(part, float_forward(fm, x, keep=())["y"][:, -1], strict=True):
                answers[i] = y
    return answers


def first_answer(m: IntModel, steps: int) -> int:
    """The first step whose output reads the input: before it the output is the head's bias alone (a stacked
    model's first k - 1 samples; a bidirectional model's window up to its last sample)."""
    return min(steps - 1 if m.bidirectional else m.stack - 1, steps - 1)


def _decision_step(pred: np.ndarray, first: int) -> int:
    """The first step from which the prediction stays the final one, not before ``first`` (first_answer)."""
    changed = np.flatnonzero(pred != pred[-1])
    return max(first, int(changed[-1] + 1) if len(changed) else 0)


def layer_key(n: int, layers: int) -> str:
    """Traced layer ``n``'s name: ``layer0``, ..., then a bidirectional model's ``backward_layer0``, ..."""
    return f"layer{n}" if n < layers else f"backward_layer{n - layers}"


def _in_time_order(backward: np.ndarray, stack: int) -> np.ndarray:
    """A float backward layer's per-sample trace [B, T, ...] (spec.float_forward: in the order the backward
    steps run, held per sample) with each step's at the samples of the step it read, as golden's
    ``backward_gates``/``backward_h`` hold them."""
    return hold(backward[:, stack - 1 :: stack][:, ::-1], backward.shape[1], stack)


def _float_layers(fm: FloatModel, fo: dict[str, np.ndarray], key: str) -> np.ndarray:
    """Trace ``key`` of every float layer, the backward ones after the forward ones: [T, L (+ L), ...]."""
    L = fm.num_layers
    forward = [fo[f"{key}{n}"][0] for n in range(L)]
    backward = [_in_time_order(fo[f"{key}{L + n}"], fm.stack)[0] for n in range(len(fm.backward))]
    return np.stack(forward + backward, axis=1)


def _int_layers(tr: dict[str, np.ndarray], key: str) -> np.ndarray:
    """Golden trace ``key`` of every layer, the backward ones after the forward ones: [T, L (+ L), ...]."""
    backward = tr.get(f"backward_{key}")
    return tr[key][0] if backward is None else np.concatenate([tr[key][0], backward[0]], axis=1)


def trace_example(fm: FloatModel, m: IntModel, raw: np.ndarray) -> dict[str, Any]:
    """Float and integer traces of one raw sequence [T, C]."""
    fo = float_forward(fm, normalise(fm, raw)[None])
    xq = golden.quantize_input(m, raw)
    y_q, _, tr = golden.run(m, xq[None], trace=True)
    return {
        "layers": m.num_layers,  # the forward ones; a bidirectional model's backward ones follow them
        "float_gates": _float_layers(fm, fo, "gates"),  # [T, L, G, H]
        "float_h": _float_layers(fm, fo, "h"),  # [T, L, H]
        "float_y": fo["y"][0],
        "int_gates": _int_layers(tr, "gates"),  # Q0.15 [T, L, G, H]
        "int_h": _int_layers(tr, "h"),  # Q0.7 (int8 h) or Q0.15 (int16 h) [T, L, H]
        "h_frac": m.layers[0].hidden_frac,
        "int_y": y_q[0],  # int16 [T, O]
    }


def _outputs(fm: FloatModel, m: IntModel, t: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per-step outputs as the user reads them: class probabilities, or regression values."""
    y_int = golden.dequantize_output(m, t["int_y"])
    if fm.meta.task == "classification":
        return softmax(t["float_y"]), softmax(y_int)
    y_f = t["float_y"]
    if fm.meta.target_std is not None and fm.meta.target_mean is not None:
        y_f = y_f * np.asarray(fm.meta.target_std) + np.asarray(fm.meta.target_mean)
    return y_f, y_int


def _departure(fm: FloatModel, t: dict[str, Any], out_f: np.ndarray, out_q: np.ndarray) -> dict[str, Any]:
    names = cell_type(fm.cell).gate_names
    gate_diff = np.abs(t["int_gates"] / 2.0**Q15 - t["float_gates"])  # [T, L, G, H]
    h_diff = np.abs(t["int_h"] / 2.0 ** t["h_frac"] - t["float_h"])
    per_gate = {}
    for n in range(gate_diff.shape[1]):
        for g, name in enumerate(names):
            d = gate_diff[:, n, g]
            per_gate[f"{layer_key(n, t['layers'])}.{name}"] = {
                "mean_abs": round(float(d.mean()), 6),
                "max_abs": round(float(d.max()), 6),
                "step_of_max": int(np.unravel_index(np.argmax(d), d.shape)[0]),
            }
    out: dict[str, Any] = {
        "gates": per_gate,
        "hidden": {"mean_abs": round(float(h_diff.mean()), 6), "max_abs": round(float(h_diff.max()), 6)},
    }
    if fm.meta.task == "classification":
        differ = np.flatnonzero(out_f.argmax(-1) != out_q.argmax(-1))
        out["steps_where_predictions_differ"] = len(differ)
        out["first_step_where_predictions_differ"] = int(differ[0]) if len(differ) else None
    else:
        out["max_abs_output_difference"] = round(float(np.max(np.abs(out_f - out_q))), 6)
    return out


def scaled_titles(integer: str) -> tuple[str, str, str]:
    """The three heatmap columns' titles, with what the integer model is called (IntModel.label)."""
    scaled = f"{integer}, golden = C kernel (-1 blue .. 1 red)"
    return "float (-1 blue .. 1 red)", scaled, f"|{integer} - float|"


def _stacked(blocks: list[np.ndarray]) -> np.ndarray:
    """Heatmap blocks [T, units] as one image [rows, T]: each block's units as rows, block after block."""
    return np.concatenate([np.asarray(b, dtype=np.float64).T for b in blocks], axis=0)


def _plot(
    fm: FloatModel,
    t: dict[str, Any],
    out_f: np.ndarray,
    out_q: np.ndarray,
    title: str,
    path: Path,
    integer: str,
) -> None:
    """One PNG: three columns (float, integer, their difference), each one image of every layer's gates and
    h stacked (one Axes per column: a figure of an Axes per gate spent most of explain's time drawing), and
    the outputs over time below."""
    names = cell_type(fm.cell).gate_names
    rows = [(n, g) for n in range(t["float_gates"].shape[1]) for g in [*range(len(names)), None]]  # None: h
    floats, ints, labels = [], [], []
    for n, g in rows:
        layer = layer_key(n, t["layers"])
        if g is None:
            floats.append(t["float_h"][:, n])
            ints.append(t["int_h"][:, n] / 2.0 ** t["h_frac"])
            labels.append(f"{layer} h")
        else:
            floats.append(t["float_gates"][:, n, g])
            ints.append(t["int_gates"][:, n, g] / 2.0**Q15)
            labels.append(f"{layer} {names[g]}")
    units = floats[0].shape[1]
    centres = [k * units + (units - 1) / 2 for k in range(len(rows))]
    maps_h = 1.6 * len(rows)  # inches of heatmaps: as tall as one Axes per block was
    height = maps_h + 1.6 + 1.4
    fig, axes = plt.subplots(
        2, 3, figsize=(15, height), squeeze=False, gridspec_kw={"height_ratios": [maps_h, 1.6]}
    )
    fl, iq = _stacked(floats), _stacked(ints)
    columns = ((fl, "RdBu_r", -1, 1), (iq, "RdBu_r", -1, 1), (np.abs(iq - fl), "magma", 0, None))
    for c, (data, cmap, lo, hi) in enumerate(columns):
        ax = axes[0, c]
        im = ax.imshow(data, aspect="auto", cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_yticks(centres, labels if c == 0 else [""] * len(rows))
        ax.set_xticks([])
        for k in range(1, len(rows)):  # the borders between blocks, in a colour the map does not reach
            ax.axhline(k * units - 0.5, color="white" if c == 2 else "black", linewidth=2)
        ax.set_title(scaled_titles(integer)[c])
        if c == 2:  # float and the integer model share one scale, named in their titles
            fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    kind = "probability" if fm.meta.task == "classification" else "output"
    for c, (data, name) in enumerate(((out_f, "float"), (out_q, integer))):
        ax = axes[1, c]
        ax.plot(data, label=fm.meta.classes or None)
        if fm.meta.classes and c == 0:
            ax.legend(fontsize=6, ncol=2)
        ax.set_xlabel("step")
        ax.set_ylabel(f"{name} {kind}")
        ax.grid(alpha=0.3)
    axes[1, 2].plot(np.abs(out_q - out_f))
    axes[1, 2].set_xlabel("step")
    axes[1, 2].set_ylabel(f"|{integer} - float| {kind}")
    fig.suptitle(title, y=1 - 0.2 / height)
    # fixed margins in inches (the title and column titles above, the step axis below): tight_layout
    # measures every Axes by drawing the figure once more
    fig.subplots_adjust(
        left=0.08,
        right=0.96,
        bottom=0.55 / height,
        top=1 - 0.75 / height,
        hspace=0.8 / ((maps_h + 1.6) / 2),
        wspace=0.22,
    )
    fig.savefig(path, dpi=80)
    plt.close(fig)


def explain(
    export_dir: Path,
    data: str | None = None,
    out_dir: Path | None = None,
    sequences: int = 1,
    max_steps: int = MAX_STEPS,
    test_data: str | None = None,
) -> dict[str, Any]:
    """Trace the examples of ``export_dir``'s held-out data (``data``, ``test_data``: its data files at
    another path); writes explain.json and the PNGs into
    ``out_dir`` (default: ``export_dir``/explain) and returns the JSON document."""
    if not export_dir.is_dir():
        raise TinyLSTMError(
            f"{export_dir} is not an export directory: pass the directory `tinylstm export` wrote"
        )
    for option, value in (("--sequences", sequences), ("--max-steps", max_steps)):
        if value < 1:
            raise TinyLSTMError(f"{option} {value}: give a number >= 1")
    m, doc = load_int_model(export_dir)
    origin = export_origin(export_dir, doc, data, test_data)
    fm = origin.loaded.float_model
    test = require_held_out(data_splits(origin.loaded, origin.data, origin.test_data)[1], export_dir)
    out = out_dir or export_dir / "explain"
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("explain-*.png"):  # an earlier explain's (perhaps of another model): not this one's
        old.unlink()
    classes = fm.meta.classes
    report: dict[str, Any] = {
        "model": {
            "hash": doc.get("hash"),
            "cell": m.cell,
            "layers": m.num_layers,
            "hidden": m.hidden_size,
            "bidirectional": m.bidirectional,
        },
        # the traced layers, in the order of the gates and h arrays below (a bidirectional model's backward
        # layers follow the forward ones, each backward step at the samples it read)
        "layer_names": [layer_key(n, m.num_layers) for n in range(m.num_layers + len(m.backward))],
        "out_dir": str(out),  # where explain.json and the PNGs are
        "integer": m.label,  # what the texts call the integer model; the keys below stay "int8"
        "task": fm.meta.task,
        "gate_names": list(cell_type(m.cell).gate_names),
        "scales": {
            "gates": f"Q0.{Q15} (int / 2^{Q15})",
            "hidden": f"{m.hidden_format} (int / 2^{m.layers[0].hidden_frac})",
        },
        "examples": [],
    }
    for ex in pick_examples(fm, test, sequences):
        raw = test.sequences[ex.sequence]
        shown = raw if test.mode == "window" else raw[:max_steps]
        t = trace_example(fm, m, shown)
        out_f, out_q = _outputs(fm, m, t)
        png = out / f"explain-{ex.title}.png"
        title = f"{m.cell.upper()} {doc.get('hash')}: {ex.title} (held-out sequence {ex.sequence}, "
        title += f"{len(shown)} steps)"
        _plot(fm, t, out_f, out_q, title, png, m.label)
        entry: dict[str, Any] = {
            "title": ex.title,
            "sequence": ex.sequence,
            "label": ex.label,
            "steps": len(shown),
            "png": png.name,
            "float": {
                "gates": np.round(t["float_gates"], 5).transpose(1, 2, 3, 0).tolist(),  # [L][G][H][T]
                "h": np.round(t["float_h"], 5).transpose(1, 2, 0).tolist(),  # [L][H][T]
                "output": np.round(out_f, 6).tolist(),  # [T][O]
            },
            "int8": {
                "gates_q15": t["int_gates"].transpose(1, 2, 3, 0).tolist(),
                f"h_q{t['h_frac']}": t["int_h"].transpose(1, 2, 0).tolist(),
                "output_q": t["int_y"].tolist(),
                "output": np.round(out_q, 6).tolist(),
            },
            "departure": _departure(fm, t, out_f, out_q),
        }
        if fm.meta.task == "classification":
            pf, pq = out_f.argmax(-1), out_q.argmax(-1)
            entry["prediction"] = {
                "float": classes[int(pf[-1])] if classes else int(pf[-1]),
                "int8": classes[int(pq[-1])] if classes else int(pq[-1]),
            }
            first = first_answer(m, len(shown))
            entry["decision_step"] = {"float": _decision_step(pf, first), "int8": _decision_step(pq, first)}
        report["examples"].append(entry)
    (out / "explain.json").write_text(json.dumps(report) + "\n")
    return report
