"""Save and load an integer model next to its generated C files (the export directory).

``int_model.npz`` holds the arrays, ``int_model.json`` the scalars, metadata and the hash;
loading recomputes the hash so an edited or mismatched pair is refused.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tinylstm.codegen.quantize import Calibration, IntLayer, IntModel
from tinylstm.codegen.spec import GATES, ModelMeta
from tinylstm.trainer.errors import TinyLSTMError

NPZ, JSON = "int_model.npz", "int_model.json"


def save_int_model(m: IntModel, out_dir: Path, extra: dict[str, Any] | None = None) -> None:
    arrays: dict[str, np.ndarray] = {
        "head_w": m.head_w, "head_b": m.head_b, "head_mult": m.head_mult, "head_shift": m.head_shift,
        "input_mean": m.input_mean, "input_mul": m.input_mul, "act_table": m.act_table,
    }
    for n, L in enumerate(m.layers):
        arrays |= {f"l{n}_weights": L.weights, f"l{n}_bias": L.bias, f"l{n}_mult": L.mult, f"l{n}_shift": L.shift,
                   f"l{n}_align": L.align}
        if L.bias_hn is not None:
            arrays[f"l{n}_bias_hn"] = L.bias_hn
    np.savez(out_dir / NPZ, **arrays)  # type: ignore[arg-type]  # numpy's stub types **kwds as allow_pickle
    doc = {
        "cell": m.cell, "num_layers": m.num_layers, "cell_frac": [L.cell_frac for L in m.layers],
        "output_scale": m.output_scale, "input_scale": m.input_scale, "hash": f"0x{m.model_hash:08x}",
        "meta": asdict(m.meta), "calibration": asdict(m.calibration), **(extra or {}),
    }
    (out_dir / JSON).write_text(json.dumps(doc, indent=2))


def load_int_model(out_dir: Path) -> tuple[IntModel, dict[str, Any]]:
    """Load the integer model of an export directory; returns it and the whole JSON document."""
    try:
        doc = json.loads((out_dir / JSON).read_text())
        z = np.load(out_dir / NPZ)
        gates = GATES[doc["cell"]]

        def layer(n: int) -> IntLayer:
            w = z[f"l{n}_weights"]
            hidden = w.shape[0] // gates
            return IntLayer(int(w.shape[1] - hidden), int(hidden), w, z[f"l{n}_bias"],
                            z.get(f"l{n}_bias_hn"), z[f"l{n}_mult"],
                            z[f"l{n}_shift"], int(doc["cell_frac"][n]), z[f"l{n}_align"])

        layers = [layer(n) for n in range(int(doc["num_layers"]))]
        m = IntModel(cell=doc["cell"], layers=layers, head_w=z["head_w"], head_b=z["head_b"],
                     head_mult=z["head_mult"], head_shift=z["head_shift"], output_scale=float(doc["output_scale"]),
                     input_mean=z["input_mean"], input_mul=z["input_mul"], input_scale=float(doc["input_scale"]),
                     act_table=z["act_table"], meta=ModelMeta(**doc["meta"]), calibration=Calibration(**doc["calibration"]))
    except FileNotFoundError as exc:
        raise TinyLSTMError(f"{out_dir} is not an export directory ({exc.filename} missing): run `tinylstm export`") from None
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as exc:
        raise TinyLSTMError(f"{out_dir}: the exported model files are damaged ({exc}); run `tinylstm export` again") from None
    if f"0x{m.model_hash:08x}" != doc.get("hash"):
        raise TinyLSTMError(f"{out_dir}: {NPZ} and {JSON} do not belong together (hash mismatch); export again")
    return m, doc
