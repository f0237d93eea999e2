"""The functions behind ``import tinylstm``: each is one step of the pipeline, as the CLI runs it."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from tinylstm.codegen.emit_c import Layout
from tinylstm.codegen.export import ModelSource, export_origin
from tinylstm.codegen.export import export as _export
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.spec import FloatModel
from tinylstm.codegen.store import load_int_model
from tinylstm.errors import TinyLSTMError
from tinylstm.host.bridge import CModel
from tinylstm.host.check import Thresholds
from tinylstm.host.check import check as _check
from tinylstm.host.parity import ParityReport, run_parity
from tinylstm.trainer.train import TrainConfig, TrainResult


def train(
    data: str | Path,
    out: str | Path,
    *,
    test_data: str | Path | None = None,
    dataset_options: dict[str, Any] | None = None,
    **config: Any,
) -> TrainResult:
    """``tinylstm train``: fit a TinyLSTM/TinyGRU on ``data`` (a dataset name or a .ts/.csv/.npz file)
    and write model.pt, curves.png and metrics.json to ``out``. ``config``: the fields of
    ``tinylstm.trainer.train.TrainConfig`` (cell, hidden, layers, epochs, lr, ...); ``dataset_options``:
    how to read the file (window, hop, target, group, channels, task, forecast, missing)."""
    from tinylstm.trainer.data import load_dataset, load_test_set
    from tinylstm.trainer.train import fit

    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TinyLSTMError(
            f"unknown training option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    ds = load_dataset(str(data), **(dataset_options or {}))
    test_ds = load_test_set(str(test_data), ds) if test_data else None
    return fit(ds, TrainConfig(**{"progress": False, **config}), out, test_ds)


@dataclass
class Export:
    """An export directory: the integer model, its C files, model.tlm and the float model it came from."""

    dir: Path
    model: IntModel
    doc: dict[str, Any]  # int_model.json: name, hash, pins of the float model and the data

    @property
    def name(self) -> str:
        return str(self.doc.get("name", "model"))

    def c_model(self) -> CModel:
        """The export's generated C files, compiled for the host (cffi): reset, step, run, trace."""
        return CModel.from_export(self.dir)

    def float_model(self) -> FloatModel:
        """The float model the export was made from (pinned by SHA-256)."""
        return export_origin(self.dir, self.doc).loaded.float_model


def load_export(export_dir: str | Path) -> Export:
    """Open a directory written by ``export`` / ``tinylstm export``."""
    d = Path(export_dir)
    model, doc = load_int_model(d)
    return Export(d, model, doc)


def export(
    model: str | Path,
    out: str | Path,
    *,
    data: str | None = None,
    description: str | Path | None = None,
    trust_module: bool = False,
    name: str = "model",
    layout: Layout = "w8",
) -> Export:
    """``tinylstm export``: calibrate ``model`` (a TinyLSTM checkpoint, a state_dict with a description, or a
    pickled module with ``trust_module``) on real data and write the C files, model.tlm and a report."""
    source = ModelSource(str(model), data, None if description is None else str(description), trust_module)
    _export(source, Path(out), name, layout)
    return load_export(out)


def check(export_dir: str | Path, data: str | None = None, **thresholds: float) -> dict[str, Any]:
    """``tinylstm check``: the report as a dict (``report["passed"]``). ``thresholds``: the fields of
    ``tinylstm.host.check.Thresholds``."""
    return _check(Path(export_dir), data, Thresholds(**thresholds))


def parity(export_dir: str | Path, port: str, steps: int = 10_000, baud: int = 115200) -> ParityReport:
    """``tinylstm parity``: feed held-out data to the board at ``port`` and compare every output with the host
    kernel (``report.passed``)."""
    from tinylstm.host.link import Link

    def reopen() -> Link:
        return Link.open(port, baud)

    with reopen() as link:
        return run_parity(link, Path(export_dir), steps, reopen=reopen)
