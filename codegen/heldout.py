"""Real held-out data of an export, as the samples a board receives (int8, an int16-h model's int16; shared by
parity and replay)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinylstm.codegen import golden
from tinylstm.codegen.drift_reference import model_window
from tinylstm.codegen.export import data_splits, export_origin, require_held_out
from tinylstm.codegen.quantize import IntModel
from tinylstm.codegen.store import load_int_model


@dataclass
class HeldOut:
    model: IntModel
    name: str  # the export's C name: tl_<name>.h
    window: int  # samples per window, 0 in stream mode (TL_MODEL_WINDOW)
    sequences: list[np.ndarray]  # the model input [T, input_size] each, the recorded test split in order

    def stream(self, steps: int) -> np.ndarray:
        """``steps`` samples: the held-out sequences end to end, repeated as often as needed."""
        one = np.concatenate(self.sequences)
        reps = -(-steps // len(one))
        return np.concatenate([one] * reps)[:steps]


def load_held_out(export_dir: Path) -> HeldOut:
    """The test split recorded for the export's model (as `tinylstm check` uses it), quantized."""
    m, doc = load_int_model(export_dir)
    origin = export_origin(export_dir, doc)
    test = require_held_out(data_splits(origin.loaded, origin.data)[1], export_dir)
    window = model_window(m)
    seqs = [golden.quantize_input(m, np.asarray(s)) for s in test.sequences]
    return HeldOut(m, str(doc.get("name", "model")), window, seqs)
