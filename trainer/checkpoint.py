"""One-file checkpoints: a plain dict saved with torch.save, loadable with ``weights_only=True``.

Keys: format, version, cell, input_size, hidden_size, num_layers, output_size, task, mode, window,
classes, channels, norm, target_norm, dataset {spec, options, seed, val, test, test_spec, sha256}, state_dict,
metrics.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from tinylstm.contract.constants import HIDDEN_BITS, input_bits
from tinylstm.errors import TinyLSTMError
from tinylstm.trainer.data import load_dataset, load_test_set, split
from tinylstm.trainer.models import TinyRNN
from tinylstm.trainer.outputs import sha256_file
from tinylstm.trainer.sequence_set import SequenceSet

FORMAT = "tinylstm-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "model.pt"


@dataclass
class DatasetRef:
    """How to rebuild the exact dataset and split the model was trained on."""

    spec: str
    options: dict[str, Any]
    seed: int
    val: float
    test: float
    test_spec: str | None = None  # an explicit held-out file (e.g. a UEA *_TEST.ts); then `test` is 0
    # the SHA-256 of each data file (spec, test_spec) when the checkpoint was saved; checkpoints before the
    # field: None (their data is not verified)
    sha256: dict[str, str] | None = None

    def files(self) -> list[str]:
        """The recorded data specs that are files (a builtin dataset such as ``watch`` is none)."""
        return [s for s in (self.spec, self.test_spec) if s and Path(s).is_file()]

    def pin(self) -> None:
        """Record the SHA-256 of the data files, unless recorded already."""
        if self.sha256 is None:
            self.sha256 = {s: sha256_file(Path(s)) for s in self.files()}

    def relocated(self, data: str | None, test_data: str | None) -> DatasetRef:
        """The same data at new paths (moved files whose bytes were checked): the specs and their pins."""
        pins = dict(self.sha256 or {})

        def move(old: str | None, new: str | None) -> str | None:
            if not (old and new):
                return old
            moved = str(Path(new).resolve())
            if old in pins:
                pins[moved] = pins.pop(old)
            return moved

        spec, test_spec = move(self.spec, data), move(self.test_spec, test_data)
        return replace(
            self,
            spec=spec or self.spec,
            test_spec=test_spec,
            sha256=pins if self.sha256 is not None else None,
        )

    def verify(self, spec: str) -> None:
        """Refuse the recorded data file ``spec`` if it changed since the checkpoint was saved."""
        want = (self.sha256 or {}).get(spec)
        if want is None or not Path(spec).is_file():
            return
        try:
            got = sha256_file(Path(spec))
        except OSError as exc:
            raise TinyLSTMError(
                f"cannot read {spec}: {exc.strerror}; check the path and permissions"
            ) from None
        if got != want:
            fix = (
                "restore the held-out file the model was tested on, or retrain"
                if spec == self.test_spec
                else "pass the original data with --data PATH, or retrain on the changed file"
            )
            raise TinyLSTMError(
                f"the data {spec} changed since the model was trained (SHA-256 differs): {fix}"
            )


@dataclass
class CheckpointMeta:
    cell: str
    input_size: int
    hidden_size: int
    num_layers: int
    output_size: int
    task: str
    mode: str
    window: int | None
    classes: list[str] | None
    channels: list[str]
    norm: dict[str, list[float]]
    target_norm: dict[str, list[float]] | None
    dataset: DatasetRef
    metrics: dict[str, Any] = field(default_factory=dict)
    readout: str = "last"  # what the head reads (contract/readouts.py); checkpoints before the field: last
    stack: int = 1  # samples per recurrent step (contract/stacking.py); checkpoints before the field: 1
    bidirectional: bool = False  # a backward stack (trainer/models.py); checkpoints before the field: none

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> CheckpointMeta:
        missing = [k for k in META_KEYS if k not in d and k not in OPTIONAL_KEYS]
        if missing:
            raise TinyLSTMError(
                f"{where}: checkpoint lacks keys {missing}; re-run tinylstm train to rebuild it"
            )
        try:
            dataset = DatasetRef(**d["dataset"])
            meta = cls(**{k: d[k] for k in META_KEYS if k != "dataset" and k in d}, dataset=dataset)
        except TypeError as exc:
            raise TinyLSTMError(
                f"{where}: malformed checkpoint metadata ({exc}); re-run tinylstm train"
            ) from None
        pins = dataset.sha256
        if pins is not None and not (
            isinstance(pins, dict) and all(isinstance(v, str) for kv in pins.items() for v in kv)
        ):
            raise TinyLSTMError(f"{where}: the data's SHA-256 record is malformed; re-run tinylstm train")
        for key, kinds in FIELD_TYPES.items():
            if not isinstance(getattr(meta, key), kinds):
                raise TinyLSTMError(
                    f"{where}: checkpoint field {key!r} has type {type(getattr(meta, key)).__name__}; "
                    "the file is malformed, re-run tinylstm train"
                )
        if (
            len(meta.norm.get("mean", [])) != meta.input_size
            or len(meta.norm.get("std", [])) != meta.input_size
        ):
            raise TinyLSTMError(f"{where}: input normalisation does not match input_size {meta.input_size}")
        if len(meta.channels) != meta.input_size:
            raise TinyLSTMError(
                f"{where}: {len(meta.channels)} channel names for input_size {meta.input_size}"
            )
        return meta


def qat_formats(meta: CheckpointMeta | None) -> tuple[int, int] | None:
    """(hidden-state bits, input bits) a quantization-aware checkpoint was fine-tuned for (codegen/qat.py):
    the formats its export is meant for; None for float training or no checkpoint. Records from before the
    int16 hidden state name none (int8), from before the int16 input none (the hidden state's own)."""
    qat = meta.metrics.get("qat") if meta is not None else None
    if not qat:
        return None
    bits = int(qat.get("hidden_bits", HIDDEN_BITS))
    return bits, int(qat.get("input_bits", input_bits(bits)))


META_KEYS = list(CheckpointMeta.__dataclass_fields__)
OPTIONAL_KEYS = {
    "readout",
    "stack",
    "bidirectional",
}  # added after version 1 checkpoints were written: their default applies
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "cell": str,
    "input_size": int,
    "hidden_size": int,
    "num_layers": int,
    "output_size": int,
    "task": str,
    "mode": str,
    "window": (int, type(None)),
    "classes": (list, type(None)),
    "channels": list,
    "norm": dict,
    "target_norm": (dict, type(None)),
    "metrics": dict,
    "readout": str,
    "stack": int,
    "bidirectional": bool,
}


def save_checkpoint(path: str | os.PathLike[str], model: TinyRNN, meta: CheckpointMeta) -> Path:
    """Write model + metadata to ``path`` atomically (a temporary file, then a rename), pinning the data
    files by SHA-256 if the metadata does not yet."""
    path = Path(path)
    meta.dataset.pin()
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {"format": FORMAT, "version": VERSION, **meta.to_dict(), "state_dict": model.state_dict()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(blob, tmp)
    tmp.replace(path)
    return path


def verify_archive(path: Path) -> None:
    """Refuse a damaged torch.save file before unpickling it: the zip format torch writes holds a CRC-32 per
    member, which torch.load does not check, so a flipped bit in a weight would otherwise load silently."""
    if not zipfile.is_zipfile(path):
        return  # the legacy (pre-1.6) format has no checksums; torch.load judges it
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        bad = f"the archive ({exc})"
    if bad is not None:
        raise TinyLSTMError(
            f"{path}: {bad} fails its CRC-32 check, the file is damaged (storage or transfer): copy it again "
            "or re-run tinylstm train"
        )


def checkpoint_file(path: str | os.PathLike[str]) -> Path:
    """The checkpoint file ``path`` names: itself, or a run directory's model.pt."""
    path = Path(path)
    return path / CHECKPOINT_NAME if path.is_dir() else path


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[TinyRNN, CheckpointMeta]:
    """Load a checkpoint file (or a run directory holding model.pt) into an eval-mode model."""
    path = checkpoint_file(path)
    if not path.is_file():
        raise TinyLSTMError(f"checkpoint {path} does not exist; train one with tinylstm train --out DIR")
    verify_archive(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 -- torch raises many unrelated types for corrupt or foreign files
        raise TinyLSTMError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}); the file is corrupt, truncated or "
            "not a torch file: re-run tinylstm train"
        ) from None
    return checkpoint_from_dict(blob, str(path))


def checkpoint_from_dict(blob: object, where: str) -> tuple[TinyRNN, CheckpointMeta]:
    """Validate an already loaded checkpoint dict (``where`` names it in errors) into an eval-mode model."""
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise TinyLSTMError(
            f"{where} is not a TinyLSTM checkpoint (no format={FORMAT!r}): give the model.pt `tinylstm "
            "train` wrote, which records the data, split and recipe that fine-tuning rebuilds; a model of "
            "your own exports with --description (docs/user-models.md), and prune it in PyTorch"
        )
    if blob.get("version") != VERSION:
        raise TinyLSTMError(
            f"{where} has checkpoint version {blob.get('version')!r}; this tinylstm reads version {VERSION}: "
            "re-train or use the matching tinylstm release"
        )
    meta = CheckpointMeta.from_dict(blob, where)
    if "state_dict" not in blob or not isinstance(blob["state_dict"], dict):
        raise TinyLSTMError(f"{where}: checkpoint lacks its state_dict; re-run tinylstm train")
    try:
        model = TinyRNN(
            meta.cell,
            meta.input_size,
            meta.hidden_size,
            meta.num_layers,
            meta.output_size,
            readout=meta.readout,
            stack=meta.stack,
            bidirectional=meta.bidirectional,
        )
    except TinyLSTMError as exc:
        raise TinyLSTMError(f"{where}: {exc}") from None
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else ""
        raise TinyLSTMError(
            f"{where}: weights do not match the recorded sizes ({first}); the checkpoint is inconsistent, "
            "re-train"
        ) from None
    model.eval()
    return model, meta


def mismatches(ds: SequenceSet, meta: CheckpointMeta) -> list[str]:
    """How ``ds`` differs from the data the model was trained on (empty: it matches), one phrase each."""
    recorded: list[tuple[str, object, object]] = [
        ("task", ds.task, meta.task),
        ("mode", ds.mode, meta.mode),
        # a CSV's first column name kept its UTF-8 byte order mark before the reader dropped it
        ("channels", list(ds.channels), [c.removeprefix("\ufeff") for c in meta.channels]),
    ]
    if ds.task == meta.task and meta.classes is not None:
        recorded.append(("classes", ds.classes, meta.classes))
    elif ds.task == meta.task:  # target columns (or a classifier's classes, if their names are not recorded)
        recorded.append(("outputs", ds.output_size, meta.output_size))
    return [f"{what} {got!r} (the model's: {want!r})" for what, got, want in recorded if got != want]


def load_splits_from_meta(
    meta: CheckpointMeta, data_override: str | None = None, test_override: str | None = None
) -> tuple[SequenceSet, SequenceSet, SequenceSet]:
    """Rebuild the (train, val, test) split the model was trained on, NOT normalised.

    ``data_override`` replaces the recorded dataset spec (for a moved file); options, seed and
    fractions stay as recorded so the split is the same. A recorded explicit test file is
    loaded as the test split; ``test_override`` replaces its path (the same file, moved). Data that is
    not what the model was trained on (another task, mode, channels or classes; a recorded file that
    changed since training, or a moved one whose bytes differ) is refused.
    """
    ref = meta.dataset
    spec = data_override or ref.spec
    if not spec:
        raise TinyLSTMError("this checkpoint was trained on an in-memory dataset; pass data_override=PATH")
    if test_override and not ref.test_spec:
        raise TinyLSTMError(
            "--test-data replaces the held-out file a model was trained with, and this model was trained "
            f"without one (its held-out split is {ref.test:g} of its data): leave --test-data out"
        )
    test_spec = test_override or ref.test_spec
    for recorded in ([] if data_override else [ref.spec]) + ([ref.test_spec] if ref.test_spec else []):
        if not (recorded == ref.test_spec and test_override):
            ref.verify(recorded)
    if not data_override and (ref.sha256 or {}).get(spec) and not Path(spec).is_file():
        raise TinyLSTMError(
            f"the data {spec} the model was trained on is gone: pass its new path with --data (the same "
            "file, moved) to rebuild the recorded split"
        )

    try:
        ds = load_dataset(spec, **ref.options)
    except TinyLSTMError:
        if data_override and Path(data_override).suffix.lower() != Path(ref.spec).suffix.lower():
            raise TinyLSTMError(  # the recorded options are the other format's: they named a flag never given
                f"{data_override} is not the kind of data the model was trained on ({ref.spec}, read with "
                f"its options {ref.options}): pass the file it was trained on, moved, or train a model on "
                "this data"
            ) from None
        raise
    differ = mismatches(ds, meta)
    if differ:
        raise TinyLSTMError(
            f"{spec} is not the kind of data the model was trained on: {'; '.join(differ)}; pass the data "
            "it was trained on with --data PATH, or train a model on this data"
        )
    pinned = (ref.sha256 or {}).get(ref.spec) if data_override else None
    if pinned is not None and Path(spec).is_file() and sha256_file(Path(spec)) != pinned:
        raise TinyLSTMError(
            f"{spec} is not the data the model was trained on ({ref.spec}: the SHA-256 differs), and --data "
            "stands for that file, moved or copied (the recorded split is rebuilt from it): pass it, or "
            "train a model on this data"
        )
    train, val, test = split(ds, val=ref.val, test=ref.test, seed=ref.seed)
    if test_spec:
        if not Path(test_spec).is_file():
            raise TinyLSTMError(
                f"the held-out file {test_spec} the model was trained with (--test-data) is gone: pass its "
                "new path with --test-data (the same file, moved), or put it back"
                if not test_override
                else f"--test-data {test_spec}: no such file; give the held-out file the model was trained on"
            )
        pinned = (ref.sha256 or {}).get(ref.test_spec or "") if test_override else None
        if pinned is not None and sha256_file(Path(test_spec)) != pinned:
            raise TinyLSTMError(
                f"{test_spec} is not the held-out file the model was trained with ({ref.test_spec}: the "
                "SHA-256 differs), and --test-data stands for that file, moved or copied: pass it"
            )
        test = load_test_set(test_spec, ds)
    return train, val, test
