"""The search's last step: the best trial's settings trained again on all the data (scikit-learn's ``refit``).

A trial's export trains on the training split (85 % of the data) and is checked on the rest. Where the trials
were scored by cross-validation (small data: host/search/selection.py) that split decided nothing, and on a
set of a few dozen sequences its 15 % are a real part of what a model learns from. There the best trial's
settings (architecture, learning rate, dropout, QAT, window and seed) train once more on every sequence, and
that model is the one ``OUT/best-export`` holds. Nothing is held out of it, so its quality estimate is the
trial's cross-validated score; what is verified of it is the integer contract on all the sequences
(host/analysis/check.py ``contract_check``: golden == C bit for bit, with every state word on a long stream,
and the blob). A refit already made for the same trial is reused, so writing the results again (a resumed
study whose best did not change) trains nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from tinylstm.codegen.export import ModelSource, export
from tinylstm.codegen.qat import finetune
from tinylstm.errors import TinyLSTMError
from tinylstm.host.analysis.check import contract_check
from tinylstm.trainer.sequence_set import SequenceSet
from tinylstm.trainer.train import TrainConfig, fit

RECORD = "refit.json"


def refit_applies(given: bool | None, cv: dict[str, Any] | None) -> tuple[bool, str]:
    """Whether the best trial is trained again on all the data (``given``: --refit / --no-refit, None: where
    its score was cross-validated, ``cv``) and why."""
    if given is not None:
        return given, "--refit" if given else "--no-refit: the best trial's own export"
    if cv:
        return True, f"the trials were cross-validated: {cv['why']}, so it decided nothing"
    return False, "the best trial was scored on its held-out split: its export, checked there, is kept"


def refit(
    ds: SequenceSet,
    config: TrainConfig,
    hidden_bits: int,
    root: Path,
    of: dict[str, Any],
    input_bits: int | None = None,
) -> dict[str, Any]:
    """Train ``config`` on all of ``ds`` into ``root``, export it with ``hidden_bits`` (and ``input_bits``)
    and verify the export on every sequence; ``of`` names what is refit (the trial and its export's hash).
    Returns the record (``root``/refit.json), reused when one for the same ``of`` is there with its export
    intact."""
    record = root / RECORD
    old = _reusable(record, of)
    if old is not None:
        return old | {"reused": True}
    started = time.perf_counter()
    result = fit(ds, dataclasses.replace(config, test=0.0), root / "run", finetune=finetune)
    export_dir = root / "export"
    exp = export(
        ModelSource(str(result.checkpoint_path)), export_dir, hidden_bits=hidden_bits, input_bits=input_bits
    )
    verified = contract_check(export_dir, ds)
    if not verified["ok"]:
        raise TinyLSTMError(
            f"the refit of trial {of['trial']} failed golden == C or its blob on the training data "
            f"({verified['bit_exact']}, blob {verified['blob']['ok']}): report this; --no-refit keeps the "
            "trial's export"
        )
    doc = {
        "of": of,
        "sequences": len(ds),
        "export": str(export_dir.resolve()),
        "hash": exp.report["hash"],
        "model_data_bytes": exp.report["model_data_bytes"],
        "seconds": round(time.perf_counter() - started, 2),
        # float vs integer on the data it trained on (not an estimate of held-out quality)
        "training_data": {k: verified["quality"][k] for k in ("metric", "float", "int8")},
        "bit_exact": verified["bit_exact"],
        "blob_ok": verified["blob"]["ok"],
    }
    record.write_text(json.dumps(doc, indent=1) + "\n")
    return doc | {"reused": False}


def _reusable(record: Path, of: dict[str, Any]) -> dict[str, Any] | None:
    """The record at ``record`` when it is a refit of ``of`` whose export still holds that model."""
    try:
        doc = json.loads(record.read_text())
        held = json.loads((Path(doc["export"]) / "export-report.json").read_text()).get("hash")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return doc if doc.get("of") == of and held == doc.get("hash") else None
