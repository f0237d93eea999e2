"""Real held-out data of an export, as the samples a board receives (int8, or int16 for an int16 input; shared
by parity, replay and the stream feed); the training data for a model that has none held out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.drift_reference import model_window
from tinylstm.codegen.export import data_splits, export_origin
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.store import load_int_model


@dataclass
class HeldOut:
    model: IntModel
    name: str  # the export's C name: tl_<name>.h
    window: int  # samples per window, 0 in stream mode (TL_MODEL_WINDOW)
    sequences: list[np.ndarray]  # the model input [T, input_size] each, the recorded split in order
    # "held-out": the recorded test split; "training": the training data of a model that has none held out
    split: str = "held-out"

    def stream(self, steps: int) -> np.ndarray:
        """``steps`` samples: the held-out sequences end to end, repeated as often as needed."""
        one = np.concatenate(self.sequences)
        reps = -(-steps // len(one))
        return np.concatenate([one] * reps)[:steps]


def load_held_out(export_dir: Path, data: str | None = None, test_data: str | None = None) -> HeldOut:
    """The test split recorded for the export's model (as `tinylstm check` uses it), quantized (``data``,
    ``test_data``: its files, moved). A model trained on all its data (a search's refit, --test 0) has none:
    its training data is fed instead (``split``), as a board's bit-exactness needs real samples, not held-out
    ones."""
    m, doc = load_int_model(export_dir)
    origin = export_origin(export_dir, doc, data, test_data)
    train, test = data_splits(origin.loaded, origin.data, origin.test_data)
    fed, split = (test, "held-out") if len(test) else (train, "training")
    window = model_window(m)
    seqs = [golden.quantize_input(m, np.asarray(s)) for s in fed.sequences]
    return HeldOut(m, str(doc.get("name", "model")), window, seqs, split)
