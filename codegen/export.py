"""The export pipeline: float model + real data -> calibrated integer model -> C files + report."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.blob import to_blob
from tinylstm.codegen.drift_reference import HELD_OUT, TRAINING, reference
from tinylstm.codegen.emit_c import (
    LAYOUTS,
    EmittedC,
    Layout,
    check_format,
    check_name,
    emit_c,
    model_data_bytes,
)
from tinylstm.codegen.input_range import (
    AUTO_INPUT_BITS,
    INPUT16_TOLERANCE,
    auto_input_model,
    calibrated_model,
)
from tinylstm.codegen.quantize import IntModel, check_input_bits
from tinylstm.codegen.source import LoadedModel, load_model
from tinylstm.codegen.spec import FloatModel, normalise
from tinylstm.codegen.store import (
    FLOAT_NPZ,
    JSON,
    NPZ,
    load_float_model,
    save_float_model,
    save_int_model,
    sha256_file,
)
from tinylstm.contract.constants import HIDDEN_BITS, INPUT16_BITS, INPUT_BITS
from tinylstm.contract.constants import input_bits as own_input_bits
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.checkpoint import CHECKPOINT_NAME, CheckpointMeta, load_splits_from_meta, qat_formats
from tinylstm.trainer.data import load_dataset, load_test_set, split
from tinylstm.trainer.outputs import check_output_file
from tinylstm.trainer.sequence_set import SequenceSet

SPLIT_SEED = 0  # user models: the split of --data into calibration and held-out parts


@dataclass
class ModelSource:
    """How to get the float model and its data back (stored in the export directory)."""

    model: str
    data: str | None = None
    description: str | None = None
    trust_module: bool = False
    test_data: str | None = None  # the held-out file: a checkpoint's recorded one moved, or a user model's

    def resolved(self) -> ModelSource:
        """The same source with file paths made absolute (data may also be a dataset name)."""

        def absolute(p: str | None) -> str | None:
            return str(Path(p).resolve()) if p and Path(p).exists() else p

        return ModelSource(
            str(Path(self.model).resolve()),
            absolute(self.data),
            absolute(self.description),
            self.trust_module,
            absolute(self.test_data),
        )

    def load(self) -> LoadedModel:
        return load_model(self.model, self.description, self.trust_module)


def data_files(loaded: LoadedModel, data: str | None, test_data: str | None = None) -> list[Path]:
    """The files the calibration and held-out data are read from (none for a built-in dataset)."""
    specs: list[str | None] = [data, test_data]
    if loaded.checkpoint is not None:
        specs = [data or loaded.checkpoint.dataset.spec, test_data or loaded.checkpoint.dataset.test_spec]
    return [Path(s).resolve() for s in specs if s and Path(s).is_file()]


def data_splits(
    loaded: LoadedModel, data: str | None, test_data: str | None = None
) -> tuple[SequenceSet, SequenceSet]:
    """(calibration, held-out) sets: the recorded train/test split for our checkpoints (``data`` and
    ``test_data``: their files, moved); for a user model, a seeded 70/30 split of ``data``, or all of
    ``data`` and the held-out file ``test_data``."""
    if loaded.checkpoint is not None:
        train, _, test = load_splits_from_meta(loaded.checkpoint, data, test_data)
    else:
        if not data:
            raise TinyLSTMError(
                "a user model needs real data for calibration: pass --data PATH (.ts, .csv or .npz)"
            )
        ds = load_dataset(data)
        _check_user_data(ds, loaded.float_model, data)
        if test_data:
            train, test = ds, load_test_set(test_data, ds)
            _check_user_data(test, loaded.float_model, test_data)
        else:
            train, _, test = split(ds, val=0.0, test=0.3, seed=SPLIT_SEED)
    fm = loaded.float_model
    if train.num_channels != fm.input_size:
        raise TinyLSTMError(
            f"the data has {train.num_channels} channels but the model takes {fm.input_size}: "
            "pass the data the model was trained on"
        )
    return train, test


# what commands write into an export directory about its model, which an export over it makes stale
REPORTS = ("check-report.json", "parity-report.json")


def listed_files(export_dir: Path) -> list[str]:
    """The files an export's export-report.json lists (none where it is missing or unreadable)."""
    report = export_dir / "export-report.json"
    try:
        files = json.loads(report.read_text()).get("files", []) if report.is_file() else []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        files = []
    return [f for f in files if isinstance(f, str)]


def report_file(export_dir: Path, given: str | Path | None, default: str, flag: str) -> Path:
    """Where a command writes its report on ``export_dir`` (``given``, else EXPORT_DIR/``default``), checked
    writable and refused when it is one of the export's own files (a report over int_model.json or tl_model.c
    destroyed the export); an earlier report there is removed, so a run refused on the way leaves no stale
    verdict behind."""
    out = check_output_file(Path(given) if given else export_dir / default, flag)
    own = [*listed_files(export_dir), NPZ, JSON, "export-report.json"]
    if out.resolve() in {(export_dir / f).resolve() for f in own}:
        raise TinyLSTMError(f"{flag} {out} is one of the export's own files; give another file name")
    out.unlink(missing_ok=True)
    return out


def remove_stale_outputs(out_dir: Path) -> None:
    """Before an export into ``out_dir``: remove the reports an earlier export's model got there, and the C
    files of an earlier export under another ``--name`` (build read its stale tl_model.h). Directories
    (explain/, firmware-BOARD/) are left: they may hold the user's edits; explain and build rewrite them."""
    for report in REPORTS:
        (out_dir / report).unlink(missing_ok=True)
    for f in listed_files(out_dir):
        if f.startswith("tl_") and f.endswith((".c", ".h")) and "/" not in f:
            (out_dir / f).unlink(missing_ok=True)


def require_held_out(test: SequenceSet, export_dir: Path) -> SequenceSet:
    """``test``, refused in one line when empty: a model trained without a test split has nothing held out."""
    if not len(test):
        raise TinyLSTMError(
            f"the model of {export_dir} has no held-out data (trained with --test 0 or as a search's refit, "
            "or too few sequences for a test split): train it with a test split (--test 0.15) or a held-out "
            "file (--test-data F); a refit's estimate is its trial's score (search.json)"
        )
    return test


def _check_user_data(ds: SequenceSet, fm: FloatModel, data: str) -> None:
    """Refuse data of another task or mode than the user model's description says, or with more classes or
    other target columns than the model has outputs: its held-out scores would compare unlike things."""
    meta = fm.meta
    differ = [
        f"{what} {got!r} (the model's: {want!r})"
        for what, got, want in (("task", ds.task, meta.task), ("mode", ds.mode, meta.mode))
        if got != want
    ]
    if not differ and (
        ds.output_size > fm.output_size if ds.task == "classification" else ds.output_size != fm.output_size
    ):
        differ.append(
            f"{ds.output_size} {'classes' if ds.task == 'classification' else 'targets'} (the model's "
            f"outputs: {fm.output_size})"
        )
    if differ:
        raise TinyLSTMError(
            f"{data} is not the kind of data the description says the model takes: {'; '.join(differ)}; pass "
            'the data it was trained on, or fix "task"/"mode" in the description (docs/user-models.md)'
        )


def calibration_sequences(fm: FloatModel, train: SequenceSet) -> list[np.ndarray]:
    """Normalised calibration streams. Stream-mode models also see the training sequences
    joined end to end, so the cell-state range covers streams longer than any one recording."""
    seqs = [normalise(fm, s) for s in train.sequences]
    if fm.meta.mode == "stream" and len(seqs) > 1:
        seqs.append(np.concatenate(seqs)[:20_000])
    return seqs


def check_options(
    source: ModelSource, name: str, layout: str, hidden_bits: int, input_bits: int | str | None = None
) -> None:
    """Refuse a model path that is a directory, a bad C name, weight layout, hidden state or input before
    anything is loaded or written."""
    if Path(source.model).is_dir():
        raise TinyLSTMError(
            f"{source.model} is a directory, not a model file: give the checkpoint in it (e.g. "
            f"{Path(source.model) / CHECKPOINT_NAME})"
        )
    check_name(name)
    if layout not in LAYOUTS:
        raise TinyLSTMError(f"weight layout {layout!r} must be one of {list(LAYOUTS)}")
    check_format(layout, hidden_bits)
    if input_bits not in (None, INPUT_BITS, INPUT16_BITS, AUTO_INPUT_BITS):
        raise TinyLSTMError(
            f"an input of {input_bits!r} bits: choose --input-bits 8, 16 or {AUTO_INPUT_BITS}"
        )
    check_input_bits(hidden_bits, None if isinstance(input_bits, str) else input_bits)


@dataclass
class ExportResult:
    model: IntModel
    files: EmittedC
    report: dict


def qat_mismatch(fine_tuned_for: tuple[int, int] | None, m: IntModel) -> str | None:
    """What to do where ``m`` is exported with another hidden state or input than a quantization-aware
    model was ``fine_tuned_for`` (trainer/checkpoint.py ``qat_formats``); None where it is not."""
    if fine_tuned_for is None or fine_tuned_for == (m.hidden_bits, m.input_bits):
        return None
    bits, in_bits = fine_tuned_for
    return (
        f"the model was fine-tuned for an int{bits} hidden state and an int{in_bits} input but exported with "
        f"int{m.hidden_bits} and int{m.input_bits}: export with --hidden-bits {bits} --input-bits {in_bits}, "
        f"or train with --qat-hidden-bits {m.hidden_bits} --qat-input-bits {m.input_bits}"
    )


def given_input_bits(
    fine_tuned_for: tuple[int, int] | None, hidden_bits: int, input_bits: int | str | None
) -> tuple[int | None, str]:
    """What ``--input-bits`` leaves to ``auto_input_model`` (None) or settles: (the bits, why). ``auto``
    settles an int16-h model's input (int16) and a quantization-aware model's (what it was fine-tuned for,
    ``fine_tuned_for`` with the same hidden state)."""
    if not isinstance(input_bits, str):
        bits = check_input_bits(hidden_bits, input_bits)
        return bits, f"int{bits}: " + ("--input-bits" if input_bits is not None else "the hidden state's own")
    if hidden_bits != HIDDEN_BITS:
        return own_input_bits(hidden_bits), f"int{own_input_bits(hidden_bits)}: an int16-h model's input"
    if fine_tuned_for is not None and fine_tuned_for[0] == hidden_bits:
        return fine_tuned_for[1], f"int{fine_tuned_for[1]}: what the model was fine-tuned for (--qat)"
    return None, ""


def export(
    source: ModelSource,
    out_dir: Path,
    name: str = "model",
    layout: Layout = "w8",
    hidden_bits: int = HIDDEN_BITS,
    input_bits: int | str | None = AUTO_INPUT_BITS,
) -> ExportResult:
    """Calibrate ``source`` on its training split, quantize it with an int8 (``hidden_bits`` 8) or int16 (16)
    hidden state and an input of ``input_bits`` (8, or 16 with an int8 h: an int16 input; None: the hidden
    state's own; ``auto``: ``auto_input_model`` for an int8 h) and write the C files, the blob, the integer
    model and the report into ``out_dir``."""
    check_options(source, name, layout, hidden_bits, input_bits)
    auto = input_bits == AUTO_INPUT_BITS
    loaded = source.load()
    fm = loaded.float_model
    train, test = data_splits(loaded, source.data, source.test_data)
    sequences = calibration_sequences(fm, train)
    bits, reason = given_input_bits(qat_formats(loaded.checkpoint), hidden_bits, input_bits)
    choice: dict[str, object] = {"rule": "auto" if auto else "given"}
    if auto and bits is None:
        m, cal, measured, chosen = auto_input_model(fm, sequences)
        choice.update(chosen._asdict(), tolerance=INPUT16_TOLERANCE)
    else:
        m, cal, measured = calibrated_model(fm, sequences, hidden_bits, bits)
        choice.update(input_bits=m.input_bits, reason=reason)
    # the drift reference: of the held-out data, or of the training split where none is (trained --test 0)
    reference_data, reference_split = (HELD_OUT, test) if len(test) else (TRAINING, train)
    reference_inputs = [golden.quantize_input(m, np.asarray(s)) for s in reference_split.sequences]
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_outputs(out_dir)
    files = emit_c(m, out_dir, name, layout)
    report = {
        "name": name,
        "hash": f"0x{m.model_hash:08x}",
        "layout": layout,
        "hidden_bits": m.hidden_bits,
        "input_bits": m.input_bits,
        # why the input has its width: --input-bits auto's measurement (codegen/input_range.py), or as given
        "input_choice": choice,
        "readout": m.readout,
        "stack": m.stack,
        "bidirectional": m.bidirectional,
        "hidden_format": m.hidden_format,
        "cell": m.cell,
        "layers": m.num_layers,
        "input_size": m.input_size,
        "hidden_size": m.hidden_size,
        "output_size": m.output_size,
        "task": fm.meta.task,
        "mode": fm.meta.mode,
        "window": fm.meta.window,
        "classes": fm.meta.classes,
        "model_data_bytes": model_data_bytes(m, layout),
        "state_bytes": 2 * m.state_words,
        "calibration": {
            "steps": cal.steps,
            "input_absmax": cal.input_absmax,
            # the 99.99th percentile of |input| and the largest |input|; input_absmax is the range of
            # RANGE_FACTORS x the percentile whose integer model is closest to the float model (int8 input),
            # or the largest (an int16 input; codegen/input_range.py)
            "input_percentile_absmax": measured.input_absmax,
            # an asymmetric range's zero point per channel, in input LSBs (empty: symmetric); folded into
            # the model's input_mean and first layer's bias (codegen/quantize.py)
            "input_zero": cal.input_zero,
            "input_max": measured.input_max,
            "cell_absmax": cal.cell_absmax,
            "output_absmax": cal.output_absmax,
            "sequences": cal.sequences,  # read, of the training split's (and a stream model's joined stream)
            "training_sequences": len(train),
        },
        "cell_frac": [L.cell_frac for L in m.layers + m.backward],
        "input_scale": m.input_scale,
        "output_scale": m.output_scale,
        "files": [files.header.name, files.source.name, "model.tlm", FLOAT_NPZ],
        "drift_reference": reference(m, reference_inputs, reference_data),
        # what a user should know before building it: a quantization-aware model exported in another format
        "warnings": [w for w in [qat_mismatch(qat_formats(loaded.checkpoint), m)] if w],
    }
    model_file = Path(source.model).resolve()
    pins = {
        "source": source.resolved().__dict__,
        "name": name,
        "float_model": {
            "file": FLOAT_NPZ,
            "sha256": save_float_model(fm, out_dir),
            "from": str(model_file),
            "from_sha256": sha256_file(model_file),
        },
        "checkpoint": loaded.checkpoint.to_dict() if loaded.checkpoint is not None else None,
        "data_files": [
            {"path": str(f), "sha256": sha256_file(f)}
            for f in data_files(loaded, source.data, source.test_data)
        ],
    }
    save_int_model(m, out_dir, pins)
    (out_dir / "model.tlm").write_bytes(to_blob(m))
    (out_dir / "export-report.json").write_text(json.dumps(report, indent=2))
    return ExportResult(m, files, report)


@dataclass
class ExportOrigin:
    """What an export was made from, read back from the export directory alone."""

    loaded: LoadedModel  # the pinned float model, with the checkpoint metadata (dataset and split) if any
    data: str | None  # the data spec to rebuild the held-out split from (None: the checkpoint's own)
    model_file_status: str  # the original model file now: "unchanged", "changed since export" or "gone"
    test_data: str | None = None  # the held-out file (None: the checkpoint's own, or a split of ``data``)


def export_origin(
    export_dir: Path, doc: dict, data: str | None = None, test_data: str | None = None
) -> ExportOrigin:
    """The float model and data an export was made from, verified against their recorded SHA-256.

    ``data`` overrides the recorded data (a moved file, or a deliberate other held-out set), ``test_data``
    the recorded held-out file; a recorded file that is not overridden and changed since the export is
    refused, so numbers are never about other data.
    """
    fm = load_float_model(export_dir, doc)
    checkpoint = (
        CheckpointMeta.from_dict(doc["checkpoint"], str(export_dir)) if doc.get("checkpoint") else None
    )
    loaded = LoadedModel(fm, checkpoint, export_dir / FLOAT_NPZ)
    source = doc.get("source", {})
    held_out = source.get("test_data") or (checkpoint.dataset.test_spec if checkpoint else None)
    for pin in doc.get("data_files", []):
        f = Path(pin["path"])
        option, what = ("--test-data", "held-out file") if str(f) == held_out else ("--data", "data")
        if (test_data if option == "--test-data" else data) is not None:
            continue  # replaced: the checkpoint's own pins judge a checkpoint's moved file
        if not f.is_file():
            raise TinyLSTMError(
                f"the {what} {f} this export was made from is gone: pass {option} NEW_PATH (the same "
                "file, moved) to rebuild its held-out data"
            )
        if sha256_file(f) != pin["sha256"]:
            fix = (  # a checkpoint pins its data too: the changed file is no longer the model's
                "restore it, or train again on the changed file"
                if checkpoint is not None
                else f"export again, or pass {option} {f} to evaluate on the changed file anyway"
            )
            raise TinyLSTMError(f"the {what} {f} changed since the export (SHA-256 differs): {fix}")
    data = source.get("data") if data is None else data
    test_data = source.get("test_data") if test_data is None else test_data
    origin = Path(doc["float_model"]["from"])
    status = (
        "gone"
        if not origin.is_file()
        else "unchanged"
        if sha256_file(origin) == doc["float_model"]["from_sha256"]
        else "changed since export"
    )
    return ExportOrigin(loaded, data, status, test_data)
